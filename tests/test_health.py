"""Operations: /health, /ready, the per-client rate limiter and structured logs."""

from __future__ import annotations

import io
import json
import logging
import uuid

from core.logging import JsonFormatter, TextFormatter, setup_logging
from core.ratelimit import MemoryRateLimiter, RedisRateLimiter
from core.settings import Settings
from tests.conftest import REDIS_TEST_URL, free_port, need_service, redis_available
from tests.test_web import web_server


async def test_health_answers_ok_while_the_process_runs(api):
    r = await api.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_checks_the_database(api):
    r = await api.get("/ready")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok", "ready": True, "checks": {"database": "ok", "events": "in-process"}
    }


async def test_ready_stays_200_but_degraded_when_redis_is_unreachable(settings):
    # Without Redis the replica still serves REST and the web form: not taken out.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with web_server(settings, redis_url=dead) as client:
        r = await client.get("/ready")
        assert r.status_code == 200
        body = r.json()
        assert body["ready"] is True and body["status"] == "degraded"
        assert body["degraded"] == ["redis"]
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("down")
        assert (await client.get("/health")).status_code == 200


async def test_ready_is_ok_with_a_reachable_redis(settings):
    need_service("Redis", redis_available())
    async with web_server(settings, redis_url=REDIS_TEST_URL) as client:
        r = await client.get("/ready")
        assert r.status_code == 200, r.text
        assert {k: v for k, v in r.json()["checks"].items() if k != "events"} == {
            "database": "ok", "redis": "ok"
        }


async def test_ready_is_503_naming_the_database_when_it_is_gone(settings):
    from tortoise import Tortoise

    from db.setup import tortoise_config

    async with web_server(settings) as client:
        # The database goes away under a running server: point it at a closed port.
        await Tortoise.close_connections()
        gone = f"postgres://nobody@127.0.0.1:{free_port()}/gone"
        await Tortoise.init(config=tortoise_config(gone), _enable_global_fallback=True)
        r = await client.get("/ready")
        assert r.status_code == 503
        assert r.json()["failed"] == ["database"]
        assert r.json()["ready"] is False
        assert (await client.get("/health")).status_code == 200


# --- rate limiter --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_sliding_window_lets_a_client_back_in_once_the_oldest_hit_expires():
    clock = FakeClock()
    limiter = MemoryRateLimiter(3, window=60, clock=clock)
    for _ in range(3):
        assert (await limiter.hit("create:1.2.3.4")).allowed
        clock.now += 10
    refused = await limiter.hit("create:1.2.3.4")
    assert not refused.allowed
    assert refused.retry_after == 30  # the first hit (t=1000) leaves the window at t=1060
    assert (await limiter.hit("create:5.6.7.8")).allowed  # other clients are not affected
    clock.now += 30
    assert (await limiter.hit("create:1.2.3.4")).allowed


async def test_redis_window_is_shared_by_every_process():
    need_service("Redis", redis_available())
    import redis.asyncio as aioredis

    clock = FakeClock()
    prefix = f"helpdesk-test:{uuid.uuid4().hex}:"
    a_client = aioredis.from_url(REDIS_TEST_URL)
    b_client = aioredis.from_url(REDIS_TEST_URL)
    try:
        a = RedisRateLimiter(a_client, 2, window=60, prefix=prefix, clock=clock)
        b = RedisRateLimiter(b_client, 2, window=60, prefix=prefix, clock=clock)
        assert (await a.hit("reply:9.9.9.9")).allowed
        clock.now += 5
        assert (await b.hit("reply:9.9.9.9")).allowed
        refused = await a.hit("reply:9.9.9.9")
        assert not refused.allowed and refused.retry_after == 55
        clock.now += 55
        assert (await b.hit("reply:9.9.9.9")).allowed
    finally:
        keys = [k async for k in a_client.scan_iter(match=prefix + "*")]
        if keys:
            await a_client.delete(*keys)
        await a_client.aclose()
        await b_client.aclose()


async def test_form_rate_limit_holds_across_two_api_servers_sharing_redis(settings):
    need_service("Redis", redis_available())
    from tests.test_web import submit

    # Two API processes (here two servers) count one client's submissions together.
    shared = settings.with_overrides(
        redis_url=REDIS_TEST_URL,
        web_rate_limit_per_min=2,
        extra={"ratelimit_prefix": f"helpdesk-test:{uuid.uuid4().hex}:"},
    )
    async with web_server(shared) as one, web_server(shared) as two:
        assert (await submit(one)).status_code == 201
        assert (await submit(two)).status_code == 201
        refused = await submit(one)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1


# --- logs ------------------------------------------------------------------------------------


def _record(msg: str, **extra) -> logging.LogRecord:
    record = logging.getLogger("helpdesk.test").makeRecord(
        "helpdesk.test", logging.WARNING, __file__, 1, msg, (), None, extra=extra
    )
    return record


def test_json_logs_are_one_object_per_line_with_extra_fields():
    fmt = JsonFormatter()
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        record = _record("request %s failed", request_id=42)
        record.exc_info = sys.exc_info()
    line = fmt.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "helpdesk.test"
    assert entry["request_id"] == 42
    assert "ValueError: boom" in entry["exc"]
    assert entry["ts"].endswith("Z")


def test_text_logs_are_readable_lines():
    line = TextFormatter().format(_record("сервер запущен"))
    assert "WARNING" in line and "helpdesk.test: сервер запущен" in line


def test_setup_logging_routes_sanic_logs_through_one_json_handler(monkeypatch):
    root = logging.getLogger()
    saved_level = root.level
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    try:
        setup_logging(Settings(log_format="json", log_level="INFO"))
        setup_logging(Settings(log_format="json", log_level="INFO"))  # idempotent
        ours = [h for h in root.handlers if getattr(h, "_helpdesk", False)]
        assert len(ours) == 1
        logging.getLogger("sanic.error").warning("slow", extra={"request": "GET /health", "status": 200})
        lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
        assert lines[-1]["logger"] == "sanic.error"
        assert lines[-1]["status"] == 200
    finally:
        for h in [h for h in root.handlers if getattr(h, "_helpdesk", False)]:
            root.removeHandler(h)
        root.setLevel(saved_level)

