"""WebSocket fan-out benchmark (not a test): many admin clients on ONE API process.

Measures, on loopback:
- how many concurrent `/ws/admin/notifications/` connections one API process holds,
- the time from a REST create (`POST /api/admin/customer-requests/`, timed from just before
  the request is sent) to the `new_request` frame's arrival at EVERY client (p50, p99, max),
  and the time until the last client has it,
- server memory per connection: RSS after the clients connected minus RSS before, divided
  by the number of clients.

The API runs as a separate process (tests/procs.py ApiProcess, the same create_app as
production) on a fresh SQLite database by default (the embedded default: in-process bus);
`--database-url` / `--redis-url` switch to PostgreSQL / the Redis bus. Clients are spread
over `--client-procs` processes so the client side is not the bottleneck of one core.

    .venv/bin/python bench/ws_bench.py --clients 5000 --events 20

The script raises its own open-files limit (soft -> hard) before starting anything; the
server process inherits it. Everything is bounded: connection and delivery timeouts, and all
processes are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(wanted, soft)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- client worker process -------------------------------------------------------------------


def client_worker(
    url: str,
    count: int,
    events: int,
    ready: mp.Queue,
    go: mp.Event,
    results: mp.Queue,
    timeout: float,
) -> None:
    import resource as res

    soft, hard = res.getrlimit(res.RLIMIT_NOFILE)
    res.setrlimit(res.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_client_main(url, count, events, ready, go, results, timeout))


async def _client_main(url, count, events, ready, go, results, timeout) -> None:
    import orjson
    import websockets

    received: list[dict[str, float]] = [dict() for _ in range(count)]
    conns: list = [None] * count
    sem = asyncio.Semaphore(200)  # connection ramp: at most 200 handshakes in flight

    async def open_one(i: int) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    conns[i] = await websockets.connect(
                        url,
                        open_timeout=30,
                        compression=None,
                        max_queue=64,
                        ping_interval=None,
                    )
                    return
                except Exception:
                    await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(open_one(i) for i in range(count)))
    connected = sum(1 for c in conns if c is not None)

    async def read(i: int) -> None:
        ws = conns[i]
        box = received[i]
        try:
            async for raw in ws:
                now = time.time()
                frame = orjson.loads(raw)
                if frame.get("type") == "new_request":
                    box[frame["data"]["title"]] = now
                    if len(box) >= events:
                        return
        except Exception:
            return

    readers = [asyncio.create_task(read(i)) for i in range(count) if conns[i] is not None]
    ready.put(connected)
    # Wait until the main process has sent every event, then for delivery to finish.
    while not go.is_set():
        await asyncio.sleep(0.05)
    await asyncio.wait(readers, timeout=timeout)
    for t in readers:
        t.cancel()
    results.put([r for r, c in zip(received, conns, strict=True) if c is not None])
    await asyncio.gather(*(c.close() for c in conns if c is not None), return_exceptions=True)


# --- main ------------------------------------------------------------------------------------


async def prepare_database(url: str) -> tuple[str, int]:
    from tortoise import Tortoise

    from core.users import create_user, issue_token
    from db.setup import init_db, migrate_db

    await migrate_db(url)
    await init_db(url)
    admin = await create_user("bench_admin", None, role="admin", first_name="Bench")
    customer = await create_user("bench_customer", None, role="customer")
    token = await issue_token(admin)
    await Tortoise.close_connections()
    return token, customer.id


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between creates")
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    ap.add_argument("--redis-url", default=None, help="use the Redis bus (else in-process)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    limit = raise_nofile(args.clients + 1000)
    if limit < args.clients + 200:
        print(f"open-files limit {limit} is too low for {args.clients} clients", file=sys.stderr)
        return 2

    from tests.procs import ApiProcess

    tmp = Path(tempfile.mkdtemp(prefix="ws_bench_"))
    db_url = args.database_url or f"sqlite://{tmp / 'bench.sqlite3'}"
    token, customer_id = asyncio.run(prepare_database(db_url))
    server = ApiProcess(
        db_url,
        redis_url=args.redis_url,
        channel=f"ws-bench:{os.getpid()}:events",
        media_root=tmp / "media",
        log_path=tmp / "api.log",
        extra_env={"HELPDESK_WS_SEND_QUEUE": "256", "HELPDESK_FANOUT_LOG": "1"},
    )
    server.start()
    import httpx

    results: list[dict[str, float]] = []
    sent_at: dict[str, float] = {}
    try:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            http.get("/api/admin/customer-requests/", headers={"Authorization": f"Token {token}"})
            time.sleep(0.5)
            rss_before = rss_kib(server.pid)

            url = (
                server.base.replace("http://", "ws://") + f"/ws/admin/notifications/?token={token}"
            )
            ctx = mp.get_context("spawn")
            ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
            per = [args.clients // args.client_procs] * args.client_procs
            per[0] += args.clients - sum(per)
            workers = [
                ctx.Process(
                    target=client_worker, args=(url, n, args.events, ready, go, out, args.timeout)
                )
                for n in per
            ]
            t_connect = time.perf_counter()
            for w in workers:
                w.start()
            connected = sum(ready.get(timeout=args.timeout) for _ in workers)
            connect_s = time.perf_counter() - t_connect
            time.sleep(1.0)
            rss_after = rss_kib(server.pid)
            print(
                f"connected {connected}/{args.clients} clients in {connect_s:.1f}s; "
                f"server RSS {rss_before / 1024:.1f} MiB -> {rss_after / 1024:.1f} MiB",
                flush=True,
            )

            for k in range(args.events):
                title = f"bench-{k}"
                sent_at[title] = time.time()
                r = http.post(
                    "/api/admin/customer-requests/",
                    headers={"Authorization": f"Token {token}"},
                    json={"title": title, "description": "ws bench", "customer_id": customer_id},
                )
                r.raise_for_status()
                time.sleep(args.interval)
            go.set()
            for _ in workers:
                results.extend(out.get(timeout=args.timeout + 30))
            for w in workers:
                w.join(30)
    finally:
        server.stop()

    fanout_ms = [
        float(line.rsplit("ms=", 1)[1])
        for line in (tmp / "api.log").read_text(errors="replace").splitlines()
        if line.startswith("fan-out ") and f"sockets={len(results)}" in line
    ]
    latencies: list[float] = []
    first_client: list[float] = []
    last_client: list[float] = []
    missing = 0
    for title, t0 in sent_at.items():
        per_event = [box[title] - t0 for box in results if title in box]
        missing += len(results) - len(per_event)
        latencies.extend(per_event)
        if per_event:
            last_client.append(max(per_event))
            first_client.append(min(per_event))
    summary = {
        "clients": args.clients,
        "connected": len(results),
        "events": args.events,
        "deliveries": len(latencies),
        "missing_deliveries": missing,
        "latency_ms": {
            "p50": round(pct(latencies, 50) * 1000, 1),
            "p99": round(pct(latencies, 99) * 1000, 1),
            "max": round(max(latencies) * 1000, 1) if latencies else None,
        },
        "first_client_ms": {"p50": round(pct(first_client, 50) * 1000, 1)},
        "server_fanout_ms": {
            "p50": round(pct(fanout_ms, 50), 1),
            "max": round(max(fanout_ms), 1) if fanout_ms else None,
        },
        "last_client_ms": {
            "p50": round(pct(last_client, 50) * 1000, 1),
            "max": round(max(last_client) * 1000, 1) if last_client else None,
        },
        "server_rss_mib": {
            "before": round(rss_before / 1024, 1),
            "after": round(rss_after / 1024, 1),
        },
        "rss_per_connection_kib": round((rss_after - rss_before) / max(1, len(results)), 1),
        "connect_seconds": round(connect_s, 1),
        "database": "sqlite" if db_url.startswith("sqlite") else "postgres",
        "bus": "redis" if args.redis_url else "in-process",
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if missing == 0 and len(results) == args.clients else 1


if __name__ == "__main__":
    sys.exit(main())
