"""Telegram groups bound to an admin chat (AdminChat.telegram_chat_id): a staff member's
message there is posted to the chat as them (REST and WebSocket see it; the relay sends
chat messages from other channels back to the group). Unlinked people get one hint."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.handlers.lookup import InBoundChat, OncePerUser, remember
from bot.handlers.media import files_of, text_of
from core.chats import post_chat_message
from core.errors import PermissionDenied
from db.models import AdminChat, MessageType, Source, User
from telegram_delivery.texts import tr


async def on_bound_chat_message(
    message: Message, admin_chat: AdminChat, actor: User | None, lang: str, hints: OncePerUser,
) -> None:
    who = message.from_user
    if who is None:
        return
    files = files_of(message)
    content = text_of(message) or ", ".join(f.name for f in files)
    if not content:
        return
    if actor is None:
        if hints.first_time("bridge", message.chat.id, who.id):
            await message.reply(
                tr("bridge_unlinked", lang, name=who.full_name, chat=admin_chat.name), parse_mode="HTML"
            )
        return
    kind = MessageType.text
    if files:
        kind = MessageType.image if message.photo else MessageType.file
    try:
        msg = await post_chat_message(actor, admin_chat.id, content, message_type=kind, source=Source.telegram)
    except PermissionDenied as exc:
        if hints.first_time("bridge-denied", message.chat.id, who.id):
            await message.reply(exc.message, parse_mode=None)
        return
    await remember(message, chat_message_id=msg.id)


def get_router() -> Router:
    router = Router(name="chat_bridge")
    router.message.filter(F.chat.type.in_({"group", "supergroup"}))
    router.message.register(
        on_bound_chat_message, ~F.text.startswith("/"), ~F.from_user.is_bot, InBoundChat()
    )
    return router
