"""The sender: drains db.models.TelegramOutbox into the Bot API within Telegram's limits.

Guarantees and how:
- Order: rows of one request (in a private chat: of the chat) go out in id order; a chat
  gets one call at a time.
- Fairness: within a chat, rows queue per lane (the request's customer; rows about no
  request share one lane) and lanes take turns, round robin: the lane just served goes to
  the back, a new lane joins at the back. With L lanes waiting in a group, a lane's next
  row goes out within L sends, however many rows another customer queued before it (a
  huge message is at most 3 rows: bot.outbox.MAX_PARTS). A lane whose head waits (backoff,
  lease) does not hold the others.
- No double send between processes: a row is claimed with a conditional UPDATE
  (`pending -> sending`, matching the `attempts` it read); only the winner sends it.
- Durable result: the row is marked `sent` with the result (message id) right after the
  call returns, in the same transaction as the TelegramThread/TelegramMessageLink rows.
- Limits (per process, sliding windows, edits count): about 30 calls/s overall, 1/s per
  private chat, 20 per minute per group. On HTTP 429 the row waits `retry_after` and so does
  its chat (head-of-line); other chats keep going. Timeouts, network errors and 5xx are
  retried with exponential backoff; after `max_attempts` the row is `failed`.
- Poisoned rows: a row whose preparation or call raises anything else (a bug, a payload
  the Bot API client refuses) is retried with backoff `poison_attempts` times
  (POISON_MAX_ATTEMPTS, default 3), then `failed` with its error in `last_error`. A failed
  row of a request leaves an internal system note on it (at most one per request per
  `note_interval`); `helpdesk parked` lists failed rows, `--retry outbox:ID` requeues one.
- Outages: the loop backs off through `core.backoff.LoopHealth` (one log line per state
  change, exponential delay) instead of a traceback a second.
- Crash recovery: a row stays `sending` with a lease (`not_before` = claim time + lease).
  If the process dies, another (or the restarted) sender reclaims it after the lease.
  At-least-once window: a crash after Telegram accepted the call and before the `sent`
  commit (a few milliseconds) makes that one message go out twice. Telegram has no
  idempotency key, so this window cannot be closed, only kept tiny.
- Edits and deletions of message copies (bot.relay, `_meta.target`): pending ones of one
  Telegram message collapse into the newest (the older rows become `merged` at send time,
  so an edit stuck behind a 429 costs one call when the chat is free again); Telegram's
  refusals (COPY_REFUSALS: too old, gone, not ours) close the row as `ignored`, not retried.
- Bursts: when a group has more pending new-request cards than `merge_after` (default 10,
  half a minute's budget), the excess is folded into one summary message
  ("+N new requests: #a, #b … /queue") and those rows become `merged`. The per-request
  cards are NOT posted later: each request stays reachable through /queue, and the relay
  posts its card (and forum topic) lazily when the first message arrives in its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Min
from tortoise.transactions import in_transaction

from core.backoff import LoopHealth, is_outage
from db.models import CustomerRequest, TelegramMessageLink, TelegramOutbox, TelegramThread

log = logging.getLogger("helpdesk.bot.sender")

ACTIVE = ("pending", "sending")
# Telegram's final answers to an edit or deletion of a copy (bot.relay): closed as
# `ignored` with a log line, never retried. "message is not modified" counts as sent.
COPY_REFUSALS = (
    "message to edit not found", "message can't be edited", "message to delete not found",
    "message can't be deleted", "message_id_invalid",
)


@dataclass
class SenderLimits:
    global_per_sec: int = 30
    private_per_sec: int = 1
    group_per_window: int = 20
    group_window: float = 60.0
    merge_after: int = 10  # pending new-request cards per group beyond which the rest merge
    lease_seconds: float = 60.0  # a `sending` row older than this is retried
    max_attempts: int = 8
    request_timeout: int = 20
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    poll_interval: float = 0.5
    poison_attempts: int = 3  # POISON_MAX_ATTEMPTS: tries of a row whose handling raises
    note_interval: float = 600.0  # at most one "delivery failed" note per request this often
    loop_backoff_base: float = 0.5  # the loop itself (database outage)
    loop_backoff_cap: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> SenderLimits:
        """Defaults, overridden by `settings.extra["telegram_limits"]` (tests shrink time)."""
        extra = (getattr(settings, "extra", None) or {}).get("telegram_limits") or {}
        values = {k: v for k, v in extra.items() if k in cls.__dataclass_fields__}
        if "poison_attempts" not in values and getattr(settings, "poison_max_attempts", None):
            values["poison_attempts"] = int(settings.poison_max_attempts)
        return cls(**values)


class SlidingWindow:
    """At most `limit` events in any `window` seconds (stricter than a token bucket, which
    can let 2x the limit through a window boundary)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.hits: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        while self.hits and self.hits[0] <= now - self.window:
            self.hits.popleft()
        if len(self.hits) < self.limit:
            return 0.0
        return self.hits[0] + self.window - now

    def hit(self, now: float) -> None:
        self.hits.append(now)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _ChatState:
    window: SlidingWindow
    blocked_until: float = 0.0
    busy: bool = False
    last_merge_check: float = 0.0
    # Round robin of the chat's lanes (insertion order = turn order).
    rotation: dict[Any, None] = field(default_factory=dict)


