"""The dispatcher: a durable consumer of the event log (db.models.Event) that turns domain
events into webhook deliveries, one per interested subscription.

- Position: a `Cursor` row ("webhooks"), events read in id order, like the Telegram relay
  (bot/relay.py). On PostgreSQL, every `rescan_every` seconds a pass also re-reads events
  created in the last `rescan_seconds` that this process has not handled, so an event
  committed late behind a higher id (ids are assigned at INSERT, transactions commit in
  any order) is not skipped. SQLite has one writer at a time: ids commit in order.
- Idempotent: a delivery's `dedup_key` is `<subscription>:<event>:<name>` and rows are
  inserted with ON CONFLICT DO NOTHING, so a re-read (after a crash, in the re-scan window,
  or by a dispatcher in another process) creates nothing twice. Several processes may run
  one each.
- Order: deliveries are inserted in event-id order, and the sender sends each
  subscription's deliveries in id order; an event that committed late (above) is
  delivered after the ones read before it.
- A subscription gets the events after `after_event_id` (the newest event when it was
  made) and only those its `events` list asks for (core.webhooks.wants).
- Wake-up: `core.events.committed()` in this process; otherwise every `poll_interval`.
  Outages (database away) back off through `core.backoff.LoopHealth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.functions import Max

from core import events
from core.backoff import LoopHealth
from core.webhooks import DOMAIN_TYPES, RetryPolicy, new_delivery, wants, webhook_event
from db.models import Cursor, Event, WebhookDelivery, WebhookSubscription

log = logging.getLogger("helpdesk.webhooks.dispatcher")

CURSOR_NAME = "webhooks"
INSERT_BATCH = 500


class Dispatcher:
    def __init__(
        self,
        settings: Any,
        *,
        on_created: Callable[[], None] | None = None,
        rescan_seconds: float = 30.0,
        rescan_every: float = 2.0,
        poll_interval: float = 1.0,
        batch: int = 500,
    ) -> None:
        self.policy = RetryPolicy.from_settings(settings)
        self.on_created = on_created
        self.rescan_seconds = rescan_seconds
        self.rescan_every = rescan_every
        self._rescanned = 0.0
        self.poll_interval = float((settings.extra or {}).get("webhook_poll", poll_interval))
        self.batch = batch
        self.health = LoopHealth("webhook dispatcher", log)
        self._done: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.created = 0

    def start(self) -> asyncio.Task[None]:
        events.add_commit_listener(self.wake)
        self._task = asyncio.create_task(self.run(), name="webhook-dispatcher")
        return self._task

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        events.remove_commit_listener(self.wake)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            delay = self.poll_interval
            try:
                if await self.process_once() >= self.batch:
                    delay = 0.0
                self.health.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await asyncio.sleep(self.health.failed(exc))
                continue
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _newest_event_id(self) -> int:
        row = await Event.all().annotate(top=Max("id")).first().values("top")
        return int((row or {}).get("top") or 0)

    async def _cursor(self, subs: list[WebhookSubscription]) -> Cursor:
        cursor = await Cursor.filter(name=CURSOR_NAME).first()
        if cursor is not None:
            return cursor
        # First start: from the oldest subscription's start, else from now.
        start = min((s.after_event_id for s in subs), default=await self._newest_event_id())
        cursor, _ = await Cursor.get_or_create(name=CURSOR_NAME, defaults={"position": start})
        return cursor

    async def _advance(self, position: int, new_position: int) -> None:
        if new_position > position:
            await Cursor.filter(name=CURSOR_NAME, position__lt=new_position).update(
                position=new_position
            )

    async def process_once(self) -> int:
        """Create the deliveries of the events since the cursor (and of late commits in the
        re-scan window). Returns how many new events were read."""
        subs = await WebhookSubscription.filter(is_active=True).order_by("id")
        cursor = await self._cursor(subs)
        position = cursor.position
        if not subs:
            # Nobody listens: keep the cursor at the head of the log (cheap, and a new
            # subscription starts after its own `after_event_id` anyway).
            await self._advance(position, await self._newest_event_id())
            return 0
        todo = []
        missing: list[int] = []
        if self._rescan_due():
            since = datetime.now(UTC) - timedelta(seconds=self.rescan_seconds)
            late_ids = await Event.filter(
                id__lte=position, id__gt=min(s.after_event_id for s in subs),
                created_at__gte=since, type__in=DOMAIN_TYPES,
            ).values_list("id", flat=True)
            missing = [i for i in late_ids if i not in self._done]
        if missing:
            todo += await Event.filter(id__in=missing).order_by("id")
        fresh = await Event.filter(id__gt=position).order_by("id").limit(self.batch)
        todo += fresh
        rows: list[WebhookDelivery] = []
        for ev in todo:
            try:
                mapped = webhook_event(ev)
            except Exception:  # a malformed payload: skip it, never stall the log
                log.exception("event %s: could not map it to a webhook event; skipped", ev.id)
                mapped = None
            if mapped is None:
                continue
            name, data, internal = mapped
            for sub in subs:
                if ev.id > sub.after_event_id and wants(sub, name, internal):
                    rows.append(new_delivery(sub, ev, name, data, self.policy))
        if rows:
            await WebhookDelivery.bulk_create(rows, batch_size=INSERT_BATCH, ignore_conflicts=True)
            self.created += len(rows)
        now = time.monotonic()
        for ev in todo:
            self._done[ev.id] = now
        if fresh:
            await self._advance(position, fresh[-1].id)
        self._prune()
        if rows and self.on_created:
            self.on_created()
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
