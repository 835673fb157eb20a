"""Edited messages in Telegram (Groosha's `message_edits` router): a customer editing a
message in the private chat, or an admin editing a reply (or a /note) in the admin group,
updates the stored message through core.message_edits; the relay then edits every other
copy (the admin group's, the customer's) and the sockets announce `message_updated`.

Only messages the desk stored are followed (their TelegramMessageLink), and only by their
author (the domain refuses anyone else). Edits made in Telegram are taken whenever they
come: Telegram already shows the new text there, so the desk must too. A banned customer's
edit is not taken and they are told so, as for their new messages (core.bans).

An edit can overtake its message: a typo fixed at once arrives in the same batch of updates,
and the bot handles both at the same time (or the message waits for the rest of its album).
The edit then waits for the message to be stored, for as long as the message is younger than
ORIGIN_GRACE. Edits of one message are applied one at a time and never older over newer
(EditOrder).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.types import Message, Update

from bot.handlers.media import text_of
from core.bans import is_banned
from core.errors import DomainError
from core.message_edits import edit_message, message_for_telegram
from core.settings import Settings
from db.models import RequestMessage, User
from telegram_delivery.texts import tr

log = logging.getLogger("helpdesk.bot.edits")


def _note_text(text: str) -> str:
    """An edited `/note text` is a note's new text without the command."""
    if text.startswith("/note"):
        return text.partition(" ")[2].strip() if " " in text else ""
    return text


# How long after a message was sent an edit of it waits for the message to be stored: more
# than an album's collection and its files' downloads take. Messages the desk never stores
# (commands, refused content) cost their edits a sleeping task this long, polling rarely.
ORIGIN_GRACE = 30.0


class EditOrder:
    """Per Telegram message, the newest edit seen (by `edit_order_key`) and a lock: edits of
    one message are applied one at a time, and an edit older than one already seen is
    dropped, whatever order the concurrent handlers reach the database in (across processes
    the database keeps the order: core.message_edits). Entries are forgotten a while after
    their message's last edit (longer than any wait in `_stored_origin`)."""

    KEEP = 2 * ORIGIN_GRACE

    def __init__(self) -> None:
        self._seen: dict[tuple[int, int], tuple[int, float, asyncio.Lock]] = {}
        self._pruned = 0.0

    def saw(self, key: tuple[int, int], order: int) -> None:
        now = time.monotonic()
        if now - self._pruned > 10.0:
            self._pruned = now
            for old in [k for k, (_, at, lock) in self._seen.items()
                        if now - at > self.KEEP and not lock.locked()]:
                del self._seen[old]
        newest, _, lock = self._seen.get(key, (order, now, asyncio.Lock()))
        self._seen[key] = (max(newest, order), now, lock)

    def is_newest(self, key: tuple[int, int], order: int) -> bool:
        return key not in self._seen or self._seen[key][0] == order

    def lock(self, key: tuple[int, int]) -> asyncio.Lock:
        return self._seen[key][2]


async def _stored_origin(
    message: Message, edits: EditOrder, key: tuple[int, int], order: int,
) -> RequestMessage | None:
    """The stored message this edit changes, waiting for it while it may still be stored
    (None at once when a newer edit of the same message came meanwhile)."""
    stored = await message_for_telegram(message.chat.id, message.message_id)
    age = (datetime.now(UTC) - message.date).total_seconds()
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + ORIGIN_GRACE - max(age, 0.0), 0.05
    while stored is None and loop.time() < deadline and edits.is_newest(key, order):
        await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
        pause = min(pause * 2, 1.0)
        stored = await message_for_telegram(message.chat.id, message.message_id)
    return stored if edits.is_newest(key, order) else None


async def on_edited_message(
    message: Message, actor: User | None, edit_order: EditOrder, event_update: Update,
    lang: str = "ru",
) -> None:
    if actor is None:
        return
    key = (message.chat.id, message.message_id)
    order = edit_order_key(message, event_update.update_id)  # aiogram passes every handler the update
    edit_order.saw(key, order)
    stored = await _stored_origin(message, edit_order, key, order)
    if stored is None:
        return
    async with edit_order.lock(key):
        if not edit_order.is_newest(key, order):
            return
        await _apply(message, actor, lang, stored, order)


def edit_order_key(message: Message, update_id: int) -> int:
    """Where an edit stands among the edits of its message, as one number the database
    compares (core.message_edits): its `edit_date` first, then its update id within the same
    second. Not the update id alone: after a week without updates Telegram starts the ids
    again from a random value, and a later edit could then carry a smaller one."""
    edited = int(message.edit_date or time.time())
    return (edited << 32) | (update_id & 0xFFFFFFFF)


async def _apply(message: Message, actor: User, lang: str, stored: RequestMessage,
                 order: int) -> None:
    if is_banned(actor):  # nothing changes; the same polite reply as for a new message
        await message.answer(tr("banned", lang), parse_mode="HTML")
        return
    text = text_of(message)
    if stored.is_internal:
        text = _note_text(text)
    if not text:  # a caption removed from a file: the stored text stays
        return
    try:
        await edit_message(actor, stored.request_id, stored.id, text, windowed=False,
                           telegram_order=order)
    except DomainError as exc:
        log.info("edit of Telegram message %s in %s not applied: %s", message.message_id,
                 message.chat.id, exc.message)


def get_router(settings: Settings) -> Router:
    router = Router(name="message_edits")
    in_scope = (F.chat.type == "private") | (F.chat.id == settings.telegram_admin_chat_id)
    router.edited_message.register(on_edited_message, in_scope, ~F.from_user.is_bot)
    return router
