"""One shared event runtime per process and event loop (`start_events`): the bus (Redis
when REDIS_URL is set, else in-process) and the outbox relay, reference counted so the API,
the bot and the scheduler of one `helpdesk run` share it."""

from __future__ import annotations

import asyncio
from typing import Any

from core.bus.base import Bus, InProcessBus, log
from core.bus.redis_bus import DEFAULT_CHANNEL, RedisBus
from core.bus.relay import SWEEP_INTERVAL, OutboxRelay
from core.settings import Settings
from db.models import Event


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
