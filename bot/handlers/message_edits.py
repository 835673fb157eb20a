"""Edited messages in Telegram (Groosha's `message_edits` router): a customer editing a
message in the private chat, or an admin editing a reply (or a /note) in the admin group,
updates the stored message through core.message_edits; the relay then edits every other
copy (the admin group's, the customer's) and the sockets announce `message_updated`.

Only messages the desk stored are followed (their TelegramMessageLink), and only by their
author (the domain refuses anyone else). Edits made in Telegram are taken whenever they
come: Telegram already shows the new text there, so the desk must too. A banned customer's
edit is not taken and they are told so, as for their new messages (core.bans).
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.types import Message

from bot.handlers.media import text_of
from core.bans import is_banned
from core.errors import DomainError
from core.message_edits import edit_message, message_for_telegram
from core.settings import Settings
from db.models import User
from telegram_delivery.texts import tr

log = logging.getLogger("helpdesk.bot.edits")


def _note_text(text: str) -> str:
    """An edited `/note text` is a note's new text without the command."""
    if text.startswith("/note"):
        return text.partition(" ")[2].strip() if " " in text else ""
    return text


async def on_edited_message(message: Message, actor: User | None, lang: str = "ru") -> None:
    if actor is None:
        return
    stored = await message_for_telegram(message.chat.id, message.message_id)
    if stored is None:
        return
    if is_banned(actor):  # nothing changes; the same polite reply as for a new message
        await message.answer(tr("banned", lang), parse_mode="HTML")
        return
    text = text_of(message)
    if stored.is_internal:
        text = _note_text(text)
    if not text:  # a caption removed from a file: the stored text stays
        return
    try:
        await edit_message(actor, stored.request_id, stored.id, text, windowed=False)
    except DomainError as exc:
        log.info("edit of Telegram message %s in %s not applied: %s", message.message_id,
                 message.chat.id, exc.message)


def get_router(settings: Settings) -> Router:
    router = Router(name="message_edits")
    in_scope = (F.chat.type == "private") | (F.chat.id == settings.telegram_admin_chat_id)
    router.edited_message.register(on_edited_message, in_scope, ~F.from_user.is_bot)
    return router
