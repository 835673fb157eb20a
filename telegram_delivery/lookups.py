"""What the sender looks up when it sends: the request as a card shows it, what a card, a
summary or a topic shows now (render hashes of the last sent version), and whether a newer
edit of the same message makes a row moot."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q

from db.models import CustomerRequest, TelegramOutbox, TelegramThread
from telegram_delivery.contract import CopyTarget

ACTIVE = ("pending", "sending")


def utcnow() -> datetime:
    return datetime.now(UTC)


async def load_request_data(request_id: int) -> dict[str, Any] | None:
    """The request as the card shows it (request_data plus Telegram usernames); None if gone."""
    from core.serializers import request_data

    req = await CustomerRequest.filter(id=request_id).select_related("customer", "assigned_admin").first()
    if req is None:
        return None
    data = request_data(req)
    if data.get("customer") is not None and req.customer.telegram_username:
        data["customer"]["telegram_username"] = req.customer.telegram_username
    if data.get("assigned_admin") is not None and req.assigned_admin and req.assigned_admin.telegram_username:
        data["assigned_admin"]["telegram_username"] = req.assigned_admin.telegram_username
    return data


async def thread_by_link(chat_id: int, request_id: int) -> TelegramThread | None:
    # After a delete the TelegramThread row is gone with the request (cascade); the card's
    # message link survives and still lets us strike the card through.
    sent = await TelegramOutbox.filter(
        chat_id=chat_id, request_id=request_id, status="sent",
        dedup_key__in=[f"new:{request_id}:card", f"thread:{request_id}:card"],
    ).first()
    if sent is None or not (sent.result or {}).get("message_id"):
        return None
    return TelegramThread(request_id=request_id, chat_id=chat_id, card_message_id=sent.result["message_id"])


def edit_target(dedup_key: str) -> str | None:
    """The message an edit row changes, as the tail of its dedup key: `:edit` (a request's
    card), `:sumedit:<message id>` (a summary), `:topicname` / `:topicstate` (a request's
    topic). Edits with the same target and request collapse into the newest."""
    for tail in (":edit", ":topicname", ":topicstate"):
        if dedup_key.endswith(tail):
            return tail
    head, sep, mid = dedup_key.rpartition(":sumedit:")
    if sep and mid.isdigit():
        return f":sumedit:{mid}"
    return None


async def newer_edit_pending(row: TelegramOutbox) -> bool:
    """A newer pending edit of the same message: this one would be overwritten anyway."""
    target = edit_target(row.dedup_key)
    if target is None:
        return False
    return await TelegramOutbox.filter(
        chat_id=row.chat_id, request_id=row.request_id, status="pending", id__gt=row.id,
        dedup_key__endswith=target,
    ).exists()


async def card_queued(chat_id: int, request_id: int) -> bool:
    return await TelegramOutbox.filter(
        chat_id=chat_id, request_id=request_id, status__in=ACTIVE,
        dedup_key__in=[f"new:{request_id}:card", f"thread:{request_id}:card"],
    ).exists()


async def load_requests_data(request_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Several requests as cards and summaries show them (`load_request_data` in one query)."""
    from core.serializers import request_data

    out: dict[int, dict[str, Any]] = {}
    if not request_ids:
        return out
    for req in await CustomerRequest.filter(id__in=request_ids).select_related("customer", "assigned_admin"):
        data = request_data(req)
        if data.get("assigned_admin") is not None and req.assigned_admin and req.assigned_admin.telegram_username:
            data["assigned_admin"]["telegram_username"] = req.assigned_admin.telegram_username
        out[req.id] = data
    return out


async def summary_entries(chat_id: int, request_ids: list[int]) -> list[tuple[int, dict[str, Any] | None]]:
    found = await load_requests_data(request_ids)
    return [(rid, found.get(rid)) for rid in request_ids]


async def summary_render(chat_id: int, mid: int) -> str | None:
    """The render hash of what a summary shows now: its last sent edit, or the summary."""
    edit = await TelegramOutbox.filter(
        chat_id=chat_id, status="sent", dedup_key__endswith=f":sumedit:{mid}",
    ).order_by("-sent_at", "-id").first()
    if edit is not None:
        return (edit.result or {}).get("render")
    for sent in await TelegramOutbox.filter(
        chat_id=chat_id, status="sent", dedup_key__startswith="summary:",
    ).order_by("-id").limit(500):
        if (sent.result or {}).get("message_id") == mid:
            return (sent.result or {}).get("render")
    return None


async def last_topic_state(chat_id: int, request_id: int, topic_id: int) -> dict[str, Any]:
    """What a request's topic shows now: its name and whether it is closed (from the last
    sent topic rows for this topic; a new topic is open)."""
    state: dict[str, Any] = {"closed": False}
    rows = await TelegramOutbox.filter(
        Q(dedup_key__endswith=":topic") | Q(dedup_key__endswith=":topicname")
        | Q(dedup_key__endswith=":topicstate"),
        chat_id=chat_id, request_id=request_id, status="sent",
    ).order_by("sent_at", "id")
    for r in rows:
        result = r.result or {}
        if result.get("topic_id") not in (None, topic_id):
            continue
        if r.dedup_key.endswith(":topicstate"):
            state["closed"] = bool(result.get("closed"))
        elif "name" in result:
            state["name"] = result["name"]
    return state


def render_hash(payload: dict[str, Any]) -> str:
    raw = json.dumps([payload.get("text"), payload.get("reply_markup")], sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


async def last_render(chat_id: int, request_id: int) -> str | None:
    """The render hash of what the card shows now (its last sent version)."""
    rows = await TelegramOutbox.filter(
        Q(dedup_key__in=[f"new:{request_id}:card", f"thread:{request_id}:card"])
        | Q(dedup_key__endswith=":edit"),
        chat_id=chat_id, request_id=request_id, status="sent",
    ).order_by("-sent_at", "-id").limit(1)
    return (rows[0].result or {}).get("render") if rows else None


def copy_change_key(chat_id: int, message_id: int, event_id: int, what: str) -> str:
    """Dedup key of an edit ("e") or deletion ("d") of one Telegram copy (telegram_delivery.relay)."""
    return f"copy:{chat_id}:{message_id}:{event_id}:{what}"


async def newer_copy_change(row: TelegramOutbox, target: CopyTarget) -> bool:
    """A newer edit or deletion of the same Telegram message is queued: this one is moot."""
    return await TelegramOutbox.filter(
        chat_id=row.chat_id, status="pending", id__gt=row.id,
        dedup_key__startswith=f"copy:{row.chat_id}:{int(target.message_id)}:",
    ).exists()
