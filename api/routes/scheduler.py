"""/api/admin/scheduler/jobs/: the scheduler's jobs, schedule, next and last run (staff).

Works whether or not this process runs the scheduler: next runs come from the cron
expressions in the settings, last runs from the job_leases table every replica writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate, json
from core.permissions import require_staff


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def get_blueprint() -> Blueprint:
    bp = Blueprint("scheduler_admin", url_prefix="/api/admin/scheduler")

    @bp.get("/jobs/")
    async def list_jobs(request: Request):
        user = await authenticate(request)
        require_staff(user)
        overview = getattr(request.app.ctx, "job_overview", None)  # via bootstrap.app
        if overview is None:  # an API app built without the scheduler wired in
            return json({"detail": "Scheduler overview is not available here."}, status=503)
        settings = request.app.ctx.settings
        jobs: list[dict[str, Any]] = []
        for job in await overview.jobs(settings):
            last = job["last_run"]
            jobs.append(
                {
                    "name": job["name"],
                    "description": job["description"],
                    "cron": job["cron"],
                    "timezone": job["timezone"],
                    "next_run_time": _iso(job["next_run_time"]),
                    "last_run": None
                    if last is None
                    else {
                        "slot": _iso(last["slot"]),
                        "started_at": _iso(last["started_at"]),
                        "holder": last["holder"],
                        "state": last["state"],
                    },
                }
            )
        return json(
            {
                "enabled": settings.scheduler_enabled,
                "running_in_this_process": overview.running_here(),
                "jobs": jobs,
            }
        )

    return bp
