"""The sender: drains db.models.TelegramOutbox into the Bot API within Telegram's limits.

Guarantees and how:
- Budget (telegram_delivery.budget): at most TELEGRAM_GROUP_RATE calls per group, TELEGRAM_PRIVATE_RATE
  per private chat and TELEGRAM_GLOBAL_RATE overall, in sliding windows shared through Redis
  by every process when REDIS_URL is set. Edits and topic changes count like messages. A
  pass only claims a row for a chat whose budget has room; the slot itself is taken right
  before the HTTP call, so a row that needs no call (a superseded edit) costs none.
- Budget order: in each chat the lowest priority class with a row ready goes first
  (telegram_delivery.outbox.Priority): 1 conversations (relayed customer and staff messages, status
  notices), 2 new requests (cards, topics, burst summaries), 3 edits (cards, summaries,
  topic names and states), 4 reminders, digests and cards that follow a summary. Answers
  to button presses never queue (they are answered directly and counted in the budget).
- Order: rows of one request in classes 1-2 go out in id order (its card before the
  messages in its thread; a message waiting behind its request's card lifts the card to its
  own class); a chat gets one call at a time from this process.
- Fairness inside a class: rows queue per lane (the request's customer; rows about no
  request share one lane per class) and lanes take turns, round robin: the lane just served
  goes to the back, a new lane joins at the back. With L lanes waiting in a class, a lane's
  next row goes out within L sends of that class, however many rows another customer queued
  before it (a huge message is at most 3 rows: telegram_delivery.outbox.MAX_PARTS). A lane whose head
  waits (backoff, lease) does not hold the others.
- Coalescing: an edit waits `edit_delay` after it was queued, and pending edits of one
  message (a card, a summary, a topic's name or state) collapse into the newest; what is
  sent is rendered from the database at send time, and skipped when it equals what
  Telegram already shows. Four quick changes to a request cost one edit.
- Every new request actionable: when a group has more than TELEGRAM_SUMMARY_AFTER new-
  request cards pending (default 10: half a minute's budget), the rest are folded into
  summaries (and while the burst goes on, a group window after the last fold, every new
  card is): each lists its requests' numbers and titles with a Take button per request
  (`req:take:<id>`, the card's own callback), as many summaries as Telegram's 4,096
  characters and 100 buttons need. A summary is edited as its requests are taken, completed
  or deleted. Their own cards follow in class 4 when TELEGRAM_CARDS_AFTER_SUMMARY is on. By
  default they do not: a burst of 200 would spend ten minutes of the group's budget on
  cards nobody needs in order to act, delaying every edit and reminder behind them; a
  request gets its card (and forum topic) when it is taken or when its customer writes.
- No double send between processes: a row is claimed with a conditional UPDATE
  (`pending -> sending`, matching the `attempts` it read); only the winner sends it.
- Durable result: the row is marked `sent` with the result (message id) right after the
  call returns, in the same transaction as the TelegramThread/TelegramMessageLink rows.
- 429: the row waits `retry_after` and so does its chat (head-of-line); other chats keep
  going. Timeouts, network errors and 5xx are retried with exponential backoff; after
  `max_attempts` the row is `failed`.
- Poisoned rows: a row whose preparation or call raises anything else (a bug, a payload
  the Bot API client refuses) is retried with backoff `poison_attempts` times
  (POISON_MAX_ATTEMPTS, default 3), then `failed` with its error in `last_error`.
- Failed deliveries are visible: a failed row of a request leaves an internal system note
  on it (at most one per request per `note_interval`), `STATS.failed` counts it for
  metrics (`stats_snapshot()`, `queue_depth()`), and `helpdesk parked` lists failed rows
  (`--retry outbox:ID`, `--retry outbox:failed`).
- Outages: the loop backs off through `core.backoff.LoopHealth` (one log line per state
  change, exponential delay) instead of a traceback a second.
- Crash recovery: a row stays `sending` with a lease (`not_before` = claim time + lease).
  If the process dies, another (or the restarted) sender reclaims it after the lease.
  At-least-once window: a crash after Telegram accepted the call and before the `sent`
  commit (a few milliseconds) makes that one message go out twice. Telegram has no
  idempotency key, so this window cannot be closed, only kept tiny.
- Edits and deletions of relayed copies of a thread message (telegram_delivery.relay on message_updated
  and message_deleted; rows of kind `copy_change` with a `Delivery.target`, dedup keys
  `copy:<chat>:<message>:<event>:e|d`) are class 3 like card edits and wait `edit_delay`
  the same way: pending ones of one Telegram message collapse into the newest (the older
  rows become `merged` at send time, so an edit stuck behind a 429 costs one call when the
  chat is free again). Telegram's final refusals (COPY_REFUSALS: too old, gone, not ours)
  close the row as `ignored`, never retried; "message is not modified" counts as sent.

Here: the loop, planning, claiming and one call. By concern, mixed into `Sender`:
bursts.py (folding cards into summaries), preparing.py (what is known at send time),
outcomes.py (sent, retried, failed); lookups.py holds the reads they share, and
contract.py the typed `Delivery` every row carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.functions import Min

from core.backoff import LoopHealth, is_outage, run_loop
from db.models import CustomerRequest, TelegramOutbox, TelegramThread
from telegram_delivery.budget import Budget, Grant, MemoryBudget, Rates
from telegram_delivery.bursts import BurstFolding
from telegram_delivery.contract import unpack
from telegram_delivery.lookups import ACTIVE, load_request_data, utcnow
from telegram_delivery.outbox import Priority
from telegram_delivery.outcomes import Outcomes
from telegram_delivery.preparing import Preparing

log = logging.getLogger("helpdesk.telegram_delivery.sender")

SUMMARY_LANE = ("desk", int(Priority.NEW_REQUEST))
TOPIC_GONE = ("topic_id_invalid", "message thread not found", "topic_deleted")
# Telegram's final answers to an edit or deletion of a copy (telegram_delivery.relay): closed as
# `ignored` with a log line, never retried. "message is not modified" counts as sent.
COPY_REFUSALS = (
    "message to edit not found", "message can't be edited", "message to delete not found",
    "message can't be deleted", "message_id_invalid",
)


@dataclass
class SenderLimits:
    """How the sender paces itself. `from_settings` reads Telegram's limits and the burst
    settings; the rest are timings (tests shrink them by passing overrides)."""

    rates: Rates = field(default_factory=Rates)
    summary_after: int = 10  # TELEGRAM_SUMMARY_AFTER: pending new cards per group kept as cards
    cards_after_summary: bool = False  # TELEGRAM_CARDS_AFTER_SUMMARY
    # An edit (and the last burst summary) waits this long for newer changes to the same
    # message; None: one group message's share of the group budget, at most a second
    # (TELEGRAM_GROUP_RATE 20/60 -> 1 s; shrunk with the rate in tests and benchmarks).
    edit_delay: float | None = None
    lease_seconds: float = 60.0  # a `sending` row older than this is retried
    max_attempts: int = 8
    request_timeout: int = 20
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    poll_interval: float = 0.5
    min_pass_interval: float = 0.01  # passes at most 100 a second
    poison_attempts: int = 3  # POISON_MAX_ATTEMPTS: tries of a row whose handling raises
    note_interval: float = 600.0  # at most one "delivery failed" note per request this often
    loop_backoff_base: float = 0.5  # the loop itself (database outage)
    loop_backoff_cap: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SenderLimits:
        values: dict[str, Any] = {
            "rates": Rates.from_settings(settings),
            "summary_after": settings.telegram_summary_after,
            "cards_after_summary": settings.telegram_cards_after_summary,
        }
        if getattr(settings, "poison_max_attempts", None):
            values["poison_attempts"] = int(settings.poison_max_attempts)
        values.update({k: v for k, v in overrides.items() if k in cls.__dataclass_fields__})
        return cls(**values)

    @property
    def edit_wait(self) -> float:
        if self.edit_delay is not None:
            return self.edit_delay
        return min(1.0, self.rates.group.window / self.rates.group.limit)

    @property
    def fold_interval(self) -> float:
        """How often a group's pending cards are checked for a burst."""
        return min(1.0, self.rates.group.window / 20)


