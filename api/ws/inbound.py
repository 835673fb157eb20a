"""Frames from the client: ping, resume, and a chat message (saved through
core.chats.post_chat_message); anything else gets an error frame."""

from __future__ import annotations

from typing import Any

import orjson

from api.http import MAX_BIG_ID, NUL_NOT_ALLOWED, int_from_text
from api.ws.connection import Connection
from api.ws.hub import Hub
from api.ws.limits import resume_allowed
from api.ws.protocol import dumps, error_frame
from api.ws.replay import replay
from core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from core.texts import t
from db.models import Source


def parse_last_event_id(value: Any) -> int | None:
    """None when absent; ValueError unless a non-negative integer an event id can be
    (the event log's id is a BIGINT: a larger value would fail in the database)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError
    number = int_from_text(value) if isinstance(value, str) else value
    if not isinstance(number, int) or not 0 <= number <= MAX_BIG_ID:
        raise ValueError
    return number


async def handle_frame(conn: Connection, raw: str | bytes, hub: Hub | None = None) -> None:
    if isinstance(raw, (bytes, bytearray)):
        await conn.send(error_frame("invalid_frame", "Only JSON text frames are accepted."))
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        await conn.send(error_frame("invalid_json", "The frame is not valid JSON."))
        return
    if not isinstance(data, dict):
        await conn.send(error_frame("invalid_frame", "A frame must be a JSON object."))
        return
    kind = data.get("type")
    if kind == "ping":
        await conn.send(dumps({"type": "pong"}))
        return
    if kind == "resume":
        try:
            after = parse_last_event_id(data.get("last_event_id"))
        except (TypeError, ValueError):
            after = None
        if after is None:
            await conn.send(
                error_frame("invalid_frame", "resume needs last_event_id, a non-negative integer.")
            )
            return
        if hub is not None and not await resume_allowed(hub, conn):
            return
        await replay(conn, after)
        return
    if conn.kind == "chat" and kind in (None, "message") and "message" in data:
        await _post_chat_message(conn, data.get("message"))
        return
    expected = 'ping, resume or {"message": "..."}' if conn.kind == "chat" else "ping or resume"
    await conn.send(error_frame("unknown_type", f"Unknown frame; expected {expected}."))


async def _post_chat_message(conn: Connection, text: Any) -> None:
    from core.chats import post_chat_message

    assert conn.user is not None and conn.key is not None
    if not isinstance(text, str):
        await conn.send(error_frame("invalid", {"message": [t("err_not_string")]}))
        return
    if "\x00" in text:  # PostgreSQL cannot store it (the REST body check, api.http)
        await conn.send(error_frame("invalid", {"message": [NUL_NOT_ALLOWED]}))
        return
    try:
        # The hub broadcasts it (to the sender too) when the outbox relay publishes it.
        await post_chat_message(conn.user, conn.key, text, source=Source.web)
    except ValidationFailed as exc:
        errors = dict(exc.errors)
        if "content" in errors:
            errors["message"] = errors.pop("content")
        await conn.send(error_frame("invalid", errors))
    except PermissionDenied as exc:
        await conn.send(error_frame("forbidden", exc.message))
    except NotFound as exc:
        await conn.send(error_frame("not_found", exc.message))
    except DomainError as exc:
        await conn.send(error_frame("invalid", exc.message))
