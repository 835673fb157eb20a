"""What the scheduler's jobs share: their spec (`JobSpec`), whether Telegram is configured,
queueing a message in the delivery queue's last class, the Take buttons, and the limits."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from core.notice_texts import st
from core.settings import Settings
from scheduler.clock import cron_trigger

log = logging.getLogger("helpdesk.scheduler")

PRIORITIES = ("urgent", "high", "medium", "low")
# More newly due requests than this in one run go out as one list instead of one message
# each (a first start on old data must not flood the group past Telegram's 20/min).
MAX_SINGLE_MESSAGES = 5
MAX_LIST_LINES = 25
MAX_TAKE_BUTTONS = 9
AUTO_CLOSE_BATCH = 200
LEASE_RETENTION = timedelta(days=7)
LOG_RETENTION = timedelta(days=30)

JobFunc = Callable[[Settings, datetime, datetime], Awaitable[Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    cron: str
    run: JobFunc
    # How long a claimed slot may run before another process may take it over.
    ttl: timedelta
    # If set, a slot missed (process down) or abandoned (holder crashed) within this window
    # is run late by whichever process notices first.
    catch_up: timedelta | None = None
    description: str = ""

    def trigger(self, settings: Settings) -> CronTrigger:
        return cron_trigger(self.cron, settings.tz)


def bot_configured(settings: Settings) -> bool:
    return bool(settings.telegram_bot_token)


def admin_chat_configured(settings: Settings) -> bool:
    return bool(settings.telegram_bot_token and settings.telegram_admin_chat_id)


async def send_text(
    chat_id: int,
    text: str,
    *,
    dedup_key: str,
    request_id: int | None = None,
    reply_markup: dict[str, Any] | None = None,
) -> bool:
    """Queue a Telegram message through the bot's delivery queue (idempotent per dedup_key),
    in the budget's last class: reminders and digests wait for conversations, new requests
    and card edits."""
    from telegram_delivery import (
        outbox,  # imported late: the bot package is heavy and optional here
    )

    return await outbox.send_text(
        chat_id, text, dedup_key=dedup_key, request_id=request_id, reply_markup=reply_markup,
        priority=outbox.Priority.BACKGROUND,
    )


def take_buttons(request_ids: list[int], lang: str) -> dict[str, Any]:
    """Inline "Take #id" buttons; callback data `req:take:<id>` is the request cards' format,
    handled by the bot's card buttons wherever they appear."""
    from telegram_delivery.callbacks import request_callback  # the format's one spelling

    buttons = [
        {"text": f"{st('btn_take', lang)} #{rid}", "callback_data": request_callback("take", rid)}
        for rid in request_ids[:MAX_TAKE_BUTTONS]
    ]
    return {"inline_keyboard": [buttons[i : i + 3] for i in range(0, len(buttons), 3)]}
