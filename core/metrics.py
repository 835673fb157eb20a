"""Prometheus metrics: what every process counts, and the text `/metrics` serves.

Counted where it happens (each process, prometheus-client):
- `helpdesk_http_requests_total{method,route,status}` and
  `helpdesk_http_request_duration_seconds{method,route}` (route = the URL pattern, so ids
  do not multiply the series);
- `helpdesk_websocket_connections{kind}` (admin, chat, public);
- `helpdesk_telegram_calls_total{outcome}` (sent, retry_429, retry_error, failed, merged,
  summary), from the Telegram sender's own counters;
- `helpdesk_webhook_attempts_total{outcome}` (delivered, retry, given_up) and
  `helpdesk_webhook_attempt_duration_seconds`;
- `helpdesk_email_total{direction,outcome}` (out: sent, retry, failed; in: accepted,
  refused);
- `helpdesk_scheduler_job_runs_total{job,outcome}` (ok, failed) and its duration.

Read from the database at scrape time (so they are right whatever process did the work):
event-log lag (`helpdesk_event_log_unpublished`, `..._oldest_unpublished_seconds`,
`helpdesk_event_consumer_lag_events{consumer}`) and queue depths
(`helpdesk_queue_depth{queue,status}` for telegram, webhooks and email).

Several processes (Sanic workers, and the bot and the scheduler that `helpdesk run`
starts beside them): prometheus-client's multiprocess mode. Every process writes its
values to memory-mapped files in PROMETHEUS_MULTIPROC_DIR and `/metrics` (answered by any
worker) sums them, so a scrape sees the whole deployment, not whichever worker the kernel
picked. `core.metrics_dir.prepare_multiprocess()` sets that directory up (a fresh
temporary one unless configured) in the main process before workers start; it must run
before this module is imported anywhere, because prometheus-client chooses its storage at
import time. Separate
containers (compose's bot and scheduler) are separate deployments of the same code: each
serves its own `/metrics` on METRICS_PORT (see `serve_metrics`), scraped as its own target.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("helpdesk.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "helpdesk_http_requests_total", "HTTP requests answered, by route pattern and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "helpdesk_http_request_duration_seconds", "Time to answer an HTTP request",
    ["method", "route"], buckets=_LATENCY_BUCKETS,
)
WS_CONNECTIONS = Gauge(
    "helpdesk_websocket_connections", "Open WebSocket connections", ["kind"],
    multiprocess_mode="livesum",
)
TELEGRAM_CALLS = Counter(
    "helpdesk_telegram_calls_total",
    "Bot API calls of the delivery queue by outcome (retry_429: Telegram said 429)",
    ["outcome"],
)
WEBHOOK_ATTEMPTS = Counter(
    "helpdesk_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "helpdesk_webhook_attempt_duration_seconds", "Time of one webhook delivery attempt",
    buckets=_LATENCY_BUCKETS,
)
EMAIL = Counter(
    "helpdesk_email_total", "E-mail sent (out) and received (in), by outcome",
    ["direction", "outcome"],
)
SCHEDULER_RUNS = Counter(
    "helpdesk_scheduler_job_runs_total", "Scheduler job runs by outcome", ["job", "outcome"],
)
SCHEDULER_DURATION = Histogram(
    "helpdesk_scheduler_job_duration_seconds", "Time of one scheduler job run", ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)


# --- recording helpers (cheap, never raise) ------------------------------------------------


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "other"
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def ws_opened(kind: str) -> None:
    WS_CONNECTIONS.labels(kind).inc()


def ws_closed(kind: str) -> None:
    WS_CONNECTIONS.labels(kind).dec()


def telegram_call(outcome: str, count: int = 1) -> None:
    if count > 0:
        TELEGRAM_CALLS.labels(outcome).inc(count)


def webhook_attempt(outcome: str, seconds: float) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    WEBHOOK_LATENCY.observe(seconds)


def email(direction: str, outcome: str) -> None:
    EMAIL.labels(direction, outcome).inc()


def scheduler_run(job: str, outcome: str, seconds: float) -> None:
    SCHEDULER_RUNS.labels(job, outcome).inc()
    SCHEDULER_DURATION.labels(job).observe(seconds)


# --- several processes ---------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    from core.metrics_dir import MULTIPROC_ENV

    return os.environ.get(MULTIPROC_ENV) or None


def process_exited(pid: int | None = None) -> None:
    """A worker stops: its live gauges (WebSocket connections) no longer count."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        try:
            multiprocess.mark_process_dead(pid or os.getpid())
        except Exception:  # a missing file is fine
            pass