@dataclass
class _ChatState:
    blocked_until: float = 0.0
    busy: bool = False
    last_fold_check: float = 0.0
    last_fold: float = -1e9  # when this group last folded cards into a summary (monotonic)
    # Round robin of the chat's lanes per priority class (insertion order = turn order).
    rotation: dict[int, dict[Any, None]] = field(default_factory=dict)


@dataclass
class SenderStats:
    """Counters of one sender, and (`STATS`) of every sender in this process: plain
    integers for a metrics endpoint to read (`stats_snapshot()`)."""

    sent: int = 0
    retried_429: int = 0
    retried_errors: int = 0
    failed: int = 0
    folded: int = 0  # new-request cards folded into summaries
    summaries: int = 0  # summaries queued
    coalesced: int = 0  # edits that cost no call: superseded by a newer one, or unchanged
    sent_by_class: dict[int, int] = field(default_factory=dict)

    @property
    def merged(self) -> int:  # the older name of `folded`
        return self.folded


STATS = SenderStats()


def stats_snapshot() -> dict[str, int]:
    """This process's delivery counters since start (every Sender together), for metrics:
    `sent`, `failed`, `retried_429`, `retried_errors`, `folded`, `summaries`, `coalesced`
    and `sent_class_<n>` per budget class."""
    out = {
        "sent": STATS.sent, "failed": STATS.failed, "retried_429": STATS.retried_429,
        "retried_errors": STATS.retried_errors, "folded": STATS.folded,
        "summaries": STATS.summaries, "coalesced": STATS.coalesced,
    }
    for cls in Priority:
        out[f"sent_class_{int(cls)}"] = STATS.sent_by_class.get(int(cls), 0)
    return out


