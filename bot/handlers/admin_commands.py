"""Admin commands: /queue, /mine, /stats, /help, /note, /link, /bind, /assign, /ban, /unban.

Each parses its arguments, calls one domain service and renders the answer; who may do
what is decided by core (require_staff, link_telegram's director rule, ...).
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from tortoise.functions import Count

from bot.handlers.lookup import remember, request_for_group_message
from bot.handlers.render import not_linked, request_line
from bot.keyboards import mine_keyboard, queue_keyboard
from core.bans import ban_customer, unban_customer
from core.chats import bind_telegram_chat
from core.digest import build_digest_text
from core.permissions import is_staff, require_staff
from core.requests import RequestFilters, list_requests, post_message, reassign_request, stats
from core.users import link_telegram
from db.models import CustomerRequest, Source, Status, User
from telegram_delivery.texts import tr

log = logging.getLogger("helpdesk.bot")

QUEUE_SHOWN = 10


async def _staff(message: Message, actor: User | None, lang: str) -> User | None:
    """The acting staff account; an unlinked user is told how to get linked."""
    if actor is None:
        await message.reply(not_linked(lang, message.from_user, message.chat), parse_mode="HTML")
        return None
    require_staff(actor)
    return actor


async def on_queue(message: Message, actor: User | None, lang: str) -> None:
    if await _staff(message, actor, lang) is None:
        return
    # Oldest first: whoever has waited longest is served first.
    waiting = CustomerRequest.filter(status=Status.open, assigned_admin_id__isnull=True)
    total = await waiting.count()
    if not total:
        await message.reply(tr("queue_empty", lang), parse_mode="HTML")
        return
    shown = await waiting.order_by("created_at", "id").limit(QUEUE_SHOWN)
    lines = [tr("queue_header", lang, count=total)] + [request_line(r, lang) for r in shown]
    if total > len(shown):
        lines.append(tr("queue_more", lang, count=total - len(shown)))
    await message.reply("\n".join(lines), parse_mode="HTML", reply_markup=queue_keyboard(shown, lang))


async def on_mine(message: Message, actor: User | None, lang: str) -> None:
    if (staff := await _staff(message, actor, lang)) is None:
        return
    total, rows = await list_requests(
        staff, RequestFilters(status=Status.in_progress, assigned_admin_id=staff.id)
    )
    if not total:
        await message.reply(tr("mine_empty", lang), parse_mode="HTML")
        return
    lines = [tr("mine_header", lang, count=total)] + [request_line(r, lang) for r in rows]
    await message.reply("\n".join(lines), parse_mode="HTML", reply_markup=mine_keyboard(rows, lang))


async def _digest_text(lang: str) -> str | None:
    """The daily digest's text (core/digest.py), the same the scheduler posts."""
    try:
        return await build_digest_text(lang) or None
    except Exception:  # the digest is a nicety; /stats still answers without it
        log.exception("digest failed; rendering /stats directly")
        return None


async def on_stats(message: Message, actor: User | None, lang: str) -> None:
    if await _staff(message, actor, lang) is None:
        return
    text = await _digest_text(lang)
    if text is None:
        numbers = await stats()
        lines = [tr("stats", lang, **numbers)]
        load = (
            await CustomerRequest.filter(status=Status.in_progress, assigned_admin_id__isnull=False)
            .group_by("assigned_admin_id")
            .annotate(n=Count("id"))
            .values("assigned_admin_id", "n")
        )
        if load:
            names = {u.id: u.full_name for u in await User.filter(id__in=[r["assigned_admin_id"] for r in load])}
            lines.append(tr("stats_load_header", lang))
            for row in sorted(load, key=lambda r: -r["n"]):
                lines.append(tr("stats_load_line", lang, name=names.get(row["assigned_admin_id"], "?"), count=row["n"]))
        text = "\n".join(lines)
    await message.reply(text, parse_mode="HTML")


async def on_help(message: Message, actor: User | None, lang: str) -> None:
    key = "admin_help" if is_staff(actor) or message.chat.type != "private" else "customer_help"
    await message.reply(tr(key, lang), parse_mode="HTML")


