"""Customer web channel: the request form at `/`, the private request page `/r/<key>`,
the public JSON routes under `/api/public/` and their static files.

`install(app)` registers this channel and the health probes on an app built by
api.app.create_app: the blueprints, the per-client rate limiter (Redis when REDIS_URL is
set), and process start/stop hooks.
"""

from __future__ import annotations

import logging
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from api.blueprint import PageBlueprint
from api.routes import health
from api.web import edits, pages, public, rating
from api.web.render import SECURITY_HEADERS
from core.logging import adopt_sanic_loggers, setup_logging
from core.ratelimit import DEFAULT_PREFIX, build_rate_limiter
from core.shutdown import guarded

log = logging.getLogger("helpdesk.web")


def _too_large(handler):
    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        try:
            return await handler(request, *args, **kwargs)
        except public.TooLarge as exc:
            message = exc.errors["attachments"][0]
            return public.json({"detail": message, **exc.errors}, status=413)

    wrapped.__name__ = handler.__name__
    return wrapped


def get_blueprint() -> PageBlueprint:
    bp = PageBlueprint("web")

    bp.add_route(pages.form_page, "/", methods=["GET"], name="form")
    bp.add_route(pages.request_page, "/r/<key:str>", methods=["GET"], name="request_page",
                 strict_slashes=False)
    bp.add_route(pages.verify_page, "/r/<key:str>/verify/<token:str>", methods=["GET"],
                 name="verify_email")
    bp.add_route(_too_large(public.create_from_form), "/api/public/requests/", methods=["POST"],
                 name="public_create")
    bp.add_route(public.request_state, "/api/public/requests/<key:str>/", methods=["GET"],
                 name="public_state")
    bp.add_route(_too_large(public.reply), "/api/public/requests/<key:str>/messages/",
                 methods=["POST"], name="public_reply")
    bp.add_route(public.download, "/api/public/requests/<key:str>/attachments/<attachment_id:int>/",
                 methods=["GET"], name="public_download")
    bp.add_route(edits.edit_from_page,
                 "/api/public/requests/<key:str>/messages/<message_id:int>/edit",
                 methods=["POST", "PATCH"], name="public_edit")
    bp.add_route(edits.delete_from_page,
                 "/api/public/requests/<key:str>/messages/<message_id:int>/delete",
                 methods=["POST", "DELETE"], name="public_delete")
    bp.add_route(rating.rate_from_page, "/api/public/requests/<key:str>/rating/",
                 methods=["POST"], name="public_rating")
    bp.add_route(pages.static_file, "/static/web/<name:str>", methods=["GET", "HEAD"],
                 name="web_static")

    @bp.on_response
    async def security_headers(request: Request, response: HTTPResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            if name not in response.headers:
                response.headers[name] = value

    return bp


def install(app: Sanic) -> None:
    """Add the web channel and /health, /ready to `app` (called once by create_app)."""
    settings = app.ctx.settings
    app.ctx.web_redis = None
    app.ctx.web_limiter = build_rate_limiter(settings.web_rate_limit_per_min)
    app.blueprint(health.get_blueprint())
    app.blueprint(get_blueprint())

    @app.before_server_start
    async def start_web(app: Sanic) -> None:
        # Sanic workers are fresh processes: configure logging in each (JSON in production),
        # which also routes Sanic's own loggers through it. Tests keep pytest's logging.
        if Sanic.test_mode:
            adopt_sanic_loggers()
        else:
            setup_logging(settings)
        if settings.redis_url:
            import redis.asyncio as aioredis

            client = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            app.ctx.web_redis = client
            app.ctx.web_limiter = build_rate_limiter(
                settings.web_rate_limit_per_min, client,
                prefix=settings.extra.get("ratelimit_prefix", DEFAULT_PREFIX),
            )

    @app.after_server_stop
    @guarded
    async def stop_web(app: Sanic) -> None:
        client = app.ctx.web_redis
        app.ctx.web_redis = None
        if client is not None:
            await client.aclose()

    @app.main_process_start
    async def adopt_logs_in_main_process(app: Sanic) -> None:
        # With several workers the main process serves nothing but still logs (Sanic's
        # handlers came back when the app was built): one format there too.
        adopt_sanic_loggers()
