"""`RedisBus`: fan-out over Redis pub/sub to every process, with catch-up from the outbox
table after a gap in the subscription and the database log as the transport while Redis is
away (polled every LOG_POLL_INTERVAL, and at once when this process commits)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from core import events
from core.backoff import LoopHealth
from core.bus.base import CLAIM_BATCH, Bus, BusUnavailable, Message, log
from db.models import Event

DEFAULT_CHANNEL = "helpdesk:events"
# After a gap in the Redis subscription, events created this long before the gap began are
# re-read from the outbox (covers transactions that committed late and clock skew).
CATCH_UP_MARGIN = timedelta(seconds=30)
# While Redis is away: how often the database log is read instead, and how far back each
# read looks (covers transactions that committed a little after their row was written).
LOG_POLL_INTERVAL = 1.0
LOG_POLL_MARGIN = timedelta(seconds=10)
# The longest wait between two attempts to reach Redis again.
REDIS_RETRY_CAP = 5.0


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

