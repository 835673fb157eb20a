"""How a background loop lives through an outage (database or Redis gone for a while).

Every loop (outbox relay, Telegram relay and sender, scheduler claims, Redis listener) uses
one `LoopHealth`: on a failure it waits an exponentially growing, jittered delay (capped),
and it logs one line when the loop starts failing, one line with the error's class when the
kind of failure changes, and one line when it recovers, instead of a traceback a second.
A failure that is not an outage (a bug) is still logged with its traceback, once per state
change, so it is not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

# Exceptions that mean "a service is unreachable", not "our code is wrong".
_OUTAGE_NAMES = (
    "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "OSError",
    "TimeoutError", "OperationalError", "DBConnectionError", "InterfaceError",
    "ConnectionDoesNotExistError", "CannotConnectNowError", "PostgresConnectionError",
    "TooManyConnectionsError", "BusyLoadingError",
)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) says a database or Redis is unreachable."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        for cls in type(current).__mro__:
            if cls.__name__ in _OUTAGE_NAMES:
                return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


class LoopHealth:
    """Backoff and state-change logging for one background loop.

    Usage:
        health = LoopHealth("telegram sender", log)
        while running:
            try:
                await one_pass()
                health.ok()
            except Exception as exc:
                await asyncio.sleep(health.failed(exc))
    """

    def __init__(self, name: str, log: logging.Logger, *, base: float = 0.5,
                 cap: float = 30.0) -> None:
        self.name = name
        self.log = log
        self.base = base
        self.cap = cap
        self.failures = 0
        self._state: str | None = None  # None when healthy, else the failure's kind

    @property
    def failing(self) -> bool:
        return self._state is not None

    def ok(self) -> None:
        """Record a good pass; logs once when the loop recovers."""
        if self._state is not None:
            self.log.warning("%s: recovered after %d failed passes", self.name, self.failures)
        self._state = None
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Record a failed pass; returns how long to wait before the next one."""
        self.failures += 1
        outage = is_outage(exc)
        kind = ("outage:" if outage else "error:") + type(exc).__name__
        if kind != self._state:
            if outage:
                self.log.warning("%s: cannot reach a service (%s: %s); backing off",
                                 self.name, type(exc).__name__, str(exc)[:200])
            else:
                self.log.error("%s: pass failed; backing off", self.name, exc_info=exc)
            self._state = kind
        delay = min(self.cap, self.base * (2 ** min(self.failures - 1, 10)))
        return delay * random.uniform(0.8, 1.2)


async def run_loop(
    one_pass: Callable[[], Awaitable[float]],
    *,
    health: LoopHealth,
    wake: asyncio.Event,
    stopping: Callable[[], bool],
) -> None:
    """The loop of the background workers (outbox senders, the Telegram relay, event-log
    consumers; the bus's OutboxRelay keeps its own: it waits first and counts a publish
    failure without an exception).

    Until `stopping()`: clear `wake`, run `one_pass` (which returns the seconds until the
    next pass is useful; 0 runs the next one at once), then wait that long or until `wake`
    is set. A failed pass is recorded in `health`, which logs state changes and says how
    long to back off; a wake-up does not cut that back-off short. `wake` is cleared before
    the pass, so work signalled during it is not lost.
    """
    while not stopping():
        wake.clear()
        try:
            delay = await one_pass()
            health.ok()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await asyncio.sleep(health.failed(exc))
            continue
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)


class LoopWorker:
    """Start, wake and stop of a background worker whose loop is `run_loop`, in one place
    (the outbox senders, the relay and the event-log consumers).

    A subclass sets `_wake` (an asyncio.Event), `_stopping` (False), `_task` (None) and
    `health` in its __init__, and implements `_pass`; with `wake_on_commit` every commit in
    this process (core.events.committed) wakes it. `stop` ends the loop through
    `_end_loop` (cancel by default; a sender may let its loop finish first) and then runs
    `_after_stop` (wait for work in flight, close clients)."""

    task_name = "worker"
    wake_on_commit = False
    _wake: asyncio.Event
    _stopping: bool
    _task: asyncio.Task[None] | None
    health: LoopHealth

    def start(self) -> asyncio.Task[None]:
        if self.wake_on_commit:
            from core import events

            events.add_commit_listener(self.wake)
        self._task = asyncio.create_task(self.run(), name=self.task_name)
        return self._task

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        if self.wake_on_commit:
            from core import events

            events.remove_commit_listener(self.wake)
        self._wake.set()
        if self._task is not None:
            await self._end_loop(self._task)
        await self._after_stop()

    async def run(self) -> None:
        await run_loop(self._pass, health=self.health, wake=self._wake,
                       stopping=lambda: self._stopping)

    async def _pass(self) -> float:
        raise NotImplementedError

    async def _end_loop(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _after_stop(self) -> None:
        """Work after the loop ended (none by default)."""