@dataclass
class SenderStats:
    sent: int = 0
    retried_429: int = 0
    retried_errors: int = 0
    failed: int = 0
    merged: int = 0
    summaries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Sender:
    """One sender loop (a process may run one; several processes may run one each)."""

    def __init__(self, bot: Any, limits: SenderLimits | None = None, *, name: str | None = None,
                 lang: str = "ru") -> None:
        self.bot = bot
        self.lang = lang
        self.limits = limits or SenderLimits()
        self.name = name or f"sender-{uuid.uuid4().hex[:6]}"
        self.global_window = SlidingWindow(self.limits.global_per_sec, 1.0)
        self.chats: dict[int, _ChatState] = {}
        self.stats = SenderStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.not_forum: set[int] = set()
        self.health = LoopHealth("telegram sender", log, base=self.limits.loop_backoff_base,
                                 cap=self.limits.loop_backoff_cap)
        self._customer_of: dict[int, int | None] = {}
        self._noted: dict[int, float] = {}

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        self._loop_task = asyncio.create_task(self.run(), name=self.name)
        return self._loop_task

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        if self._tasks:
            # Let in-flight calls finish (and be marked sent) rather than abandoning them.
            await asyncio.wait(self._tasks, timeout=self.limits.request_timeout + 1)

    async def run(self) -> None:
        while not self._stopping:
            try:
                delay = await self.drain_once()
                self.health.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Database gone (or a bug in the pass): one log line per state change and
                # a growing delay; a wake-up does not cut the delay short.
                await asyncio.sleep(self.health.failed(exc))
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, delay))

    # --- one pass -----------------------------------------------------------------------
    def _chat(self, chat_id: int) -> _ChatState:
        state = self.chats.get(chat_id)
        if state is None:
            if chat_id < 0:
                window = SlidingWindow(self.limits.group_per_window, self.limits.group_window)
            else:
                window = SlidingWindow(self.limits.private_per_sec, 1.0)
            state = self.chats[chat_id] = _ChatState(window)
        return state

    async def _heads(self) -> list[dict[str, Any]]:
        """The first active row of every (chat, request)."""
        return (
            await TelegramOutbox.filter(status__in=ACTIVE)
            .annotate(first=Min("id"))
            .group_by("chat_id", "request_id")
            .values("chat_id", "request_id", "first")
        )

    def _lane(self, request_id: int | None) -> Any:
        """Which lane a row queues in: its request's customer (so one customer's many
        requests share one turn), the request when it is gone, "desk" for no request."""
        if request_id is None:
            return "desk"
        customer = self._customer_of.get(request_id)
        return ("customer", customer) if customer is not None else ("request", request_id)

    async def _learn_customers(self, request_ids: set[int]) -> None:
        unknown = [r for r in request_ids if r not in self._customer_of]
        if not unknown:
            return
        if len(self._customer_of) > 20000:
            self._customer_of.clear()
        found = dict(
            await CustomerRequest.filter(id__in=unknown).values_list("id", "customer_id")
        )
        for rid in unknown:
            self._customer_of[rid] = found.get(rid)

    async def drain_once(self) -> float:
        """Dispatch, for every chat that may send now, the head row of the next lane in its
        round robin. Returns seconds until the next pass is useful (capped by the poll
        interval)."""
        heads = await self._heads()
        next_in = self.limits.poll_interval
        if not heads:
            return next_in
        now = time.monotonic()
        for chat_id in {h["chat_id"] for h in heads}:
            state = self._chat(chat_id)
            if chat_id < 0 and now - state.last_merge_check >= min(1.0, self.limits.group_window / 20):
                state.last_merge_check = now
                await self._merge_burst(chat_id)
        heads = await self._heads()
        await self._learn_customers({h["request_id"] for h in heads if h["request_id"] is not None})
        rows = {r.id: r for r in await TelegramOutbox.filter(id__in=[h["first"] for h in heads])}
        lanes: dict[int, dict[Any, TelegramOutbox]] = {}
        for head in heads:
            row = rows.get(head["first"])
            if row is None:
                continue
            lane = self._lane(head["request_id"])
            chat_lanes = lanes.setdefault(head["chat_id"], {})
            if lane not in chat_lanes or row.id < chat_lanes[lane].id:
                chat_lanes[lane] = row
        wall = utcnow()
        for chat_id in sorted(lanes, key=lambda c: min(r.id for r in lanes[c].values())):
            chat_lanes = lanes[chat_id]
            state = self._chat(chat_id)
            self._rotate_in(state, chat_lanes)
            if state.busy:
                continue
            now = time.monotonic()
            if state.blocked_until > now:
                next_in = min(next_in, state.blocked_until - now)
                continue
            wait = max(state.window.wait_time(now), self.global_window.wait_time(now))
            if wait > 0:
                next_in = min(next_in, wait)
                continue
            for lane in list(state.rotation):
                row = chat_lanes[lane]
                if row.not_before is not None and row.not_before > wall:
                    next_in = min(next_in, (row.not_before - wall).total_seconds())
                    continue
                if not await self._claim(row):
                    continue
                # Served: this lane goes to the back of the round.
                del state.rotation[lane]
                state.rotation[lane] = None
                state.window.hit(now)
                self.global_window.hit(now)
                state.busy = True
                task = asyncio.create_task(self._deliver(row, state))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                break
        return max(0.01, next_in)

    @staticmethod
    def _rotate_in(state: _ChatState, chat_lanes: dict[Any, TelegramOutbox]) -> None:
        """Drop lanes with nothing left; new lanes join at the back, oldest row first."""
        for lane in [lane for lane in state.rotation if lane not in chat_lanes]:
            del state.rotation[lane]
        for lane in sorted((lane for lane in chat_lanes if lane not in state.rotation),
                           key=lambda lane: chat_lanes[lane].id):
            state.rotation[lane] = None

    async def _claim(self, row: TelegramOutbox) -> bool:
        lease_until = utcnow() + timedelta(seconds=self.limits.lease_seconds)
        won = await TelegramOutbox.filter(
            id=row.id, status=row.status, attempts=row.attempts
        ).update(status="sending", attempts=row.attempts + 1, not_before=lease_until)
        if won:
            if row.status == "sending":
                log.warning("retrying row %s left in `sending` (a sender died mid-call)", row.id)
            row.status, row.attempts, row.not_before = "sending", row.attempts + 1, lease_until
        return bool(won)

    # --- burst handling -----------------------------------------------------------------
    async def _merge_burst(self, chat_id: int) -> None:
        cards = (
            await TelegramOutbox.filter(
                chat_id=chat_id, status="pending", method="sendMessage", dedup_key__startswith="new:"
            )
            .order_by("id")
            .values("id", "request_id")
        )
        keep = self.limits.merge_after
        if len(cards) <= keep:
            return
        excess = cards[keep:]
        token = uuid.uuid4().hex[:16]
        marker = f"merged:{token}"
        request_ids = [c["request_id"] for c in excess if c["request_id"] is not None]
        async with in_transaction() as conn:
            await TelegramOutbox.filter(id__in=[c["id"] for c in excess], status="pending").using_db(
                conn
            ).update(status="merged", last_error=marker)
            await TelegramOutbox.filter(
                chat_id=chat_id, status="pending",
                dedup_key__in=[f"new:{r}:topic" for r in request_ids],
            ).using_db(conn).update(status="merged", last_error=marker)
            merged = await TelegramOutbox.filter(
                last_error=marker, method="sendMessage"
            ).using_db(conn).order_by("id").values_list("request_id", flat=True)
            merged_ids = [r for r in merged if r is not None]
            if merged_ids:
                from bot.cards import summary_text
                from bot.outbox import enqueue

                await enqueue(
                    chat_id, "sendMessage",
                    {"text": summary_text(merged_ids, self.lang), "_meta": {"kind": "summary", "requests": merged_ids}},
                    dedup_key=f"summary:{token}", using_db=conn,
                )
        if merged_ids:
            self.stats.merged += len(merged_ids)
            self.stats.summaries += 1
            log.info("group %s: %d new-request cards merged into one summary", chat_id, len(merged_ids))

    # --- one call -----------------------------------------------------------------------
    async def _deliver(self, row: TelegramOutbox, state: _ChatState) -> None:
        try:
            await self._deliver_row(row, state)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                if is_outage(exc):
                    # The database, not the row: try again later (if the write fails too,
                    # the row's lease brings it back).
                    await self._retry_later(row, error, backoff=True, count=False)
                elif row.attempts >= self.limits.poison_attempts:
                    log.warning("outbox row %s failed %d times; parked", row.id, row.attempts,
                                exc_info=exc)
                    await self._fail(row, f"internal error: {error}")
                else:
                    await self._retry_later(row, f"internal error: {error}", backoff=True)
        finally:
            state.busy = False
            self._wake.set()

    async def _deliver_row(self, row: TelegramOutbox, state: _ChatState) -> None:
        from aiogram.exceptions import (
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNetworkError,
            TelegramNotFound,
            TelegramRetryAfter,
            TelegramServerError,
            TelegramUnauthorizedError,
        )

        payload = dict(row.payload or {})
        meta = payload.pop("_meta", None) or {}
        prepared = await self._prepare(row, payload, meta)
        if prepared is None:
            return
        try:
            result = await self._call(row.method, prepared, meta)
        except TelegramRetryAfter as exc:
            self.stats.retried_429 += 1
            wait = float(exc.retry_after)
            state.blocked_until = time.monotonic() + wait
            await self._set_pending(row, utcnow() + timedelta(seconds=wait), f"429 retry after {wait:g}s",
                                    count_attempt=False)
            return
        except (TelegramNetworkError, TelegramServerError, TimeoutError, OSError) as exc:
            await self._retry_later(row, f"{type(exc).__name__}: {exc}", backoff=True)
            return
        except TelegramBadRequest as exc:
            message = str(exc.message).lower()
            if "message is not modified" in message:
                await self._mark_sent(row, meta, {"not_modified": True}, prepared)
                return
            if "message thread not found" in message and meta.get("thread_of"):
                await self._recreate_topic(int(meta["thread_of"]), row.chat_id)
                await self._set_pending(row, None, "topic was deleted; recreated", count_attempt=False)
                return
            if meta.get("target") and any(r in message for r in COPY_REFUSALS):
                # An edit or deletion of a copy Telegram will never take (too old, gone,
                # not ours): nothing to retry, nothing for staff to fix.
                log.info("outbox row %s: %s of message %s in %s refused, not retried: %s", row.id,
                         row.method, meta["target"].get("message_id"), row.chat_id, exc.message)
                await self._close(row, "ignored", f"400 {exc.message}")
                return
            if "not a forum" in message:
                self.not_forum.add(row.chat_id)
            await self._fail(row, f"400 {exc.message}")
            return
        except (TelegramForbiddenError, TelegramNotFound, TelegramUnauthorizedError) as exc:
            await self._fail(row, f"{type(exc).__name__}: {exc.message}")
            return
        await self._mark_sent(row, meta, result, prepared)

    async def _prepare(self, row: TelegramOutbox, payload: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any] | None:
        """Resolve what is only known at send time: the card's current text, its message id,
        the request's topic, files to upload. None: nothing to send (row closed)."""
        from bot import cards

        request_id = meta.get("request_id") or row.request_id
        kind = meta.get("kind")
        if meta.get("target") and await _newer_copy_change(row, meta["target"]):
            await self._close(row, "merged", "superseded by a newer edit of the message")
            return None
        if meta.get("render_card") or kind in ("card", "card_edit"):
            data = await load_request_data(int(request_id))
            if kind == "card_edit":
                thread = await TelegramThread.filter(request_id=request_id).first() if data else None
                if thread is None and data is None:
                    thread = await _thread_by_link(row.chat_id, int(request_id))
                if thread is None or not thread.card_message_id:
                    await self._close(row, "merged", "no card to edit")
                    return None
                if await _newer_edit_pending(row):
                    await self._close(row, "merged", "superseded by a newer edit")
                    return None
                payload["message_id"] = thread.card_message_id
                if data is None:
                    payload["text"] = cards.deleted_card_text(int(request_id), self.lang)
                    payload.pop("reply_markup", None)
                else:
                    payload["text"] = cards.card_text(data, self.lang)
                    payload["reply_markup"] = cards.card_keyboard(data, self.lang)
                if await _last_render(row.chat_id, int(request_id)) == _render_hash(payload):
                    await self._close(row, "merged", "card unchanged")
                    return None
            else:
                if data is None:
                    await self._close(row, "merged", "request deleted before its card was sent")
                    return None
                payload["text"] = cards.card_text(data, self.lang)
                payload["reply_markup"] = cards.card_keyboard(data, self.lang)
        if kind == "topic" and row.chat_id in self.not_forum:
            await self._close(row, "failed", "the chat is not a forum")
            return None
        if meta.get("thread_of"):
            thread = await TelegramThread.filter(request_id=int(meta["thread_of"])).first()
            payload.pop("message_thread_id", None)
            if thread is not None and thread.chat_id == row.chat_id:
                if thread.topic_id:
                    payload["message_thread_id"] = thread.topic_id
                elif thread.card_message_id and kind != "card":
                    payload["reply_parameters"] = {
                        "message_id": thread.card_message_id, "allow_sending_without_reply": True,
                    }
        chart = meta.get("chart")
        if chart:
            # A chart queued with its numbers (the digest's): drawn now, sent as a PNG.
            from aiogram.types import BufferedInputFile

            from core.charts import per_day_chart
            from core.png import render
            from core.reports import days_from_payload

            days = days_from_payload(chart.get("days") or [])
            picture = render(per_day_chart(days, str(chart.get("lang") or self.lang)))
            payload["photo"] = BufferedInputFile(picture, filename="requests-7-days.png")
        upload = meta.get("upload")
        if upload:
            from aiogram.types import FSInputFile

            payload[upload["field"]] = FSInputFile(upload["path"], filename=upload.get("name"))
        payload["chat_id"] = row.chat_id
        return payload

    async def _call(self, method: str, params: dict[str, Any], meta: dict[str, Any]) -> Any:
        from aiogram import methods

        cls = getattr(methods, method[:1].upper() + method[1:])
        call = cls(**params)
        return await self.bot(call, request_timeout=self.limits.request_timeout)

    async def _recreate_topic(self, request_id: int, chat_id: int) -> None:
        from bot import cards

        data = await load_request_data(request_id)
        name = cards.topic_name(data) if data else f"#{request_id}"
        topic = await self._call("createForumTopic", {"chat_id": chat_id, "name": name}, {})
        await TelegramThread.filter(request_id=request_id).update(topic_id=topic.message_thread_id)

    # --- row outcomes -------------------------------------------------------------------
    async def _mark_sent(self, row: TelegramOutbox, meta: dict[str, Any], result: Any,
                         payload_sent: dict[str, Any] | None = None) -> None:
        payload_sent = payload_sent or {}
        compact = _compact(result)
        if meta.get("kind") in ("card", "card_edit") and "text" in payload_sent:
            compact["render"] = _render_hash(payload_sent)
        message_ids = compact.get("message_ids") or ([compact["message_id"]] if "message_id" in compact else [])
        kind = meta.get("kind")
        request_id = meta.get("request_id") or row.request_id
        async with in_transaction() as conn:
            await TelegramOutbox.filter(id=row.id).using_db(conn).update(
                status="sent", result=compact, sent_at=utcnow(), last_error=None
            )
            if kind == "topic" and compact.get("message_thread_id") and request_id:
                await _upsert_thread(conn, int(request_id), row.chat_id, topic_id=compact["message_thread_id"])
            if kind == "card" and message_ids and request_id:
                await _upsert_thread(conn, int(request_id), row.chat_id, card_message_id=message_ids[0])
            link = meta.get("link")
            if kind == "card" and request_id and not link:
                link = {"request_id": int(request_id)}
            if link and message_ids:
                await TelegramMessageLink.bulk_create(
                    [
                        TelegramMessageLink(
                            chat_id=row.chat_id, message_id=mid,
                            request_id=link.get("request_id"),
                            request_message_id=link.get("request_message_id"),
                            chat_message_id=link.get("chat_message_id"),
                            kind=str(link.get("kind") or "")[:8],
                            part=int(link.get("part") or 1) + n,
                        )
                        for n, mid in enumerate(message_ids)
                    ],
                    ignore_conflicts=True, using_db=conn,
                )
        self.stats.sent += 1

    async def _set_pending(self, row: TelegramOutbox, not_before: datetime | None, error: str,
                           *, count_attempt: bool) -> None:
        fields: dict[str, Any] = {"status": "pending", "not_before": not_before, "last_error": error[:2000]}
        if not count_attempt:
            fields["attempts"] = max(0, row.attempts - 1)
        await TelegramOutbox.filter(id=row.id, status="sending").update(**fields)

    async def _retry_later(self, row: TelegramOutbox, error: str, *, backoff: bool,
                           count: bool = True) -> None:
        if count and row.attempts >= self.limits.max_attempts:
            await self._fail(row, error)
            return
        self.stats.retried_errors += 1
        delay = min(self.limits.backoff_max, self.limits.backoff_base * (2 ** max(0, row.attempts - 1)))
        log.warning("outbox row %s: %s; retry %d in %.1fs", row.id, error[:300], row.attempts, delay)
        await self._set_pending(row, utcnow() + timedelta(seconds=delay), error, count_attempt=count)

    async def _fail(self, row: TelegramOutbox, error: str) -> None:
        self.stats.failed += 1
        log.error("outbox row %s (%s to %s) failed: %s", row.id, row.method, row.chat_id, error[:500])
        await self._close(row, "failed", error)
        if row.request_id is not None:
            await self._note_failure(row, error)

    async def _note_failure(self, row: TelegramOutbox, error: str) -> None:
        """An internal system note on the row's request, so staff see the message did not
        reach Telegram (at most one per request per `note_interval`)."""
        now = time.monotonic()
        last = self._noted.get(int(row.request_id))
        if last is not None and now - last < self.limits.note_interval:
            return
        self._noted[int(row.request_id)] = now
        if len(self._noted) > 10000:
            self._noted = {k: v for k, v in self._noted.items() if now - v < self.limits.note_interval}
        from bot.texts import plain
        from core.requests import add_internal_system_note

        note = plain("note_delivery_failed", self.lang, chat=row.chat_id, error=error[:300], row=row.id)
        try:
            await add_internal_system_note(int(row.request_id), note)
        except Exception as exc:  # the note is a courtesy; the row stays failed
            log.warning("outbox row %s: internal note on request %s not written: %s",
                        row.id, row.request_id, exc)

    async def _close(self, row: TelegramOutbox, status: str, reason: str) -> None:
        await TelegramOutbox.filter(id=row.id).update(status=status, last_error=reason[:2000])


