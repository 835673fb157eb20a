"""The event bus and the outbox relay: how a committed change reaches every process.

Services write an `Event` row in the same transaction as their change (core.events). Here:

- `OutboxRelay` (one per process) claims unpublished rows with a conditional UPDATE
  (published false -> true; on PostgreSQL with `FOR UPDATE SKIP LOCKED`), so exactly one
  process publishes each event, and hands them to the bus. If publishing fails (Redis down)
  the claim is reverted and the periodic sweep retries: nothing lost, nothing published twice.
- `InProcessBus` (REDIS_URL unset) delivers to this process's subscribers.
- `RedisBus` (REDIS_URL set) fans events out over Redis pub/sub to every process. It
  reconnects with backoff, and after a gap in its subscription it catches up from the
  outbox table (the durable log), so an event published while it was away is still seen.
- Every bus drops event ids it has already delivered, so a re-published or caught-up event
  reaches subscribers once.

`start_events(settings)` starts one shared runtime per process and event loop (the API, the
bot and the scheduler in one `helpdesk run` share it; reference counted, `stop()` each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import connections

from core import events
from core.settings import Settings
from db.models import Event

log = logging.getLogger("helpdesk.bus")

Message = dict[str, Any]
Subscriber = Callable[[Message], Awaitable[None]]

DEFAULT_CHANNEL = "helpdesk:events"
SWEEP_INTERVAL = 1.0
CLAIM_BATCH = 200
# A claim not confirmed within this many seconds is given back (its holder died).
CLAIM_LEASE_SECONDS = 30
SEEN_IDS = 50_000
# After a gap in the Redis subscription, events created this long before the gap began are
# re-read from the outbox (covers transactions that committed late and clock skew).
CATCH_UP_MARGIN = timedelta(seconds=30)


class _SeenIds:
    """A bounded set of recently delivered event ids."""

    def __init__(self, size: int = SEEN_IDS) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size

    def add(self, event_id: int) -> bool:
        """Remember `event_id`; False when it was already there."""
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        return True


class Bus:
    """One interface, two back ends. Subscribers get `{"id", "type", "topic", "data"}`."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._seen = _SeenIds()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Register `async def callback(message)`; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def _deliver(self, message: Message) -> None:
        event_id = message.get("id")
        if isinstance(event_id, int) and not self._seen.add(event_id):
            return
        for callback in list(self._subscribers):
            try:
                await callback(message)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("event subscriber failed on event %s", event_id)

    async def publish(self, messages: list[Message]) -> None:
        """Send events to every process's subscribers. Raises if they could not be sent."""
        raise NotImplementedError

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def connected(self) -> bool:
        return True


class InProcessBus(Bus):
    """The embedded default: subscribers in this process only."""

    async def publish(self, messages: list[Message]) -> None:
        for message in messages:
            await self._deliver(message)


