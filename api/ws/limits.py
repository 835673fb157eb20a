"""Abuse limits on sockets (settings WS_*, docs/deploy.md "Abuse limits"): resumes per
customer page, and the 4429 close with its rate-limited log line."""

from __future__ import annotations

from sanic import Sanic

from api.ws.connection import Connection
from api.ws.hub import Hub
from api.ws.protocol import CLOSE_RATE_LIMITED, log
from core.ratelimit import DEFAULT_PREFIX, RateLimiter, build_rate_limiter


def build_resume_limiter(app: Sanic) -> RateLimiter:
    # Shared through Redis when the web channel has a client (REDIS_URL), else per process.
    settings = app.ctx.settings
    limit, window = settings.ws_resume_rate
    prefix = settings.extra.get("ratelimit_prefix", DEFAULT_PREFIX) + "ws-resume:"
    return build_rate_limiter(limit, getattr(app.ctx, "web_redis", None), prefix, float(window))


async def resume_allowed(hub: Hub, conn: Connection) -> bool:
    """A replay on a customer page costs a scan of the event log: WS_RESUME_RATE per access
    key (all sockets of one request together). Over it the socket is closed with 4429."""
    if conn.kind != "public" or hub.resume_limiter is None:
        return True
    decision = await hub.resume_limiter.hit(str(conn.key))
    if decision.allowed:
        return True
    await refuse(hub, conn, "resumes", f"too many resumes; retry in {decision.retry_after} s")
    return False


async def refuse(hub: Hub, conn: Connection, what: str, reason: str) -> None:
    """Close with 4429 and log it (once a minute per client and kind of limit)."""
    who = f"{conn.kind}:{conn.key or (conn.user.id if conn.user else '')}"
    if (await hub.refusal_log.hit(f"{what}:{who}")).allowed:
        log.warning("ws: %s socket %s closed 4429: %s", conn.kind, who, reason)
    await conn.close(CLOSE_RATE_LIMITED, reason)
