"""`/metrics` (Prometheus text) and the HTTP request metrics of every route.

`/metrics` is open unless METRICS_TOKEN is set; then only `Authorization: Bearer <token>`
gets it (401 otherwise). What is counted and how several workers add up: core/metrics.py.
"""

from __future__ import annotations

import time

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from api.http import json
from core import metrics
from core.texts import t


async def metrics_page(request: Request) -> HTTPResponse:
    if not metrics.authorized(request.headers.get("authorization"), request.app.ctx.settings.metrics_token):
        return json({"detail": t("err_bad_token")}, status=401, headers={"WWW-Authenticate": "Bearer"})
    return HTTPResponse(await metrics.render(), content_type=metrics.CONTENT_TYPE)


async def _started(request: Request) -> None:
    request.ctx.metrics_started = time.perf_counter()


async def _answered(request: Request, response: HTTPResponse) -> None:
    started = getattr(request.ctx, "metrics_started", None)
    if started is None or response is None:
        return
    route = "/" + request.route.path if request.route is not None else "unmatched"
    metrics.http_request(request.method, route, response.status, time.perf_counter() - started)


def install(app: Sanic) -> None:
    app.add_route(metrics_page, "/metrics", methods=["GET"], name="metrics", error_format="json")
    app.register_middleware(_started, "request", priority=1000)
    app.register_middleware(_answered, "response", priority=1000)

    @app.after_server_stop
    async def worker_stopped(app: Sanic) -> None:
        metrics.process_exited()
