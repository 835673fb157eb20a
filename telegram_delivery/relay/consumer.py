"""The relay: a durable consumer of the event log (db.models.Event) that turns domain events
into Telegram messages in the delivery queue (telegram_delivery.outbox).

- Position: a `Cursor` row ("telegram-relay"). Events are read in id order. Because ids are
  assigned at INSERT while transactions commit in any order (PostgreSQL), each pass also
  re-reads events created in the last `rescan_seconds` that it has not handled yet, so an
  event committed late behind a higher id is never skipped.
- Idempotent: every queued call has a dedup key derived from the event
  (`ev:<event_id>:<purpose>`) or from the request (`new:<id>:card`, `thread:<id>:card`), so
  a re-read (after a crash, in the re-scan window, or by a second relay) queues nothing twice.
- Wake-up: `core.events.committed()` in this process wakes it; otherwise it polls every
  `poll_interval` seconds (changes made by the API in another process).
- Poisoned events: an event whose handling raises (anything but an outage of the database,
  which backs the whole loop off through `core.backoff.LoopHealth`) is tried again after
  `retry_base`, 2x, 4x... seconds while later events go on; after POISON_MAX_ATTEMPTS
  (default 3) failures it is parked: a `ParkedEvent` row with its error, one WARNING log
  line, `Relay.parked` counted, and an internal system note on its request. The cursor then
  moves past it and a restart does not replay it; `helpdesk parked --retry event:ID` asks
  for one more try. Failure counts are stored, so they survive a restart.

What goes where:
- new_request     -> card in TELEGRAM_ADMIN_CHAT_ID (in its own forum topic on a forum); in
                     a burst the sender folds it into a summary with a Take button
- request_updated -> the card and the summary listing the request are edited (rendered from
                     the database at send time, so a burst of edits collapses into the
                     newest); its forum topic is renamed with the status and closed on
                     complete/close, reopened on reopen; a request taken without a card
                     (from a summary) gets its card and topic now; the customer hears when
                     the request is taken, completed or closed (in their language)
- new_message     -> customer's message to the request's thread in the admin group; staff
                     reply to the customer's private chat (and, when written outside
                     Telegram, to the thread too); internal notes never reach the customer;
                     nothing is echoed back into the chat it came from
- chat_message    -> the Telegram group bound to the AdminChat (unless it came from Telegram)
- message_updated -> every Telegram copy of the message is edited in place (each part,
                     captions too); message_deleted -> every copy is deleted
                     (core.message_edits; links: TelegramMessageLink.kind/part)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from core import events
from core.backoff import LoopHealth, is_outage, run_loop
from core.log_consumer import TELEGRAM_RELAY_CURSOR
from db.models import (
    AdminChat,
    Cursor,
    Event,
    MessageType,
    ParkedEvent,
    RequestAttachment,
    RequestMessage,
    SenderType,
    Source,
    TelegramMessageLink,
    TelegramOutbox,
    TelegramThread,
    User,
)
from telegram_delivery import cards
from telegram_delivery.contract import CopyTarget, Delivery, Kind, MessageLink, Upload, delivery_of
from telegram_delivery.outbox import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    Priority,
    cut_note,
    enqueue,
    split_html,
    tg_len,
)

log = logging.getLogger("helpdesk.telegram_delivery.relay")

CURSOR_NAME = TELEGRAM_RELAY_CURSOR
TYPES = (events.NEW_REQUEST, events.REQUEST_UPDATED, events.NEW_MESSAGE, events.CHAT_MESSAGE,
         events.MESSAGE_UPDATED, events.MESSAGE_DELETED)
MESSAGE_EVENTS = (events.NEW_MESSAGE, events.MESSAGE_UPDATED, events.MESSAGE_DELETED)
# A Telegram media message (or album) is stored file by file and linked afterwards; the
# relay waits up to this long for the links, then falls back to uploading the stored files.
MEDIA_WAIT_SECONDS = 5.0


class _Postpone(Exception):
    """Stop this pass at the current event and try it again shortly."""


class Relay:
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

    @property
    def group_lang(self) -> str:
        return cards.lang_of(getattr(self.settings, "language", "ru"))

    @property
    def admin_chat(self) -> int | None:
        return self.settings.telegram_admin_chat_id

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        events.add_commit_listener(self.wake)
        self._task = asyncio.create_task(self.run(), name="telegram-relay")
        return self._task

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        events.remove_commit_listener(self.wake)
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def run(self) -> None:
        await run_loop(self._pass, health=self.health, wake=self._wake, stopping=lambda: self._stopping)

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

    # --- one pass -----------------------------------------------------------------------
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
        except _Postpone:
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

    async def _enqueue(self, chat_id: int, method: str, payload: dict[str, Any], delivery: Delivery,
                       *, dedup_key: str, request_id: int | None = None, more: str | None = None,
                       priority: int | None = None) -> bool:
        created = await enqueue(chat_id, method, payload, delivery=delivery, dedup_key=dedup_key,
                                request_id=request_id, more=more, priority=priority)
        if created:
            self.enqueued += 1
        return created

    # --- requests -----------------------------------------------------------------------
    async def _post_card(self, data: dict[str, Any], prefix: str, *, mergeable: bool) -> None:
        chat = self.admin_chat
        rid = int(data["id"])
        if chat in self.forum_chats:
            await self._enqueue(
                chat, "createForumTopic",
                {"name": cards.topic_name(data, self.group_lang)},
                Delivery(kind=Kind.TOPIC, request_id=rid),
                dedup_key=f"{prefix}:{rid}:topic", request_id=rid,
            )
        await self._enqueue(
            chat, "sendMessage",
            {"text": cards.card_text(data), "reply_markup": cards.card_keyboard(data)},
            Delivery(kind=Kind.CARD, render_card=True, request_id=rid, thread_of=rid,
                     mergeable=mergeable),
            dedup_key=f"{prefix}:{rid}:card", request_id=rid,
        )

    async def on_new_request(self, ev: Event, data: dict[str, Any]) -> None:
        if not self.admin_chat:
            return
        await self._post_card(data, "new", mergeable=True)

    async def ensure_thread(self, request_id: int) -> None:
        """Make sure the request has (or will have) a card in the admin group: a request
        whose card was folded into a burst summary gets it now (on its first message, or
        when it is taken); a card waiting in the last budget class behind a summary moves
        up to the new-request class."""
        chat = self.admin_chat
        if await TelegramThread.filter(request_id=request_id, card_message_id__isnull=False).exists():
            return
        keys = [f"new:{request_id}:card", f"thread:{request_id}:card",
                f"new:{request_id}:topic", f"thread:{request_id}:topic"]
        live = await TelegramOutbox.filter(
            chat_id=chat, status__in=("pending", "sending"), dedup_key__in=keys[:2],
        ).exists()
        if live:
            await TelegramOutbox.filter(
                chat_id=chat, status="pending", dedup_key__in=keys, priority=Priority.BACKGROUND,
            ).update(priority=Priority.NEW_REQUEST)
            return
        from telegram_delivery.lookups import load_request_data

        data = await load_request_data(request_id)
        if data is not None:
            await self._post_card(data, "thread", mergeable=False)

    async def _card_alive(self, request_id: int) -> bool:
        if await TelegramThread.filter(request_id=request_id, card_message_id__isnull=False).exists():
            return True
        return await TelegramOutbox.filter(
            chat_id=self.admin_chat, request_id=request_id,
            status__in=("pending", "sending", "sent"),
            dedup_key__in=[f"new:{request_id}:card", f"thread:{request_id}:card"],
        ).exists()

    async def on_request_updated(self, ev: Event, data: dict[str, Any]) -> None:
        rid = int(data["id"])
        if self.admin_chat:
            await self._follow_in_group(ev, rid, data)
        if data.get("deleted"):
            return
        status = str(data.get("status"))
        if status not in ("in_progress", "completed", "closed"):
            return
        if not await self._follows_system_message(ev, rid):
            return
        customer_id = (data.get("customer") or {}).get("id")
        customer = await User.filter(id=customer_id).first() if customer_id else None
        if customer is None or not customer.telegram_id:
            return
        body = cards.notify_text(status, customer.language, rid, str(data.get("title", "")))
        if body:
            payload: dict[str, Any] = {"text": body}
            if status == "completed":  # the satisfaction survey (core.csat)
                payload["text"] = cards.survey_text(body, customer.language)
                payload["reply_markup"] = cards.rating_keyboard(rid, data.get("rating"))
            await self._enqueue(
                customer.telegram_id, "sendMessage", payload,
                Delivery(kind=Kind.NOTIFY, request_id=rid, link=MessageLink(request_id=rid)),
                dedup_key=f"ev:{ev.id}:notify", request_id=rid,
            )

    async def _follow_in_group(self, ev: Event, rid: int, data: dict[str, Any]) -> None:
        """What the admin group shows of a request follows it: the card, the summary that
        lists it, the forum topic's name and state (each edit rendered at send time), and
        a request taken without a card gets one."""
        chat = self.admin_chat
        card_alive = await self._card_alive(rid)
        if card_alive:
            await self._enqueue(
                chat, "editMessageText",
                {}, Delivery(kind=Kind.CARD_EDIT, render_card=True, request_id=rid),
                dedup_key=f"ev:{ev.id}:edit", request_id=rid,
            )
        thread = await TelegramThread.filter(request_id=rid).first()
        summaries = {thread.summary_message_id} if thread and thread.summary_message_id else set()
        if data.get("deleted"):
            summaries |= await self._summaries_listing(rid)
        for mid in sorted(summaries):
            await self._enqueue(
                chat, "editMessageText", {}, Delivery(kind=Kind.SUMMARY_EDIT, summary=mid),
                dedup_key=f"ev:{ev.id}:sumedit:{mid}",
            )
        if data.get("deleted"):
            return
        topic_queued = await TelegramOutbox.filter(
            chat_id=chat, request_id=rid, status__in=("pending", "sending"),
            dedup_key__in=[f"new:{rid}:topic", f"thread:{rid}:topic"],
        ).exists()
        if (thread is not None and thread.topic_id) or topic_queued:
            await self._enqueue(chat, "editForumTopic", {}, Delivery(kind=Kind.TOPIC_EDIT, request_id=rid),
                                dedup_key=f"ev:{ev.id}:topicname", request_id=rid)
            await self._enqueue(chat, "closeForumTopic", {}, Delivery(kind=Kind.TOPIC_STATE, request_id=rid),
                                dedup_key=f"ev:{ev.id}:topicstate", request_id=rid)
        if str(data.get("status")) == "in_progress":
            # Taken from a summary: whoever took it gets the card (and topic) to work in.
            await self.ensure_thread(rid)

    async def _summaries_listing(self, request_id: int) -> set[int]:
        """Sent summaries that list a request (a deleted request's thread row is gone)."""
        found: set[int] = set()
        for row in await TelegramOutbox.filter(
            chat_id=self.admin_chat, status="sent", dedup_key__startswith="summary:",
        ).order_by("-id").limit(500):
            if request_id in delivery_of(row.payload).requests and (row.result or {}).get("message_id"):
                found.add(int(row.result["message_id"]))
        return found

    async def _follows_system_message(self, ev: Event, request_id: int) -> bool:
        """A status change made by take/complete/close/reopen/reassign writes a system message
        event just before its request_updated event, in the same transaction."""
        before = await Event.filter(id__lt=ev.id, id__gte=ev.id - 20, type=events.NEW_MESSAGE).order_by("-id")
        for prior in before:
            p = prior.payload or {}
            if p.get("request") == request_id:
                if p.get("is_internal") and p.get("message_type") == MessageType.system:
                    continue  # a note the desk wrote itself (a parked event), not a move
                return p.get("message_type") == MessageType.system
        return False

    # --- messages -----------------------------------------------------------------------
    async def on_new_message(self, ev: Event, data: dict[str, Any]) -> None:
        msg = await RequestMessage.filter(id=data.get("id")).select_related("request__customer", "sender").first()
        if msg is None or msg.message_type == MessageType.system:
            return
        links: list[TelegramMessageLink] = []
        if msg.source == Source.telegram and msg.message_type in (MessageType.image, MessageType.file):
            files = await RequestAttachment.filter(message_id=msg.id).count()
            links = await TelegramMessageLink.filter(
                request_message_id=msg.id, kind__in=("origin", "")
            ).order_by("message_id")
            age = (datetime.now(UTC) - ev.created_at).total_seconds()
            if (files == 0 or len(links) < files) and age < MEDIA_WAIT_SECONDS:
                raise _Postpone()
        req = msg.request
        customer = req.customer
        sender_name = msg.sender.full_name if msg.sender else ""
        from_telegram = msg.source == Source.telegram
        if msg.is_internal:
            if self.admin_chat and not from_telegram:
                await self.ensure_thread(req.id)
                await self._relay(ev, msg, self.admin_chat, "relay_internal", self.group_lang, sender_name, "note",
                                  thread=True, links=links)
            return
        if msg.sender_type == SenderType.customer:
            if self.admin_chat:
                await self.ensure_thread(req.id)
                await self._relay(ev, msg, self.admin_chat, "relay_from_customer", self.group_lang, sender_name,
                                  "thread", thread=True, links=links)
            return
        # Staff reply.
        if customer.telegram_id and customer.telegram_id != (msg.sender.telegram_id if msg.sender else None):
            await self._relay(ev, msg, customer.telegram_id, "relay_to_customer", customer.language,
                              sender_name, "customer", thread=False, links=links)
        if self.admin_chat and not from_telegram:
            await self.ensure_thread(req.id)
            await self._relay(ev, msg, self.admin_chat, "relay_from_admin", self.group_lang, sender_name, "thread",
                              thread=True, links=links)

    async def _relay(self, ev: Event, msg: RequestMessage, chat_id: int, header: str, lang: str,
                     name: str, purpose: str, *, thread: bool, links: list[TelegramMessageLink]) -> None:
        rid = msg.request_id
        delivery = Delivery(
            kind=Kind.THREAD if thread else Kind.CUSTOMER, request_id=rid,
            thread_of=rid if thread else None,
            link=MessageLink(request_id=rid, request_message_id=msg.id),
        )
        head = cards.text(header, lang, name=name, id=rid)
        key = f"ev:{ev.id}:{purpose}"
        more = cut_note(rid, lang)
        sources = [link for link in links if link.chat_id != chat_id]
        if sources:
            # Media that came from Telegram: copy the original messages (an album part by
            # part); the first one carries the header and the caption.
            for n, src in enumerate(sources, start=1):
                payload: dict[str, Any] = {"from_chat_id": src.chat_id, "message_id": src.message_id}
                if n == 1:
                    payload["caption"] = _caption_of(msg, head)
                    payload["parse_mode"] = "HTML"
                await self._enqueue(chat_id, "copyMessage", payload,
                                    delivery.with_link(kind="caption" if n == 1 else "media"),
                                    dedup_key=key if n == 1 else f"{key}:{n}", request_id=rid, more=more)
            return
        attachments = await RequestAttachment.filter(message_id=msg.id).order_by("id")
        content = (msg.content or "").strip()
        body = f"{head}\n{_escape(content)}" if content else head
        files = []
        from core.attachments import resolve_stored

        for att in attachments:
            path = resolve_stored(att.file)
            if path is not None and path.is_file():
                files.append((att, path))
        # With files, the header and the text ride on the first file's caption when they fit.
        text_in_caption = bool(files) and len(body) <= 1024
        if not text_in_caption and (content or not files):
            await self._enqueue(chat_id, "sendMessage", {"text": body}, delivery.with_link(kind="text"),
                                dedup_key=key, request_id=rid, more=more)
        for n, (att, path) in enumerate(files, start=1):
            is_photo = att.content_type in ("image/jpeg", "image/png", "image/webp") \
                and att.size <= 10 * 1024 * 1024
            method, fieldname = ("sendPhoto", "photo") if is_photo else ("sendDocument", "document")
            if n == 1 and text_in_caption:
                caption, kind = body, "caption"
            else:
                caption, kind = cards.text("relay_attachment", lang, name=att.name), "media"
            await self._enqueue(
                chat_id, method,
                {"caption": caption},
                replace(delivery.with_link(kind=kind), upload=Upload(fieldname, str(path), att.name)),
                dedup_key=f"{key}:att{att.id}", request_id=rid, more=more,
            )

    # --- edits and deletions -------------------------------------------------------------
    async def _copies(self, msg: RequestMessage) -> list[TelegramMessageLink]:
        """The Telegram copies the bot sent of `msg` (not the person's own message), in
        chat and part order. An internal note's copies outside the admin group (there should
        be none) are never touched, so an edited note cannot reach a customer."""
        links = await TelegramMessageLink.filter(
            request_message_id=msg.id, kind__in=("text", "caption", "media"),
        ).order_by("chat_id", "part", "message_id")
        if msg.is_internal:
            links = [link for link in links if link.chat_id == self.admin_chat]
        return links

    def _header(self, msg: RequestMessage, chat_id: int) -> tuple[str, str]:
        """The header key and language a copy in `chat_id` was relayed with (see on_new_message)."""
        if chat_id == self.admin_chat:
            if msg.is_internal:
                return "relay_internal", self.group_lang
            if msg.sender_type == SenderType.customer:
                return "relay_from_customer", self.group_lang
            return "relay_from_admin", self.group_lang
        return "relay_to_customer", msg.request.customer.language

    async def on_message_updated(self, ev: Event, data: dict[str, Any]) -> None:
        """Edit every copy in place: each part of a split text (a text now longer than the
        parts it had is cut at the last one with the "full text on request #N" note; parts a
        shorter text no longer needs are deleted), and the caption of copied or uploaded
        media. The text is the one of this event; older pending edits of the same copy
        collapse into the newest at send time (telegram_delivery.sender)."""
        msg = await RequestMessage.filter(id=data.get("id")).select_related("request__customer", "sender").first()
        if msg is None or msg.is_deleted or msg.message_type == MessageType.system:
            return
        content = str(data.get("content", msg.content) or "")
        msg.content = content
        by_chat: dict[int, list[TelegramMessageLink]] = {}
        for link in await self._copies(msg):
            by_chat.setdefault(link.chat_id, []).append(link)
        name = msg.sender.full_name if msg.sender else ""
        for chat_id, links in by_chat.items():
            header, lang = self._header(msg, chat_id)
            head = cards.text(header, lang, name=name, id=msg.request_id)
            texts = [link for link in links if link.kind == "text"]
            captions = [link for link in links if link.kind == "caption"]
            if texts:
                stripped = content.strip()
                body = f"{head}\n{_escape(stripped)}" if stripped else head
                parts = split_html(body, TEXT_LIMIT, max_parts=len(texts),
                                   more=cut_note(msg.request_id, lang))
                for n, link in enumerate(texts):
                    if n < len(parts):
                        await self._change_copy(ev, link, "editMessageText", {"text": parts[n], "parse_mode": "HTML"})
                    else:
                        await self._change_copy(ev, link, "deleteMessage", {})
            for link in captions:
                caption = _caption_of(msg, head)
                if tg_len(caption) > CAPTION_LIMIT:
                    caption = split_html(caption, CAPTION_LIMIT, max_parts=1,
                                         more=cut_note(msg.request_id, lang))[0]
                await self._change_copy(ev, link, "editMessageCaption", {"caption": caption, "parse_mode": "HTML"})

    async def on_message_deleted(self, ev: Event, data: dict[str, Any]) -> None:
        """Delete every copy the bot sent (each part, each file). The person's own message
        in their chat stays: it is theirs, and Telegram lets them delete it."""
        msg = await RequestMessage.filter(id=data.get("id")).first()
        if msg is None:
            return
        for link in await self._copies(msg):
            await self._change_copy(ev, link, "deleteMessage", {})

    async def _change_copy(self, ev: Event, link: TelegramMessageLink, method: str,
                           params: dict[str, Any]) -> None:
        from telegram_delivery.lookups import copy_change_key

        what = "d" if method == "deleteMessage" else "e"
        payload = {**params, "message_id": link.message_id}
        delivery = Delivery(kind=Kind.COPY_CHANGE, request_id=link.request_id,
                            target=CopyTarget(link.chat_id, link.message_id))
        await self._enqueue(link.chat_id, method, payload, delivery,
                            dedup_key=copy_change_key(link.chat_id, link.message_id, ev.id, what),
                            request_id=link.request_id)

    # --- admin chats --------------------------------------------------------------------
    async def on_chat_message(self, ev: Event, data: dict[str, Any]) -> None:
        if data.get("source") == Source.telegram:
            return
        chat_id = data.get("chat")
        chat = await AdminChat.filter(id=chat_id).first() if chat_id else None
        if chat is None or not chat.telegram_chat_id:
            return
        body = f"<b>{cards.text('chat_relay', self.group_lang, name=data.get('sender', ''))}</b>\n{_escape(str(data.get('message', '')))}"
        await self._enqueue(
            chat.telegram_chat_id, "sendMessage",
            {"text": body},
            Delivery(kind=Kind.CHAT, link=MessageLink(chat_message_id=data.get("id"))),
            dedup_key=f"ev:{ev.id}:chat",
        )


def _escape(value: str) -> str:
    import html

    return html.escape(value, quote=False)


def _caption_of(msg: RequestMessage, head: str) -> str:
    """Caption for a copied media message: the header plus the original caption, if any
    (over 1,024 characters, `enqueue` sends it as text right after the copy)."""
    content = (msg.content or "").strip()
    if not content or content.startswith("[") and content.endswith("]"):
        return head
    return f"{head}\n{_escape(content)}"


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
