"""A durable consumer of the event log (db.models.Event) with its own cursor: the shape the
webhooks' dispatcher and the e-mail notifier share (the Telegram relay is the older,
richer sibling in telegram_delivery/relay/).

- Position: a `Cursor` row named by the consumer; events are read in id order, `batch` at a
  time, and the cursor only moves forward (several processes may run the same consumer).
- Late commits: on PostgreSQL ids are assigned at INSERT and transactions commit in any
  order, so every `rescan_every` seconds a pass also re-reads the events of the last
  `rescan_seconds` this process has not handled yet. SQLite has one writer at a time.
- Handling must be idempotent (a re-read after a crash, in the re-scan window or by another
  process hands the same event again): subclasses insert with unique dedup keys.
- Wake-up: `core.events.committed()` in this process; otherwise every `poll_interval`.
  Outages back off through `core.backoff.LoopHealth`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from tortoise import connections
from tortoise.functions import Max

from core.backoff import LoopHealth, LoopWorker
from db.models import Cursor, Event

# The cursor of each durable consumer of the event log, named once: the consumers use them,
# and the housekeeping job keeps every event a consumer has not passed yet.
TELEGRAM_RELAY_CURSOR = "telegram-relay"
WEBHOOKS_CURSOR = "webhooks"
MAIL_CURSOR = "mail"


async def newest_event_id() -> int:
    row = await Event.all().annotate(top=Max("id")).first().values("top")
    return int((row or {}).get("top") or 0)


class EventLogConsumer(LoopWorker):
    cursor_name = "consumer"
    task_name = "event-log-consumer"
    wake_on_commit = True
    types: tuple[str, ...] = ()  # event types re-read in the late-commit scan

    def __init__(self, *, poll_interval: float = 1.0, batch: int = 500,
                 rescan_seconds: float = 30.0, rescan_every: float = 2.0,
                 log: logging.Logger | None = None) -> None:
        self.poll_interval = poll_interval
        self.batch = batch
        self.rescan_seconds = rescan_seconds
        self.rescan_every = rescan_every
        self.log = log or logging.getLogger(f"helpdesk.{self.cursor_name}")
        self.health = LoopHealth(self.task_name, self.log)
        # While idle (nobody listens) the check runs at most every `idle_recheck` seconds,
        # not on every commit's wake-up: a busy desk with no webhook would otherwise pay
        # three queries per write for nothing. A listener that appears meanwhile misses
        # nothing (a webhook subscription starts after the newest event when it is made);
        # it is served within idle_recheck.
        self.idle_recheck = min(poll_interval, 1.0)
        self._idle_until = 0.0
        self._done: dict[int, float] = {}
        self._rescanned = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- what a subclass decides ------------------------------------------------------------
    async def start_position(self) -> int:
        """Where a consumer that never ran starts: after the newest event (no backlog)."""
        return await newest_event_id()

    async def idle(self) -> bool:
        """True when nothing would come of reading the log now (nobody listens)."""
        return False

    async def handle(self, batch: list[Event]) -> None:
        """Handle these events (idempotently); raising leaves the cursor where it was."""
        raise NotImplementedError

    # --- lifecycle ------------------------------------------------------------------------
    async def _pass(self) -> float:
        return 0.0 if await self.process_once() >= self.batch else self.poll_interval

    # --- one pass -------------------------------------------------------------------------
    async def _cursor(self) -> Cursor:
        cursor = await Cursor.filter(name=self.cursor_name).first()
        if cursor is None:
            start = await self.start_position()
            cursor, _ = await Cursor.get_or_create(name=self.cursor_name,
                                                   defaults={"position": start})
        return cursor

    async def _advance(self, position: int, new_position: int) -> None:
        if new_position > position:
            await Cursor.filter(name=self.cursor_name, position__lt=new_position).update(
                position=new_position
            )

    async def process_once(self) -> int:
        """Handle the events since the cursor (and late commits). Returns how many new
        events were read."""
        if time.monotonic() < self._idle_until:
            return 0  # nobody listened a moment ago: not on every commit (see idle_recheck)
        cursor = await self._cursor()
        position = cursor.position
        if await self.idle():
            await self._advance(position, await newest_event_id())
            self._idle_until = time.monotonic() + self.idle_recheck
            return 0
        self._idle_until = 0.0
        todo: list[Event] = []
        if self._rescan_due():
            since = datetime.now(UTC) - timedelta(seconds=self.rescan_seconds)
            late_ids = await Event.filter(
                id__lte=position, created_at__gte=since, type__in=self.types
            ).values_list("id", flat=True)
            missing = [i for i in late_ids if i not in self._done]
            if missing:
                todo += await Event.filter(id__in=missing).order_by("id")
        fresh = await Event.filter(id__gt=position).order_by("id").limit(self.batch)
        todo += fresh
        if todo:
            await self.handle(todo)
        now = time.monotonic()
        for ev in todo:
            self._done[ev.id] = now
        if fresh:
            await self._advance(position, fresh[-1].id)
        self._prune()
        return len(fresh)

    def _rescan_due(self) -> bool:
        if connections.get("default").capabilities.dialect != "postgres":
            return False
        now = time.monotonic()
        if now - self._rescanned < self.rescan_every:
            return False
        self._rescanned = now
        return True

    def _prune(self) -> None:
        horizon = time.monotonic() - self.rescan_seconds * 2
        if len(self._done) > 20000 or (self._done and next(iter(self._done.values())) < horizon):
            self._done = {k: v for k, v in self._done.items() if v >= horizon}
