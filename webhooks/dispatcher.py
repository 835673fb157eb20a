"""The dispatcher: a durable consumer of the event log (core.log_consumer, cursor
"webhooks") that turns domain events into webhook deliveries, one per interested
subscription.

- Idempotent: a delivery's `dedup_key` is `<subscription>:<event>:<name>` and rows are
  inserted with ON CONFLICT DO NOTHING, so a re-read (after a crash, in the late-commit
  re-scan, or by a dispatcher in another process) creates nothing twice. Several
  processes may run one each.
- Order: deliveries are inserted in event-id order, and the sender sends each
  subscription's deliveries in id order; an event that committed late (PostgreSQL) is
  delivered after the ones read before it.
- A subscription gets the events after `after_event_id` (the newest event when it was
  made) and only those its `events` list asks for (core.webhooks.wants). A malformed
  event payload is logged and skipped, never retried forever.
- With no active subscription the cursor just follows the head of the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from core.log_consumer import WEBHOOKS_CURSOR, EventLogConsumer, newest_event_id
from core.webhooks import DOMAIN_TYPES, RetryPolicy, new_delivery, wants, webhook_event
from db.models import Event, WebhookDelivery, WebhookSubscription

log = logging.getLogger("helpdesk.webhooks.dispatcher")

CURSOR_NAME = WEBHOOKS_CURSOR
INSERT_BATCH = 500


class Dispatcher(EventLogConsumer):
    cursor_name = CURSOR_NAME
    task_name = "webhook-dispatcher"
    types = DOMAIN_TYPES

    def __init__(self, settings: Any, *, on_created: Callable[[], None] | None = None,
                 poll_interval: float = 1.0, batch: int = 500) -> None:
        super().__init__(
            poll_interval=float((settings.extra or {}).get("webhook_poll", poll_interval)),
            batch=batch, log=log,
        )
        self.policy = RetryPolicy.from_settings(settings)
        self.on_created = on_created
        self.created = 0
        self._subs: list[WebhookSubscription] = []

    async def start_position(self) -> int:
        # From the oldest subscription's start, else from now.
        subs = await WebhookSubscription.filter(is_active=True).values_list(
            "after_event_id", flat=True
        )
        return min(subs) if subs else await newest_event_id()

    async def idle(self) -> bool:
        self._subs = await WebhookSubscription.filter(is_active=True).order_by("id")
        return not self._subs

    async def handle(self, batch: list[Event]) -> None:
        rows: list[WebhookDelivery] = []
        for ev in batch:
            try:
                mapped = webhook_event(ev)
            except Exception:  # a malformed payload: skip it, never stall the log
                log.exception("event %s: could not map it to a webhook event; skipped", ev.id)
                mapped = None
            if mapped is None:
                continue
            name, data, internal = mapped
            for sub in self._subs:
                if ev.id > sub.after_event_id and wants(sub, name, internal):
                    rows.append(new_delivery(sub, ev, name, data, self.policy))
        if rows:
            await WebhookDelivery.bulk_create(rows, batch_size=INSERT_BATCH, ignore_conflicts=True)
            self.created += len(rows)
            if self.on_created:
                self.on_created()
