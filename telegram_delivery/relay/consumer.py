"""The relay's consumer loop: reads the event log from its cursor, re-scans late commits,
retries and parks poisoned events, and hands each event to its handler (the mixins in
telegram_delivery.relay.requests, .messages and .edits). The package docstring
(telegram_delivery/relay/__init__.py) describes the whole relay."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from core import events
from core.backoff import LoopHealth, LoopWorker, is_outage
from core.log_consumer import TELEGRAM_RELAY_CURSOR
from db.models import (
    Cursor,
    Event,
    ParkedEvent,
)
from telegram_delivery.relay.base import Postpone
from telegram_delivery.relay.edits import EditEvents
from telegram_delivery.relay.messages import MessageEvents
from telegram_delivery.relay.requests import RequestEvents

log = logging.getLogger("helpdesk.telegram_delivery.relay")

CURSOR_NAME = TELEGRAM_RELAY_CURSOR
TYPES = (events.NEW_REQUEST, events.REQUEST_UPDATED, events.NEW_MESSAGE, events.CHAT_MESSAGE,
         events.MESSAGE_UPDATED, events.MESSAGE_DELETED)
MESSAGE_EVENTS = (events.NEW_MESSAGE, events.MESSAGE_UPDATED, events.MESSAGE_DELETED)


class Relay(LoopWorker, RequestEvents, MessageEvents, EditEvents):
    task_name = "telegram-relay"
    wake_on_commit = True

    def __init__(
        self,
        settings: Any,
        *,
        forum_chats: set[int] | None = None,
        on_enqueued: Callable[[], None] | None = None,
        cursor_name: str = CURSOR_NAME,
        rescan_seconds: float = 30.0,
        poll_interval: float = 0.5,
        batch: int = 500,
        initial_lookback: float = 3600.0,
        retry_base: float = 1.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        self.settings = settings
        self.forum_chats = forum_chats if forum_chats is not None else set()
        self.on_enqueued = on_enqueued
        self.cursor_name = cursor_name
        self.rescan_seconds = rescan_seconds
        self.poll_interval = poll_interval
        self.batch = batch
        self.initial_lookback = initial_lookback
        self._done: dict[int, float] = {}
        self.max_attempts = max(1, int(getattr(settings, "poison_max_attempts", 3) or 3))
        self.retry_base = retry_base
        self.health = LoopHealth("telegram relay", log, base=backoff_base, cap=backoff_cap)
        # Events that failed and wait for another try: id -> failed attempts so far (loaded
        # from ParkedEvent on the first pass), and when the next try is due (monotonic).
        self._failing: dict[int, int] | None = None
        self._retry_at: dict[int, float] = {}
        self.parked = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.enqueued = 0
        self._postponed = False

    async def _pass(self) -> float:
        delay = self.poll_interval
        self._postponed = False
        if await self.process_once():
            delay = 0.01
        if self._postponed:
            delay = min(delay, 0.2)
        if self._retry_at:
            due = min(self._retry_at.values()) - time.monotonic()
            delay = min(delay, max(0.01, due))
        return delay

    async def process_once(self) -> int:
        """Handle what is new since the cursor (and late commits in the re-scan window, and
        failed events due for another try). Returns how many events were handled (more may
        be waiting if it equals the batch)."""
        cursor = await Cursor.filter(name=self.cursor_name).first()
        if cursor is None:
            cursor = await self._first_cursor()
        if self._failing is None:
            rows = await ParkedEvent.filter(consumer=self.cursor_name, status="failing").values_list(
                "event_id", "attempts"
            )
            self._failing = {int(eid): int(n) for eid, n in rows}
            # Parked events the cursor has not passed yet (it waits behind a failing one).
            for eid in await ParkedEvent.filter(
                consumer=self.cursor_name, status="parked", event_id__gt=cursor.position
            ).values_list("event_id", flat=True):
                self._done[int(eid)] = time.monotonic()
        await self._take_retries()
        position = cursor.position
        since = datetime.now(UTC) - timedelta(seconds=self.rescan_seconds)
        late_ids = await Event.filter(
            id__lte=position, created_at__gte=since, type__in=TYPES
        ).values_list("id", flat=True)
        missing = [i for i in late_ids if i not in self._done]
        if missing:
            # Parked ones stay parked (after a restart `_done` is empty).
            parked = await ParkedEvent.filter(
                consumer=self.cursor_name, status="parked", event_id__in=missing
            ).values_list("event_id", flat=True)
            for i in parked:
                self._done[i] = time.monotonic()
            missing = [i for i in missing if i not in self._done]
        # Failed events behind the cursor (a retried parked event, a late one) come back
        # here until they succeed or are parked.
        missing += [i for i in self._failing if i <= position and i not in missing]
        todo: list[Event] = []
        if missing:
            todo += await Event.filter(id__in=missing).order_by("id")
        fresh = await Event.filter(id__gt=position).order_by("id").limit(self.batch)
        todo += fresh
        handled = 0
        new_position = position
        blocked = False
        try:
            for ev in todo:
                if ev.id in self._done:
                    if not blocked:
                        new_position = max(new_position, ev.id)
                    continue
                if ev.type in TYPES and not await self._attempt(ev):
                    # Not done: read again next pass; the cursor stays before it.
                    if ev.id > position:
                        blocked = True
                    continue
                self._done[ev.id] = time.monotonic()
                handled += 1
                if not blocked:
                    new_position = max(new_position, ev.id)
        finally:
            if new_position > position:
                await Cursor.filter(name=self.cursor_name, position__lt=new_position).update(
                    position=new_position
                )
            self._prune()
            if handled and self.on_enqueued:
                self.on_enqueued()
        return handled if len(fresh) < self.batch else max(handled, 1)

    async def _take_retries(self) -> None:
        """Parked events an operator asked to try again (`helpdesk parked --retry`)."""
        assert self._failing is not None
        asked = await ParkedEvent.filter(consumer=self.cursor_name, status="retry").values_list(
            "event_id", flat=True
        )
        for eid in asked:
            taken = await ParkedEvent.filter(
                consumer=self.cursor_name, event_id=eid, status="retry"
            ).update(status="failing", attempts=0)
            if taken:
                self._failing[int(eid)] = 0
                self._retry_at.pop(int(eid), None)
                self._done.pop(int(eid), None)
                log.info("event %s: retry requested; trying it again", eid)

    async def _attempt(self, ev: Event) -> bool:
        """Handle one event. True: done (handled, or parked for good); False: try again
        later (postponed, or failed and waiting for its backoff). An outage raises."""
        assert self._failing is not None
        due = self._retry_at.get(ev.id)
        if due is not None and due > time.monotonic():
            self._postponed = True
            return False
        try:
            # One transaction per event: everything it queues is committed together (one
            # commit instead of one per row), or not at all if handling fails.
            async with in_transaction():
                await self.handle(ev)
        except Postpone:
            self._postponed = True
            return False
        except Exception as exc:
            if is_outage(exc):
                raise  # the database, not the event: the whole loop backs off
            return await self._failed(ev, exc)
        if ev.id in self._failing:
            del self._failing[ev.id]
            self._retry_at.pop(ev.id, None)
            await ParkedEvent.filter(consumer=self.cursor_name, event_id=ev.id).delete()
        return True

    async def _failed(self, ev: Event, exc: Exception) -> bool:
        assert self._failing is not None
        attempts = self._failing.get(ev.id, 0) + 1
        error = f"{type(exc).__name__}: {exc}"[:2000]
        request_id = _request_of(ev)
        if attempts < self.max_attempts:
            delay = min(300.0, self.retry_base * 2 ** (attempts - 1))
            self._failing[ev.id] = attempts
            self._retry_at[ev.id] = time.monotonic() + delay
            await self._record(ev, request_id, "failing", attempts, error)
            log.info("event %s (%s) failed (attempt %d of %d), next try in %.1fs: %s",
                     ev.id, ev.type, attempts, self.max_attempts, delay, error[:300])
            return False
        self._failing.pop(ev.id, None)
        self._retry_at.pop(ev.id, None)
        await self._record(ev, request_id, "parked", attempts, error)
        self.parked += 1
        log.warning("event %s (%s) parked after %d failed attempts: %s", ev.id, ev.type,
                    attempts, error[:500], exc_info=exc)
        if request_id is not None:
            from core.requests import add_internal_system_note
            from telegram_delivery.texts import plain

            note = plain("note_event_parked", self.group_lang, event=ev.id, type=ev.type,
                         attempts=attempts, error=error[:300])
            try:
                await add_internal_system_note(request_id, note)
            except Exception as note_exc:  # the note is a courtesy; parking stands
                log.warning("event %s: internal note on request %s not written: %s",
                            ev.id, request_id, note_exc)
        return True

    async def _record(self, ev: Event, request_id: int | None, status: str, attempts: int,
                      error: str) -> None:
        fields = {"status": status, "attempts": attempts, "error": error, "request_id": request_id,
                  "event_type": ev.type}
        updated = await ParkedEvent.filter(consumer=self.cursor_name, event_id=ev.id).update(**fields)
        if not updated:
            await ParkedEvent.bulk_create(
                [ParkedEvent(consumer=self.cursor_name, event_id=ev.id, **fields)],
                ignore_conflicts=True,
            )
            await ParkedEvent.filter(consumer=self.cursor_name, event_id=ev.id).update(**fields)

    async def _first_cursor(self) -> Cursor:
        """The very first start: begin `initial_lookback` seconds back, not at the dawn of
        the event log (an existing desk must not get a card and a customer notification for
        every request it ever had)."""
        horizon = datetime.now(UTC) - timedelta(seconds=self.initial_lookback)
        older = await Event.filter(created_at__lt=horizon).order_by("-id").first()
        start = older.id if older is not None else 0
        cursor, created = await Cursor.get_or_create(name=self.cursor_name, defaults={"position": start})
        if created and start:
            log.info("telegram relay starts after event %s (events older than %ss are not relayed)",
                     start, self.initial_lookback)
        return cursor

    def _prune(self) -> None:
        horizon = time.monotonic() - self.rescan_seconds * 2
        if len(self._done) > 10000 or (self._done and next(iter(self._done.values())) < horizon):
            self._done = {k: v for k, v in self._done.items() if v >= horizon}

    async def handle(self, ev: Event) -> None:
        data = ev.payload or {}
        if ev.type == events.NEW_REQUEST:
            await self.on_new_request(ev, data)
        elif ev.type == events.REQUEST_UPDATED:
            await self.on_request_updated(ev, data)
        elif ev.type == events.NEW_MESSAGE:
            await self.on_new_message(ev, data)
        elif ev.type == events.CHAT_MESSAGE:
            await self.on_chat_message(ev, data)
        elif ev.type == events.MESSAGE_UPDATED:
            await self.on_message_updated(ev, data)
        elif ev.type == events.MESSAGE_DELETED:
            await self.on_message_deleted(ev, data)


def _request_of(ev: Event) -> int | None:
    """The request an event is about, when it names one."""
    data = ev.payload if isinstance(ev.payload, dict) else {}
    raw = data.get("request") if ev.type in MESSAGE_EVENTS else data.get("id")
    if ev.type == events.CHAT_MESSAGE:
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        return None
    return value if 0 < value < 2**31 else None
