"""The bus interface and its embedded back end: subscribers, at-most-once delivery per
subscriber (recently delivered ids are dropped), and `InProcessBus` for one process."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("helpdesk.bus")

Message = dict[str, Any]
Subscriber = Callable[[Message], Awaitable[None]]

SEEN_IDS = 50_000
CLAIM_BATCH = 200  # events claimed, or read back from the log, at a time


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

