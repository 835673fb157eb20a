"""Request events in the admin group and for the customer: the card (in its own forum topic
on a forum), the card and summary edits, the topic's name and state, a card for a request
taken from a summary, and the customer's notice when a request is taken, completed or
closed."""

from __future__ import annotations

from typing import Any

from core import events
from db.models import Event, MessageType, TelegramOutbox, TelegramThread, User
from telegram_delivery import cards
from telegram_delivery.contract import Delivery, Kind, MessageLink, delivery_of
from telegram_delivery.outbox import Priority
from telegram_delivery.relay.base import RelayBase


class RequestEvents(RelayBase):
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
        # The queued card first, then the thread: the sender marks a card sent and records
        # its thread in one transaction, so a card leaving the queue between the two looks
        # is seen by the second. (The other order missed a card sent in between, and a
        # second card went out.)
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
        if await TelegramThread.filter(request_id=request_id, card_message_id__isnull=False).exists():
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
