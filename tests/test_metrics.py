"""Prometheus metrics: `/metrics` and its token, HTTP requests by route and status,
WebSocket connections, event-log lag and queue depths, Telegram calls and 429s, webhook
attempts, scheduler runs, and the sum across several API worker processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from bootstrap.app import create_app
from core import metrics, runtime
from core import requests as svc
from db.models import Cursor, Event, TelegramOutbox, WebhookDelivery, WebhookSubscription
from tests.live import serve
from tests.procs import free_port, wait_port
from tests.wsutil import connect

ROOT = Path(__file__).resolve().parent.parent


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text, or None when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, _, value = line.rpartition(" ")
        metric, _, raw = series.partition("{")
        got = ",".join(sorted(raw.rstrip("}").split(","))) if raw else ""
        if metric == name and got == want:
            return float(value)
    return None


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_page_counts_requests_by_route_and_status(api, make_user, token_for):
    admin = await make_user("admin")
    token = await token_for(admin)
    route = "/api/admin/customer-requests"
    ok_before = counter("helpdesk_http_requests_total", method="GET", route=route, status="200")
    for _ in range(3):
        assert (await api.get("/api/admin/customer-requests/", token)).status_code == 200
    assert (await api.get("/api/admin/customer-requests/")).status_code == 401
    assert (await api.get("/api/admin/customer-requests/999/", token)).status_code == 404
    assert (await api.get("/no/such/page/")).status_code == 404
    r = await api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert sample(text, "helpdesk_http_requests_total", method="GET", route=route,
                  status="200") == ok_before + 3
    assert sample(text, "helpdesk_http_requests_total", method="GET", route=route, status="401") >= 1
    assert sample(text, "helpdesk_http_requests_total", method="GET",
                  route="/api/admin/customer-requests/<request_id:int>", status="404") >= 1
    assert sample(text, "helpdesk_http_requests_total", method="GET", route="unmatched",
                  status="404") >= 1
    # A latency histogram per route: buckets, count and sum.
    assert sample(text, "helpdesk_http_request_duration_seconds_count", method="GET",
                  route=route) >= 3
    assert sample(text, "helpdesk_http_request_duration_seconds_bucket", method="GET", route=route,
                  le="+Inf") >= 3
    # Ids never become series of their own.
    assert "/999/" not in text


async def test_metrics_need_the_bearer_token_when_one_is_set(settings):
    guarded = settings.with_overrides(metrics_token="s3cret-metrics")
    async with serve(create_app(guarded)) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            assert (await http.get("/metrics")).status_code == 401
            assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
            assert (await http.get("/metrics", headers={"Authorization": "Token s3cret-metrics"})).status_code == 401
            r = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
            assert r.status_code == 200 and "helpdesk_http_requests_total" in r.text


async def test_websocket_connections_are_a_gauge(api, make_user, token_for):
    admin = await make_user("admin")
    token = await token_for(admin)
    before = counter("helpdesk_websocket_connections", kind="admin")
    async with await connect(api.base, "/ws/admin/notifications/", token):
        async with await connect(api.base, "/ws/admin/notifications/", token):
            text = (await api.get("/metrics")).text
            assert sample(text, "helpdesk_websocket_connections", kind="admin") == before + 2
    for _ in range(50):
        if counter("helpdesk_websocket_connections", kind="admin") == before:
            break
        await asyncio.sleep(0.05)
    text = (await api.get("/metrics")).text
    assert sample(text, "helpdesk_websocket_connections", kind="admin") == before


async def test_event_log_lag_and_queue_depths_come_from_the_database(settings, make_user):
    customer = await make_user("customer")
    await svc.create_request(customer, title="waiting", description="d")  # no relay runs here
    await Event.all().update(created_at=datetime.now(UTC) - timedelta(seconds=90))
    newest = (await Event.all().order_by("-id").first()).id
    await Cursor.create(name="telegram-relay", position=max(0, newest - 1))
    await TelegramOutbox.create(dedup_key="a", chat_id=1, method="sendMessage", payload={})
    await TelegramOutbox.create(dedup_key="b", chat_id=1, method="sendMessage", payload={},
                                status="sending")
    await TelegramOutbox.create(dedup_key="c", chat_id=1, method="sendMessage", payload={},
                                status="sent")
    sub = await WebhookSubscription.create(url="https://example.com/", events=["request.created"],
                                           secret="x")
    for n in range(3):
        await WebhookDelivery.create(subscription=sub, dedup_key=f"k{n}", guid=f"g{n}",
                                     event="request.created", body="{}",
                                     give_up_at=datetime.now(UTC))
    text = (await metrics.render()).decode()
    assert sample(text, "helpdesk_event_log_unpublished") == 1
    assert 80 <= sample(text, "helpdesk_event_log_oldest_unpublished_seconds") <= 200
    assert sample(text, "helpdesk_event_consumer_lag_events", consumer="telegram-relay") == 1
    assert sample(text, "helpdesk_queue_depth", queue="telegram", status="pending") == 1
    assert sample(text, "helpdesk_queue_depth", queue="telegram", status="sending") == 1
    assert sample(text, "helpdesk_queue_depth", queue="webhooks", status="pending") == 3
    assert sample(text, "helpdesk_queue_depth", queue="email", status="pending") == 0


async def test_telegram_sends_and_429s_are_counted(telegram_settings, fake_telegram, make_user):
    from bot.runtime import start_bot

    sent = counter("helpdesk_telegram_calls_total", outcome="sent")
    limited = counter("helpdesk_telegram_calls_total", outcome="retry_429")
    failed = counter("helpdesk_telegram_calls_total", outcome="failed")
    fake_telegram.fail("sendMessage", status=429, retry_after=1, times=1)
    bot = await start_bot(telegram_settings, updates=False)
    try:
        customer = await make_user("customer")
        await svc.create_request(customer, title="Card please", description="d")
        await fake_telegram.wait_for("sendMessage", timeout=15)
        for _ in range(100):
            if counter("helpdesk_telegram_calls_total", outcome="sent") > sent:
                break
            await asyncio.sleep(0.05)
        # The bot was removed from a chat: that call fails for good and is counted.
        fake_telegram.fail("sendMessage", status=403, retry_after=None, times=1,
                           description="Forbidden: bot was kicked from the group chat")
        await svc.create_request(customer, title="Nobody will see this card", description="d")
        for _ in range(200):
            if counter("helpdesk_telegram_calls_total", outcome="failed") > failed:
                break
            await asyncio.sleep(0.05)
    finally:
        await bot.stop()
    text = (await metrics.render(with_database=False)).decode()
    assert sample(text, "helpdesk_telegram_calls_total", outcome="retry_429") == limited + 1
    assert sample(text, "helpdesk_telegram_calls_total", outcome="sent") >= sent + 1
    assert sample(text, "helpdesk_telegram_calls_total", outcome="failed") == failed + 1


async def test_scheduler_runs_and_webhook_attempts_are_counted(settings, make_user):
    from scheduler.runtime import SchedulerRuntime

    ran = counter("helpdesk_scheduler_job_runs_total", job="housekeeping", outcome="ok")
    rt = SchedulerRuntime(settings)
    assert await rt.fire("housekeeping", datetime.now(UTC).replace(second=0, microsecond=0))
    assert counter("helpdesk_scheduler_job_runs_total", job="housekeeping", outcome="ok") == ran + 1
    assert counter("helpdesk_scheduler_job_duration_seconds_count", job="housekeeping") >= 1

    from tests.webhook_receiver import Receiver
    from webhooks.runtime import start_webhooks

    receiver = await Receiver().start()
    s = settings.with_overrides(webhook_allow_private=True, extra={
        "webhook_retry": {"base": 0.1, "cap": 0.1, "window": 60}, "webhook_poll": 0.1})
    runtime.configure(s)
    delivered = counter("helpdesk_webhook_attempts_total", outcome="delivered")
    retried = counter("helpdesk_webhook_attempts_total", outcome="retry")
    await WebhookSubscription.create(url=receiver.url("/m"), events=["request.created"], secret="k")
    receiver.secrets["/m"] = "k"
    receiver.script("/m", "500")
    wh = await start_webhooks(s)
    try:
        await svc.create_request(await make_user("customer"), title="t", description="d")
        await receiver.wait(lambda r: len(r.ok("/m")) == 1)
    finally:
        await wh.stop()
        await receiver.stop()
    assert counter("helpdesk_webhook_attempts_total", outcome="delivered") == delivered + 1
    assert counter("helpdesk_webhook_attempts_total", outcome="retry") == retried + 1


# --- several workers -------------------------------------------------------------------------


@pytest.mark.heavy(seconds=12)
def test_counts_add_up_across_api_worker_processes(tmp_path):
    """`helpdesk api` with WORKERS=2 (PostgreSQL): whichever worker answers a scrape, it
    reports the requests both workers served (multiprocess mode), and both did serve some."""
    from tests.conftest import need_service, postgres_available

    need_service("PostgreSQL", postgres_available())
    asyncio.run(_migrated_pg(tmp_path))
    port = free_port()
    mp_dir = tmp_path / "prom"
    env = {
        **os.environ, "DATABASE_URL": _PG_URL[0], "WORKERS": "2", "PORT": str(port),
        "HOST": "127.0.0.1", "TELEGRAM_MODE": "off", "SCHEDULER_ENABLED": "false",
        "PROMETHEUS_MULTIPROC_DIR": str(mp_dir), "LOG_LEVEL": "WARNING",
        "HELPDESK_ENV_FILE": "/nonexistent", "MIGRATE_ON_START": "0",
    }
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.cli", "api"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 60, proc)
        base = f"http://127.0.0.1:{port}"
        time.sleep(1.0)  # both workers up
        # New connections from 6 threads at once: the kernel spreads them over workers.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: httpx.get(f"{base}/health", timeout=10).status_code,
                                  range(60)))
        assert codes == [200] * 60
        values = set()
        for _ in range(8):
            text = httpx.get(f"{base}/metrics", timeout=10).text
            values.add(sample(text, "helpdesk_http_requests_total", method="GET", route="/health",
                              status="200"))
        assert values == {60.0}, values
        pids = {re.search(r"_(\d+)\.db$", f.name).group(1) for f in mp_dir.glob("counter_*.db")}
        assert len(pids) >= 2, f"only one worker answered: {pids}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout is not None and proc.returncode not in (0, -15):
            print(proc.stdout.read().decode(errors="replace")[-3000:])


_PG_URL: list[str] = []


async def _migrated_pg(tmp_path: Path) -> None:
    from tests.conftest import _pg_url_clean

    _PG_URL[:] = [await _pg_url_clean()]


# --- dashboards and compose ------------------------------------------------------------------


async def test_dashboard_queries_only_metrics_the_desk_exports(settings):
    import json

    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(helpdesk_[a-z_]+)", target["expr"])
    }
    exported_text = (await metrics.render()).decode()
    exported = set(re.findall(r"^# TYPE (\S+) ", exported_text, re.M))
    for family in list(exported):  # histograms expose _bucket/_count/_sum series
        exported |= {f"{family}_bucket", f"{family}_count", f"{family}_sum", f"{family}_total"}
    assert queried and queried <= exported, sorted(queried - exported)
    # Every kind of metric the SPEC lists has a panel.
    for needle in ("http_requests", "http_request_duration", "websocket", "event_log",
                   "event_consumer_lag", "telegram_calls", "queue_depth", "webhook_attempts",
                   "email", "scheduler_job_runs"):
        assert any(needle in q for q in queried), needle


def test_compose_starts_prometheus_and_grafana_only_with_the_monitoring_profile():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
    for name in ("postgres", "redis", "migrate", "api", "bot", "scheduler"):
        assert "profiles" not in services[name], name  # the desk itself starts without it
    for name in ("bot", "scheduler"):
        assert services[name]["environment"]["METRICS_PORT"] == "9100"
    mounts = " ".join(services["grafana"]["volumes"])
    assert "./docs/grafana-dashboard.json" in mounts and "./deploy/grafana/provisioning" in mounts
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {t for job in prom["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {"api:8000", "bot:9100", "scheduler:9100"}
    assert all(job["authorization"]["credentials_file"] == "/tmp/metrics_token"
               for job in prom["scrape_configs"])
    assert "/tmp/metrics_token" in " ".join(services["prometheus"]["entrypoint"])


async def test_bot_and_scheduler_processes_serve_their_own_metrics(settings):
    s = settings.with_overrides(metrics_port=free_port(), metrics_token="tok")
    runner = await metrics.serve_metrics(s)
    try:
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{s.metrics_port}/metrics"
            assert (await http.get(url)).status_code == 401
            r = await http.get(url, headers={"Authorization": "Bearer tok"})
            assert r.status_code == 200 and "helpdesk_telegram_calls_total" in r.text
            assert "helpdesk_queue_depth" not in r.text  # the API's /metrics has those
    finally:
        await runner.cleanup()