async def queue_depth() -> dict[str, int]:
    """The delivery queue as the database holds it (every process's rows): `pending` and
    `sending` rows, and `failed` rows waiting for `helpdesk parked --retry`."""
    from tortoise.functions import Count

    rows = await TelegramOutbox.filter(status__in=("pending", "sending", "failed")).group_by(
        "status"
    ).annotate(n=Count("id")).values("status", "n")
    out = {"pending": 0, "sending": 0, "failed": 0}
    for r in rows:
        out[str(r["status"])] = int(r["n"])
    return out


@dataclass
class _Head:
    """What a pass needs of a row (its payload is read only once the row is claimed)."""

    id: int
    status: str
    attempts: int
    not_before: datetime | None
    created_at: datetime
    dedup_key: str
    request_id: int | None


HEAD_FIELDS = ("id", "status", "attempts", "not_before", "created_at", "dedup_key", "request_id")


@dataclass
class _Candidate:
    row: _Head
    cls: int
    lane: Any


class Sender(BurstFolding, Preparing, Outcomes):
    """One sender loop (a process may run one; several processes may run one each)."""

    def __init__(self, bot: Any, limits: SenderLimits | None = None, *, name: str | None = None,
                 lang: str = "ru", budget: Budget | None = None) -> None:
        self.bot = bot
        self.lang = lang
        self.limits = limits or SenderLimits()
        self.budget: Budget = budget or MemoryBudget(self.limits.rates)
        self.name = name or f"sender-{uuid.uuid4().hex[:6]}"
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

    def _count(self, name: str, n: int = 1) -> None:
        for stats in (self.stats, STATS):
            setattr(stats, name, getattr(stats, name) + n)

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
        # The wake-up is cleared before each pass: a call that completes during the pass
        # (or the pause in it) wakes the next one instead of being lost.
        await run_loop(self._pass, health=self.health, wake=self._wake, stopping=lambda: self._stopping)

    async def _pass(self) -> float:
        began = time.monotonic()
        delay = await self.drain_once()
        # Completions that arrive together are served by one pass: a pass reads the whole
        # queue, and one per completed call would starve the relay and the API of the database.
        rest = self.limits.min_pass_interval - (time.monotonic() - began)
        if rest > 0:
            await asyncio.sleep(rest)
        return max(0.01, delay)

    # --- one pass -----------------------------------------------------------------------
    def _chat(self, chat_id: int) -> _ChatState:
        state = self.chats.get(chat_id)
        if state is None:
            state = self.chats[chat_id] = _ChatState()
        return state

    async def _heads(self) -> list[dict[str, Any]]:
        """The first active row of every (chat, request, priority class)."""
        return (
            await TelegramOutbox.filter(status__in=ACTIVE)
            .annotate(first=Min("id"))
            .group_by("chat_id", "request_id", "priority")
            .values("chat_id", "request_id", "priority", "first")
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

    def _plan(self, heads: list[dict[str, Any]], rows: dict[int, _Head]
              ) -> tuple[dict[int, dict[int, dict[Any, list[_Candidate]]]], set[tuple[int, int]]]:
        """Per chat, per class, per lane: the rows that may go next (oldest first), and the
        (chat, request) pairs whose card or topic is still queued (their edits wait)."""
        plan: dict[int, dict[int, dict[Any, list[_Candidate]]]] = {}
        card_queued: set[tuple[int, int]] = set()
        conversation: dict[tuple[int, int], _Candidate] = {}

        def add(chat_id: int, cand: _Candidate) -> None:
            plan.setdefault(chat_id, {}).setdefault(cand.cls, {}).setdefault(cand.lane, []).append(cand)

        for head in heads:
            row = rows.get(head["first"])
            if row is None:
                continue
            chat_id, rid, prio = head["chat_id"], head["request_id"], int(head["priority"] or 2)
            if rid is not None and row.dedup_key.endswith((":card", ":topic")):
                card_queued.add((chat_id, rid))
            if rid is None:
                add(chat_id, _Candidate(row, prio, ("desk", prio)))
            elif prio <= Priority.NEW_REQUEST:
                # One ordered lane per request for its card, topic and thread messages: the
                # oldest row goes first, in the most urgent class waiting behind it.
                key = (chat_id, rid)
                seen = conversation.get(key)
                if seen is None:
                    conversation[key] = _Candidate(row, prio, self._lane(rid))
                else:
                    if row.id < seen.row.id:
                        seen.row = row
                    seen.cls = min(seen.cls, prio)
            else:
                add(chat_id, _Candidate(row, prio, self._lane(rid)))
        for (chat_id, _), cand in conversation.items():
            add(chat_id, cand)
        for classes in plan.values():
            for lanes in classes.values():
                for cands in lanes.values():
                    cands.sort(key=lambda c: c.row.id)
        return plan, card_queued

    def _ready(self, cand: _Candidate, chat_id: int, wall: datetime,
               card_queued: set[tuple[int, int]]) -> float:
        """0 when the row may go now, else seconds until it may (or the poll interval)."""
        row = cand.row
        if row.not_before is not None and row.not_before > wall:
            return (row.not_before - wall).total_seconds()
        if cand.cls == Priority.EDIT:
            # Card and topic edits wait for the card; a copy's edit or deletion (`copy:`)
            # changes a message already sent, so it needs none.
            if (row.request_id is not None and (chat_id, row.request_id) in card_queued
                    and not row.dedup_key.startswith("copy:")):
                return self.limits.poll_interval
            due = row.created_at + timedelta(seconds=self.limits.edit_wait)
            if due > wall:
                return (due - wall).total_seconds()
        return 0.0

    async def drain_once(self) -> float:
        """Dispatch, for every chat that may send now, the next row: the most urgent class
        with a row ready, and in it the next lane of its round robin. Returns seconds until
        the next pass is useful (capped by the poll interval)."""
        heads = await self._heads()
        next_in = self.limits.poll_interval
        if not heads:
            return next_in
        now = time.monotonic()
        folded = False
        for chat_id in {h["chat_id"] for h in heads if h["chat_id"] < 0}:
            state = self._chat(chat_id)
            if now - state.last_fold_check >= self.limits.fold_interval:
                state.last_fold_check = now
                folded = await self._fold_burst(chat_id) or folded
        if folded:
            heads = await self._heads()
        await self._learn_customers({h["request_id"] for h in heads if h["request_id"] is not None})
        rows = {
            r["id"]: _Head(**r)
            for r in await TelegramOutbox.filter(id__in=[h["first"] for h in heads]).values(*HEAD_FIELDS)
        }
        plan, card_queued = self._plan(heads, rows)
        wall = utcnow()
        # Who gets the bot's free global slots first: groups (their own limit, 20 a minute,
        # keeps them to about 1% of the global budget, and a new request's Take button must
        # not wait behind a flood of private replies), then chats by the budget order.
        order = sorted(plan, key=lambda c: (c > 0, min(plan[c]), min(
            cand.row.id for lanes in plan[c].values() for cands in lanes.values() for cand in cands
        )))
        for chat_id in order:
            state = self._chat(chat_id)
            for cls, lanes in plan[chat_id].items():
                self._rotate_in(state, cls, lanes)
            for cls in [c for c in state.rotation if c not in plan[chat_id]]:
                del state.rotation[cls]
            if state.busy:
                continue
            now = time.monotonic()
            if state.blocked_until > now:
                next_in = min(next_in, state.blocked_until - now)
                continue
            picked: _Candidate | None = None
            for cls in sorted(plan[chat_id]):
                lanes = plan[chat_id][cls]
                turns = list(state.rotation[cls])
                if cls == Priority.NEW_REQUEST and SUMMARY_LANE in lanes:
                    # A summary makes up to 100 requests actionable with one message: it
                    # goes before the cards.
                    turns.remove(SUMMARY_LANE)
                    turns.insert(0, SUMMARY_LANE)
                for lane in turns:
                    for cand in lanes[lane]:
                        wait = self._ready(cand, chat_id, wall, card_queued)
                        if wait <= 0:
                            picked = cand
                            break
                        next_in = min(next_in, wait)
                    if picked is not None:
                        break
                if picked is not None:
                    break
            if picked is None:
                continue
            wait = await self.budget.wait_time(chat_id)
            if wait > 0:
                next_in = min(next_in, wait)
                continue
            if not await self._claim(picked.row):
                continue
            # Served: this lane goes to the back of its class's round.
            rotation = state.rotation[picked.cls]
            del rotation[picked.lane]
            rotation[picked.lane] = None
            state.busy = True
            task = asyncio.create_task(self._deliver(picked, state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return max(0.01, next_in)

    @staticmethod
    def _rotate_in(state: _ChatState, cls: int, lanes: dict[Any, list[_Candidate]]) -> None:
        """Drop lanes with nothing left; new lanes join at the back, oldest row first."""
        rotation = state.rotation.setdefault(cls, {})
        for lane in [lane for lane in rotation if lane not in lanes]:
            del rotation[lane]
        for lane in sorted((lane for lane in lanes if lane not in rotation),
                           key=lambda lane: lanes[lane][0].row.id):
            rotation[lane] = None

    async def _claim(self, row: _Head) -> bool:
        lease_until = utcnow() + timedelta(seconds=self.limits.lease_seconds)
        won = await TelegramOutbox.filter(
            id=row.id, status=row.status, attempts=row.attempts
        ).update(status="sending", attempts=row.attempts + 1, not_before=lease_until)
        if won:
            if row.status == "sending":
                log.warning("retrying row %s left in `sending` (a sender died mid-call)", row.id)
            row.status, row.attempts, row.not_before = "sending", row.attempts + 1, lease_until
        return bool(won)

    # --- one call -----------------------------------------------------------------------
    async def _deliver(self, cand: _Candidate, state: _ChatState) -> None:
        row: Any = cand.row
        try:
            row = await TelegramOutbox.get(id=cand.row.id)  # claimed: `sending`, ours
            if await self._deliver_row(row, state):
                self.stats.sent_by_class[cand.cls] = self.stats.sent_by_class.get(cand.cls, 0) + 1
                STATS.sent_by_class[cand.cls] = STATS.sent_by_class.get(cand.cls, 0) + 1
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

    async def _slot(self, chat_id: int) -> Grant:
        """Take the budget slot for one call, waiting if another process took the last one
        since this pass looked (a few milliseconds, normally)."""
        while True:
            grant, wait = await self.budget.take(chat_id)
            if grant is not None:
                return grant
            await asyncio.sleep(wait)

    async def _deliver_row(self, row: TelegramOutbox, state: _ChatState) -> bool:
        """Send one row. False when no call was made (nothing to send)."""
        from aiogram.exceptions import (
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNetworkError,
            TelegramNotFound,
            TelegramRetryAfter,
            TelegramServerError,
            TelegramUnauthorizedError,
        )

        params, delivery = unpack(row.payload)
        prepared = await self._prepare(row, params, delivery)
        if prepared is None:
            return False
        method = prepared.pop("__method", row.method)
        kind = delivery.kind
        await self._slot(row.chat_id)
        try:
            result = await self._call(method, prepared)
        except TelegramRetryAfter as exc:
            self._count("retried_429")
            wait = float(exc.retry_after)
            state.blocked_until = time.monotonic() + wait
            await self._set_pending(row, utcnow() + timedelta(seconds=wait), f"429 retry after {wait:g}s",
                                    count_attempt=False)
            return True
        except (TelegramNetworkError, TelegramServerError, TimeoutError, OSError) as exc:
            await self._retry_later(row, f"{type(exc).__name__}: {exc}", backoff=True)
            return True
        except TelegramBadRequest as exc:
            message = str(exc.message).lower()
            if "not modified" in message or "topic_not_modified" in message:
                await self._mark_sent(row, delivery, {"not_modified": True}, prepared, method)
                return True
            if kind in ("topic_edit", "topic_state") and any(m in message for m in TOPIC_GONE):
                # An admin deleted the topic: nothing to rename or close; the next message
                # about the request recreates it.
                await self._close(row, "merged", f"topic is gone: {exc.message}")
                return True
            if kind == "summary_edit" and "message to edit not found" in message:
                await self._close(row, "merged", "the summary was deleted")
                return True
            if "message thread not found" in message and delivery.thread_of:
                await self._recreate_topic(delivery.thread_of, row.chat_id)
                await self._set_pending(row, None, "topic was deleted; recreated", count_attempt=False)
                return True
            if delivery.target and any(r in message for r in COPY_REFUSALS):
                # An edit or deletion of a copy Telegram will never take (too old, gone,
                # not ours): nothing to retry, nothing for staff to fix.
                log.info("outbox row %s: %s of message %s in %s refused, not retried: %s", row.id,
                         method, delivery.target.message_id, row.chat_id, exc.message)
                await self._close(row, "ignored", f"400 {exc.message}")
                return True
            if "not a forum" in message:
                self.not_forum.add(row.chat_id)
            await self._fail(row, f"400 {exc.message}")
            return True
        except (TelegramForbiddenError, TelegramNotFound, TelegramUnauthorizedError) as exc:
            await self._fail(row, f"{type(exc).__name__}: {exc.message}")
            return True
        await self._mark_sent(row, delivery, result, prepared, method)
        return True

    async def _skip(self, row: TelegramOutbox, reason: str) -> None:
        """An edit that needs no call: superseded by a newer one, or unchanged."""
        self._count("coalesced")
        await self._close(row, "merged", reason)

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        from aiogram import methods

        cls = getattr(methods, method[:1].upper() + method[1:])
        call = cls(**params)
        return await self.bot(call, request_timeout=self.limits.request_timeout)

    async def _recreate_topic(self, request_id: int, chat_id: int) -> None:
        from telegram_delivery import cards

        data = await load_request_data(request_id)
        name = cards.topic_name(data, self.lang) if data else f"#{request_id}"
        await self._slot(chat_id)  # an extra call: it counts
        topic = await self._call("createForumTopic", {"chat_id": chat_id, "name": name})
        await TelegramThread.filter(request_id=request_id).update(topic_id=topic.message_thread_id)