class RedisBus(Bus):
    """Redis pub/sub fan-out, with outbox catch-up after any gap in the subscription."""

    def __init__(self, url: str, channel: str = DEFAULT_CHANNEL) -> None:
        super().__init__()
        import redis.asyncio as redis

        self.url = url
        self.channel = channel
        # Commands fail fast when Redis is away, so the relay reverts and retries later.
        self._client = redis.from_url(
            url, socket_connect_timeout=1.0, socket_timeout=2.0, health_check_interval=10
        )
        self._sub_client = redis.from_url(url, socket_connect_timeout=1.0, health_check_interval=10)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._stopping = False
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-bus-listener")
        # Give the first subscription a moment, so events published right after start are seen.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5.0)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for client in (self._client, self._sub_client):
            with contextlib.suppress(Exception):
                await client.aclose()

    async def publish(self, messages: list[Message]) -> None:
        # Local subscribers first: they need not wait for Redis (their echo through Redis is
        # dropped as a duplicate id).
        for message in messages:
            await self._deliver(message)
        async with self._client.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(self.channel, orjson.dumps(message))
            await pipe.execute()

    async def _listen(self) -> None:
        delay = 0.05
        # Until the first subscription is up, this process may miss publishes: treat the
        # start as a gap too (events created before the start are not this process's news).
        started = datetime.now(UTC)
        gap_since: datetime | None = started
        while not self._stopping:
            pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                if gap_since is not None:
                    if gap_since is started:
                        await self._catch_up(started, margin=timedelta(0))
                    else:
                        self.reconnects += 1
                        log.info("event bus: Redis subscription restored; catching up")
                        await self._catch_up(gap_since)
                    gap_since = None
                delay = 0.05
                while True:
                    raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if raw is None or raw.get("type") != "message":
                        continue
                    try:
                        message = orjson.loads(raw["data"])
                    except orjson.JSONDecodeError:
                        log.warning("event bus: dropped a malformed message")
                        continue
                    await self._deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._subscribed.is_set() or gap_since is None:
                    log.warning("event bus: Redis subscription lost (%s); reconnecting", exc)
                self._subscribed.clear()
                if gap_since is None:
                    gap_since = datetime.now(UTC)
                await asyncio.sleep(delay * (1 + random.random() / 2))
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _catch_up(self, since: datetime, margin: timedelta = CATCH_UP_MARGIN) -> None:
        """Deliver committed events created around and after the gap (duplicates dropped)."""
        last_id = 0
        start = since - margin
        while True:
            rows = (
                await Event.filter(created_at__gte=start, id__gt=last_id)
                .order_by("id")
                .limit(CLAIM_BATCH)
            )
            for row in rows:
                await self._deliver(events.event_message(row))
                last_id = row.id
            if len(rows) < CLAIM_BATCH:
                return


def _as_message(row: Any) -> Message:
    payload = row["payload"]
    if isinstance(payload, (str, bytes)):
        payload = orjson.loads(payload)
    return {"id": int(row["id"]), "type": row["type"], "topic": row["topic"], "data": payload}


class OutboxRelay:
    """Publishes committed events: woken by `core.events.committed()`, swept every second."""

    def __init__(self, bus: Bus, interval: float = SWEEP_INTERVAL) -> None:
        self.bus = bus
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        events.add_commit_listener(self.wake)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")
        self.wake()  # publish whatever an earlier run left behind

    async def stop(self) -> None:
        events.remove_commit_listener(self.wake)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        # Last chance for events committed just before shutdown.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), timeout=2.0)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay: sweep failed; retrying in %.1fs", self.interval)

    async def drain(self) -> int:
        """Claim and publish unpublished events until none are left; returns how many."""
        total = 0
        await self._release_expired_claims()
        while True:
            if not await Event.filter(published=False).exists():
                return total
            batch = await self._claim(CLAIM_BATCH)
            if not batch:
                return total
            try:
                await self.bus.publish(batch)
            except Exception as exc:
                await Event.filter(id__in=[m["id"] for m in batch]).update(
                    published=False, claimed_until=None
                )
                if not self._failing:
                    log.warning("outbox relay: publish failed (%s); events kept for retry", exc)
                self._failing = True
                return total
            # Confirm: the claim no longer needs to expire.
            await Event.filter(id__in=[m["id"] for m in batch]).update(claimed_until=None)
            if self._failing:
                log.info("outbox relay: publishing again")
            self._failing = False
            total += len(batch)
            self.published += len(batch)
            if len(batch) < CLAIM_BATCH:
                return total

    async def _release_expired_claims(self) -> int:
        """Give back claims whose holder died between claiming and publishing (the lease
        ran out unconfirmed), so another relay publishes them: nothing is lost. Receivers
        drop event ids they have seen, so a slow holder that did publish is not doubled."""
        return await Event.filter(
            published=True, claimed_until__lt=datetime.now(UTC)
        ).update(published=False, claimed_until=None)

    async def _claim(self, limit: int) -> list[Message]:
        """Mark up to `limit` unpublished events as published; only the winner gets rows."""
        conn = connections.get("default")
        until = datetime.now(UTC) + timedelta(seconds=CLAIM_LEASE_SECONDS)
        if conn.capabilities.dialect == "postgres":
            sql = (
                "UPDATE events SET published = TRUE, claimed_until = $2 WHERE id IN ("
                " SELECT id FROM events WHERE published = FALSE ORDER BY id LIMIT $1"
                " FOR UPDATE SKIP LOCKED) AND published = FALSE"
                " RETURNING id, type, topic, payload"
            )
        else:
            sql = (
                "UPDATE events SET published = 1, claimed_until = ? WHERE published = 0 AND id IN ("
                " SELECT id FROM events WHERE published = 0 ORDER BY id LIMIT ?)"
                " RETURNING id, type, topic, payload"
            )
        # SQLite: the text form Tortoise itself stores, so ORM comparisons agree.
        params = [limit, until] if conn.capabilities.dialect == "postgres" else [str(until), limit]
        rows = await conn.execute_query_dict(sql, params)
        return sorted((_as_message(r) for r in rows), key=lambda m: m["id"])


