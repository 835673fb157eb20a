"""Start and stop the scheduler: APScheduler (AsyncIOScheduler) firing the jobs of
scheduler.jobs, each fire slot claimed through scheduler.lease so every job runs once
however many processes or replicas run a scheduler.

- `start_scheduler(settings)` inside a process that already has the database (the API's
  embedded default); `run_scheduler(settings)` standalone (`helpdesk scheduler`).
- `describe_jobs(settings)` / `job_overview(settings)`: the jobs, their schedule, next run
  and last run, without running a scheduler (CLI `helpdesk jobs`, admin API route).
- Outages: while the database is unreachable, claims and runs fail; the scheduler logs one
  line when that starts and one when it recovers (`core.backoff.LoopHealth`), skips fires
  until its backoff delay has passed, and never lets a traceback reach APScheduler's log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core import metrics
from core import runtime as core_runtime
from core.backoff import LoopHealth, is_outage
from core.origin import acting_from
from core.settings import Settings, SettingsError
from db.models import HistoryChannel
from scheduler import lease
from scheduler.clock import (
    Clock,
    SystemClock,
    as_utc,
    cron_trigger,
    floor_minute,
    last_fire_time,
    next_fire_time,
    parse_slot_iso,
    slot_iso,
)
from scheduler.jobs import JobSpec, admin_chat_configured, job_specs

log = logging.getLogger("helpdesk.scheduler")

CATCH_UP_JOB = "catch_up"
CATCH_UP_CRON = "* * * * *"
# A scheduled run later than this after its fire time is dropped by APScheduler; the
# digest's catch-up covers longer gaps.
MISFIRE_GRACE_SECONDS = 60

# Schedulers running in this process (for the admin route's "running here").
_running: set[SchedulerRuntime] = set()


def running_here() -> bool:
    """True if this process runs a scheduler."""
    return bool(_running)


class SchedulerRuntime:
    """One process's scheduler. Every job fire is claimed before it runs (see lease.py)."""

    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, holder: str | None = None
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.holder = holder or lease.new_holder_id()
        self.specs: dict[str, JobSpec] = {s.name: s for s in job_specs(settings)}
        self._scheduler: AsyncIOScheduler | None = None
        self._slots: dict[str, datetime] = {}
        self._finished_catch_up: set[tuple[str, datetime]] = set()
        self.health = LoopHealth("scheduler", log)
        self._resume_at = 0.0  # monotonic; fires before it are skipped (backing off)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Schedule every job. SettingsError (naming DIGEST_CRON) for a bad cron expression."""
        try:
            self.specs["digest"].trigger(self.settings)
        except ValueError as exc:
            raise SettingsError(
                f"DIGEST_CRON is not a valid crontab expression ({exc}): {self.settings.digest_cron!r}"
            ) from None
        tz = ZoneInfo(self.settings.tz)
        sched = AsyncIOScheduler(timezone=tz)
        common: dict[str, Any] = {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        }
        for spec in self.specs.values():
            sched.add_job(
                self._fire_scheduled,
                trigger=spec.trigger(self.settings),
                args=[spec.name],
                id=spec.name,
                name=spec.name,
                **common,
            )
        if any(s.catch_up for s in self.specs.values()):
            sched.add_job(
                self._catch_up_scheduled,
                trigger=cron_trigger(CATCH_UP_CRON, self.settings.tz),
                id=CATCH_UP_JOB,
                name=CATCH_UP_JOB,
                **common,
            )
        sched.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        sched.start()
        self._scheduler = sched
        _running.add(self)
        for job in self.jobs():
            log.info(
                "scheduler job %-12s %-22s next run %s",
                job["name"],
                job["trigger"],
                _local(job["next_run_time"], self.settings.tz),
            )
        if not admin_chat_configured(self.settings):
            log.info(
                "digest and group reminders are not posted: TELEGRAM_BOT_TOKEN or "
                "TELEGRAM_ADMIN_CHAT_ID is not set (the other jobs run)"
            )

    async def stop(self) -> None:
        """Stop firing jobs; a job still running is cancelled (its lease expires and another
        process may take the slot over)."""
        _running.discard(self)
        if self._scheduler is not None:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def jobs(self) -> list[dict[str, Any]]:
        """name, trigger (text) and next_run_time (aware datetime or None) of each job."""
        if self._scheduler is None:
            return []
        return [
            {
                "name": j.id,
                "trigger": _trigger_text(j.id, self.specs, self.settings),
                "next_run_time": j.next_run_time,
            }
            for j in self._scheduler.get_jobs()
        ]

    # --- firing ----------------------------------------------------------------------------

    def _on_submitted(self, event: JobSubmissionEvent) -> None:
        # Called synchronously when APScheduler submits a run, before the job's task starts:
        # remember the scheduled fire time, which is the slot every replica agrees on.
        if event.scheduled_run_times:
            self._slots[event.job_id] = as_utc(event.scheduled_run_times[-1])

    async def _fire_scheduled(self, name: str) -> None:
        slot = self._slots.pop(name, None) or floor_minute(self.clock.now())
        await self.fire(name, slot)

    async def _catch_up_scheduled(self) -> None:
        if self._backing_off():
            return
        try:
            await self.catch_up()
        except Exception as exc:
            self._failed(exc)

    def _backing_off(self) -> bool:
        return self.health.failing and asyncio.get_running_loop().time() < self._resume_at

    def _failed(self, exc: BaseException) -> None:
        """One log line per state change (LoopHealth), and skip fires for a while."""
        self._resume_at = asyncio.get_running_loop().time() + self.health.failed(exc)

    async def fire(self, name: str, slot: datetime) -> bool:
        """Run job `name` for fire slot `slot` if this process wins the slot's lease.

        True if this process ran it to the end. A failure releases the lease (a later
        catch-up or the next slot retries) and is logged, never raised into APScheduler.
        """
        spec = self.specs[name]
        slot = as_utc(slot)
        key = lease.slot_key(name, slot)
        if self._backing_off():
            log.debug("job %s slot %s: skipped, the database was unreachable", name,
                      slot_iso(slot))
            return False
        try:
            won = await lease.claim(key, self.holder, self.clock.now(), spec.ttl)
        except Exception as exc:
            self._failed(exc)
            return False
        self.health.ok()
        if not won:
            log.debug("job %s slot %s: claimed elsewhere, skipped", name, slot_iso(slot))
            return False
        started = time.monotonic()
        try:
            with acting_from(HistoryChannel.scheduler):
                await spec.run(self.settings, self.clock.now(), slot)
        except Exception as exc:
            metrics.scheduler_run(name, "failed", time.monotonic() - started)
            if is_outage(exc):
                self._failed(exc)
            else:
                log.exception("job %s slot %s failed", name, slot_iso(slot))
            try:
                await lease.release(key, self.holder)
            except Exception as release_exc:
                # Unreleased, the lease expires after the job's ttl and the slot is free again.
                if not is_outage(release_exc):
                    log.exception("could not release lease %s", key)
            return False
        metrics.scheduler_run(name, "ok", time.monotonic() - started)
        try:
            await lease.finish(key, self.holder, self.clock.now())
        except Exception as exc:
            self._failed(exc)  # the job ran; its lease stays unfinished until it expires
        return True

    async def catch_up(self) -> list[str]:
        """Run the latest slot of each catch-up job (the digest) if it was missed (no process
        ran at its fire time) or abandoned (its holder's lease expired unfinished).
        Returns the names of the jobs it ran."""
        now = self.clock.now()
        ran = []
        for spec in self.specs.values():
            if spec.catch_up is None:
                continue
            slot = last_fire_time(spec.trigger(self.settings), now, spec.catch_up)
            # Leave the slot to the regular fire for its first minute.
            if (
                slot is None
                or (spec.name, slot) in self._finished_catch_up
                or now - slot < timedelta(seconds=MISFIRE_GRACE_SECONDS)
            ):
                continue
            state = await lease.slot_state(spec.name, slot, now)
            if state == "done":
                self._finished_catch_up.add((spec.name, slot))
                continue
            if state == "running":
                continue
            log.warning(
                "job %s slot %s was %s; running it now",
                spec.name,
                slot_iso(slot),
                "missed" if state == "free" else "abandoned by a crashed holder",
            )
            if await self.fire(spec.name, slot):
                self._finished_catch_up.add((spec.name, slot))
                ran.append(spec.name)
        return ran


