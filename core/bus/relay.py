"""`OutboxRelay` (one per process): claims unpublished events with a conditional UPDATE
(on PostgreSQL with `FOR UPDATE SKIP LOCKED`), so exactly one process publishes each, and
hands them to the bus; a failed publish gives the claim back for the next sweep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise import connections

from core import events
from core.backoff import LoopHealth
from core.bus.base import CLAIM_BATCH, Bus, BusUnavailable, Message, log
from core.bus.redis_bus import RedisBus
from db.models import Event

SWEEP_INTERVAL = 1.0
# A claim not confirmed within this many seconds is given back (its holder died).
CLAIM_LEASE_SECONDS = 30
# The longest wait between two relay passes while the database is unreachable.
RELAY_RETRY_CAP = 10.0
# How often a relay looks for expired claims (a crashed holder's): a crash is rare, and
# the lease is 30 s anyway, so not on every pass.
RELEASE_EVERY = 5.0


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

    def __init__(self, bus: Bus, interval: float = SWEEP_INTERVAL,
                 release_every: float = RELEASE_EVERY) -> None:
        self.bus = bus
        self.interval = interval
        self.release_every = release_every
        self._released_at: float | None = None
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
        now = time.monotonic()
        if self._released_at is None or now - self._released_at >= self.release_every:
            await self._release_expired_claims()
            self._released_at = now
        postgres = connections.get("default").capabilities.dialect == "postgres"
        while True:
            # On PostgreSQL an empty claim is the "anything unpublished?" answer (one
            # statement less per pass); SQLite would take its one write lock for it.
            if not postgres and not await Event.filter(published=False).exists():
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
            await self._confirm([m["id"] for m in batch], postgres)
            total += len(batch)
            self.published += len(batch)
            if len(batch) < CLAIM_BATCH:
                return total

    async def _confirm(self, ids: list[int], postgres: bool) -> None:
        if postgres:  # one prepared statement (every pass runs it)
            await connections.get("default").execute_query(
                "UPDATE events SET claimed_until = NULL WHERE id = ANY($1::bigint[])", [ids]
            )
        else:
            await Event.filter(id__in=ids).update(claimed_until=None)

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

