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

Here: the loop and one pass. By concern, mixed into `Sender`: planning.py (the rows a
pass may send, lanes, round robin, claiming), calling.py (one call and Telegram's answers),
bursts.py (folding cards into summaries), preparing.py (what is known at send time),
outcomes.py (sent, retried, failed); pacing.py holds `SenderLimits`, sender_stats.py the
counters, lookups.py the reads they share, and contract.py the typed `Delivery` every row
carries.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from core.backoff import LoopHealth, LoopWorker
from db.models import TelegramOutbox
from telegram_delivery.budget import Budget, MemoryBudget
from telegram_delivery.bursts import BurstFolding
from telegram_delivery.calling import COPY_REFUSALS, TOPIC_GONE, Calling
from telegram_delivery.lookups import utcnow
from telegram_delivery.outbox import Priority
from telegram_delivery.outcomes import Outcomes
from telegram_delivery.pacing import SenderLimits
from telegram_delivery.planning import (
    HEAD_FIELDS,
    SUMMARY_LANE,
    Candidate,
    ChatState,
    Head,
    Planning,
)
from telegram_delivery.preparing import Preparing
from telegram_delivery.sender_stats import STATS, SenderStats, queue_depth, stats_snapshot

__all__ = [
    "COPY_REFUSALS",
    "STATS",
    "TOPIC_GONE",
    "Sender",
    "SenderLimits",
    "SenderStats",
    "queue_depth",
    "stats_snapshot",
]

log = logging.getLogger("helpdesk.telegram_delivery.sender")


class Sender(LoopWorker, Planning, Calling, BurstFolding, Preparing, Outcomes):
    """One sender loop (a process may run one; several processes may run one each)."""

    def __init__(self, bot: Any, limits: SenderLimits | None = None, *, name: str | None = None,
                 lang: str = "ru", budget: Budget | None = None,
                 admin_chat: int | None = None) -> None:
        self.bot = bot
        self.lang = lang
        # The admin group, as the relay knows it (settings.telegram_admin_chat_id): a copy
        # re-rendered after it is sent (telegram_delivery.outcomes) gets the header the relay
        # gave it by the relay's own rule.
        self.admin_chat = admin_chat
        self.limits = limits or SenderLimits()
        self.budget: Budget = budget or MemoryBudget(self.limits.rates)
        self.name = name or f"sender-{uuid.uuid4().hex[:6]}"
        self.chats: dict[int, ChatState] = {}
        self.stats = SenderStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self.task_name = self.name
        self.not_forum: set[int] = set()
        self.health = LoopHealth("telegram sender", log, base=self.limits.loop_backoff_base,
                                 cap=self.limits.loop_backoff_cap)
        self._customer_of: dict[int, int | None] = {}
        self._noted: dict[int, float] = {}

    def _count(self, name: str, n: int = 1) -> None:
        for stats in (self.stats, STATS):
            setattr(stats, name, getattr(stats, name) + n)

    async def _after_stop(self) -> None:
        if self._tasks:
            # Let in-flight calls finish (and be marked sent) rather than abandoning them.
            await asyncio.wait(self._tasks, timeout=self.limits.request_timeout + 1)

    async def _pass(self) -> float:
        began = time.monotonic()
        delay = await self.drain_once()
        # Completions that arrive together are served by one pass: a pass reads the whole
        # queue, and one per completed call would starve the relay and the API of the database.
        rest = self.limits.min_pass_interval - (time.monotonic() - began)
        if rest > 0:
            await asyncio.sleep(rest)
        return max(0.01, delay)

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
            r["id"]: Head(**r)
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
            picked: Candidate | None = None
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