# --- helpers ------------------------------------------------------------------------------
async def load_request_data(request_id: int) -> dict[str, Any] | None:
    """The request as the card shows it (request_data plus Telegram usernames); None if gone."""
    from core.serializers import request_data

    req = await CustomerRequest.filter(id=request_id).select_related("customer", "assigned_admin").first()
    if req is None:
        return None
    data = request_data(req)
    if data.get("customer") is not None and req.customer.telegram_username:
        data["customer"]["telegram_username"] = req.customer.telegram_username
    if data.get("assigned_admin") is not None and req.assigned_admin and req.assigned_admin.telegram_username:
        data["assigned_admin"]["telegram_username"] = req.assigned_admin.telegram_username
    return data


async def _thread_by_link(chat_id: int, request_id: int) -> TelegramThread | None:
    # After a delete the TelegramThread row is gone with the request (cascade); the card's
    # message link survives and still lets us strike the card through.
    sent = await TelegramOutbox.filter(
        chat_id=chat_id, request_id=request_id, status="sent",
        dedup_key__in=[f"new:{request_id}:card", f"thread:{request_id}:card"],
    ).first()
    if sent is None or not (sent.result or {}).get("message_id"):
        return None
    return TelegramThread(request_id=request_id, chat_id=chat_id, card_message_id=sent.result["message_id"])


