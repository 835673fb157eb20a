"""Domain events through a transactional outbox.

A service writes its change and an `Event` row in one transaction (`record_event`), then
calls `committed()`, which wakes this process's relay and log consumers at once. The
`OutboxRelay` (core.bus) runs in the API, scheduler and mail processes, not in `helpdesk bot`
alone nor in one-off CLI commands: their events wait for the next sweep (about a second) of
a relay running elsewhere. A relay claims unpublished rows with a conditional UPDATE, so one
process publishes each event to the bus (in-process or Redis); a claim whose holder died
unconfirmed expires and the event is published again, and every bus drops event ids it has
already delivered, so subscribers see each event once. Durable consumers (the Telegram relay,
webhooks, e-mail) read the Event table themselves rather than the bus.
A rolled-back change never has an Event row, so it is never announced.

Event types: new_request, request_updated, new_message (topic "admin"; a request's events
also say which request), chat_message, chat_join, chat_leave (topic "chat:<id>"),
request.rated (core.csat: a customer rated a completed request; for integrations, not
relayed to WebSockets or Telegram), request_status_changed (topic "admin", written with
the request_updated of every status move: `{"id", "previous_status", "status",
"request"}`; for durable consumers such as the webhooks and e-mail; the WebSocket hub and
the Telegram relay ignore it), and user_access (topic "access": what a user may see
changed; WebSocket hubs re-check that user's sockets).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from core.clock import now
from db.models import Event

log = logging.getLogger("helpdesk.events")

NEW_REQUEST = "new_request"
REQUEST_UPDATED = "request_updated"
NEW_MESSAGE = "new_message"
CHAT_MESSAGE = "chat_message"
CHAT_JOIN = "chat_join"
CHAT_LEAVE = "chat_leave"
USER_ACCESS = "user_access"
REQUEST_STATUS_CHANGED = "request_status_changed"
REQUEST_RATED = "request.rated"
# core.message_edits: a message's text changed / a message was deleted (topic "admin";
# `data` is the message's REST JSON, with `is_internal` so channels keep notes private).
MESSAGE_UPDATED = "message_updated"
MESSAGE_DELETED = "message_deleted"

ADMIN_TOPIC = "admin"
ACCESS_TOPIC = "access"


def chat_topic(chat_id: int) -> str:
    return f"chat:{chat_id}"


async def record_event(
    type_: str, data: dict[str, Any], *, topic: str = ADMIN_TOPIC, using_db: BaseDBAsyncClient
) -> Event:
    """Write an event in the caller's transaction (pass the transaction as `using_db`)."""
    if using_db.capabilities.dialect == "postgres":
        from core import pg_writes  # one prepared INSERT (core/pg_writes.py)

        return await pg_writes.insert_event(using_db, type_, topic, data, now())
    return await Event.create(type=type_, topic=topic, payload=data, using_db=using_db)


def event_message(event: Event) -> dict[str, Any]:
    """The wire form of an event, as the bus carries it."""
    return {"id": event.id, "type": event.type, "topic": event.topic, "data": event.payload}


# --- after-commit nudge ------------------------------------------------------------------
# Each process may have one relay; services call committed() so delivery is immediate
# instead of waiting for the relay's periodic sweep.
_wakers: list[Callable[[], None]] = []


def add_commit_listener(callback: Callable[[], None]) -> None:
    _wakers.append(callback)


def remove_commit_listener(callback: Callable[[], None]) -> None:
    if callback in _wakers:
        _wakers.remove(callback)


def committed() -> None:
    """Tell this process's relay that new events were committed."""
    for wake in list(_wakers):
        try:
            wake()
        except Exception:  # a broken listener must never break the service call
            log.exception("commit listener failed")


async def prune_events(before: datetime, consumers: list[str]) -> int:
    """Delete published events older than `before` that every durable consumer of the log
    (the Cursor rows named in `consumers`, the bot's relay for one) has passed. Returns how
    many were deleted. Clients reconnecting with an older last_event_id are told to resync."""
    from tortoise.functions import Min

    from db.models import Cursor

    row = await Cursor.filter(name__in=consumers).annotate(low=Min("position")).first().values("low")
    qs = Event.filter(published=True, claimed_until__isnull=True, created_at__lt=before)
    if row and row.get("low") is not None:
        qs = qs.filter(id__lt=row["low"])
    return await qs.delete()
