"""Bodies of /health, /ready and /api/admin/scheduler/jobs/ (api.routes.health,
api.routes.scheduler)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from api.schemas.base import Out


class Health(Out):
    status: Literal["ok"]


class Ready(Out):
    status: Literal["ok", "degraded", "unavailable"]
    ready: bool
    checks: dict[str, str]
    degraded: list[str] = None
    failed: list[str] = None


class LastRun(Out):
    slot: datetime | None
    started_at: datetime | None
    holder: str | None
    state: str


class SchedulerJob(Out):
    name: str
    description: str
    cron: str
    timezone: str
    next_run_time: datetime | None
    last_run: LastRun | None


class SchedulerJobs(Out):
    enabled: bool
    running_in_this_process: bool
    jobs: list[SchedulerJob]
