"""The jobs, with their schedules, run-time limits and catch-up windows."""

from __future__ import annotations

from datetime import timedelta

from core.settings import Settings
from scheduler.jobs.auto_close import run_auto_close
from scheduler.jobs.common import JobSpec
from scheduler.jobs.digest import run_digest
from scheduler.jobs.housekeeping import run_housekeeping
from scheduler.jobs.reminders import run_reminders


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