async def start_scheduler(settings: Settings, *, clock: Clock | None = None) -> SchedulerRuntime:
    """Start the scheduler in this process (the database must be initialised). Logs one
    line per job with its next run."""
    core_runtime.configure(settings)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # APScheduler logs every run at INFO; our own lines say what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    rt = SchedulerRuntime(settings, clock=clock)
    await rt.start()
    return rt


async def run_scheduler(settings: Settings) -> None:
    """Run the scheduler alone until cancelled or SIGTERM/SIGINT (`helpdesk scheduler`):
    database, the events runtime (so auto-close events are published) and the scheduler."""
    from db.setup import close_db, init_db

    core_runtime.configure(settings)
    await init_db(settings.database_url)
    events_rt = None
    try:
        from core.bus import start_events

        events_rt = await start_events(settings)
        rt = await start_scheduler(settings)
        metrics_server = await metrics.serve_metrics(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
        try:
            await stop.wait()
            log.info("scheduler stopping")
        finally:
            if metrics_server is not None:
                await metrics_server.cleanup()
            await rt.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.remove_signal_handler(sig)
                except (NotImplementedError, RuntimeError):
                    pass
    finally:
        if events_rt is not None:
            await events_rt.stop()
        await close_db()


# --- read-only views (no scheduler needed) -------------------------------------------------


def _trigger_text(name: str, specs: dict[str, JobSpec], settings: Settings) -> str:
    cron = specs[name].cron if name in specs else CATCH_UP_CRON
    return f"cron[{cron}] {settings.tz}"


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return "-"
    return as_utc(value).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def next_runs(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each job with its cron expression and next run time, computed from the settings."""
    now = as_utc(now or SystemClock().now())
    return [
        {
            "name": s.name,
            "cron": s.cron,
            "timezone": settings.tz,
            "description": s.description,
            "next_run_time": next_fire_time(s.trigger(settings), now),
        }
        for s in job_specs(settings)
    ]


def describe_jobs(settings: Settings, now: datetime | None = None) -> list[str]:
    """One line per job: name, schedule, next run (for `helpdesk jobs`)."""
    return [
        f"{j['name']:<12} {'cron[' + j['cron'] + ']':<18} {j['timezone']:<14} next run "
        f"{_local(j['next_run_time'], settings.tz)}  ({j['description']})"
        for j in next_runs(settings, now)
    ]


async def job_overview(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """next_runs plus each job's last claimed slot (from the job_leases table): when, by
    which process, and whether it finished, is running, or was abandoned."""
    now = as_utc(now or SystemClock().now())
    out = []
    for job in next_runs(settings, now):
        last = await lease.last_runs(job["name"], 1)
        info: dict[str, Any] | None = None
        if last:
            row = last[0]
            state = (
                "done"
                if lease.is_done(row, now)
                else ("running" if as_utc(row.expires_at) > now else "abandoned")
            )
            info = {
                "slot": _slot_of(row.key),
                "started_at": as_utc(row.created_at),
                "holder": row.holder,
                "state": state,
            }
        out.append({**job, "last_run": info})
    return out


def _slot_of(key: str) -> datetime | None:
    # key = "job:<name>:<YYYY-MM-DDTHH:MM:SSZ>"; the slot itself contains colons.
    prefix, _, rest = key.partition(":")
    _, _, slot = rest.partition(":")
    try:
        return parse_slot_iso(slot)
    except ValueError:
        return None
