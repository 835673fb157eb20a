"""Scheduler jobs with a controllable clock: digest, reminders and escalation, auto-close.

Job functions take `now`; the tests call them (or a runtime's `fire`) with chosen times and
assert on the Telegram delivery queue (TelegramOutbox rows), never waiting real minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core import requests as svc
from core import runtime
from core.digest import build_digest, build_digest_text, last_digest_time
from db.models import (
    CustomerRequest,
    Event,
    ReminderLog,
    RequestMessage,
    Status,
    TelegramOutbox,
)
from scheduler.clock import FixedClock
from scheduler.jobs import run_auto_close, run_digest, run_reminders
from scheduler.runtime import SchedulerRuntime

ADMIN_CHAT = -1001234567890
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def tg_settings(settings):
    s = settings.with_overrides(
        telegram_bot_token="123456:TEST-token", telegram_admin_chat_id=ADMIN_CHAT, tz="UTC"
    )
    runtime.configure(s)
    return s


async def make_request(
    customer,
    *,
    title: str = "Printer is on fire",
    priority: str = "medium",
    status: str = Status.open,
    created: datetime = NOW,
    changed: datetime | None = None,
    admin=None,
    last_message: datetime | None = None,
    eta: datetime | None = None,
) -> CustomerRequest:
    req = await svc.create_request(customer, title=title, description="d", priority=priority)
    fields: dict[str, Any] = {
        "status": status,
        "created_at": created,
        "status_changed_at": changed or created,
        "assigned_admin_id": admin.id if admin else None,
        "last_message_at": last_message,
        "estimated_resolution_time": eta,
        # as the move to completed sets it (and migration 0006 backfills it)
        "completed_at": (changed or created) if status == Status.completed else None,
    }
    await CustomerRequest.filter(id=req.id).update(**fields)
    return await CustomerRequest.get(id=req.id)


async def outbox_rows(chat_id: int | None = None, charts: bool = False) -> list[TelegramOutbox]:
    """Queued messages, oldest first; without the digest's chart photo (its own row, after
    the text: tests/test_digest_chart.py) unless `charts`."""
    qs = TelegramOutbox.all().order_by("id")
    if not charts:
        qs = qs.exclude(dedup_key__endswith=":chart")
    if chat_id is not None:
        qs = qs.filter(chat_id=chat_id)
    return await qs


# --- digest --------------------------------------------------------------------------------


async def test_digest_numbers_match_known_data(tg_settings, make_user):
    customer = await make_user("customer")
    ivan = await make_user("admin", first_name="Ivan", last_name="Petrov")
    olga = await make_user("admin", first_name="Olga", last_name="Smirnova")
    await make_user("admin", first_name="Idle", last_name="Admin")
    oldest = await make_request(
        customer,
        title="Oldest <open>",
        priority="high",
        created=NOW - timedelta(hours=3, minutes=15),
    )
    await make_request(customer, created=NOW - timedelta(hours=1))
    await make_request(customer, created=NOW - timedelta(minutes=5))
    for _ in range(2):
        await make_request(
            customer, status=Status.in_progress, admin=ivan, created=NOW - timedelta(days=2)
        )
    await make_request(
        customer, status=Status.in_progress, admin=olga, created=NOW - timedelta(days=2)
    )
    await make_request(
        customer,
        status=Status.completed,
        admin=ivan,
        created=NOW - timedelta(days=3),
        changed=NOW - timedelta(hours=2),
    )
    await make_request(
        customer,
        status=Status.completed,
        admin=olga,
        created=NOW - timedelta(days=3),
        changed=NOW - timedelta(hours=30),
    )
    await make_request(
        customer,
        status=Status.closed,
        admin=olga,
        created=NOW - timedelta(days=5),
        changed=NOW - timedelta(hours=4),
    )

    digest = await build_digest(NOW)

    assert digest["stats"] == {
        "total_requests": 9,
        "open_requests": 3,
        "in_progress_requests": 3,
        "completed_today": 1,
        "completion_rate": round(2 / 9 * 100, 2),

        "csat_average": None,
        "csat_responses": 0,
    }
    load = {a["name"]: (a["in_progress"], a["completed_today"]) for a in digest["admins"]}
    assert load == {"Ivan Petrov": (2, 1), "Olga Smirnova": (1, 0), "Idle Admin": (0, 0)}
    assert [a["name"] for a in digest["admins"]][0] == "Ivan Petrov"
    assert digest["oldest_open"]["id"] == oldest.id
    assert digest["oldest_open"]["age"] == timedelta(hours=3, minutes=15)
    # No digest posted before: the window is the last 24 hours.
    assert digest["since"] is None
    assert digest["changes"] == {"new": 3, "completed": 1, "closed": 1}

    text = await build_digest_text("ru", now=NOW)
    assert "Всего: <b>9</b> · открыто: <b>3</b> · в работе: <b>3</b>" in text
    assert "Выполнено сегодня: <b>1</b>" in text
    assert "Ivan Petrov: 2 / 1" in text
    assert f"#{oldest.id} «Oldest &lt;open&gt;» · 3 ч 15 мин · Высокий" in text
    assert "новых: 3 · выполнено: 1 · закрыто: 1" in text
    assert max(len(line) for line in text.splitlines()) < 90
    english = await build_digest_text("en", now=NOW)
    assert "Total: <b>9</b>" in english and "3 h 15 min" in english


async def test_digest_is_posted_to_admin_group_once_per_slot(tg_settings, make_user):
    customer = await make_user("customer")
    await make_request(customer, created=NOW - timedelta(hours=1))
    slot = NOW.replace(hour=9)

    assert await run_digest(tg_settings, slot + timedelta(seconds=1), slot)
    assert await run_digest(tg_settings, slot + timedelta(seconds=5), slot)  # a restart

    rows = await outbox_rows(charts=True)
    assert len(rows) == 2  # the text and its 7-day chart (tests/test_digest_chart.py)
    assert rows[0].chat_id == ADMIN_CHAT and rows[0].method == "sendMessage"
    assert rows[0].payload["chat_id"] == ADMIN_CHAT
    assert "Сводка" in rows[0].payload["text"] and "открыто: <b>1</b>" in rows[0].payload["text"]
    assert rows[1].method == "sendPhoto" and rows[1].dedup_key.endswith(":chart")
    assert await last_digest_time() == slot


async def test_next_digest_reports_changes_since_previous_digest(tg_settings, make_user):
    customer = await make_user("customer")
    yesterday = NOW.replace(hour=9) - timedelta(days=1)
    await make_request(customer, created=yesterday - timedelta(hours=2))  # before: not new
    await run_digest(tg_settings, yesterday, yesterday)
    await make_request(customer, created=yesterday + timedelta(hours=1))
    await make_request(customer, created=yesterday + timedelta(hours=5))
    today = NOW.replace(hour=9)

    await run_digest(tg_settings, today, today)

    rows = await outbox_rows()
    assert len(rows) == 2
    text = rows[1].payload["text"]
    assert "С прошлой сводки</b> (26.11 09:00)" in text
    assert "новых: 2 · выполнено: 0 · закрыто: 0" in text


async def test_digest_is_skipped_without_telegram(settings, make_user):
    assert settings.telegram_bot_token is None
    assert not await run_digest(settings, NOW, NOW)
    assert await outbox_rows() == []


# --- reminders and escalation ---------------------------------------------------------------

THRESHOLDS = {"urgent": 15, "high": 60, "medium": 240, "low": 1440}


@pytest.mark.parametrize("priority", list(THRESHOLDS))
async def test_unassigned_request_is_reminded_at_its_priority_threshold(
    tg_settings, make_user, priority
):
    customer = await make_user("customer", first_name="Anna", last_name="K")
    minutes = THRESHOLDS[priority]
    req = await make_request(customer, priority=priority, created=NOW)

    before = NOW + timedelta(minutes=minutes) - timedelta(seconds=30)
    assert (await run_reminders(tg_settings, before))["remind"] == []
    assert await outbox_rows() == []

    at = NOW + timedelta(minutes=minutes)
    assert (await run_reminders(tg_settings, at))["remind"] == [req.id]
    rows = await outbox_rows()
    assert len(rows) == 1 and rows[0].chat_id == ADMIN_CHAT
    assert f"Запрос #{req.id} ждёт" in rows[0].payload["text"]
    assert "Anna K" in rows[0].payload["text"]
    button = rows[0].payload["reply_markup"]["inline_keyboard"][0][0]
    assert button == {"text": f"Взять #{req.id}", "callback_data": f"req:take:{req.id}"}

    # Later runs before twice the threshold add nothing.
    assert (await run_reminders(tg_settings, at + timedelta(minutes=minutes // 2)))["remind"] == []
    assert len(await outbox_rows()) == 1


async def test_configured_threshold_is_used(settings, make_user):
    s = settings.with_overrides(
        telegram_bot_token="123456:TEST-token",
        telegram_admin_chat_id=ADMIN_CHAT,
        remind_urgent_min=5,
    )
    runtime.configure(s)
    customer = await make_user("customer")
    req = await make_request(customer, priority="urgent", created=NOW)
    assert (await run_reminders(s, NOW + timedelta(minutes=4)))["remind"] == []
    assert (await run_reminders(s, NOW + timedelta(minutes=5)))["remind"] == [req.id]


async def test_neglected_request_is_escalated_to_directors_at_twice_the_threshold(
    tg_settings, make_user
):
    customer = await make_user("customer")
    boss = await make_user("director", telegram_id=5001, language="en")
    boss2 = await make_user("director", telegram_id=5002)
    await make_user("director")  # no Telegram: cannot be messaged
    await make_user("admin", telegram_id=6001)  # admins are not escalated to
    req = await make_request(customer, priority="high", created=NOW)

    await run_reminders(tg_settings, NOW + timedelta(minutes=60))
    assert (await run_reminders(tg_settings, NOW + timedelta(minutes=119)))["escalate"] == []
    done = await run_reminders(tg_settings, NOW + timedelta(minutes=120))
    assert done["escalate"] == [req.id] and done["remind"] == []

    dms = [r for r in await outbox_rows() if r.chat_id != ADMIN_CHAT]
    assert sorted(r.chat_id for r in dms) == [5001, 5002]
    by_chat = {r.chat_id: r.payload["text"] for r in dms}
    assert f"Escalation</b>: request #{req.id} not taken for 2 h" in by_chat[boss.telegram_id]
    assert f"Эскалация</b>: запрос #{req.id} не взят уже 2 ч" in by_chat[boss2.telegram_id]

    await run_reminders(tg_settings, NOW + timedelta(hours=10))
    assert len(await outbox_rows()) == 3


async def test_taken_request_is_not_reminded(tg_settings, make_user):
    customer = await make_user("customer")
    admin = await make_user("admin")
    await make_request(
        customer,
        priority="urgent",
        status=Status.in_progress,
        admin=admin,
        created=NOW - timedelta(hours=5),
    )
    assert await run_reminders(tg_settings, NOW) == {"remind": [], "escalate": [], "eta": []}
    assert await outbox_rows() == []


async def test_no_duplicate_reminder_after_restart(tg_settings, make_user):
    customer = await make_user("customer")
    await make_user("director", telegram_id=5001)
    await make_request(customer, priority="urgent", created=NOW - timedelta(minutes=40))
    clock = FixedClock(NOW)
    first = SchedulerRuntime(tg_settings, clock=clock)
    assert await first.fire("reminders", NOW)
    assert len(await outbox_rows()) == 2  # group reminder and escalation
    assert await ReminderLog.all().count() == 2

    # "Restart": a new runtime (new holder), later slots, and a replay of the same slot.
    second = SchedulerRuntime(tg_settings, clock=clock)
    for minutes in (1, 2, 30):
        clock.set(NOW + timedelta(minutes=minutes))
        assert await second.fire("reminders", NOW + timedelta(minutes=minutes))
    assert not await second.fire("reminders", NOW)  # slot already done
    assert len(await outbox_rows()) == 2
    assert await ReminderLog.all().count() == 2


async def test_reopened_request_waits_anew(tg_settings, make_user):
    customer = await make_user("customer")
    req = await make_request(customer, priority="urgent", created=NOW - timedelta(minutes=20))
    await run_reminders(tg_settings, NOW)
    assert len(await outbox_rows()) == 1
    # A director reopened it (status change resets the waiting time).
    await CustomerRequest.filter(id=req.id).update(status_changed_at=NOW + timedelta(minutes=10))
    assert (await run_reminders(tg_settings, NOW + timedelta(minutes=20)))["remind"] == []
    assert (await run_reminders(tg_settings, NOW + timedelta(minutes=25)))["remind"] == [req.id]
    assert len(await outbox_rows()) == 2


async def test_many_due_requests_go_out_as_one_list(tg_settings, make_user):
    customer = await make_user("customer")
    for i in range(8):
        await make_request(
            customer, title=f"Request {i}", priority="low", created=NOW - timedelta(hours=30)
        )
    done = await run_reminders(tg_settings, NOW)
    assert len(done["remind"]) == 8
    rows = await outbox_rows(ADMIN_CHAT)
    assert len(rows) == 1
    assert "8 запросов ждут" in rows[0].payload["text"]


async def test_overdue_estimate_reminds_the_assignee(tg_settings, make_user):
    customer = await make_user("customer")
    admin = await make_user("admin", telegram_id=7001)
    req = await make_request(
        customer,
        status=Status.in_progress,
        admin=admin,
        created=NOW - timedelta(days=1),
        eta=NOW + timedelta(minutes=30),
    )
    assert (await run_reminders(tg_settings, NOW))["eta"] == []
    done = await run_reminders(tg_settings, NOW + timedelta(minutes=45))
    assert done["eta"] == [req.id]
    rows = await outbox_rows()
    assert [r.chat_id for r in rows] == [7001]
    assert f"Срок по запросу #{req.id} истёк</b> 15 мин назад" in rows[0].payload["text"]
    await run_reminders(tg_settings, NOW + timedelta(hours=3))
    assert len(await outbox_rows()) == 1
    # A new estimate that passes again is reminded again.
    await CustomerRequest.filter(id=req.id).update(
        estimated_resolution_time=NOW + timedelta(hours=4)
    )
    assert (await run_reminders(tg_settings, NOW + timedelta(hours=5)))["eta"] == [req.id]
    assert len(await outbox_rows()) == 2


async def test_reminders_are_logged_without_telegram(settings, make_user):
    customer = await make_user("customer")
    req = await make_request(customer, priority="urgent", created=NOW - timedelta(hours=1))
    done = await run_reminders(settings, NOW)
    assert done["remind"] == [req.id] and done["escalate"] == [req.id]
    assert await outbox_rows() == []


# --- auto-close ---------------------------------------------------------------------------


async def test_quiet_completed_requests_close_by_themselves(tg_settings, make_user):
    customer = await make_user("customer")
    admin = await make_user("admin")
    now = datetime.now(UTC)
    quiet = await make_request(
        customer,
        status=Status.completed,
        admin=admin,
        created=now - timedelta(days=20),
        changed=now - timedelta(days=8),
        last_message=now - timedelta(days=9),
    )
    talked = await make_request(
        customer,
        status=Status.completed,
        admin=admin,
        created=now - timedelta(days=20),
        changed=now - timedelta(days=8),
        last_message=now - timedelta(days=2),
    )
    recent = await make_request(
        customer,
        status=Status.completed,
        admin=admin,
        created=now - timedelta(days=20),
        changed=now - timedelta(days=6),
    )
    working = await make_request(
        customer,
        status=Status.in_progress,
        admin=admin,
        created=now - timedelta(days=20),
        changed=now - timedelta(days=30),
    )
    await Event.all().delete()

    assert await run_auto_close(tg_settings, now) == [quiet.id]

    statuses = dict(await CustomerRequest.all().values_list("id", "status"))
    assert statuses[quiet.id] == "closed"
    assert statuses[talked.id] == statuses[recent.id] == "completed"
    assert statuses[working.id] == "in_progress"
    note = await RequestMessage.get(request_id=quiet.id)
    assert note.message_type == "system"
    assert note.content == "Запрос автоматически закрыт: нет новых сообщений 7 дн."
    updates = await Event.filter(type="request_updated")
    assert len(updates) == 1
    assert updates[0].payload["id"] == quiet.id and updates[0].payload["status"] == "closed"
    # Idempotent.
    assert await run_auto_close(tg_settings, now + timedelta(minutes=10)) == []


async def test_housekeeping_prunes_old_events_and_delivered_telegram_rows(settings, make_user):
    from datetime import UTC, datetime, timedelta

    from core import requests as svc
    from db.models import Cursor, Event, TelegramOutbox
    from scheduler.jobs import run_housekeeping

    customer = await make_user("customer")
    await svc.create_request(customer, title="old", description="d")
    await svc.create_request(customer, title="new", description="d")
    old_event, new_event = await Event.all().order_by("id")
    await Event.all().update(published=True)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    await Event.filter(id=old_event.id).update(created_at=long_ago)
    await Cursor.create(name="telegram-relay", position=new_event.id + 1)
    await TelegramOutbox.create(dedup_key="a", chat_id=1, method="sendMessage", payload={}, status="sent")
    await TelegramOutbox.create(dedup_key="b", chat_id=1, method="sendMessage", payload={}, status="pending")
    await TelegramOutbox.all().update(created_at=long_ago)

    await run_housekeeping(settings, datetime.now(UTC))

    assert [e.id for e in await Event.all()] == [new_event.id]
    assert [r.dedup_key for r in await TelegramOutbox.all()] == ["b"]  # undelivered rows stay


async def test_housekeeping_keeps_events_a_consumer_has_not_passed(settings, make_user):
    from datetime import UTC, datetime, timedelta

    from core import requests as svc
    from db.models import Cursor, Event
    from scheduler.jobs import run_housekeeping

    customer = await make_user("customer")
    await svc.create_request(customer, title="old", description="d")
    await Event.all().update(published=True, created_at=datetime.now(UTC) - timedelta(days=40))
    await Cursor.create(name="telegram-relay", position=0)
    await run_housekeeping(settings, datetime.now(UTC))
    assert await Event.all().count() == 1


async def test_reminders_read_only_what_needs_action_and_a_bounded_batch(
    tg_settings, make_user, monkeypatch
):
    """A run never loads every overdue request: handled ones (reminded, and not yet due
    for escalation; or escalated) are left out by the query, and at most WAITING_BATCH
    are read per run, oldest first; the rest come on the next runs."""
    from scheduler.jobs import reminders as jobs

    monkeypatch.setattr(jobs, "WAITING_BATCH", 3)
    customer = await make_user("customer")
    medium = svc.overdue_after("medium")
    reqs = [
        await make_request(customer, created=NOW - medium - timedelta(minutes=i + 1))
        for i in range(5)
    ]
    oldest_first = [r.id for r in reversed(reqs)]
    first = await jobs._waiting_requests(NOW)
    assert [r.id for r in first] == oldest_first[:3]
    for r in first:
        assert await jobs.claim_reminder(r.id, jobs.remind_kind(r))
    second = await jobs._waiting_requests(NOW)
    assert [r.id for r in second] == oldest_first[3:]
    for r in second:
        assert await jobs.claim_reminder(r.id, jobs.remind_kind(r))
    assert await jobs._waiting_requests(NOW) == []
    # past twice the threshold they are read again, for the escalation, until escalated
    later = NOW + medium
    due = await jobs._waiting_requests(later)
    assert [r.id for r in due] == oldest_first[:3]
    for r in await jobs._waiting_requests(later):
        assert await jobs.claim_reminder(r.id, jobs.escalate_kind(r))
    assert [r.id for r in await jobs._waiting_requests(later)] == oldest_first[3:]


async def test_estimate_reminders_read_only_unreminded_estimates_in_a_bounded_batch(
    tg_settings, make_user, monkeypatch
):
    """The overdue-estimate reminder reads at most WAITING_BATCH requests per run, most
    overdue first, and never one whose current estimate was already reminded; a new
    estimate that passes is reminded again."""
    from db.models import CustomerRequest
    from scheduler.jobs import reminders as jobs

    monkeypatch.setattr(jobs, "WAITING_BATCH", 2)
    customer = await make_user("customer")
    admin = await make_user("admin")
    reqs = [
        await make_request(customer, status=Status.in_progress, admin=admin,
                           eta=NOW - timedelta(hours=i + 1))
        for i in range(5)
    ]
    most_overdue_first = [r.id for r in reversed(reqs)]
    assert await jobs._remind_overdue_estimates(tg_settings, NOW) == most_overdue_first[:2]
    assert await jobs._remind_overdue_estimates(tg_settings, NOW) == most_overdue_first[2:4]
    assert await jobs._remind_overdue_estimates(tg_settings, NOW) == most_overdue_first[4:]
    assert await jobs._remind_overdue_estimates(tg_settings, NOW) == []
    await CustomerRequest.filter(id=reqs[0].id).update(
        estimated_resolution_time=NOW + timedelta(hours=1)
    )
    later = NOW + timedelta(hours=2)
    assert await jobs._remind_overdue_estimates(tg_settings, later) == [reqs[0].id]
