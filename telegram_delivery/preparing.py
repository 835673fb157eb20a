"""The sender's preparation of a row: what is only known at send time (the card's or
summary's current text, the message to edit, the request's topic or card to reply to, the
file to upload, the chart to draw). A row whose edit changes nothing, or that a newer row
supersedes, is closed without a call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from db.models import TelegramOutbox, TelegramThread
from telegram_delivery.contract import Delivery
from telegram_delivery.lookups import (
    card_queued,
    last_render,
    last_topic_state,
    load_request_data,
    newer_copy_change,
    newer_edit_pending,
    render_hash,
    summary_entries,
    summary_render,
    thread_by_link,
    utcnow,
)

EDIT_KINDS = ("card_edit", "summary_edit", "topic_edit", "topic_state")


class Preparing:
    """Mixed into telegram_delivery.sender.Sender (uses its `limits`, `lang`, `not_forum`,
    `_skip`, `_close` and `_set_pending`)."""

    async def _prepare(self, row: TelegramOutbox, payload: dict[str, Any],
                       delivery: Delivery) -> dict[str, Any] | None:
        """Resolve what is only known at send time: the card's or summary's current text, the
        message id to edit, the request's topic, files to upload. None: nothing to send (the
        row is closed, or put back to wait)."""
        from telegram_delivery import cards

        request_id = delivery.request_id or row.request_id
        kind = delivery.kind
        if kind in EDIT_KINDS and await newer_edit_pending(row):
            await self._skip(row, "superseded by a newer edit")
            return None
        if delivery.target and await newer_copy_change(row, delivery.target):
            await self._skip(row, "superseded by a newer edit of the message")
            return None
        if kind == "summary":
            entries = await summary_entries(row.chat_id, list(delivery.requests))
            payload["text"], keyboard = cards.summary_message(entries, self.lang)
            payload.pop("reply_markup", None)
            if keyboard:
                payload["reply_markup"] = keyboard
        elif kind == "summary_edit":
            mid = int(delivery.summary or 0)
            ids = await TelegramThread.filter(chat_id=row.chat_id, summary_message_id=mid).order_by(
                "request_id").values_list("request_id", flat=True)
            entries = await summary_entries(row.chat_id, list(ids))
            payload["text"], keyboard = cards.summary_message(entries, self.lang)
            payload.pop("reply_markup", None)
            if keyboard:
                payload["reply_markup"] = keyboard
            payload["message_id"] = mid
            if await summary_render(row.chat_id, mid) == render_hash(payload):
                await self._skip(row, "summary unchanged")
                return None
        elif kind in ("topic_edit", "topic_state"):
            return await self._prepare_topic(row, payload, kind, int(request_id))
        elif delivery.render_card or kind in ("card", "card_edit"):
            data = await load_request_data(int(request_id))
            if kind == "card_edit":
                thread = await TelegramThread.filter(request_id=request_id).first() if data else None
                if thread is None and data is None:
                    thread = await thread_by_link(row.chat_id, int(request_id))
                if thread is None or not thread.card_message_id:
                    if data is not None and await card_queued(row.chat_id, int(request_id)):
                        # The card is on its way (and renders the truth when it goes); this
                        # edit checks again afterwards in case it changed meanwhile.
                        await self._set_pending(row, utcnow() + timedelta(seconds=self.limits.edit_wait),
                                                "waiting for the card", count_attempt=False)
                        return None
                    await self._close(row, "merged", "no card to edit")
                    return None
                payload["message_id"] = thread.card_message_id
                if data is None:
                    payload["text"] = cards.deleted_card_text(int(request_id), self.lang)
                    payload.pop("reply_markup", None)
                else:
                    payload["text"] = cards.card_text(data, self.lang)
                    payload["reply_markup"] = cards.card_keyboard(data, self.lang)
                if await last_render(row.chat_id, int(request_id)) == render_hash(payload):
                    await self._skip(row, "card unchanged")
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
        if kind == "topic" and request_id:
            data = await load_request_data(int(request_id))
            if data is not None:
                payload["name"] = cards.topic_name(data, self.lang)
        if delivery.thread_of:
            thread = await TelegramThread.filter(request_id=delivery.thread_of).first()
            payload.pop("message_thread_id", None)
            if thread is not None and thread.chat_id == row.chat_id:
                if thread.topic_id:
                    payload["message_thread_id"] = thread.topic_id
                elif thread.card_message_id and kind != "card":
                    payload["reply_parameters"] = {
                        "message_id": thread.card_message_id, "allow_sending_without_reply": True,
                    }
        chart = delivery.chart
        if chart is not None:
            # A chart queued with its numbers (the digest's): drawn now, sent as a PNG.
            from aiogram.types import BufferedInputFile

            from core.charts import per_day_chart
            from core.png import render
            from core.reports import days_from_payload

            days = days_from_payload(chart.days)
            picture = render(per_day_chart(days, chart.lang or self.lang))
            payload["photo"] = BufferedInputFile(picture, filename="requests-7-days.png")
        upload = delivery.upload
        if upload is not None:
            from aiogram.types import FSInputFile

            payload[upload.field] = FSInputFile(upload.path, filename=upload.name)
        payload["chat_id"] = row.chat_id
        return payload

    async def _prepare_topic(self, row: TelegramOutbox, payload: dict[str, Any], kind: str,
                             request_id: int) -> dict[str, Any] | None:
        """A topic follows its request: renamed with the status, closed once the request is
        completed or closed, reopened when it is reopened. Decided from the database now, and
        skipped when the topic already shows it."""
        from telegram_delivery import cards

        thread = await TelegramThread.filter(request_id=request_id).first()
        data = await load_request_data(request_id)
        if thread is None or not thread.topic_id or thread.chat_id != row.chat_id or data is None:
            await self._close(row, "merged", "no topic to change")
            return None
        out: dict[str, Any] = {"chat_id": row.chat_id, "message_thread_id": thread.topic_id}
        last = await last_topic_state(row.chat_id, request_id, thread.topic_id)
        if kind == "topic_edit":
            name = cards.topic_name(data, self.lang)
            if last.get("name") == name:
                await self._skip(row, "topic name unchanged")
                return None
            out["name"] = name
            out["__method"] = "editForumTopic"
        else:
            closed = str(data.get("status")) in ("completed", "closed")
            if bool(last.get("closed")) == closed:
                await self._skip(row, "topic state unchanged")
                return None
            out["__method"] = "closeForumTopic" if closed else "reopenForumTopic"
        return out
