"""Operations probes: `/health` (the process answers) and `/ready` (it can do its work).

`/ready` reports only what this replica cannot serve without, so a load balancer or the
compose health check takes a replica out only when it is really useless:

- `database`: `SELECT 1` (bounded by CHECK_TIMEOUT). Without it no route can answer, so
  `"down: <error>"` makes `/ready` answer 503 with `"ready": false`.
- `redis` (only when REDIS_URL is set): `PING`. Without Redis the replica still serves
  REST, the web form and WebSockets (events come through the database log, rate limits
  count in this process), so `"down: <error>"` answers 200 with `"status": "degraded"`.
- `events`: how this replica's events travel: `"redis"`, `"database log"` (Redis away),
  or `"in-process"` (no REDIS_URL). Informational only.

Body: `{"status": "ok"|"degraded"|"unavailable", "ready": bool, "checks": {...}}`, plus
`"degraded": [...]` or `"failed": [...]` naming the components. The checks run
concurrently; a dependency that changes state is logged once, not on every probe.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sanic import Request
from tortoise import connections

from api.blueprint import Blueprint
from api.http import json

log = logging.getLogger("helpdesk.health")

CHECK_TIMEOUT = 2.0


async def check_database() -> str:
    conn = connections.get("default")
    await asyncio.wait_for(conn.execute_query("SELECT 1"), CHECK_TIMEOUT)
    return "ok"


async def check_redis(client: Any) -> str:
    if client is None:
        raise ConnectionError("no Redis client")
    await asyncio.wait_for(client.ping(), CHECK_TIMEOUT)
    return "ok"


async def _outcome(check: Any) -> tuple[bool, str]:
    try:
        return True, await check
    except Exception as exc:  # any failure means "down", never a 500
        return False, f"down: {type(exc).__name__}"


def _events_transport(app: Any) -> str | None:
    runtime = getattr(app.ctx, "events_runtime", None)
    if runtime is None:
        return None
    if not app.ctx.settings.redis_url:
        return "in-process"
    return "redis" if runtime.bus.connected else "database log"


def _log_changes(app: Any, checks: dict[str, str]) -> None:
    """One line when a dependency goes down or comes back, not one per probe."""
    last: dict[str, str] = app.ctx.__dict__.setdefault("ready_states", {})
    for name, state in checks.items():
        before = last.get(name, "ok")
        if state != before and (state.startswith("down") or before.startswith("down")):
            if state == "ok":
                log.warning("readiness: %s is back", name)
            else:
                log.warning("readiness: %s is %s", name, state)
        last[name] = state


def get_blueprint() -> Blueprint:
    bp = Blueprint("health")

    @bp.get("/health")
    async def health(request: Request):
        return json({"status": "ok"})

    @bp.get("/ready")
    async def ready(request: Request):
        app = request.app
        probes: dict[str, Any] = {"database": check_database()}
        if app.ctx.settings.redis_url:
            probes["redis"] = check_redis(getattr(app.ctx, "web_redis", None))
        results = await asyncio.gather(*(_outcome(p) for p in probes.values()))
        checks = {name: state for name, (_, state) in zip(probes, results, strict=True)}
        _log_changes(app, checks)
        transport = _events_transport(app)
        if transport is not None:
            checks["events"] = transport
        down = [name for name, (ok, _) in zip(probes, results, strict=True) if not ok]
        if "database" in down:
            body = {"status": "unavailable", "ready": False, "failed": ["database"],
                    "checks": checks}
            return json(body, status=503, headers={"Retry-After": "5"})
        if down:
            return json({"status": "degraded", "ready": True, "degraded": down, "checks": checks})
        return json({"status": "ok", "ready": True, "checks": checks})

    return bp
