"""Canned responses in a request's thread in the admin group: `/r SHORTCUT` sends one to
the customer as the admin's reply; `/r` alone lists them with a button each.

Sending is core.canned.send_canned, which stores the reply through the one thread writer
(core.requests.post_message): the relay delivers it to the customer like a typed reply.
The group sees a confirmation with the text that went out (the relay does not echo
Telegram-made replies back into the group).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.handlers.lookup import remember, request_for_group_message
from bot.keyboards import CannedSend, canned_keyboard
from bot.middlewares import CallbackReply
from core import canned
from core.permissions import require_staff
from core.settings import Settings
from db.models import Source, User
from telegram_delivery.texts import plain, tr

# Buttons under one /r list (Telegram allows 100; a phone screen far fewer).
LIST_LIMIT = 30


async def on_canned(message: Message, command: CommandObject, actor: User | None, lang: str) -> None:
    if actor is None:
        await message.reply(tr("not_linked", lang), parse_mode="HTML")
        return
    require_staff(actor)
    request_id = await request_for_group_message(message)
    if request_id is None:
        await message.reply(tr("canned_no_thread", lang), parse_mode="HTML")
        return
    shortcut = (command.args or "").strip().split(maxsplit=1)[0] if (command.args or "").strip() else ""
    if not shortcut:
        total, items = await canned.list_canned(actor, page_size=LIST_LIMIT)
        if not total:
            await message.reply(tr("canned_none", lang), parse_mode="HTML")
            return
        lines = [tr("canned_list_header", lang, id=request_id)]
        lines += [tr("canned_list_line", lang, shortcut=i.shortcut, language=i.language, title=i.title)
                  for i in items]
        if total > len(items):
            lines.append(tr("canned_list_more", lang, count=total - len(items)))
        await message.reply("\n".join(lines), parse_mode="HTML",
                            reply_markup=canned_keyboard(items, request_id))
        return
    msg, item = await canned.send_canned(actor, request_id, shortcut=shortcut, source=Source.telegram)
    await remember(message, request_id=request_id, request_message_id=msg.id)
    await message.reply(tr("canned_sent", lang, id=request_id, shortcut=item.shortcut, text=msg.content),
                        parse_mode="HTML")


async def on_canned_button(
    query: CallbackQuery, callback_data: CannedSend, actor: User | None, lang: str,
    callback_reply: CallbackReply,
) -> None:
    if actor is None:
        callback_reply.alert(plain("not_linked", lang))
        return
    msg, item = await canned.send_canned(
        actor, callback_data.request, canned_id=callback_data.id, source=Source.telegram
    )
    callback_reply.toast(plain("canned_sent_toast", lang, id=callback_data.request, shortcut=item.shortcut))
    if query.message is not None:
        await query.message.answer(
            tr("canned_sent", lang, id=callback_data.request, shortcut=item.shortcut, text=msg.content),
            parse_mode="HTML",
        )


def get_router(settings: Settings) -> Router:
    router = Router(name="canned_responses")
    router.message.filter(F.chat.id == settings.telegram_admin_chat_id)
    router.message.register(on_canned, Command("r"))
    router.callback_query.register(on_canned_button, CannedSend.filter())
    return router
