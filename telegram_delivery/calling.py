"""One call to the Bot API for a claimed row: the budget slot, the call, and what each of
Telegram's answers means for the row (sent, 429 and its chat waits, retried, ignored,
failed; a deleted forum topic recreated).

Mixed into telegram_delivery.sender.Sender (uses its `limits`, `lang`, `bot`, `budget`,
`stats`, `not_forum`, `_wake`, `_count` and the Preparing and Outcomes mixins)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from core.backoff import is_outage
from db.models import TelegramOutbox, TelegramThread
from telegram_delivery.budget import Budget, Grant
from telegram_delivery.contract import unpack
from telegram_delivery.lookups import load_request_data, utcnow
from telegram_delivery.pacing import SenderLimits
from telegram_delivery.planning import Candidate, ChatState
from telegram_delivery.sender_stats import STATS

log = logging.getLogger("helpdesk.telegram_delivery.sender")

TOPIC_GONE = ("topic_id_invalid", "message thread not found", "topic_deleted")
# Telegram's final answers to an edit or deletion of a copy (telegram_delivery.relay): closed as
# `ignored` with a log line, never retried. "message is not modified" counts as sent.
COPY_REFUSALS = (
    "message to edit not found", "message can't be edited", "message to delete not found",
    "message can't be deleted", "message_id_invalid",
)


class Calling:
    limits: SenderLimits
    lang: str
    bot: Any
    budget: Budget
    not_forum: set[int]

    async def _deliver(self, cand: Candidate, state: ChatState) -> None:
        row: Any = cand.row
        try:
            row = await TelegramOutbox.get(id=cand.row.id)  # claimed: `sending`, ours
            if await self._deliver_row(row, state):
                self.stats.sent_by_class[cand.cls] = self.stats.sent_by_class.get(cand.cls, 0) + 1
                STATS.sent_by_class[cand.cls] = STATS.sent_by_class.get(cand.cls, 0) + 1
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                if is_outage(exc):
                    # The database, not the row: try again later (if the write fails too,
                    # the row's lease brings it back).
                    await self._retry_later(row, error, backoff=True, count=False)
                elif row.attempts >= self.limits.poison_attempts:
                    log.warning("outbox row %s failed %d times; parked", row.id, row.attempts,
                                exc_info=exc)
                    await self._fail(row, f"internal error: {error}")
                else:
                    await self._retry_later(row, f"internal error: {error}", backoff=True)
        finally:
            state.busy = False
            self._wake.set()

    async def _slot(self, chat_id: int) -> Grant:
        """Take the budget slot for one call, waiting if another process took the last one
        since this pass looked (a few milliseconds, normally)."""
        while True:
            grant, wait = await self.budget.take(chat_id)
            if grant is not None:
                return grant
            await asyncio.sleep(wait)

    async def _deliver_row(self, row: TelegramOutbox, state: ChatState) -> bool:
        """Send one row. False when no call was made (nothing to send)."""
        from aiogram.exceptions import (
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNetworkError,
            TelegramNotFound,
            TelegramRetryAfter,
            TelegramServerError,
            TelegramUnauthorizedError,
        )

        params, delivery = unpack(row.payload)
        prepared = await self._prepare(row, params, delivery)
        if prepared is None:
            return False
        method = prepared.pop("__method", row.method)
        kind = delivery.kind
        await self._slot(row.chat_id)
        try:
            result = await self._call(method, prepared)
        except TelegramRetryAfter as exc:
            self._count("retried_429")
            wait = float(exc.retry_after)
            state.blocked_until = time.monotonic() + wait
            await self._set_pending(row, utcnow() + timedelta(seconds=wait), f"429 retry after {wait:g}s",
                                    count_attempt=False)
            return True
        except (TelegramNetworkError, TelegramServerError, TimeoutError, OSError) as exc:
            await self._retry_later(row, f"{type(exc).__name__}: {exc}", backoff=True)
            return True
        except TelegramBadRequest as exc:
            message = str(exc.message).lower()
            if "not modified" in message or "topic_not_modified" in message:
                await self._mark_sent(row, delivery, {"not_modified": True}, prepared, method)
                return True
            if kind in ("topic_edit", "topic_state") and any(m in message for m in TOPIC_GONE):
                # An admin deleted the topic: nothing to rename or close; the next message
                # about the request recreates it.
                await self._close(row, "merged", f"topic is gone: {exc.message}")
                return True
            if kind == "summary_edit" and "message to edit not found" in message:
                await self._close(row, "merged", "the summary was deleted")
                return True
            if "message thread not found" in message and delivery.thread_of:
                await self._recreate_topic(delivery.thread_of, row.chat_id)
                await self._set_pending(row, None, "topic was deleted; recreated", count_attempt=False)
                return True
            if delivery.target and any(r in message for r in COPY_REFUSALS):
                # An edit or deletion of a copy Telegram will never take (too old, gone,
                # not ours): nothing to retry, nothing for staff to fix.
                log.info("outbox row %s: %s of message %s in %s refused, not retried: %s", row.id,
                         method, delivery.target.message_id, row.chat_id, exc.message)
                await self._close(row, "ignored", f"400 {exc.message}")
                return True
            if "not a forum" in message:
                self.not_forum.add(row.chat_id)
            await self._fail(row, f"400 {exc.message}")
            return True
        except (TelegramForbiddenError, TelegramNotFound, TelegramUnauthorizedError) as exc:
            await self._fail(row, f"{type(exc).__name__}: {exc.message}")
            return True
        await self._mark_sent(row, delivery, result, prepared, method)
        return True

    async def _skip(self, row: TelegramOutbox, reason: str) -> None:
        """An edit that needs no call: superseded by a newer one, or unchanged."""
        self._count("coalesced")
        await self._close(row, "merged", reason)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        from aiogram import methods

        cls = getattr(methods, method[:1].upper() + method[1:])
        call = cls(**params)
        return await self.bot(call, request_timeout=self.limits.request_timeout)

    async def _recreate_topic(self, request_id: int, chat_id: int) -> None:
        from telegram_delivery import cards

        data = await load_request_data(request_id)
        name = cards.topic_name(data, self.lang) if data else f"#{request_id}"
        await self._slot(chat_id)  # an extra call: it counts
        topic = await self._call("createForumTopic", {"chat_id": chat_id, "name": name})
        await TelegramThread.filter(request_id=request_id).update(topic_id=topic.message_thread_id)
