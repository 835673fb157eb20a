"""The digest job: the stats digest and its chart to the admin group, once per fire slot."""

from __future__ import annotations

from datetime import datetime

from core.digest import build_digest, mark_digest_posted, render_digest
from core.notice_texts import st
from core.settings import Settings
from core.texts import lang_of
from scheduler.clock import slot_iso
from scheduler.jobs.common import (
    admin_chat_configured,
    log,
    send_text,
)


async def run_digest(settings: Settings, now: datetime, slot: datetime) -> bool:
    """Post the digest for fire slot `slot` to the admin group. At most one digest per slot
    (dedup key `digest:<slot>`), even if two processes or a restart run the slot again.
    Returns False when Telegram is not configured (nothing is posted)."""
    if not admin_chat_configured(settings):
        log.debug("digest skipped: TELEGRAM_BOT_TOKEN or TELEGRAM_ADMIN_CHAT_ID not set")
        return False
    digest = await build_digest(now)
    text = render_digest(digest, settings.language, settings.tz)
    await send_text(settings.telegram_admin_chat_id, text, dedup_key=f"digest:{slot_iso(slot)}")
    await queue_digest_chart(settings, now, slot)
    await mark_digest_posted(slot)
    log.info("digest for %s queued to the admin group", slot_iso(slot))
    return True


async def queue_digest_chart(settings: Settings, now: datetime, slot: datetime) -> bool:
    """Queue the digest's picture: the staff console's requests-per-day chart for the last
    7 days (core.reports + core.charts), as a photo right after the digest's text, with
    the legend in the caption. The row carries the numbers; the bot's sender draws the
    PNG when it sends (core.png: no file to share between the scheduler's and the bot's
    containers). Dedup key `digest:<slot>:chart`: once per slot, like the text."""
    from core.charts import legend_text
    from core.reports import days_payload, requests_per_day
    from telegram_delivery.contract import Chart, Delivery, Kind
    from telegram_delivery.outbox import enqueue

    days = await requests_per_day(7, now=now, tz=settings.tz)
    lang = lang_of(settings.language)
    return await enqueue(
        settings.telegram_admin_chat_id,
        "sendPhoto",
        {"caption": st("digest_chart", lang, legend=legend_text(lang, days))},
        delivery=Delivery(kind=Kind.DIGEST_CHART, chart=Chart(days_payload(days), lang)),
        dedup_key=f"digest:{slot_iso(slot)}:chart",
    )
