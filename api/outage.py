"""Requests while the database is unreachable: 503 with a clear body, never a 500 or a hang.

`install(app, fallback)` registers one exception handler for the exception classes a lost
database raises (connection refused or reset, timeouts, asyncpg's connection errors,
Tortoise's DBConnectionError). If the exception really says the database is unreachable
the client gets 503 with `Retry-After`: JSON on the API, a small HTML page for a browser
on the web pages. Anything else of those classes (a missing file is an OSError too) goes
to `fallback`, the app's ordinary handler for unexpected errors.

The wait is bounded by the database driver's timeouts (db/setup.py: connect and command
timeouts on PostgreSQL), so a black-holed database answers 503 within seconds too.
Logging: one warning when requests start failing, then at most one line per
LOG_EVERY seconds with the count of 503 answers, instead of a traceback per request.
A WebSocket handler that hits the outage after the upgrade is closed with 1013 (try
again later) and counted the same way.
"""

from __future__ import annotations

import contextlib
import html
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.response import html as html_response

from api.http import json
from core import i18n
from core.texts import t

log = logging.getLogger("helpdesk.api")

RETRY_AFTER = 5
CLOSE_TRY_AGAIN = 1013  # WebSocket "Try Again Later"
LOG_EVERY = 60.0
DETAIL = t("err_db_unavailable")  # in the caller's language in JSON (api.http.json)
DETAIL_EN = i18n.t("en", "core.err_db_unavailable")

_DB_MODULES = ("asyncpg", "tortoise", "aiosqlite", "sqlite3", "psycopg")
_DB_OUTAGE_NAMES = {
    "DBConnectionError", "PostgresConnectionError", "ConnectionDoesNotExistError",
    "ConnectionFailureError", "ClientCannotConnectError", "ConnectionRejectionError",
    "CannotConnectNowError", "AdminShutdownError", "CrashShutdownError",
    "TooManyConnectionsError",
}


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(out) < 6:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def is_database_outage(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be reached (not a bug, not Redis)."""
    chain = _chain(exc)
    if any(type(e).__module__.startswith("redis") for e in chain):
        return False  # a Redis error: not this handler's business
    for e in chain:
        if isinstance(e, (ConnectionError, TimeoutError)):
            return True
        if type(e).__module__.startswith(_DB_MODULES) and any(
            cls.__name__ in _DB_OUTAGE_NAMES for cls in type(e).__mro__
        ):
            return True
    # asyncpg gives up on a host with a plain OSError ("Multiple exceptions: ...").
    return type(exc) is OSError and "connect" in str(exc).lower()


def _handled_classes() -> tuple[type[BaseException], ...]:
    import asyncpg.exceptions as pg
    from tortoise.exceptions import DBConnectionError

    return (OSError, DBConnectionError, pg.PostgresConnectionError,
            pg.OperatorInterventionError, pg.TooManyConnectionsError)


class _Counter:
    """Counts 503 answers; logs the first and then one summary per LOG_EVERY seconds."""

    def __init__(self) -> None:
        self.since_log = 0
        self.last_log = 0.0

    def hit(self, exc: BaseException, request: Request) -> None:
        self.since_log += 1
        now = time.monotonic()
        if self.last_log and now - self.last_log < LOG_EVERY:
            return
        if self.last_log == 0.0 or now - self.last_log >= 2 * LOG_EVERY:
            log.warning("database unreachable (%s: %s): answering 503 (first: %s %s)",
                        type(exc).__name__, str(exc)[:200], request.method, request.path)
        else:
            log.warning("database still unreachable: %d requests answered 503 in the last "
                        "%.0f s", self.since_log, now - self.last_log)
        self.last_log = now
        self.since_log = 0


def _wants_html(request: Request) -> bool:
    if request.path.startswith(("/api/", "/ws")):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def unavailable_response(request: Request) -> HTTPResponse:
    headers = {"Retry-After": str(RETRY_AFTER)}
    if _wants_html(request):
        page = (
            '<!DOCTYPE html><html lang="ru"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>503</title></head><body>"
            f"<h1>{html.escape(t('unavailable_heading'))}</h1><p>{html.escape(DETAIL)}</p>"
            f'<p lang="en">{html.escape(DETAIL_EN)}</p></body></html>'
        )
        return html_response(page, status=503, headers=headers)
    return json({"detail": DETAIL, "code": "database_unavailable"}, status=503, headers=headers)


def install(
    app: Sanic, fallback: Callable[[Request, Exception], Awaitable[Any]]
) -> None:
    """Answer 503 for database outages; hand every other exception of those classes to
    `fallback` (the app's handler for unexpected errors)."""
    counter = _Counter()

    async def database_unreachable(request: Request, exc: Exception):
        if not is_database_outage(exc):
            return await fallback(request, exc)
        counter.hit(exc, request)
        return unavailable_response(request)

    for cls in _handled_classes():
        app.exception(cls)(database_unreachable)

    # WebSocket handlers fail after the upgrade, where no response can be sent: Sanic
    # logs a traceback (with the URL, token included) for each. Count outages like the
    # 503s instead, and close with 1013 "try again later" so clients reconnect.
    default_log = app.error_handler.log

    def log_exception(request: Request, exception: Exception) -> None:
        if is_database_outage(exception):
            counter.hit(exception, request)
        else:
            default_log(request, exception)

    app.error_handler.log = log_exception  # type: ignore[method-assign]

    @app.signal("websocket.handler.exception")
    async def close_try_again(request: Request, websocket: Any, exception: Exception) -> None:
        if is_database_outage(exception):
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_TRY_AGAIN, "database unavailable, try again later")