class EventsRuntime:
    """A process's bus and relay. `stop()` releases this holder's share."""

    def __init__(self, bus: Bus, relay: OutboxRelay, key: tuple[Any, ...]) -> None:
        self.loop = asyncio.get_running_loop()
        self.bus = bus
        self.relay = relay
        self._key = key
        self.users = 1
        self._stopped = False

    async def stop(self) -> None:
        if self._stopped:
            return
        self.users -= 1
        if self.users > 0:
            return
        self._stopped = True
        _runtimes.pop(self._key, None)
        await self.relay.stop()
        await self.bus.stop()


class _Handle:
    """What a second caller of start_events gets: the shared runtime, its own stop()."""

    def __init__(self, runtime: EventsRuntime) -> None:
        self._runtime = runtime
        self._stopped = False

    @property
    def bus(self) -> Bus:
        return self._runtime.bus

    @property
    def relay(self) -> OutboxRelay:
        return self._runtime.relay

    async def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            await self._runtime.stop()


_runtimes: dict[tuple[Any, ...], EventsRuntime] = {}


def events_channel(settings: Settings) -> str:
    return str(settings.extra.get("events_channel") or settings.events_channel or DEFAULT_CHANNEL)


async def start_events(settings: Settings) -> EventsRuntime:
    """Start (or join) this process's event runtime: a RedisBus when `REDIS_URL` is set,
    otherwise an InProcessBus, plus the outbox relay. Needs the database initialised.

    Guarantees: every committed event is published once (claimed by one relay in one process)
    and delivered at most once to each subscriber; events committed while Redis is away are
    published when it returns.
    """
    loop = asyncio.get_running_loop()
    key = (id(loop), settings.redis_url, events_channel(settings))
    existing = _runtimes.get(key)
    if existing is not None and not existing._stopped and existing.loop is loop:
        existing.users += 1
        return _Handle(existing)  # type: ignore[return-value]
    # Open the database connection from the caller's task: a first (lazy) connect made
    # inside the relay's task is not shared with the caller's context and deadlocks later.
    await Event.filter(published=False).exists()
    if settings.workers > 1 and not settings.redis_url:
        log.warning(
            "WORKERS=%d without REDIS_URL: each worker's WebSocket clients only see the events "
            "that worker publishes; set REDIS_URL for several workers or replicas",
            settings.workers,
        )
    bus: Bus
    if settings.redis_url:
        bus = RedisBus(settings.redis_url, events_channel(settings))
    else:
        bus = InProcessBus()
    await bus.start()
    relay = OutboxRelay(bus, float(settings.extra.get("events_sweep_interval", SWEEP_INTERVAL)))
    await relay.start()
    runtime = EventsRuntime(bus, relay, key)
    _runtimes[key] = runtime
    return runtime


__all__ = [
    "Bus",
    "InProcessBus",
    "RedisBus",
    "OutboxRelay",
    "EventsRuntime",
    "start_events",
    "events_channel",
]
