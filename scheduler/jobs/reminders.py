"""The reminders job: open requests nobody took within their priority's threshold are
reminded in the admin group once, escalated to the directors by direct message at twice the
threshold; an overdue estimated_resolution_time reminds the assignee. `ReminderLog`
(unique request+kind) is written before sending, and only the insert that wins sends."""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, RawSQL

from core import requests as svc
from core.clock import as_utc
from core.notice_texts import format_age, short, st
from core.settings import Settings
from core.texts import PRIORITY_LABELS, lang_of
from db.models import CustomerRequest, ReminderLog, Role, Status, User
from scheduler.clock import slot_iso
from scheduler.jobs.common import (
    MAX_LIST_LINES,
    MAX_SINGLE_MESSAGES,
    PRIORITIES,
    admin_chat_configured,
    bot_configured,
    log,
    send_text,
    take_buttons,
)


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


_TABLE = CustomerRequest._meta.db_table


def _logged(kind_prefix: str, moment: str) -> RawSQL:
    """Whether the request's reminder of a kind was claimed: the reminder_log row whose kind
    is `kind_prefix` + the time `moment` (an SQL expression on the request) in epoch
    seconds, as the kind functions (remind_kind, escalate_kind, eta_kind) spell it."""
    if connections.get("default").capabilities.dialect == "postgres":
        epoch = f"FLOOR(EXTRACT(EPOCH FROM {moment}))::BIGINT::TEXT"
    else:
        epoch = f"CAST(CAST(strftime('%s', {moment}) AS INTEGER) AS TEXT)"
    return RawSQL(
        f'EXISTS (SELECT 1 FROM "{ReminderLog._meta.db_table}" l WHERE l."request_id" = '
        f"\"{_TABLE}\".\"id\" AND l.\"kind\" = '{kind_prefix}' || {epoch})"
    )


def _logged_since_open(kind_prefix: str) -> RawSQL:
    """This opening's reminder of a kind (remind_kind, escalate_kind)."""
    return _logged(kind_prefix, f'COALESCE("{_TABLE}"."status_changed_at", "{_TABLE}"."created_at")')


def _logged_eta() -> RawSQL:
    """The reminder of the request's current estimate (eta_kind)."""
    return _logged("eta:", f'"{_TABLE}"."estimated_resolution_time"')


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
    # Only requests whose current estimate was not reminded yet (the claimed kind is checked
    # in SQL), most overdue first, at most WAITING_BATCH per run: never every overdue row.
    overdue = (
        await CustomerRequest.filter(
            status=Status.in_progress,
            estimated_resolution_time__lte=now,
            assigned_admin_id__isnull=False,
        )
        .annotate(reminded=_logged_eta())
        .filter(reminded=False)
        .order_by("estimated_resolution_time", "id")
        .limit(WAITING_BATCH)
        .select_related("assigned_admin")
    )
    sent: list[int] = []
    for req in overdue:
        kind = eta_kind(req)
        if not await claim_reminder(req.id, kind):  # another run (process) got it first
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
