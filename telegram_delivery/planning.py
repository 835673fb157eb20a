"""What one sender pass plans (telegram_delivery.sender.Sender.drain_once): the first row of
every (chat, request, class), the lanes they queue in (a customer's requests share one),
the round robin of lanes per class, when a row may go, and claiming it.

Mixed into telegram_delivery.sender.Sender (uses its `limits`, `chats` and `_customer_of`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.functions import Min

from db.models import CustomerRequest, TelegramOutbox
from telegram_delivery.lookups import ACTIVE, utcnow
from telegram_delivery.outbox import Priority
from telegram_delivery.pacing import SenderLimits

log = logging.getLogger("helpdesk.telegram_delivery.sender")

SUMMARY_LANE = ("desk", int(Priority.NEW_REQUEST))


@dataclass
class ChatState:
    blocked_until: float = 0.0
    busy: bool = False
    last_fold_check: float = 0.0
    last_fold: float = -1e9  # when this group last folded cards into a summary (monotonic)
    # Round robin of the chat's lanes per priority class (insertion order = turn order).
    rotation: dict[int, dict[Any, None]] = field(default_factory=dict)


@dataclass
class Head:
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
class Candidate:
    row: Head
    cls: int
    lane: Any


class Planning:
    limits: SenderLimits
    chats: dict[int, ChatState]
    _customer_of: dict[int, int | None]

    def _chat(self, chat_id: int) -> ChatState:
        state = self.chats.get(chat_id)
        if state is None:
            state = self.chats[chat_id] = ChatState()
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

    def _plan(self, heads: list[dict[str, Any]], rows: dict[int, Head]
              ) -> tuple[dict[int, dict[int, dict[Any, list[Candidate]]]], set[tuple[int, int]]]:
        """Per chat, per class, per lane: the rows that may go next (oldest first), and the
        (chat, request) pairs whose card or topic is still queued (their edits wait)."""
        plan: dict[int, dict[int, dict[Any, list[Candidate]]]] = {}
        card_queued: set[tuple[int, int]] = set()
        conversation: dict[tuple[int, int], Candidate] = {}

        def add(chat_id: int, cand: Candidate) -> None:
            plan.setdefault(chat_id, {}).setdefault(cand.cls, {}).setdefault(cand.lane, []).append(cand)

        for head in heads:
            row = rows.get(head["first"])
            if row is None:
                continue
            chat_id, rid, prio = head["chat_id"], head["request_id"], int(head["priority"] or 2)
            if rid is not None and row.dedup_key.endswith((":card", ":topic")):
                card_queued.add((chat_id, rid))
            if rid is None:
                add(chat_id, Candidate(row, prio, ("desk", prio)))
            elif prio <= Priority.NEW_REQUEST:
                # One ordered lane per request for its card, topic and thread messages: the
                # oldest row goes first, in the most urgent class waiting behind it.
                key = (chat_id, rid)
                seen = conversation.get(key)
                if seen is None:
                    conversation[key] = Candidate(row, prio, self._lane(rid))
                else:
                    if row.id < seen.row.id:
                        seen.row = row
                    seen.cls = min(seen.cls, prio)
            else:
                add(chat_id, Candidate(row, prio, self._lane(rid)))
        for (chat_id, _), cand in conversation.items():
            add(chat_id, cand)
        for classes in plan.values():
            for lanes in classes.values():
                for cands in lanes.values():
                    cands.sort(key=lambda c: c.row.id)
        return plan, card_queued

    def _ready(self, cand: Candidate, chat_id: int, wall: datetime,
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

    @staticmethod
    def _rotate_in(state: ChatState, cls: int, lanes: dict[Any, list[Candidate]]) -> None:
        """Drop lanes with nothing left; new lanes join at the back, oldest row first."""
        rotation = state.rotation.setdefault(cls, {})
        for lane in [lane for lane in rotation if lane not in lanes]:
            del rotation[lane]
        for lane in sorted((lane for lane in lanes if lane not in rotation),
                           key=lambda lane: lanes[lane][0].row.id):
            rotation[lane] = None

    async def _claim(self, row: Head) -> bool:
        lease_until = utcnow() + timedelta(seconds=self.limits.lease_seconds)
        won = await TelegramOutbox.filter(
            id=row.id, status=row.status, attempts=row.attempts
        ).update(status="sending", attempts=row.attempts + 1, not_before=lease_until)
        if won:
            if row.status == "sending":
                log.warning("retrying row %s left in `sending` (a sender died mid-call)", row.id)
            row.status, row.attempts, row.not_before = "sending", row.attempts + 1, lease_until
        return bool(won)
