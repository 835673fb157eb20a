"""The sender's outcomes of a row: sent (with the thread, the summary and the message links
it leaves, in one transaction with the row), retried later, failed (with an internal note
on the request), or closed without a call."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from db.models import CustomerRequest, TelegramMessageLink, TelegramOutbox, TelegramThread
from telegram_delivery.contract import CopyTarget, Delivery, Kind, MessageLink, content_version
from telegram_delivery.lookups import render_hash, summary_entries, utcnow

log = logging.getLogger("helpdesk.telegram_delivery.sender")


class Outcomes:
    """Mixed into telegram_delivery.sender.Sender (uses its `limits`, `lang`, `admin_chat`,
    `_noted` and `_count`)."""

    async def _mark_sent(self, row: TelegramOutbox, delivery: Delivery, result: Any,
                         payload_sent: dict[str, Any] | None = None, method: str | None = None) -> None:
        payload_sent = payload_sent or {}
        compact = compact_result(result)
        kind = delivery.kind
        if kind in ("card", "card_edit", "summary", "summary_edit") and "text" in payload_sent:
            compact["render"] = render_hash(payload_sent)
        if kind in ("topic", "topic_edit", "topic_state"):
            compact["topic_id"] = payload_sent.get("message_thread_id") or compact.get("message_thread_id")
        if kind in ("topic", "topic_edit") and "name" in payload_sent:
            compact["name"] = payload_sent["name"]
        if kind == "topic_state":
            compact["closed"] = method == "closeForumTopic"
        if kind == "summary_edit":
            compact["summary"] = payload_sent.get("message_id")
        message_ids = compact.get("message_ids") or ([compact["message_id"]] if "message_id" in compact else [])
        request_id = delivery.request_id or row.request_id
        async with in_transaction() as conn:
            await TelegramOutbox.filter(id=row.id).using_db(conn).update(
                status="sent", result=compact, sent_at=utcnow(), last_error=None
            )
            if kind == "topic" and compact.get("message_thread_id") and request_id:
                await upsert_thread(conn, int(request_id), row.chat_id, topic_id=compact["message_thread_id"])
            if kind == "card" and message_ids and request_id:
                await upsert_thread(conn, int(request_id), row.chat_id, card_message_id=message_ids[0])
            if kind == "summary" and message_ids:
                for rid in delivery.requests:
                    await upsert_thread(conn, int(rid), row.chat_id, summary_message_id=message_ids[0])
            link = delivery.link
            if kind == "card" and request_id and link is None:
                link = MessageLink(request_id=int(request_id))
            if link and message_ids:
                await TelegramMessageLink.bulk_create(
                    [
                        TelegramMessageLink(
                            chat_id=row.chat_id, message_id=mid,
                            request_id=link.request_id,
                            request_message_id=link.request_message_id,
                            chat_message_id=link.chat_message_id,
                            kind=link.kind[:8],
                            part=(link.part or 1) + n,
                        )
                        for n, mid in enumerate(message_ids)
                    ],
                    ignore_conflicts=True, using_db=conn,
                )
        self._count("sent")
        if kind == "summary" and message_ids and "render" in compact:
            await self._resync_summary(row, delivery, message_ids[0], compact["render"])
        if link and link.request_message_id and link.version and message_ids:
            await self._resync_copy(row, link, message_ids)

    async def _resync_copy(self, row: TelegramOutbox, link: MessageLink, message_ids: list[int]) -> None:
        """A thread message edited or deleted while its copy was on the way: the relay found
        no copy to change then, so the copy checks itself once it is sent. Deleted: the copy
        goes. Edited (its text is no longer the one the copy was rendered from): every copy
        of it in this chat is brought to the current text, as the relay would have."""
        from db.models import RequestMessage
        from telegram_delivery import cards
        from telegram_delivery.lookups import copy_change_key
        from telegram_delivery.outbox import enqueue
        from telegram_delivery.relay.edits import copies_of, copy_changes

        # Two columns first: nearly every copy is sent unchanged, and then that is all it costs.
        state = await RequestMessage.filter(id=link.request_message_id).limit(1).values_list(
            "is_deleted", "content")
        if not state:
            return
        deleted, content = state[0]
        if deleted:
            changes = [(mid, "deleteMessage", {}) for mid in message_ids]
        elif content_version(content) != link.version:
            msg = await RequestMessage.filter(id=link.request_message_id).select_related(
                "request__customer", "sender").first()
            if msg is None:
                return
            links = await copies_of(msg, self.admin_chat, chat_id=row.chat_id)
            changes = [(c.message_id, method, params) for c, method, params
                       in copy_changes(msg, links, self.admin_chat, cards.lang_of(self.lang))]
        else:
            return
        for mid, method, params in changes:
            what = "d" if method == "deleteMessage" else "e"
            await enqueue(row.chat_id, method, {**params, "message_id": mid},
                          delivery=Delivery(kind=Kind.COPY_CHANGE, request_id=link.request_id,
                                            target=CopyTarget(row.chat_id, mid)),
                          dedup_key=f"{copy_change_key(row.chat_id, mid, 0, what)}:resync:{row.id}",
                          request_id=link.request_id)

    async def _resync_summary(self, row: TelegramOutbox, delivery: Delivery, mid: int,
                              sent_render: str) -> None:
        """A request taken while its summary was on the way: the relay could not know the
        summary's message yet, so the summary checks itself once it is sent."""
        from telegram_delivery import cards
        from telegram_delivery.outbox import enqueue

        entries = await summary_entries(row.chat_id, list(delivery.requests))
        text, keyboard = cards.summary_message(entries, self.lang)
        now = {"text": text, "reply_markup": keyboard} if keyboard else {"text": text}
        if render_hash(now) != sent_render:
            await enqueue(row.chat_id, "editMessageText", {},
                          delivery=Delivery(kind=Kind.SUMMARY_EDIT, summary=mid),
                          dedup_key=f"{row.dedup_key}:resync:sumedit:{mid}")

    async def _set_pending(self, row: TelegramOutbox, not_before: datetime | None, error: str,
                           *, count_attempt: bool) -> None:
        fields: dict[str, Any] = {"status": "pending", "not_before": not_before, "last_error": error[:2000]}
        if not count_attempt:
            fields["attempts"] = max(0, row.attempts - 1)
        await TelegramOutbox.filter(id=row.id, status="sending").update(**fields)

    async def _retry_later(self, row: TelegramOutbox, error: str, *, backoff: bool,
                           count: bool = True) -> None:
        if count and row.attempts >= self.limits.max_attempts:
            await self._fail(row, error)
            return
        self._count("retried_errors")
        delay = min(self.limits.backoff_max, self.limits.backoff_base * (2 ** max(0, row.attempts - 1)))
        log.warning("outbox row %s: %s; retry %d in %.1fs", row.id, error[:300], row.attempts, delay)
        await self._set_pending(row, utcnow() + timedelta(seconds=delay), error, count_attempt=count)

    async def _fail(self, row: TelegramOutbox, error: str) -> None:
        self._count("failed")
        log.error("outbox row %s (%s to %s) failed: %s", row.id, row.method, row.chat_id, error[:500])
        await self._close(row, "failed", error)
        if row.request_id is not None:
            await self._note_failure(row, error)

    async def _note_failure(self, row: TelegramOutbox, error: str) -> None:
        """An internal system note on the row's request, so staff see the message did not
        reach Telegram (at most one per request per `note_interval`)."""
        now = time.monotonic()
        last = self._noted.get(int(row.request_id))
        if last is not None and now - last < self.limits.note_interval:
            return
        self._noted[int(row.request_id)] = now
        if len(self._noted) > 10000:
            self._noted = {k: v for k, v in self._noted.items() if now - v < self.limits.note_interval}
        from core.requests import add_internal_system_note
        from telegram_delivery.texts import plain

        note = plain("note_delivery_failed", self.lang, chat=row.chat_id, error=error[:300], row=row.id)
        try:
            await add_internal_system_note(int(row.request_id), note)
        except Exception as exc:  # the note is a courtesy; the row stays failed
            log.warning("outbox row %s: internal note on request %s not written: %s",
                        row.id, row.request_id, exc)

    async def _close(self, row: TelegramOutbox, status: str, reason: str) -> None:
        await TelegramOutbox.filter(id=row.id).update(status=status, last_error=reason[:2000])


async def upsert_thread(conn: Any, request_id: int, chat_id: int, **fields: Any) -> None:
    if not await CustomerRequest.filter(id=request_id).using_db(conn).exists():
        return
    updated = await TelegramThread.filter(request_id=request_id).using_db(conn).update(chat_id=chat_id, **fields)
    if not updated:
        await TelegramThread.bulk_create(
            [TelegramThread(request_id=request_id, chat_id=chat_id, **fields)],
            ignore_conflicts=True, using_db=conn,
        )
        await TelegramThread.filter(request_id=request_id).using_db(conn).update(**fields)


def compact_result(result: Any) -> dict[str, Any]:
    """What we keep of a Bot API result: message ids and topic ids."""
    if isinstance(result, list):
        return {"message_ids": [m.message_id for m in result if hasattr(m, "message_id")]}
    if hasattr(result, "message_id"):
        out: dict[str, Any] = {"message_id": result.message_id}
        thread = getattr(result, "message_thread_id", None)
        if thread:
            out["message_thread_id"] = thread
        return out
    if hasattr(result, "message_thread_id"):
        return {"message_thread_id": result.message_thread_id}
    return {"ok": bool(result)}
