"""Sanic application factory: wires settings, database, event bus and the blueprints once."""

from __future__ import annotations

import logging
import traceback

from sanic import Request, Sanic
from sanic.exceptions import SanicException

from api import body_limit
from api.body_limit import is_file_body
from api.http import INVALID_INPUT, json, redact_credentials, refused_value
from core import runtime
from core.errors import (
    Conflict,
    DomainError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    Throttled,
    ValidationFailed,
)
from core.settings import Settings
from core.shutdown import guarded
from core.texts import t
from db.setup import close_db, init_db

log = logging.getLogger("helpdesk.api")

_app_counter = 0


def render_domain_error(exc: DomainError):
    if isinstance(exc, ValidationFailed):
        return json(exc.errors, status=400)
    if isinstance(exc, NotAuthenticated):
        return json({"detail": exc.message}, status=401, headers={"WWW-Authenticate": "Token"})
    if isinstance(exc, PermissionDenied):
        return json({"detail": exc.message}, status=403)
    if isinstance(exc, NotFound):
        return json({"detail": exc.message}, status=404)
    if isinstance(exc, Conflict):
        return json({"error": exc.message}, status=400)
    if isinstance(exc, Throttled):
        return json(
            {"detail": exc.message}, status=429, headers={"Retry-After": str(exc.retry_after)}
        )
    return json({"detail": exc.message}, status=400)


def create_app(settings: Settings, *, name: str | None = None) -> Sanic:
    """Build the HTTP channel alone: REST, WebSocket, web form, console. Every process (and
    every test) gets its own app instance. bootstrap.app.create_app adds the other parts a
    desk process serves (webhooks, e-mail, the Telegram webhook, the jobs overview)."""
    global _app_counter
    _app_counter += 1
    app = Sanic(name or f"helpdesk{_app_counter}")
    app.config.REQUEST_MAX_SIZE = settings.max_upload_bytes + 1024 * 1024
    app.config.KEEP_ALIVE_TIMEOUT = 30
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.OAS_UI_DEFAULT = "swagger"
    # sanic-ext would add /docs (assets from a CDN: blank offline) and re-finalize the router
    # for every auto HEAD/OPTIONS route (~2.5 s per start); api/routes/docs.py serves the
    # OpenAPI document and an offline docs page instead.
    app.config.AUTO_EXTEND = False
    app.ctx.settings = settings
    runtime.configure(settings)

    # Sanic listeners: `before_server_start` ones run in the order they are registered (the
    # database first, as here, then what install() below adds: events, web, console; then
    # what bootstrap.app adds: webhooks, mail, and in `helpdesk run` the embedded bot and
    # scheduler); `after_server_stop` ones in reverse order (so the
    # database closes last). Each stop step is `guarded`: one failing never skips the rest.
    @app.before_server_start
    async def open_resources(app: Sanic) -> None:
        runtime.configure(app.ctx.settings)
        await init_db(app.ctx.settings.database_url)

    @app.after_server_stop
    @guarded
    async def close_resources(app: Sanic) -> None:
        await close_db()

    @app.exception(DomainError)
    async def domain_error(request: Request, exc: DomainError):
        return render_domain_error(exc)

    @app.exception(SanicException)
    async def sanic_error(request: Request, exc: SanicException):
        status = getattr(exc, "status_code", 500) or 500
        messages = {
            404: t("err_not_found"),
            405: t("err_method", method=request.method),
            413: t("err_file_too_large", mb=settings.max_upload_mb),
        }
        if status == 413 and not is_file_body(request):
            messages[413] = t("err_body_too_large", None, max=settings.limits.json_body_bytes)
        return json({"detail": messages.get(status, str(exc))}, status=status)

    @app.exception(Exception)
    async def unexpected(request: Request, exc: Exception):
        refused = refused_value(exc)
        if refused is not None:
            # A value no column can hold reached the database: the client's input, not a
            # bug of ours (routes check ids and texts first; this is the net behind them).
            log.warning(
                "input refused by the database on %s %s: %s",
                request.method, request.path, type(refused).__name__,
            )
            return json({"detail": INVALID_INPUT}, status=400)
        log.error(
            "unhandled error on %s %s\n%s",
            request.method, request.path, redact_credentials(request, traceback.format_exc()),
        )
        return json({"detail": t("err_internal")}, status=500)

    # Database unreachable: 503 with a clear body, not a 500 (others go to `unexpected`).
    from api import outage

    outage.install(app, unexpected)

    body_limit.install(app, settings)
    from api import origin

    origin.install(app)

    # /metrics and the HTTP request metrics (before the blueprints: every route is counted).
    from api import metrics as metrics_routes

    metrics_routes.install(app)

    from api.routes import (
        attachments,
        auth,
        chats,
        communications,
        customer,
        docs,
        message_edits,
        requests,
        users,
        webhooks,
    )

    for module in (auth, requests, chats, communications, customer, attachments, users, docs,
                   webhooks):
        app.blueprint(module.get_blueprint())
    app.blueprint(message_edits.get_blueprint())  # PATCH/DELETE of one message (both sides)

    # Agent tools (docs/agent-tools.md).
    from api.routes import audit, canned, export, history, ratings, staff_stats

    for module in (canned, history, audit, ratings, staff_stats, export):
        app.blueprint(module.get_blueprint())

    # Scheduler jobs overview (works whether or not this process runs the scheduler; the
    # overview itself is handed in by bootstrap.app, as app.ctx.job_overview).
    from api.routes import scheduler as scheduler_routes

    app.blueprint(scheduler_routes.get_blueprint())

    # Real-time: WebSocket routes, and the event bus + outbox relay started with the server.
    from api import ws

    ws.install(app)

    # Customer web form and request pages, /health and /ready.
    from api import web

    web.install(app)

    # Staff console in the browser (/console/).
    from api import console

    console.install(app)
    return app
