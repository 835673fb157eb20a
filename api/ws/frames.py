"""The frames each route sends for a bus event: admin (the REST JSON, a system message in
the reader's language), chat (the seed's ChatConsumer frame) and the customer page (built
from the database with the customer-facing serializer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from api.ws.protocol import ADMIN_TYPES, CHAT_EVENT_NAMES, MESSAGE_TYPES
from core import events, i18n
from core.serializers import (
    customer_attachment_data,
    customer_message_data,
    customer_request_data,
)
from db.models import CustomerRequest, RequestAttachment, RequestMessage

if TYPE_CHECKING:
    from api.ws.connection import Connection


def admin_frame(message: dict[str, Any], lang: str | None = None) -> dict[str, Any] | None:
    """The seed's AdminNotificationConsumer frame: the REST JSON of the change in `data`;
    a system message's text in `lang`, the reader's language (core.i18n.EVENT_FIELD)."""
    if message.get("topic") != events.ADMIN_TOPIC or message.get("type") not in ADMIN_TYPES:
        return None
    data = message["data"]
    if isinstance(data, dict) and i18n.EVENT_FIELD in data:
        text = i18n.from_json(data[i18n.EVENT_FIELD])
        data = {k: v for k, v in data.items() if k != i18n.EVENT_FIELD}
        if text is not None and lang:
            data["content"] = text.in_language(lang)
    return {"type": message["type"], "data": data, "event_id": message["id"]}


def reader_language(conn: Connection) -> str:
    return i18n.lang_of(conn.user.language if conn.user is not None else None)


def chat_ws_frame(message: dict[str, Any]) -> dict[str, Any] | None:
    """The seed's ChatConsumer frame (core.serializers.chat_frame); join/leave say so in
    `event` and arrive as system messages."""
    if message.get("type") not in (events.CHAT_MESSAGE, *CHAT_EVENT_NAMES):
        return None
    frame = {k: v for k, v in message["data"].items() if k not in ("data", "source")}
    if message["type"] in CHAT_EVENT_NAMES:
        frame["event"] = CHAT_EVENT_NAMES[message["type"]]
    frame["event_id"] = message["id"]
    return frame


def _public_target(message: dict[str, Any], request_id: int) -> tuple[str, int] | None:
    """("request", id), ("deleted", id), ("message", id) or ("message_deleted", id) when the
    customer page of `request_id` is told of this event; None otherwise (other requests,
    internal notes, other topics)."""
    if message.get("topic") != events.ADMIN_TOPIC:
        return None
    data = message.get("data") or {}
    if message.get("type") == events.REQUEST_UPDATED and data.get("id") == request_id:
        return ("deleted" if data.get("deleted") else "request", request_id)
    if (
        message.get("type") in MESSAGE_TYPES
        and data.get("request") == request_id
        and not data.get("is_internal")
        and isinstance(data.get("id"), int)
    ):
        # new_message, message_updated (core.message_edits) and message_deleted alike;
        # internal notes (and their edits) never reach the customer's page.
        if message.get("type") == events.MESSAGE_DELETED:
            return ("message_deleted", data["id"])
        return ("message", data["id"])
    return None


async def public_frames(
    messages: list[dict[str, Any]], request_id: int, access_key: str
) -> list[tuple[int, dict[str, Any]]]:
    """The customer page's frames for `messages` (event ids and frames, in order).

    Built with the customer-facing serializer (core.serializers.customer_request_data /
    customer_message_data) from the database, never from the staff JSON the events carry:
    no staff e-mail, username or tags, and `messages_count` counting what the customer
    can see. At most four queries for any number of events (a replay batch or one live
    event). A message deleted (or made internal) since is left out; a `message_deleted`
    frame carries only the message's id and request (`is_deleted`), never its text."""
    targets = [(m, t) for m in messages if (t := _public_target(m, request_id)) is not None]
    if not targets:
        return []
    message_ids = [ident for _, (kind, ident) in targets if kind == "message"]
    deleted_ids = [ident for _, (kind, ident) in targets if kind == "message_deleted"]
    req_view = None
    if any(kind == "request" for _, (kind, _) in targets):
        req = await CustomerRequest.filter(id=request_id).select_related("assigned_admin").first()
        req_view = customer_request_data(req) if req is not None else None
    views: dict[int, dict[str, Any]] = {}
    gone_views: dict[int, dict[str, Any]] = {}
    if deleted_ids:  # a public message's deletion (core.message_edits): no text, no sender
        gone = await RequestMessage.filter(
            id__in=deleted_ids, request_id=request_id, is_internal=False, is_deleted=True
        ).values_list("id", flat=True)
        gone_views = {i: {"id": i, "request": request_id, "is_deleted": True} for i in gone}
    if message_ids:
        rows = await RequestMessage.filter(
            id__in=message_ids, request_id=request_id, is_internal=False, is_deleted=False
        ).select_related("sender")
        files: dict[int, list[dict[str, Any]]] = {}
        for att in await RequestAttachment.filter(message_id__in=message_ids).order_by("id"):
            url = f"/api/public/requests/{access_key}/attachments/{att.id}/"
            files.setdefault(att.message_id, []).append(customer_attachment_data(att, url))
        views = {m.id: customer_message_data(m, attachments=files.get(m.id, [])) for m in rows}
    out: list[tuple[int, dict[str, Any]]] = []
    for message, (kind, ident) in targets:
        if kind == "deleted":
            data: dict[str, Any] | None = {"id": request_id, "deleted": True}
        elif kind == "request":
            data = req_view
        elif kind == "message_deleted":
            data = gone_views.get(ident)
        else:
            data = views.get(ident)
        if data is not None:
            out.append((message["id"], {"type": message["type"], "data": data,
                                        "event_id": message["id"]}))
    return out
