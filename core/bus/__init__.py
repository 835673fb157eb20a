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

The package, by concern: `base` (the interface, `InProcessBus`), `redis_bus` (`RedisBus`),
`relay` (`OutboxRelay`), `runtime` (`start_events`, `EventsRuntime`).
"""

from core.bus.base import Bus, BusUnavailable, InProcessBus
from core.bus.redis_bus import RedisBus
from core.bus.relay import OutboxRelay
from core.bus.runtime import EventsRuntime, events_channel, start_events

__all__ = [
    "Bus",
    "BusUnavailable",
    "InProcessBus",
    "RedisBus",
    "OutboxRelay",
    "EventsRuntime",
    "start_events",
    "events_channel",
]
