"""Webhook delivery benchmark (not a test): N events to S subscribers, one of them down for
a while; counts loss and duplicates.

- A fresh database (SQLite file by default, `--database-url postgres://...` for PostgreSQL),
  migrated; a director subscribes S real HTTP receivers (aiohttp on 127.0.0.1, each
  verifying every signature) to `request.created` through core.webhooks.
- The events are written to the event log in batches of `--batch` while the webhooks run
  (like a busy desk: `new_request` events with the REST JSON of a request).
- The dispatcher and `--senders` senders (each with its own holder id, so they compete for
  the subscriptions' leases as several processes would) run in this process.
- Receiver 0 is down (its port refuses connections) for the first `--down` seconds, then
  comes back on the same port: its deliveries wait and retry (the retry policy is shrunk to
  1 s base / 5 s cap so the run is short; production waits 10 s, 20 s, ... up to an hour).
- The run ends when every receiver accepted every event, or at `--timeout`.

Reported: wall time, deliveries per second, loss (events a receiver never accepted),
duplicates (a delivery id accepted twice), order violations (a receiver accepted event N+1
before N), bad signatures, and the event-to-receipt latency per receiver (p50, p95, max).

    .venv/bin/python -m bench.webhooks_bench --events 10000 --subscribers 5 --down 20
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class BenchReceiver:
    def __init__(self, index: int, secret: str = "") -> None:
        self.index = index
        self.secret = secret
        self.port = 0
        self.accepted: dict[str, int] = {}  # delivery guid -> event sequence
        self.order: list[int] = []
        self.duplicates = 0
        self.bad_signatures = 0
        self.latencies: list[float] = []
        self.refused_while_down = 0
        self._runner: Any = None

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        from core.webhooks import verify

        body = await request.read()
        if not verify(self.secret, request.headers.get("X-Helpdesk-Timestamp", ""), body,
                      request.headers.get("X-Helpdesk-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        guid = request.headers["X-Helpdesk-Delivery"]
        envelope = orjson.loads(body)
        seq = int(envelope["data"]["id"])
        if guid in self.accepted:
            self.duplicates += 1
        else:
            self.accepted[guid] = seq
            self.order.append(seq)
            created = datetime.fromisoformat(envelope["created_at"].replace("Z", "+00:00"))
            self.latencies.append((datetime.now(UTC) - created).total_seconds())
        return web.Response(status=204)

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def produce(events_total: int, batch: int, pause: float) -> float:
    """Write `events_total` new_request events in batches; returns when the last committed."""
    from tortoise.transactions import in_transaction

    from core import events
    from db.models import Event

    seq = 0
    while seq < events_total:
        rows = []
        for _ in range(min(batch, events_total - seq)):
            seq += 1
            rows.append(Event(type=events.NEW_REQUEST, topic=events.ADMIN_TOPIC, payload={
                "id": seq, "title": f"Bench request {seq}", "status": "open",
                "priority": "medium", "category": "general",
            }))
        async with in_transaction() as conn:
            await Event.bulk_create(rows, using_db=conn)
        events.committed()
        await asyncio.sleep(pause)
    return time.monotonic()


async def run(args: argparse.Namespace) -> int:
    from core import runtime as core_runtime
    from core import webhooks as svc
    from core.settings import Settings
    from core.users import create_user
    from db.models import WebhookDelivery
    from db.setup import close_db, init_db, migrate_db
    from webhooks.runtime import start_webhooks

    tmp = tempfile.mkdtemp(prefix="webhooks-bench-")
    url = args.database_url or f"sqlite://{tmp}/bench.sqlite3"
    if url.startswith("postgres"):
        import asyncpg

        admin_url, _, name = url.replace("postgres://", "postgresql://").rpartition("/")
        if "bench" not in name:
            print("the PostgreSQL database name must contain 'bench' (it is dropped)")
            return 2
        conn = await asyncpg.connect(f"{admin_url}/postgres")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
    await migrate_db(url)
    settings = Settings(
        database_url=url, webhook_allow_private=True,
        extra={"webhook_retry": {"base": 1.0, "cap": 5.0, "window": 3600},
               "webhook_timeout": 5.0, "webhook_poll": 0.2},
    )
    core_runtime.configure(settings)
    await init_db(url)
    director = await create_user("bench_director", None, role="director")
    receivers = [BenchReceiver(i) for i in range(args.subscribers)]
    for r in receivers:
        await r.start()
        sub = await svc.create_subscription(
            director, {"url": f"http://127.0.0.1:{r.port}/hook", "events": ["request.created"]},
            allow_private=True,
        )
        r.secret = sub.secret
    down = receivers[0]
    await down.stop()  # down from the start, for --down seconds

    runtimes = [await start_webhooks(settings, holder=f"bench-sender-{n}")
                for n in range(args.senders)]
    started = time.monotonic()
    producer = asyncio.create_task(produce(args.events, args.batch, args.pause))

    async def bring_back() -> None:
        await asyncio.sleep(args.down)
        await down.start()
        print(f"  receiver 0 back after {time.monotonic() - started:.1f}s "
              f"({len(down.accepted)} accepted so far)")

    back = asyncio.create_task(bring_back())
    deadline = started + args.timeout
    last_report = started
    while time.monotonic() < deadline:
        if producer.done() and back.done() and all(len(r.accepted) >= args.events for r in receivers):
            break
        await asyncio.sleep(0.2)
        if time.monotonic() - last_report >= 5:
            last_report = time.monotonic()
            print(f"  t={last_report - started:5.1f}s accepted: "
                  + ", ".join(str(len(r.accepted)) for r in receivers))
    elapsed = time.monotonic() - started
    produced_at = (await producer) - started if producer.done() else float("nan")
    await asyncio.sleep(1.0)  # anything still in flight would show up as a duplicate now
    for rt in runtimes:
        await rt.stop()
    statuses = dict(
        await WebhookDelivery.all().group_by("status").annotate(
            n=__import__("tortoise.functions", fromlist=["Count"]).Count("id")
        ).values_list("status", "n")
    )
    for r in receivers:
        await r.stop()
    await close_db()

    total = args.events * args.subscribers
    delivered = sum(len(r.accepted) for r in receivers)
    print()
    print(f"events: {args.events}, subscribers: {args.subscribers}, senders: {args.senders}, "
          f"database: {'PostgreSQL' if url.startswith('postgres') else 'SQLite'}")
    print(f"events written in {produced_at:.1f}s; receiver 0 down for the first {args.down:.0f}s")
    print(f"all accepted in {elapsed:.1f}s: {delivered}/{total} deliveries, "
          f"{delivered / elapsed:.0f} deliveries/s")
    print(f"deliveries table: {statuses}")
    problems = 0
    for r in receivers:
        expected = set(range(1, args.events + 1))
        got = set(r.accepted.values())
        loss = len(expected - got)
        order_violations = sum(1 for a, b in zip(r.order, r.order[1:], strict=False) if b < a)
        problems += loss + r.duplicates + order_violations + r.bad_signatures
        print(f"receiver {r.index}: accepted {len(got)}, loss {loss}, duplicates {r.duplicates}, "
              f"order violations {order_violations}, bad signatures {r.bad_signatures}, "
              f"latency p50 {pct(r.latencies, 0.5):.2f}s p95 {pct(r.latencies, 0.95):.2f}s "
              f"max {max(r.latencies or [float('nan')]):.2f}s")
    print("RESULT:", "OK (zero loss, zero duplicates, order kept)" if problems == 0 else
          f"{problems} problems")
    return 0 if problems == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscribers", type=int, default=5)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--down", type=float, default=20.0,
                        help="seconds receiver 0 refuses connections at the start")
    parser.add_argument("--batch", type=int, default=200, help="events per transaction")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between batches")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("helpdesk.webhooks.sender").setLevel(logging.ERROR)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
