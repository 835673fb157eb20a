"""The scheduler runtime: each fire slot runs once across instances, a crashed holder's
slot is taken over, jobs and their next runs are visible (log, jobs(), admin API)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core import runtime
from core.clock import as_utc
from db.models import JobLease, TelegramOutbox

# The digest's chart photo is its own queue row (tests/test_digest_chart.py); these tests
# count the digests themselves.
from scheduler import lease
from scheduler.clock import FixedClock
from scheduler.runtime import SchedulerRuntime, describe_jobs, start_scheduler

ADMIN_CHAT = -1001234567890
SLOT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def tg_settings(settings):
    s = settings.with_overrides(
        telegram_bot_token="123456:TEST-token", telegram_admin_chat_id=ADMIN_CHAT, tz="UTC"
    )
    runtime.configure(s)
    return s


def far_cron(now: datetime) -> str:
    """A daily cron whose last fire is ~12 hours away from `now` (no catch-up in tests)."""
    t = as_utc(now) + timedelta(hours=12)
    return f"{t.minute} {t.hour} * * *"


async def test_two_instances_firing_the_same_slot_post_one_digest(tg_settings):
    clock = FixedClock(SLOT + timedelta(seconds=1))
    a = SchedulerRuntime(tg_settings, clock=clock)
    b = SchedulerRuntime(tg_settings, clock=clock)
    results = await asyncio.gather(*(rt.fire("digest", SLOT) for rt in (a, b, a, b)))
    assert sorted(results) == [False, False, False, True]
    rows = await TelegramOutbox.exclude(dedup_key__endswith=":chart")
    assert len(rows) == 1 and rows[0].chat_id == ADMIN_CHAT
    assert rows[0].dedup_key == "digest:2026-11-27T09:00:00Z"
    assert await lease.slot_state("digest", SLOT, clock.now()) == "done"


async def test_two_running_schedulers_post_one_digest_for_a_slot(tg_settings):
    now = datetime.now(UTC)
    s = tg_settings.with_overrides(digest_cron=far_cron(now))
    first = await start_scheduler(s)
    second = await start_scheduler(s)
    try:
        slot = now.replace(microsecond=0)
        for rt in (first, second):
            rt._scheduler.get_job("digest").modify(next_run_time=slot)
            rt._scheduler.wakeup()
        for _ in range(100):
            if await lease.slot_state("digest", slot, datetime.now(UTC)) == "done":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let the loser finish its (skipped) run too
        rows = await TelegramOutbox.exclude(dedup_key__endswith=":chart")
        assert [r.dedup_key for r in rows] == [f"digest:{slot.strftime('%Y-%m-%dT%H:%M:%SZ')}"]
    finally:
        await first.stop()
        await second.stop()


async def test_crashed_holders_digest_is_taken_over_after_its_lease_expires(tg_settings):
    clock = FixedClock(SLOT)
    # Another process claimed the slot and died before posting.
    assert await lease.claim(lease.slot_key("digest", SLOT), "dead-host:1:x", SLOT, timedelta(minutes=5))
    survivor = SchedulerRuntime(tg_settings, clock=clock)
    assert not await survivor.fire("digest", SLOT)

    clock.set(SLOT + timedelta(minutes=3))
    assert await survivor.catch_up() == []  # still within the dead holder's lease
    clock.set(SLOT + timedelta(minutes=6))
    assert await survivor.catch_up() == ["digest"]
    assert await survivor.catch_up() == []
    rows = await TelegramOutbox.exclude(dedup_key__endswith=":chart")
    assert len(rows) == 1 and rows[0].dedup_key == "digest:2026-11-27T09:00:00Z"
    taken = await JobLease.get(key="job:digest:2026-11-27T09:00:00Z")
    assert taken.holder == survivor.holder


async def test_digest_missed_while_down_is_posted_on_start(tg_settings):
    clock = FixedClock(SLOT + timedelta(minutes=20))
    rt = SchedulerRuntime(tg_settings, clock=clock)
    assert await rt.catch_up() == ["digest"]
    other = SchedulerRuntime(tg_settings, clock=clock)
    assert await other.catch_up() == []
    assert await TelegramOutbox.exclude(dedup_key__endswith=":chart").count() == 1
    # Too late to be useful: a digest missed by more than the catch-up window is skipped.
    late = SchedulerRuntime(tg_settings, clock=FixedClock(SLOT + timedelta(days=1, hours=3)))
    assert await late.catch_up() == []


async def test_failed_job_releases_its_slot_for_a_retry(tg_settings, monkeypatch):
    from scheduler.jobs import digest

    async def broken(*args, **kwargs):
        raise RuntimeError("queue unavailable")

    monkeypatch.setattr(digest, "send_text", broken)
    rt = SchedulerRuntime(tg_settings, clock=FixedClock(SLOT + timedelta(minutes=2)))
    assert not await rt.fire("digest", SLOT)
    assert await lease.slot_state("digest", SLOT, SLOT) == "free"
    monkeypatch.undo()
    assert await rt.catch_up() == ["digest"]
    assert await TelegramOutbox.exclude(dedup_key__endswith=":chart").count() == 1


async def test_started_scheduler_lists_jobs_and_logs_next_runs(settings, caplog):
    caplog.set_level(logging.INFO, logger="helpdesk.scheduler")
    rt = await start_scheduler(
        settings.with_overrides(digest_cron="30 8 * * 1-5", tz="Europe/Moscow")
    )
    try:
        jobs = {j["name"]: j for j in rt.jobs()}
        assert {"digest", "reminders", "auto_close", "housekeeping", "catch_up"} <= set(jobs)
        assert jobs["digest"]["trigger"] == "cron[30 8 * * 1-5] Europe/Moscow"
        nxt = jobs["digest"]["next_run_time"].astimezone(ZoneInfo("Europe/Moscow"))
        assert (nxt.hour, nxt.minute) == (8, 30) and nxt.weekday() < 5
        lines = [r.getMessage() for r in caplog.records if "scheduler job" in r.getMessage()]
        assert len(lines) == len(jobs) and all("next run" in line for line in lines)
        assert any(
            "digest and group reminders are not posted" in r.getMessage() for r in caplog.records
        )
    finally:
        await rt.stop()
    assert rt.jobs() == []


def test_describe_jobs_needs_no_running_scheduler():
    from core.settings import Settings

    lines = describe_jobs(
        Settings(digest_cron="0 9 * * *", tz="UTC"),
        now=datetime(2026, 11, 27, 10, 0, 30, tzinfo=UTC),
    )
    assert lines[0].startswith("digest") and "next run 2026-11-28 09:00 UTC" in lines[0]
    assert "reminders" in lines[1] and "next run 2026-11-27 10:01 UTC" in lines[1]


async def test_admin_sees_scheduler_jobs_with_next_and_last_runs(
    api, settings, make_user, token_for
):
    admin = await make_user("admin")
    customer = await make_user("customer")
    rt = SchedulerRuntime(settings, clock=FixedClock(SLOT))
    await rt.fire("auto_close", SLOT)

    r = await api.get("/api/admin/scheduler/jobs/", token=await token_for(admin))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["running_in_this_process"] is False
    jobs = {j["name"]: j for j in body["jobs"]}
    assert jobs["digest"]["cron"] == settings.digest_cron and jobs["digest"]["next_run_time"]
    assert jobs["digest"]["last_run"] is None
    assert jobs["auto_close"]["last_run"]["slot"] == SLOT.isoformat()
    assert jobs["auto_close"]["last_run"]["state"] == "done"
    assert jobs["auto_close"]["last_run"]["holder"] == rt.holder

    r = await api.get("/api/admin/scheduler/jobs/", token=await token_for(customer))
    assert r.status_code == 403
    r = await api.get("/api/admin/scheduler/jobs/")
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("expr", "weekdays"),
    [
        ("0 9 * * 1-5", {0, 1, 2, 3, 4}),  # Monday..Friday, as crontab means it
        ("0 9 * * 0", {6}),
        ("0 9 * * 7", {6}),
        ("0 9 * * 0,6", {5, 6}),
        ("0 9 * * mon-fri", {0, 1, 2, 3, 4}),
        ("0 9 * * *", set(range(7))),
        ("0 9 * * */2", {6, 1, 3, 5}),
    ],
)
def test_digest_cron_weekdays_mean_what_crontab_means(expr, weekdays):
    from scheduler.clock import cron_trigger

    trigger = cron_trigger(expr, "UTC")
    t = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday
    seen = set()
    for _ in range(14):
        t = trigger.get_next_fire_time(None, t + timedelta(seconds=1))
        seen.add(t.weekday())
    assert seen == weekdays


async def test_bad_digest_cron_is_a_clear_settings_error(settings):
    from core.settings import SettingsError

    with pytest.raises(SettingsError, match="DIGEST_CRON"):
        await start_scheduler(settings.with_overrides(digest_cron="61 9 * * *"))
