"""Thread messages to Telegram (the customer's private chat, the request's thread in the
admin group; media copied from Telegram or uploaded from storage) and staff chat messages to
the group bound to their AdminChat."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from db.models import (
    AdminChat,
    Event,
    MessageType,
    RequestAttachment,
    RequestMessage,
    SenderType,
    Source,
    TelegramMessageLink,
)
from telegram_delivery import cards
from telegram_delivery.contract import Delivery, Kind, MessageLink, Upload, content_version
from telegram_delivery.outbox import cut_note
from telegram_delivery.relay.base import Postpone, RelayBase, caption_of, escape

# A Telegram media message (or album) is stored file by file and linked afterwards; the
# relay waits up to this long for the links, then falls back to uploading the stored files.
MEDIA_WAIT_SECONDS = 5.0


class MessageEvents(RelayBase):
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
                raise Postpone()
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
            link=MessageLink(request_id=rid, request_message_id=msg.id,
                             version=content_version(msg.content)),
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
                    payload["caption"] = caption_of(msg, head)
                    payload["parse_mode"] = "HTML"
                await self._enqueue(chat_id, "copyMessage", payload,
                                    delivery.with_link(kind="caption" if n == 1 else "media"),
                                    dedup_key=key if n == 1 else f"{key}:{n}", request_id=rid, more=more)
            return
        attachments = await RequestAttachment.filter(message_id=msg.id).order_by("id")
        content = (msg.content or "").strip()
        body = f"{head}\n{escape(content)}" if content else head
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

    async def on_chat_message(self, ev: Event, data: dict[str, Any]) -> None:
        if data.get("source") == Source.telegram:
            return
        chat_id = data.get("chat")
        chat = await AdminChat.filter(id=chat_id).first() if chat_id else None
        if chat is None or not chat.telegram_chat_id:
            return
        body = f"<b>{cards.text('chat_relay', self.group_lang, name=data.get('sender', ''))}</b>\n{escape(str(data.get('message', '')))}"
        await self._enqueue(
            chat.telegram_chat_id, "sendMessage",
            {"text": body},
            Delivery(kind=Kind.CHAT, link=MessageLink(chat_message_id=data.get("id"))),
            dedup_key=f"ev:{ev.id}:chat",
        )
