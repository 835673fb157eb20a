"""The outbox relay and the in-process bus, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from core import events, requests
from core.bus import InProcessBus, OutboxRelay, start_events
from core.bus import runtime as busmod
from db.models import Event


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def __call__(self, message: dict) -> None:
        self.messages.append(message)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return self.messages


class FlakyBus(InProcessBus):
    """Fails to publish while `down` is set, like a bus whose Redis is away."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempts = 0

    async def publish(self, messages):
        self.attempts += 1
        if self.down:
            raise ConnectionError("redis is down")
        await super().publish(messages)


async def test_committed_change_is_published_at_once(settings, make_user):
    customer = await make_user("customer")
    runtime = await start_events(settings)
    rec = Recorder()
    runtime.bus.subscribe(rec)
    try:
        req = await requests.create_request(customer, title="Now", description="x")
        got = await rec.wait_for(1, timeout=0.5)  # woken by committed(), not the 1 s sweep
    finally:
        await runtime.stop()
    assert [(m["type"], m["topic"], m["data"]["id"]) for m in got] == [
        ("new_request", "admin", req.id)
    ]
    assert not await Event.filter(published=False).exists()


async def test_rolled_back_change_is_never_announced(settings, make_user):
    from tortoise.transactions import in_transaction

    runtime = await start_events(settings)
    rec = Recorder()
    runtime.bus.subscribe(rec)
    try:
        try:
            async with in_transaction() as conn:
                await events.record_event(events.NEW_REQUEST, {"id": 1}, using_db=conn)
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
        events.committed()
        await runtime.relay.drain()
        await asyncio.sleep(0.1)
    finally:
        await runtime.stop()
    assert rec.messages == []
    assert await Event.all().count() == 0


async def test_event_left_by_a_crashed_process_is_published_by_the_sweep(settings, make_user):
    # Committed, but its process died before publishing: nobody calls committed().
    await Event.create(type=events.NEW_REQUEST, topic="admin", payload={"id": 7})
    runtime = await start_events(settings.with_overrides(extra={"events_sweep_interval": 0.1}))
    rec = Recorder()
    runtime.bus.subscribe(rec)
    try:
        await Event.create(type=events.NEW_REQUEST, topic="admin", payload={"id": 8})
        got = await rec.wait_for(2)
    finally:
        await runtime.stop()
    assert sorted(m["data"]["id"] for m in got) == [7, 8]


async def test_failed_publish_keeps_events_for_retry_nothing_lost_nothing_twice(settings):
    bus = FlakyBus()
    rec = Recorder()
    bus.subscribe(rec)
    relay = OutboxRelay(bus, interval=0.05)
    for i in range(5):
        await Event.create(type=events.NEW_REQUEST, topic="admin", payload={"id": i})
    assert await relay.drain() == 0
    assert bus.attempts == 1
    assert await Event.filter(published=False).count() == 5  # claim reverted
    bus.down = False
    assert await relay.drain() == 5
    assert await relay.drain() == 0
    assert [m["data"]["id"] for m in rec.messages] == [0, 1, 2, 3, 4]


async def test_two_relays_publish_each_event_exactly_once(settings):
    buses = [InProcessBus(), InProcessBus()]
    rec = Recorder()
    for b in buses:
        b.subscribe(rec)
    relays = [OutboxRelay(b) for b in buses]
    for i in range(300):
        await Event.create(type=events.NEW_MESSAGE, topic="admin", payload={"n": i})
    counts = await asyncio.gather(*(r.drain() for r in relays), *(r.drain() for r in relays))
    assert sum(counts) == 300
    assert sorted(m["data"]["n"] for m in rec.messages) == list(range(300))


async def test_bus_drops_duplicate_event_ids(settings):
    bus = InProcessBus()
    rec = Recorder()
    bus.subscribe(rec)
    message = {"id": 41, "type": "new_request", "topic": "admin", "data": {}}
    await bus.publish([message, message])
    await bus.publish([message])
    assert len(rec.messages) == 1


async def test_broken_subscriber_does_not_starve_others(settings):
    bus = InProcessBus()
    rec = Recorder()

    async def broken(message):
        raise ValueError("bug in a consumer")

    bus.subscribe(broken)
    bus.subscribe(rec)
    await bus.publish([{"id": 1, "type": "x", "topic": "admin", "data": {}}])
    assert len(rec.messages) == 1


async def test_unsubscribe_stops_delivery(settings):
    bus = InProcessBus()
    rec = Recorder()
    unsubscribe = bus.subscribe(rec)
    unsubscribe()
    await bus.publish([{"id": 1, "type": "x", "topic": "admin", "data": {}}])
    assert rec.messages == []


async def test_second_start_in_one_process_shares_the_runtime(settings):
    first = await start_events(settings)
    second = await start_events(settings)
    try:
        assert second.bus is first.bus
    finally:
        await second.stop()
        assert busmod._runtimes  # still held by the first
        await first.stop()
    assert not busmod._runtimes


async def test_claim_left_by_a_crashed_relay_is_published_after_its_lease(settings, make_user):
    """A process that claimed events and died before publishing them loses nothing."""
    from datetime import UTC, datetime, timedelta

    from core import requests as svc
    from core.bus import InProcessBus, OutboxRelay
    from db.models import Event

    customer = await make_user("customer")
    await svc.create_request(customer, title="crash", description="d")
    crashed = OutboxRelay(InProcessBus())
    claimed = await crashed._claim(10)  # claimed, then the process "dies"
    assert [m["type"] for m in claimed] == ["new_request"]

    received: list[dict] = []
    bus = InProcessBus()

    async def collect(message: dict) -> None:
        received.append(message)

    bus.subscribe(collect)
    survivor = OutboxRelay(bus, release_every=0)  # looks for expired claims on every pass
    assert await survivor.drain() == 0  # the claim is still within its lease
    await Event.all().update(claimed_until=datetime.now(UTC) - timedelta(seconds=1))
    assert await survivor.drain() == 1
    assert [m["type"] for m in received] == ["new_request"]
    assert await Event.filter(published=True, claimed_until__isnull=True).count() == 1
