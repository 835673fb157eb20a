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
  While Redis is away it falls back to that log: it polls the table every
  `LOG_POLL_INTERVAL` (and at once when this process commits), so this process's
  WebSocket clients and every other process's get events with about a second's delay;
  the relay keeps the events unpublished meanwhile and publishes them when Redis returns.
- Outages: every loop here (relay, Redis listener, log poll, catch-up) backs off with
  `core.backoff.LoopHealth`: one log line when it starts failing, one when it recovers.
- Every bus drops event ids it has already delivered, so a re-published or caught-up event
  reaches subscribers once.

`start_events(settings)` starts one shared runtime per process and event loop (the API, the
bot and the scheduler in one `helpdesk run` share it; reference counted, `stop()` each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import connections

from core import events
from core.backoff import LoopHealth
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
# While Redis is away: how often the database log is read instead, and how far back each
# read looks (covers transactions that committed a little after their row was written).
LOG_POLL_INTERVAL = 1.0
LOG_POLL_MARGIN = timedelta(seconds=10)
# The longest wait between two attempts to reach Redis again.
REDIS_RETRY_CAP = 5.0
# The longest wait between two relay passes while the database is unreachable.
RELAY_RETRY_CAP = 10.0


class BusUnavailable(ConnectionError):
    """The bus cannot reach the other processes (Redis is away); events stay in the log."""


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
    """Redis pub/sub fan-out, with outbox catch-up after any gap in the subscription and the
    database log as the fallback transport while Redis is away."""

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
        self._poll_wake = asyncio.Event()
        self._poll_from: datetime | None = None
        self._reconnect_listeners: list[Callable[[], None]] = []
        self._catch_up_after = 0.0
        self.reconnects = 0
        self.health = LoopHealth("event bus: Redis subscription", log, cap=REDIS_RETRY_CAP)
        self.poll_health = LoopHealth("event bus: database log poll", log, cap=REDIS_RETRY_CAP)
        self.catch_up_health = LoopHealth("event bus: catch-up from the database log", log,
                                          cap=REDIS_RETRY_CAP)

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    def add_reconnect_listener(self, callback: Callable[[], None]) -> None:
        """`callback()` runs each time the subscription is (re)established."""
        self._reconnect_listeners.append(callback)

    def _wake_poll(self) -> None:
        self._poll_wake.set()

    async def start(self) -> None:
        events.add_commit_listener(self._wake_poll)
        self._task = asyncio.create_task(self._listen(), name="redis-bus-listener")
        # Give the first subscription a moment, so events published right after start are seen.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5.0)

    async def stop(self) -> None:
        self._stopping = True
        events.remove_commit_listener(self._wake_poll)
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
        if not self.connected:
            # The listener is reconnecting: do not wait on a dead Redis for every event.
            # The events stay unpublished in the log (other processes read it meanwhile).
            raise BusUnavailable("Redis is unreachable; events wait in the database log")
        async with self._client.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(self.channel, orjson.dumps(message))
            await pipe.execute()

    async def _listen(self) -> None:
        # Until the first subscription is up, this process may miss publishes: treat the
        # start as a gap too (events created before the start are not this process's news).
        started = datetime.now(UTC)
        gap_since: datetime | None = started
        while not self._stopping:
            pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                self.health.ok()
                self._poll_from = None
                if gap_since is not started:
                    self.reconnects += 1
                for callback in list(self._reconnect_listeners):
                    callback()
                # A gap is closed once the log was read (the database may be away too:
                # then the catch-up is retried while messages keep flowing).
                while True:
                    if gap_since is not None and await self._try_catch_up(
                        gap_since, timedelta(0) if gap_since is started else CATCH_UP_MARGIN
                    ):
                        gap_since = None
                    raw = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=1.0 if gap_since else 5.0
                    )
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
                self._subscribed.clear()
                if gap_since is None:
                    gap_since = datetime.now(UTC)
                delay = self.health.failed(exc)
                await self._read_log_for(delay, gap_since)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _try_catch_up(self, since: datetime, margin: timedelta) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() < self._catch_up_after:
            return False  # backing off: the database was unreachable a moment ago
        try:
            await self._catch_up(since, margin)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._catch_up_after = loop.time() + self.catch_up_health.failed(exc)
            return False
        self.catch_up_health.ok()
        return True

    async def _read_log_for(self, seconds: float, gap_since: datetime) -> None:
        """While Redis is away: deliver events from the database log for `seconds`, reading
        it every LOG_POLL_INTERVAL and whenever this process commits an event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping:
            wait = LOG_POLL_INTERVAL
            self._poll_wake.clear()
            try:
                await self._poll_log(gap_since)
                self.poll_health.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                wait = max(wait, self.poll_health.failed(exc))
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, remaining)):
                    await self._poll_wake.wait()

    async def _poll_log(self, gap_since: datetime) -> None:
        read_at = datetime.now(UTC)
        since = self._poll_from or (gap_since - CATCH_UP_MARGIN)
        await self._catch_up(since, timedelta(0))
        # The next read looks back a little (late commits); delivered ids are dropped.
        self._poll_from = max(gap_since - CATCH_UP_MARGIN, read_at - LOG_POLL_MARGIN)

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
    """Publishes committed events: woken by `core.events.committed()`, swept every second.

    When a pass fails (database unreachable, or Redis away so the events must wait in the
    log) it backs off with `LoopHealth`; a commit, or the bus getting Redis back, wakes it
    at once."""

    def __init__(self, bus: Bus, interval: float = SWEEP_INTERVAL) -> None:
        self.bus = bus
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.health = LoopHealth("outbox relay", log, cap=RELAY_RETRY_CAP)
        self.publish_error: BaseException | None = None
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        events.add_commit_listener(self.wake)
        if isinstance(self.bus, RedisBus):
            self.bus.add_reconnect_listener(self.wake)
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
        wait = self.interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            error: BaseException | None
            try:
                await self.drain()
                error = self.publish_error
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is unreachable (or a bug)
                error = exc
            if error is None:
                self.health.ok()
                wait = self.interval
            else:
                wait = max(self.interval, self.health.failed(error))

    async def drain(self) -> int:
        """Claim and publish unpublished events until none are left; returns how many.
        If the bus could not publish, the events stay unpublished for a later pass and
        `publish_error` says why; database errors are raised."""
        total = 0
        self.publish_error = None
        if not self.bus.connected:
            # Redis is away: the events wait in the log (every process reads it meanwhile);
            # claiming and reverting them every second would only load the database.
            self.publish_error = BusUnavailable(
                "Redis is unreachable; events wait in the database log"
            )
            return total
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
                self.publish_error = exc
                return total
            # Confirm: the claim no longer needs to expire.
            await Event.filter(id__in=[m["id"] for m in batch]).update(claimed_until=None)
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
