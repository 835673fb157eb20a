"""Edits and deletions of a thread message (core.message_edits): every Telegram copy the
bot sent is edited in place (each part, captions too) or deleted."""

from __future__ import annotations

from typing import Any

from db.models import Event, MessageType, RequestMessage, SenderType, TelegramMessageLink
from telegram_delivery import cards
from telegram_delivery.contract import CopyTarget, Delivery, Kind
from telegram_delivery.outbox import CAPTION_LIMIT, TEXT_LIMIT, cut_note, split_html, tg_len
from telegram_delivery.relay.base import RelayBase, caption_of, escape

Change = tuple[TelegramMessageLink, str, dict[str, Any]]


async def copies_of(msg: RequestMessage, admin_chat: int | None,
                    chat_id: int | None = None) -> list[TelegramMessageLink]:
    """The Telegram copies the bot sent of `msg` (not the person's own message), in chat
    and part order (only those in `chat_id` when given). An internal note's copies outside
    the admin group (there should be none) are never touched, so an edited note cannot
    reach a customer."""
    query = TelegramMessageLink.filter(request_message_id=msg.id, kind__in=("text", "caption", "media"))
    if chat_id is not None:
        query = query.filter(chat_id=chat_id)
    links = await query.order_by("chat_id", "part", "message_id")
    if msg.is_internal:
        links = [link for link in links if link.chat_id == admin_chat]
    return links


def _header(msg: RequestMessage, chat_id: int, admin_chat: int | None, group_lang: str) -> tuple[str, str]:
    """The header key and language a copy in `chat_id` was relayed with (see on_new_message)."""
    if chat_id == admin_chat:
        if msg.is_internal:
            return "relay_internal", group_lang
        if msg.sender_type == SenderType.customer:
            return "relay_from_customer", group_lang
        return "relay_from_admin", group_lang
    return "relay_to_customer", msg.request.customer.language


def copy_changes(msg: RequestMessage, links: list[TelegramMessageLink],
                 admin_chat: int | None, group_lang: str) -> list[Change]:
    """The calls that bring every copy in `links` to `msg.content`: each part of a split text (a
    text now longer than the parts it had is cut at the last one with the "full text on
    request #N" note; parts a shorter text no longer needs are deleted), and the caption of
    copied or uploaded media. `msg` comes with its request's customer and its sender."""
    by_chat: dict[int, list[TelegramMessageLink]] = {}
    for link in links:
        by_chat.setdefault(link.chat_id, []).append(link)
    name = msg.sender.full_name if msg.sender else ""
    changes: list[Change] = []
    for chat_id, chat_links in by_chat.items():
        header, lang = _header(msg, chat_id, admin_chat, group_lang)
        head = cards.text(header, lang, name=name, id=msg.request_id)
        texts = [link for link in chat_links if link.kind == "text"]
        captions = [link for link in chat_links if link.kind == "caption"]
        if texts:
            stripped = (msg.content or "").strip()
            body = f"{head}\n{escape(stripped)}" if stripped else head
            parts = split_html(body, TEXT_LIMIT, max_parts=len(texts),
                               more=cut_note(msg.request_id, lang))
            for n, link in enumerate(texts):
                if n < len(parts):
                    changes.append((link, "editMessageText", {"text": parts[n], "parse_mode": "HTML"}))
                else:
                    changes.append((link, "deleteMessage", {}))
        for link in captions:
            caption = caption_of(msg, head)
            if tg_len(caption) > CAPTION_LIMIT:
                caption = split_html(caption, CAPTION_LIMIT, max_parts=1,
                                     more=cut_note(msg.request_id, lang))[0]
            changes.append((link, "editMessageCaption", {"caption": caption, "parse_mode": "HTML"}))
    return changes


class EditEvents(RelayBase):
    async def on_message_updated(self, ev: Event, data: dict[str, Any]) -> None:
        """Edit every copy in place (copy_changes). The text is the one of this event; older
        pending edits of the same copy collapse into the newest at send time
        (telegram_delivery.sender), and a copy still on its way when this event came is
        brought up to date once it is sent (telegram_delivery.outcomes)."""
        msg = await RequestMessage.filter(id=data.get("id")).select_related("request__customer", "sender").first()
        if msg is None or msg.is_deleted or msg.message_type == MessageType.system:
            return
        content = str(data.get("content", msg.content) or "")
        msg.content = content
        links = await copies_of(msg, self.admin_chat)
        for link, method, params in copy_changes(msg, links, self.admin_chat, self.group_lang):
            await self._change_copy(ev, link, method, params)

    async def on_message_deleted(self, ev: Event, data: dict[str, Any]) -> None:
        """Delete every copy the bot sent (each part, each file). The person's own message
        in their chat stays: it is theirs, and Telegram lets them delete it."""
        msg = await RequestMessage.filter(id=data.get("id")).first()
        if msg is None:
            return
        for link in await copies_of(msg, self.admin_chat):
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
