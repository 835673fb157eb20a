"""The scheduler's jobs. Each takes `(settings, now, slot)` and is safe to run again.

- digest: the stats digest to the admin group (dedup key per fire slot).
- reminders: open requests nobody took within their priority's threshold are reminded in
  the admin group once, escalated to the directors by direct message at twice the
  threshold; an overdue estimated_resolution_time reminds the assignee. `ReminderLog`
  (unique request+kind) is written before sending, and only the insert that wins sends.
- auto_close: completed requests quiet for AUTO_CLOSE_DAYS move to closed.
- housekeeping: old fire-slot leases, events and delivered Telegram rows are deleted; the
  audit log after AUDIT_RETENTION_DAYS.

Jobs write to the Telegram delivery queue (telegram_delivery.outbox); the bot's sender delivers.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, RawSQL

from core import requests as svc
from core.clock import as_utc
from core.digest import build_digest, mark_digest_posted, render_digest
from core.notice_texts import format_age, short, st
from core.settings import Settings
from core.texts import PRIORITY_LABELS, lang_of
from db.models import CustomerRequest, ReminderLog, Role, Status, User
from scheduler import lease
from scheduler.clock import cron_trigger, slot_iso

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


# --- digest ------------------------------------------------------------------------------


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


# --- reminders and escalation --------------------------------------------------------------


def opened_at(req: CustomerRequest) -> datetime:
    """When the request started waiting: its last status change to open (a reopened
    request waits anew), or its creation."""
    return as_utc(req.status_changed_at or req.created_at)


def remind_kind(req: CustomerRequest) -> str:
    return f"remind:1:{int(opened_at(req).timestamp())}"


def escalate_kind(req: CustomerRequest) -> str:
    return f"escalate:{int(opened_at(req).timestamp())}"


def eta_kind(req: CustomerRequest) -> str:
    # A new estimate that passes again is reminded again.
    return f"eta:{int(as_utc(req.estimated_resolution_time).timestamp())}"


async def claim_reminder(request_id: int, kind: str) -> bool:
    """Insert the ReminderLog row; True only for the one insert that wins."""
    try:
        await ReminderLog.create(request_id=request_id, kind=kind)
        return True
    except IntegrityError:
        return False


async def unclaim_reminders(claims: list[tuple[int, str]]) -> None:
    for request_id, kind in claims:
        await ReminderLog.filter(request_id=request_id, kind=kind).delete()


# At most this many waiting requests are read per run (oldest first); the rest wait for the
# next run. With the "already done" conditions below a run reads only what it will act on,
# so this bounds time and memory after a backlog (say a first start on a large table).
WAITING_BATCH = 500


def _logged_since_open(kind_prefix: str) -> RawSQL:
    """Whether this opening's reminder of a kind was claimed: the reminder_log row whose
    kind is `kind_prefix` + the opening time in epoch seconds (remind_kind, escalate_kind)."""
    table = CustomerRequest._meta.db_table
    opened = f'COALESCE("{table}"."status_changed_at", "{table}"."created_at")'
    if connections.get("default").capabilities.dialect == "postgres":
        epoch = f"FLOOR(EXTRACT(EPOCH FROM {opened}))::BIGINT::TEXT"
    else:
        epoch = f"CAST(CAST(strftime('%s', {opened}) AS INTEGER) AS TEXT)"
    return RawSQL(
        f'EXISTS (SELECT 1 FROM "{ReminderLog._meta.db_table}" l WHERE l."request_id" = '
        f"\"{table}\".\"id\" AND l.\"kind\" = '{kind_prefix}' || {epoch})"
    )


async def _waiting_requests(now: datetime) -> list[CustomerRequest]:
    """Open, unassigned requests that still need a reminder (past their priority's
    threshold, not reminded since they opened) or an escalation (past twice the threshold,
    not escalated since), oldest first, at most WAITING_BATCH: never every overdue row."""
    condition = Q()
    for prio in PRIORITIES:
        after = svc.overdue_after(prio)

        def waited(cutoff: datetime) -> Q:
            return Q(status_changed_at__lte=cutoff) | Q(
                status_changed_at__isnull=True, created_at__lte=cutoff
            )

        condition |= Q(priority=prio) & (
            (waited(now - after) & Q(reminded=False))
            | (waited(now - 2 * after) & Q(escalated=False))
        )
    return (
        await CustomerRequest.filter(status=Status.open, assigned_admin_id__isnull=True)
        .annotate(
            reminded=_logged_since_open("remind:1:"), escalated=_logged_since_open("escalate:")
        )
        .filter(condition)
        .order_by("created_at", "id")
        .limit(WAITING_BATCH)
        .select_related("customer")
    )


def _priority(req: CustomerRequest, lang: str) -> str:
    return PRIORITY_LABELS[lang_of(lang)].get(str(req.priority), str(req.priority))


def _one(key: str, req: CustomerRequest, age: timedelta, lang: str) -> str:
    return st(
        key,
        lang,
        id=req.id,
        title=html.escape(short(req.title)),
        age=format_age(age, lang),
        priority=_priority(req, lang),
        customer=html.escape(req.customer.full_name),
    )


def _listing(head_key: str, items: list[tuple[CustomerRequest, timedelta]], lang: str) -> str:
    lines = [st(head_key, lang, n=len(items))]
    for req, age in items[:MAX_LIST_LINES]:
        lines.append(
            st(
                "remind_line",
                lang,
                id=req.id,
                title=html.escape(short(req.title, 40)),
                age=format_age(age, lang),
                priority=_priority(req, lang),
            )
        )
    if len(items) > MAX_LIST_LINES:
        lines.append(st("more", lang, n=len(items) - MAX_LIST_LINES))
    return "\n".join(lines)


Outgoing = tuple[int, str, str, int | None, dict[str, Any] | None]


async def _deliver(claims: list[tuple[int, str]], messages: list[Outgoing]) -> None:
    """Queue `messages` (chat, text, dedup key, request, buttons); on failure give the claims
    back so the next run retries (the dedup keys keep a partial first attempt from doubling)."""
    try:
        for chat_id, text, key, request_id, markup in messages:
            await send_text(
                chat_id, text, dedup_key=key, request_id=request_id, reply_markup=markup
            )
    except Exception:
        await unclaim_reminders(claims)
        raise


async def run_reminders(
    settings: Settings, now: datetime, slot: datetime | None = None
) -> dict[str, list[int]]:
    """Remind, escalate and chase overdue estimates as of `now`. Idempotent: a request is
    reminded once per threshold (and escalated once) however often this runs, in however
    many processes. Returns the request ids acted on per kind."""
    now = as_utc(now)
    slot = slot or now
    done: dict[str, list[int]] = {"remind": [], "escalate": [], "eta": []}
    waiting = await _waiting_requests(now)
    ids = [r.id for r in waiting]
    logged = (
        set(await ReminderLog.filter(request_id__in=ids).values_list("request_id", "kind"))
        if ids
        else set()
    )

    remind: list[tuple[CustomerRequest, timedelta]] = []
    escalate: list[tuple[CustomerRequest, timedelta]] = []
    for req in waiting:
        age = now - opened_at(req)
        threshold = svc.overdue_after(str(req.priority))
        if age >= threshold and (req.id, remind_kind(req)) not in logged:
            if await claim_reminder(req.id, remind_kind(req)):
                remind.append((req, age))
        if age >= 2 * threshold and (req.id, escalate_kind(req)) not in logged:
            if await claim_reminder(req.id, escalate_kind(req)):
                escalate.append((req, age))

    lang = settings.language
    if remind and admin_chat_configured(settings):
        chat = settings.telegram_admin_chat_id
        if len(remind) <= MAX_SINGLE_MESSAGES:
            messages = [
                (
                    chat,
                    _one("remind_one", r, a, lang),
                    f"{remind_kind(r)}:{r.id}",
                    r.id,
                    take_buttons([r.id], lang),
                )
                for r, a in remind
            ]
        else:
            messages = [
                (
                    chat,
                    _listing("remind_many", remind, lang),
                    f"remind:list:{slot_iso(slot)}:{remind[0][0].id}",
                    None,
                    take_buttons([r.id for r, _ in remind], lang),
                )
            ]
        await _deliver([(r.id, remind_kind(r)) for r, _ in remind], messages)
    done["remind"] = [r.id for r, _ in remind]

    if escalate:
        directors = await User.filter(
            role=Role.director, is_active=True, telegram_id__isnull=False
        ).order_by("id")
        if not directors:
            log.warning(
                "escalation of %s: no director has a Telegram account linked",
                [r.id for r, _ in escalate],
            )
        elif bot_configured(settings):
            messages = []
            for d in directors:
                if len(escalate) <= MAX_SINGLE_MESSAGES:
                    messages += [
                        (
                            d.telegram_id,
                            _one("escalate_one", r, a, d.language),
                            f"{escalate_kind(r)}:{r.id}:{d.id}",
                            r.id,
                            None,
                        )
                        for r, a in escalate
                    ]
                else:
                    messages.append(
                        (
                            d.telegram_id,
                            _listing("escalate_many", escalate, d.language),
                            f"escalate:list:{slot_iso(slot)}:{escalate[0][0].id}:{d.id}",
                            None,
                            None,
                        )
                    )
            await _deliver([(r.id, escalate_kind(r)) for r, _ in escalate], messages)
    done["escalate"] = [r.id for r, _ in escalate]

    done["eta"] = await _remind_overdue_estimates(settings, now)
    if any(done.values()):
        log.info("reminders: %s", {k: v for k, v in done.items() if v})
    return done


async def _remind_overdue_estimates(settings: Settings, now: datetime) -> list[int]:
    overdue = await CustomerRequest.filter(
        status=Status.in_progress,
        estimated_resolution_time__lte=now,
        assigned_admin_id__isnull=False,
    ).select_related("assigned_admin")
    if not overdue:
        return []
    logged = set(
        await ReminderLog.filter(request_id__in=[r.id for r in overdue]).values_list(
            "request_id", "kind"
        )
    )
    sent: list[int] = []
    for req in overdue:
        kind = eta_kind(req)
        if (req.id, kind) in logged or not await claim_reminder(req.id, kind):
            continue
        sent.append(req.id)
        admin = req.assigned_admin
        if admin is None or not admin.telegram_id or not bot_configured(settings):
            continue
        age = now - as_utc(req.estimated_resolution_time)
        text = st(
            "eta_one",
            admin.language,
            id=req.id,
            title=html.escape(short(req.title)),
            age=format_age(age, admin.language),
        )
        await _deliver(
            [(req.id, kind)], [(admin.telegram_id, text, f"{kind}:{req.id}", req.id, None)]
        )
    return sent


# --- auto-close ----------------------------------------------------------------------------


async def run_auto_close(
    settings: Settings, now: datetime, slot: datetime | None = None
) -> list[int]:
    """Close completed requests whose last activity (last message or status change) is older
    than AUTO_CLOSE_DAYS. Each close is the domain's auto_close_request: conditional on the
    request still being completed, with a system message and a request_updated event."""
    cutoff = as_utc(now) - timedelta(days=settings.auto_close_days)
    ids = (
        await CustomerRequest.filter(status=Status.completed)
        .filter(
            Q(status_changed_at__lte=cutoff)
            | Q(status_changed_at__isnull=True, updated_at__lte=cutoff)
        )
        .filter(Q(last_message_at__isnull=True) | Q(last_message_at__lte=cutoff))
        .order_by("id")
        .limit(AUTO_CLOSE_BATCH)
        .values_list("id", flat=True)
    )
    closed = []
    for request_id in ids:
        if await svc.auto_close_request(request_id, settings.auto_close_days) is not None:
            closed.append(request_id)
    if closed:
        log.info("auto-closed %d request(s): %s", len(closed), closed)
    return closed


# --- housekeeping --------------------------------------------------------------------------


async def run_housekeeping(settings: Settings, now: datetime, slot: datetime | None = None) -> int:
    """Delete fire-slot leases older than a week (they only guard their own slot), keep the
    event log and the Telegram queue from growing forever (30 days), and drop login attempt
    counters whose window has passed and expired staff console sessions. The audit log has
    its own, longer retention (AUDIT_RETENTION_DAYS, a year by default)."""
    from core import audit, login_throttle
    from core.console_sessions import prune_sessions
    from core.events import prune_events
    from core.log_consumer import MAIL_CURSOR, WEBHOOKS_CURSOR
    from core.log_consumer import TELEGRAM_RELAY_CURSOR as RELAY_CURSOR
    from db.models import InboundMail, MailOutbox, WebhookDelivery
    from telegram_delivery.outbox import prune_delivered

    cutoff = as_utc(now) - LOG_RETENTION
    removed = await lease.prune(as_utc(now) - LEASE_RETENTION)
    # A consumer that no longer runs must not keep the log forever: the e-mail notifier's
    # cursor counts only while e-mail is on.
    consumers = [RELAY_CURSOR, WEBHOOKS_CURSOR] + ([MAIL_CURSOR] if settings.mail_enabled else [])
    removed += await prune_events(cutoff, consumers)
    removed += await prune_delivered(cutoff)
    removed += await login_throttle.prune(
        float(settings.login_window_seconds), as_utc(now).timestamp()
    )
    # Finished webhook deliveries and mail, and the record of replies received by mail.
    removed += await WebhookDelivery.filter(
        status__in=("delivered", "failed"), created_at__lt=cutoff
    ).delete()
    removed += await MailOutbox.filter(status__in=("sent", "failed"), created_at__lt=cutoff).delete()
    removed += await InboundMail.filter(created_at__lt=cutoff).delete()
    removed += await audit.prune(as_utc(now) - timedelta(days=settings.audit_retention_days))
    removed += await prune_sessions(as_utc(now))
    return removed


def job_specs(settings: Settings) -> list[JobSpec]:
    """The jobs, in the order they are listed."""
    return [
        JobSpec(
            "digest",
            settings.digest_cron,
            run_digest,
            ttl=timedelta(minutes=5),
            catch_up=timedelta(hours=2),
            description="stats digest to the admin group",
        ),
        JobSpec(
            "reminders",
            "* * * * *",
            run_reminders,
            ttl=timedelta(minutes=2),
            description="reminders for requests nobody took, escalation, overdue estimates",
        ),
        JobSpec(
            "auto_close",
            "*/10 * * * *",
            run_auto_close,
            ttl=timedelta(minutes=10),
            description=f"close completed requests quiet for {settings.auto_close_days} days",
        ),
        JobSpec(
            "housekeeping",
            "17 3 * * *",
            run_housekeeping,
            ttl=timedelta(minutes=10),
            description="delete old job leases, events, delivered Telegram rows, webhook "
            "deliveries, mail, audit entries and login counters",
        ),
    ]
