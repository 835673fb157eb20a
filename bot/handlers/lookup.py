"""Where a Telegram message belongs: which request thread, which bound admin chat.

Reads the bookkeeping the relay writes (TelegramThread, TelegramMessageLink) and records
links for inbound messages so replies to them find their request too.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import Message
from tortoise.exceptions import IntegrityError

from core.chats import chat_for_telegram
from db.models import TelegramMessageLink, TelegramThread


async def request_for_reply(message: Message) -> int | None:
    """The request of the message this one replies to (a card or a relayed/linked message)."""
    reply = message.reply_to_message
    if reply is None:
        return None
    link = await TelegramMessageLink.filter(
        chat_id=message.chat.id, message_id=reply.message_id, request_id__isnull=False
    ).first()
    if link is not None:
        return link.request_id
    thread = await TelegramThread.filter(chat_id=message.chat.id, card_message_id=reply.message_id).first()
    return thread.request_id if thread else None


async def request_for_group_message(message: Message) -> int | None:
    """The request whose thread this admin-group message is in: its forum topic, or a reply
    to its card or to a message linked to it."""
    if message.message_thread_id and message.is_topic_message:
        thread = await TelegramThread.filter(
            chat_id=message.chat.id, topic_id=message.message_thread_id
        ).first()
        if thread is not None:
            return thread.request_id
    return await request_for_reply(message)


async def topic_of(request_id: int) -> TelegramThread | None:
    return await TelegramThread.filter(request_id=request_id).first()


async def remember(
    message: Message, *, request_id: int | None = None, request_message_id: int | None = None,
    chat_message_id: int | None = None,
) -> None:
    """Link an inbound Telegram message to what it became (idempotent)."""
    try:
        await TelegramMessageLink.create(
            chat_id=message.chat.id, message_id=message.message_id, request_id=request_id,
            request_message_id=request_message_id, chat_message_id=chat_message_id, kind="origin",
        )
    except IntegrityError:
        pass


class InRequestThread(Filter):
    """Passes messages that belong to a request's thread; injects `request_id`."""

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        request_id = await request_for_group_message(message)
        return {"request_id": request_id} if request_id is not None else False


class InBoundChat(Filter):
    """Passes messages in a Telegram group bound to an admin chat; injects `admin_chat`."""

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        chat = await chat_for_telegram(message.chat.id)
        return {"admin_chat": chat} if chat is not None else False


class OncePerUser:
    """Remembers which hints were already given (per process), so a hint is shown once."""

    def __init__(self) -> None:
        self._given: set[tuple[Any, ...]] = set()

    def first_time(self, *key: Any) -> bool:
        if key in self._given:
            return False
        self._given.add(key)
        return True
