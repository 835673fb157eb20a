"""Database start-up: Tortoise config, migrations, connection lifecycle."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tortoise import Tortoise

log = logging.getLogger("helpdesk.db")

MODELS = ["db.models"]


async def _keep_session(con: Any) -> None:
    """asyncpg pool release hook (PostgreSQL). asyncpg has already rolled back a transaction
    left open; its default reset would add one more round trip after EVERY query (Tortoise
    takes a pool connection per statement): `SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`. The desk keeps no session state on pooled connections: no SET,
    LISTEN, advisory lock or cursor (events fan out through Redis, core.bus), so there is
    nothing to reset. Code that ever needs session state must use a transaction-local form
    (SET LOCAL, pg_advisory_xact_lock). See docs/performance.md."""


def tortoise_config(database_url: str) -> dict[str, Any]:
    connection: Any = database_url
    if database_url.startswith("sqlite://"):
        path = database_url[len("sqlite://") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    elif database_url.startswith(("postgres://", "postgresql://")):
        from tortoise.backends.base.config_generator import expand_db_url

        connection = expand_db_url(database_url)
        connection["credentials"]["reset"] = _keep_session
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODELS,
                "default_connection": "default",
                "migrations": "db.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# PostgreSQL: bound every wait on a lost database (a connect, each statement), so requests
# answer 503 within seconds instead of hanging (api/outage.py) and background loops back
# off. A value given in DATABASE_URL (`?timeout=5&command_timeout=30`) wins.
PG_CONNECT_TIMEOUT = 5
PG_COMMAND_TIMEOUT = 30


def with_timeouts(database_url: str) -> str:
    """`database_url` with the connect and statement timeouts added (PostgreSQL only)."""
    if database_url.startswith("sqlite://"):
        return database_url
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("timeout", str(PG_CONNECT_TIMEOUT))
    query.setdefault("command_timeout", str(PG_COMMAND_TIMEOUT))
    return urlunsplit(parts._replace(query=urlencode(query)))


class _PoolFloorFilter(logging.Filter):
    """asyncpg logs a full traceback each time it fails to reopen its idle connection
    (1, 2, 4 ... 60 s apart) while the database is away: keep one line per outage."""

    QUIET = 300.0

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Failed to restore the pool connection floor"):
            return True
        import time

        now = time.monotonic()
        seen, self._last = self._last, now
        if seen and now - seen < self.QUIET:
            return False
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.msg} ({type(exc).__name__}: {str(exc)[:200]})"
        record.exc_info = None
        record.exc_text = None
        return True


_pool_filter = _PoolFloorFilter()


async def init_db(database_url: str) -> None:
    """Open the connection pool (no schema changes)."""
    pool_log = logging.getLogger("asyncpg.pool")
    if _pool_filter not in pool_log.filters:
        pool_log.addFilter(_pool_filter)
    config = tortoise_config(with_timeouts(database_url))
    await Tortoise.init(config=config, _enable_global_fallback=True)


async def migrate_db(database_url: str) -> None:
    """Apply every pending migration. Safe to run again: applied ones are skipped."""
    from tortoise.migrations.api.migrate import migrate

    await migrate(config=tortoise_config(database_url))
    await Tortoise.close_connections()


async def close_db() -> None:
    await Tortoise.close_connections()
