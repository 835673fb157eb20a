"""Bursts: when a group has more new-request cards pending than TELEGRAM_SUMMARY_AFTER, the
newer ones are folded into summaries with a Take button per request (see the sender's
docstring for the rules)."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

from tortoise.transactions import in_transaction

from db.models import CustomerRequest, TelegramOutbox
from telegram_delivery.contract import Delivery, Kind, delivery_of, pack
from telegram_delivery.lookups import utcnow
from telegram_delivery.outbox import Priority

log = logging.getLogger("helpdesk.telegram_delivery.sender")


class BurstFolding:
    """Mixed into telegram_delivery.sender.Sender (uses its `limits`, `lang`, `_chat` and
    `_count`)."""

    async def _fold_burst(self, chat_id: int) -> bool:
        """More than `summary_after` new-request cards pending in this group: the newer ones
        are folded into summaries with a Take button per request (and their cards either
        dropped or moved to class 4). A summary not sent yet takes more requests while they
        fit, so a burst arriving over a minute makes few summaries. Safe with several
        senders: a card is folded by the one UPDATE that changes it, and a summary is only
        topped up while it is still `pending` (its sender re-reads it after claiming)."""
        from telegram_delivery.cards import summary_chunks
        from telegram_delivery.outbox import enqueue

        pending = (
            await TelegramOutbox.filter(
                chat_id=chat_id, status="pending", method="sendMessage",
                dedup_key__startswith="new:", priority=Priority.NEW_REQUEST,
            )
            .order_by("id")
            .values("id", "request_id")
        )
        # A burst goes on (this group folded within the last window): every new card joins a
        # summary; the group's budget goes to summaries, not to cards one by one.
        state = self._chat(chat_id)
        burst = time.monotonic() - state.last_fold < self.limits.rates.group.window
        keep = 0 if burst else self.limits.summary_after
        if len(pending) <= keep or not pending:
            return False
        excess = pending[keep:]
        token = uuid.uuid4().hex[:16]
        marker = f"folded:{token}"
        request_ids = [c["request_id"] for c in excess if c["request_id"] is not None]
        open_summary = await TelegramOutbox.filter(
            chat_id=chat_id, status="pending", method="sendMessage", dedup_key__startswith="summary:",
        ).order_by("-id").first()
        listed = list(delivery_of(open_summary.payload).requests) if open_summary is not None else []
        titles = dict(await CustomerRequest.filter(id__in=request_ids + listed).values_list("id", "title"))
        later = self.limits.cards_after_summary
        async with in_transaction() as conn:
            cards = TelegramOutbox.filter(
                id__in=[c["id"] for c in excess], status="pending", priority=Priority.NEW_REQUEST
            ).using_db(conn)
            topics = TelegramOutbox.filter(
                chat_id=chat_id, status="pending", priority=Priority.NEW_REQUEST,
                dedup_key__in=[f"new:{r}:topic" for r in request_ids],
            ).using_db(conn)
            if later:
                await cards.update(priority=Priority.BACKGROUND, last_error=marker)
                await topics.update(priority=Priority.BACKGROUND, last_error=marker)
            else:
                await cards.update(status="merged", last_error=marker)
                await topics.update(status="merged", last_error=marker)
            folded = await TelegramOutbox.filter(
                last_error=marker, method="sendMessage"
            ).using_db(conn).order_by("id").values_list("request_id", flat=True)
            folded_ids = [r for r in folded if r is not None and r in titles]
            # The last summary waits `edit_delay` for more requests (at most 3x that since it
            # was queued); one followed by another is full and goes at once.
            now = utcnow()
            chunks = summary_chunks([(rid, str(titles[rid])) for rid in listed + folded_ids], self.lang)
            if listed and chunks and chunks[0][:len(listed)] == listed:
                assert open_summary is not None
                hold = None if len(chunks) > 1 else min(
                    now + timedelta(seconds=self.limits.edit_wait),
                    open_summary.created_at + timedelta(seconds=3 * self.limits.edit_wait))
                topped = await TelegramOutbox.filter(id=open_summary.id, status="pending").using_db(conn).update(
                    payload=pack(*summary_payload(chunks[0], titles, self.lang)), not_before=hold,
                )
                new_chunks = chunks[1:] if topped else summary_chunks(
                    [(rid, str(titles[rid])) for rid in folded_ids], self.lang)
            else:
                new_chunks = summary_chunks([(rid, str(titles[rid])) for rid in folded_ids], self.lang)
            for n, chunk in enumerate(new_chunks, start=1):
                key = f"summary:{token}:{n}"
                params, delivery = summary_payload(chunk, titles, self.lang)
                await enqueue(chat_id, "sendMessage", params, delivery=delivery, dedup_key=key, using_db=conn, priority=Priority.NEW_REQUEST)
                if n == len(new_chunks):
                    await TelegramOutbox.filter(dedup_key=key).using_db(conn).update(
                        not_before=now + timedelta(seconds=self.limits.edit_wait))
            if later:
                await TelegramOutbox.filter(last_error=marker).using_db(conn).update(last_error=None)
        if folded_ids:
            state.last_fold = time.monotonic()
            self._count("folded", len(folded_ids))
            self._count("summaries", len(new_chunks))
            log.info("group %s: %d new requests folded into summaries with Take buttons (%d new)%s",
                     chat_id, len(folded_ids), len(new_chunks),
                     "; their cards follow in class 4" if later else "")
        return bool(folded_ids)


def summary_payload(request_ids: list[int], titles: dict[int, str], lang: str
                    ) -> tuple[dict[str, Any], Delivery]:
    """A summary row as queued (it is rendered again from the database when sent)."""
    from telegram_delivery.cards import summary_message

    text, keyboard = summary_message(
        [(rid, {"id": rid, "title": titles[rid], "status": "open"}) for rid in request_ids], lang
    )
    payload: dict[str, Any] = {"text": text}
    if keyboard:
        payload["reply_markup"] = keyboard
    return payload, Delivery(kind=Kind.SUMMARY, requests=tuple(request_ids))