async def _newer_edit_pending(row: TelegramOutbox) -> bool:
    return await TelegramOutbox.filter(
        Q(chat_id=row.chat_id, request_id=row.request_id, method=row.method, status="pending", id__gt=row.id),
        Q(dedup_key__endswith=":edit"),
    ).exists()


def copy_change_key(chat_id: int, message_id: int, event_id: int, what: str) -> str:
    """Dedup key of an edit ("e") or deletion ("d") of one Telegram copy (bot.relay)."""
    return f"copy:{chat_id}:{message_id}:{event_id}:{what}"


async def _newer_copy_change(row: TelegramOutbox, target: dict[str, Any]) -> bool:
    """A newer edit or deletion of the same Telegram message is queued: this one is moot."""
    return await TelegramOutbox.filter(
        chat_id=row.chat_id, status="pending", id__gt=row.id,
        dedup_key__startswith=f"copy:{row.chat_id}:{int(target.get('message_id') or 0)}:",
    ).exists()


async def _upsert_thread(conn: Any, request_id: int, chat_id: int, **fields: Any) -> None:
    if not await CustomerRequest.filter(id=request_id).using_db(conn).exists():
        return
    updated = await TelegramThread.filter(request_id=request_id).using_db(conn).update(chat_id=chat_id, **fields)
    if not updated:
        await TelegramThread.bulk_create(
            [TelegramThread(request_id=request_id, chat_id=chat_id, **fields)],
            ignore_conflicts=True, using_db=conn,
        )
        await TelegramThread.filter(request_id=request_id).using_db(conn).update(**fields)


def _render_hash(payload: dict[str, Any]) -> str:
    import hashlib
    import json

    raw = json.dumps([payload.get("text"), payload.get("reply_markup")], sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


async def _last_render(chat_id: int, request_id: int) -> str | None:
    """The render hash of what the card shows now (its last sent version)."""
    rows = await TelegramOutbox.filter(
        Q(dedup_key__in=[f"new:{request_id}:card", f"thread:{request_id}:card"])
        | Q(dedup_key__endswith=":edit"),
        chat_id=chat_id, request_id=request_id, status="sent",
    ).order_by("-sent_at", "-id").limit(1)
    return (rows[0].result or {}).get("render") if rows else None


def _compact(result: Any) -> dict[str, Any]:
    """What we keep of a Bot API result: message ids and topic ids."""
    if isinstance(result, list):
        return {"message_ids": [m.message_id for m in result if hasattr(m, "message_id")]}
    if hasattr(result, "message_id"):
        out: dict[str, Any] = {"message_id": result.message_id}
        thread = getattr(result, "message_thread_id", None)
        if thread:
            out["message_thread_id"] = thread
        return out
    if hasattr(result, "message_thread_id"):
        return {"message_thread_id": result.message_thread_id}
    return {"ok": bool(result)}
