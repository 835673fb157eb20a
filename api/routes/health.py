"""Operations probes: `/health` (the process answers) and `/ready` (it can do its work).

`/ready` runs a trivial query on the database and PINGs Redis when REDIS_URL is set; any
failure answers 503 naming the dependency, so a load balancer or compose health check
stops sending traffic to this process until it recovers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sanic import Blueprint, Request
from tortoise import connections

from api.http import json

log = logging.getLogger("helpdesk.health")

CHECK_TIMEOUT = 2.0


async def check_database() -> str:
    conn = connections.get("default")
    await asyncio.wait_for(conn.execute_query("SELECT 1"), CHECK_TIMEOUT)
    return "ok"


async def check_redis(client: Any) -> str:
    await asyncio.wait_for(client.ping(), CHECK_TIMEOUT)
    return "ok"


def get_blueprint() -> Blueprint:
    bp = Blueprint("health")

    @bp.get("/health")
    async def health(request: Request):
        return json({"status": "ok"})

    @bp.get("/ready")
    async def ready(request: Request):
        checks: dict[str, str] = {}
        failed: list[str] = []
        try:
            checks["database"] = await check_database()
        except Exception as exc:  # any failure means "not ready", never a 500
            checks["database"] = f"error: {type(exc).__name__}"
            failed.append("database")
            log.warning("readiness: database check failed: %r", exc)
        if request.app.ctx.settings.redis_url:
            client = getattr(request.app.ctx, "web_redis", None)
            try:
                if client is None:
                    raise ConnectionError("no Redis client")
                checks["redis"] = await check_redis(client)
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
                failed.append("redis")
                log.warning("readiness: redis check failed: %r", exc)
        if failed:
            return json({"status": "unavailable", "failed": failed, "checks": checks}, status=503)
        return json({"status": "ok", "checks": checks})

    return bp