async def on_note(message: Message, command: CommandObject, actor: User | None, lang: str) -> None:
    if await _staff(message, actor, lang) is None:
        return
    text = (command.args or "").strip()
    if not text:
        await message.reply(tr("note_usage", lang), parse_mode="HTML")
        return
    request_id = await request_for_group_message(message)
    if request_id is None:
        await message.reply(tr("note_no_thread", lang), parse_mode="HTML")
        return
    note = await post_message(actor, request_id, text, is_internal=True, source=Source.telegram)
    await remember(message, request_id=request_id, request_message_id=note.id)
    await message.reply(tr("note_ok", lang, id=request_id), parse_mode="HTML")


async def on_link(message: Message, command: CommandObject, actor: User | None, lang: str) -> None:
    """/link <username> as a reply to the person's message, or /link <username> <telegram_id>."""
    if actor is None:
        await message.reply(not_linked(lang, message.from_user, message.chat), parse_mode="HTML")
        return
    args = (command.args or "").split()
    target = message.reply_to_message.from_user if message.reply_to_message else None
    telegram_id: int | None = None
    telegram_username: str | None = None
    if len(args) == 2 and args[1].lstrip("-").isdigit():
        telegram_id = int(args[1])
    elif len(args) == 1 and target is not None and not target.is_bot:
        telegram_id, telegram_username = target.id, target.username
    if not args or telegram_id is None:
        await message.reply(tr("link_usage", lang), parse_mode="HTML")
        return
    user = await link_telegram(actor, args[0].lstrip("@"), telegram_id, telegram_username)
    await message.reply(tr("link_ok", lang, telegram_id=telegram_id, username=user.username), parse_mode="HTML")


async def on_bind(message: Message, command: CommandObject, actor: User | None, lang: str) -> None:
    """/bind <admin chat id> in the Telegram group to bind."""
    if await _staff(message, actor, lang) is None:
        return
    arg = (command.args or "").strip()
    if message.chat.type == "private" or not arg.isdigit():
        await message.reply(tr("bind_usage", lang), parse_mode="HTML")
        return
    chat = await bind_telegram_chat(actor, int(arg), message.chat.id)
    await message.reply(tr("bind_ok", lang, name=chat.name), parse_mode="HTML")


async def on_assign(message: Message, command: CommandObject, actor: User | None, lang: str) -> None:
    """/assign <request id> <username>: a director reassigns a request."""
    if await _staff(message, actor, lang) is None:
        return
    args = (command.args or "").split()
    if len(args) != 2 or not args[0].lstrip("#").isdigit():
        await message.reply(tr("assign_usage", lang), parse_mode="HTML")
        return
    username = args[1].lstrip("@")
    target = await User.filter(username=username).first()
    if target is None:
        await message.reply(tr("user_not_found", lang, username=username), parse_mode="HTML")
        return
    req = await reassign_request(actor, int(args[0].lstrip("#")), target.id)
    await message.reply(tr("assign_ok", lang, id=req.id, name=target.full_name), parse_mode="HTML")


async def on_ban(message: Message, command: CommandObject, actor: User | None, lang: str) -> None:
    """/ban <customer id> and /unban <customer id>: a director blocks a customer (or lifts
    the block); core.bans decides who may."""
    if await _staff(message, actor, lang) is None:
        return
    arg = (command.args or "").strip().lstrip("#")
    if not (arg.isascii() and arg.isdigit() and 0 < int(arg) < 2**31):  # a user id it can be
        await message.reply(tr("ban_usage", lang), parse_mode="HTML")
        return
    banning = command.command.lower() == "ban"
    user = await (ban_customer if banning else unban_customer)(actor, int(arg))
    await message.reply(
        tr("ban_ok" if banning else "unban_ok", lang, name=user.full_name, id=user.id),
        parse_mode="HTML",
    )


def get_router() -> Router:
    router = Router(name="admin_commands")
    router.message.register(on_queue, Command("queue"))
    router.message.register(on_mine, Command("mine"))
    router.message.register(on_stats, Command("stats"))
    router.message.register(on_help, Command("help"))
    router.message.register(on_note, Command("note"))
    router.message.register(on_link, Command("link"))
    router.message.register(on_bind, Command("bind"))
    router.message.register(on_assign, Command("assign"))
    router.message.register(on_ban, Command("ban", "unban"))
    return router