# --- the scrape ----------------------------------------------------------------------------


class _Families:
    def __init__(self, families: Iterable[Any]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Any]:
        return iter(self._families)


async def database_families() -> list[Any]:
    """Event-log lag and queue depths, read from the database (shared by all processes)."""
    from tortoise.functions import Count, Min

    from db.models import Cursor, Event, MailOutbox, TelegramOutbox, WebhookDelivery

    unpublished = GaugeMetricFamily(
        "helpdesk_event_log_unpublished", "Committed events not yet published to the bus"
    )
    oldest = GaugeMetricFamily(
        "helpdesk_event_log_oldest_unpublished_seconds",
        "Age of the oldest event not yet published (0 when none)",
    )
    consumer_lag = GaugeMetricFamily(
        "helpdesk_event_consumer_lag_events",
        "Events in the log after a durable consumer's position", labels=["consumer"],
    )
    depth = GaugeMetricFamily(
        "helpdesk_queue_depth", "Rows waiting in a delivery queue", labels=["queue", "status"]
    )
    row = await Event.filter(published=False).annotate(n=Count("id"), first=Min("created_at")) \
        .first().values("n", "first")
    count = int((row or {}).get("n") or 0)
    unpublished.add_metric([], count)
    first = (row or {}).get("first")
    if isinstance(first, str):
        first = datetime.fromisoformat(first)
    age = (datetime.now(UTC) - first).total_seconds() if count and first else 0.0
    oldest.add_metric([], max(0.0, age))
    top = await Event.all().order_by("-id").first().values("id")
    newest = int((top or {}).get("id") or 0)
    for name, position in await Cursor.all().values_list("name", "position"):
        consumer_lag.add_metric([name], max(0, newest - int(position)))
    for queue, model, statuses in (
        ("telegram", TelegramOutbox, ("pending", "sending")),
        ("webhooks", WebhookDelivery, ("pending", "sending")),
        ("email", MailOutbox, ("pending", "sending")),
    ):
        counts = dict(
            await model.filter(status__in=statuses).group_by("status")
            .annotate(n=Count("id")).values_list("status", "n")
        )
        for status in statuses:
            depth.add_metric([queue, status], int(counts.get(status, 0)))
    return [unpublished, oldest, consumer_lag, depth]


async def render(with_database: bool = True) -> bytes:
    """The Prometheus text of this deployment: every process's counters (multiprocess
    mode) or this process's, plus the database gauges."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    if with_database:
        started = time.monotonic()
        try:
            families = await database_families()
        except Exception as exc:  # the database is away: counters are still worth serving
            log.warning("metrics: database gauges unavailable: %s", exc)
            families = []
        extra = CollectorRegistry()
        extra.register(_Families(families))  # type: ignore[arg-type]
        text += generate_latest(extra)
        log.debug("metrics: database gauges in %.1f ms", (time.monotonic() - started) * 1000)
    return text


def authorized(header: str | None, token: str | None) -> bool:
    """`/metrics` is open without METRICS_TOKEN; with it, only `Authorization: Bearer <it>`."""
    if not token:
        return True
    import hmac

    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


async def serve_metrics(settings: Any) -> Any:
    """`helpdesk bot` / `helpdesk scheduler` on their own (compose runs each in a container):
    serve this process's `/metrics` on METRICS_PORT (same token rule), without the
    database gauges (the API's `/metrics` has those). Returns the aiohttp runner to
    `cleanup()`, or None when METRICS_PORT is not set."""
    if not settings.metrics_port:
        return None
    from aiohttp import web

    async def page(request: web.Request) -> web.Response:
        if not authorized(request.headers.get("Authorization"), settings.metrics_token):
            return web.json_response({"detail": "Invalid token."}, status=401)
        body = await render(with_database=False)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", page)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.metrics_port).start()
    log.info("metrics on http://%s:%s/metrics", settings.host, settings.metrics_port)
    return runner
