"""Admins replying in a request's thread in the admin group (its forum topic, or a reply
to its card or to a relayed message): the reply is stored as a RequestMessage and the relay
delivers it to the customer. `/note` (admin_commands) stores an internal note instead."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.types import Message

from bot.handlers.lookup import InRequestThread, OncePerUser, remember
from bot.handlers.media import AlbumBuffer, FileTooBig, has_content, post_messages
from bot.handlers.render import not_linked
from core.settings import Settings
from db.models import User
from telegram_delivery.texts import tr


async def on_thread_message(
    message: Message, request_id: int, actor: User | None, lang: str, bot: Bot,
    settings: Settings, albums: AlbumBuffer, hints: OncePerUser,
) -> None:
    if actor is None:
        if message.from_user and hints.first_time("thread", message.chat.id, message.from_user.id):
            await message.reply(not_linked(lang, message.from_user, message.chat), parse_mode="HTML")
        return
    if not has_content(message):
        return
    parts = await albums.collect(message)
    if parts is None:  # a later part of an album; the first part's handler stores it
        return
    try:
        message_id = await post_messages(bot, settings, actor, request_id, parts)
    except FileTooBig as exc:
        await message.reply(tr("file_too_large", lang, name=exc.name, mb=settings.max_upload_mb), parse_mode="HTML")
        return
    for part in parts:
        await remember(part, request_id=request_id, request_message_id=message_id)


def get_router(settings: Settings) -> Router:
    router = Router(name="admin_thread")
    router.message.filter(F.chat.id == settings.telegram_admin_chat_id)
    router.message.register(
        on_thread_message,
        ~F.text.startswith("/"),
        ~F.from_user.is_bot,
        InRequestThread(),
    )
    return router
