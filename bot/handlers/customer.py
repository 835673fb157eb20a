"""Customers in a private chat: /start (language), /new (FSM), /my (switch the active
request), /cancel, and plain messages/photos/documents/albums continuing the active request."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.handlers.lookup import remember, request_for_reply
from bot.handlers.media import AlbumBuffer, FileTooBig, has_content, post_messages
from bot.handlers.render import short
from bot.keyboards import (
    ActiveRequestChoice,
    CategoryChoice,
    LanguageChoice,
    active_request_keyboard,
    category_keyboard,
    language_keyboard,
)
from bot.middlewares import CallbackReply, CustomerLimits, CustomerRateLimit
from core.bans import is_banned
from core.errors import Conflict, NotFound
from core.limits import current as current_limits
from core.requests import RequestFilters, create_request, get_request, list_requests
from core.serializers import customer_request_data
from core.settings import Settings
from core.users import set_active_request, set_language
from db.models import Category, Source, User
from telegram_delivery.texts import plain, status_label, tr


class NewRequest(StatesGroup):
    title = State()
    description = State()
    category = State()


async def on_start(message: Message, actor: User, lang: str, state: FSMContext) -> None:
    await state.clear()
    await message.answer(
        tr("welcome", lang, name=actor.full_name) + "\n\n" + tr("lang_prompt", lang),
        parse_mode="HTML", reply_markup=language_keyboard(),
    )


async def on_language(
    query: CallbackQuery, callback_data: LanguageChoice, actor: User, callback_reply: CallbackReply,
) -> None:
    await set_language(actor, callback_data.code)
    callback_reply.toast(plain("lang_set", actor.language))
    if query.message is not None:
        await query.message.answer(
            tr("lang_set", actor.language) + "\n\n" + tr("welcome", actor.language, name=actor.full_name),
            parse_mode="HTML",
        )


async def on_new(
    message: Message, actor: User, lang: str, state: FSMContext, customer_limits: CustomerLimits,
) -> None:
    await state.clear()
    if is_banned(actor):  # said now, not after a title and a description (core.bans)
        await message.answer(tr("banned", lang), parse_mode="HTML")
        return
    if message.from_user is not None:
        # Said now rather than after the customer has typed a title and a description.
        decision = await customer_limits.new_requests.peek(str(message.from_user.id))
        if not decision.allowed:
            await _refuse_new_request(message, lang, customer_limits, decision.retry_after)
            return
    await state.set_state(NewRequest.title)
    await message.answer(tr("new_ask_title", lang), parse_mode="HTML")


def _minutes(seconds: int) -> int:
    return max(1, -(-seconds // 60))


async def _refuse_new_request(
    message: Message, lang: str, limits: CustomerLimits, retry_after: int
) -> None:
    assert message.from_user is not None
    if await limits.may_notify("new_requests", message.from_user.id):
        await message.answer(
            tr("rate_new_requests", lang, n=limits.new_requests.limit,
               minutes=_minutes(retry_after)),
            parse_mode="HTML",
        )


async def on_cancel(message: Message, lang: str, state: FSMContext) -> None:
    if await state.get_state() is None:
        await message.answer(tr("nothing_to_cancel", lang), parse_mode="HTML")
        return
    await state.clear()
    await message.answer(tr("new_cancelled", lang), parse_mode="HTML")


async def on_title(message: Message, lang: str, state: FSMContext) -> None:
    title = (message.text or "").strip()
    if not title:
        await message.answer(tr("new_title_empty", lang), parse_mode="HTML")
        return
    if len(title) > current_limits().title:
        await message.answer(tr("new_title_too_long", lang, length=len(title), max=current_limits().title),
                             parse_mode="HTML")
        return
    await state.update_data(title=title)
    await state.set_state(NewRequest.description)
    await message.answer(tr("new_ask_description", lang), parse_mode="HTML")


async def on_description(message: Message, lang: str, state: FSMContext) -> None:
    description = (message.text or message.caption or "").strip()
    if not description:
        await message.answer(tr("new_description_empty", lang), parse_mode="HTML")
        return
    await state.update_data(description=description)
    await state.set_state(NewRequest.category)
    await message.answer(tr("new_ask_category", lang), parse_mode="HTML", reply_markup=category_keyboard(lang))


async def on_category_text(message: Message, lang: str) -> None:
    await message.answer(tr("new_use_buttons", lang), parse_mode="HTML")


async def on_category(
    query: CallbackQuery, callback_data: CategoryChoice, actor: User, lang: str, state: FSMContext,
    callback_reply: CallbackReply, customer_limits: CustomerLimits,
) -> None:
    """Creates the request (BOT_NEW_REQUESTS_PER_HOUR per Telegram user: over it, nothing
    is created and the alert says when the next one is possible)."""
    data = await state.get_data()
    if await state.get_state() != NewRequest.category.state or "title" not in data:
        callback_reply.alert(plain("new_expired", lang))
        return
    category = callback_data.code if callback_data.code in Category.__members__ else Category.general
    decision = await customer_limits.new_requests.hit(str(query.from_user.id))
    if not decision.allowed:
        await state.clear()
        callback_reply.alert(plain("rate_new_requests", lang, n=customer_limits.new_requests.limit,
                                   minutes=_minutes(decision.retry_after)))
        return
    req = await create_request(
        actor, title=data["title"], description=data["description"], category=category,
        source=Source.telegram,
    )
    await state.clear()
    await set_active_request(actor, req.id)
    text = tr("new_created", lang, id=req.id, title=req.title)
    if query.message is not None:
        await query.message.answer(text, parse_mode="HTML")
    callback_reply.toast(plain("new_created", lang, id=req.id, title=req.title[:80]))


async def on_my(message: Message, actor: User, lang: str) -> None:
    total, rows = await list_requests(actor, RequestFilters(customer_id=actor.id))
    if not total:
        await message.answer(tr("my_empty", lang), parse_mode="HTML")
        return
    # The customer-facing serializer, as on customer REST and the web page.
    views = [customer_request_data(r) for r in rows]
    lines = [tr("my_header", lang)] + [
        tr("my_line", lang, marker="★" if v["id"] == actor.active_request_id else "•", id=v["id"],
           title=short(v["title"]), status=status_label(v["status"], lang))
        for v in views
    ]
    await message.answer(
        "\n".join(lines), parse_mode="HTML",
        reply_markup=active_request_keyboard(rows, actor.active_request_id),
    )


async def on_switch_active(
    query: CallbackQuery, callback_data: ActiveRequestChoice, actor: User, lang: str,
    callback_reply: CallbackReply,
) -> None:
    await set_active_request(actor, callback_data.id)
    req = await get_request(actor, callback_data.id)
    callback_reply.toast(plain("active_switched", lang, id=req.id, title=req.title[:80]))
    if query.message is not None:
        await query.message.answer(tr("active_switched", lang, id=req.id, title=req.title), parse_mode="HTML")


async def on_message(
    message: Message, actor: User, lang: str, bot: Bot, settings: Settings, albums: AlbumBuffer,
) -> None:
    """A plain message continues the request it replies to, or the active one."""
    if not has_content(message):
        await message.answer(tr("unsupported_content", lang), parse_mode="HTML")
        return
    parts = await albums.collect(message)
    if parts is None:
        return
    if is_banned(actor):  # nothing is stored; one reply per message or album
        await message.answer(tr("banned", lang), parse_mode="HTML")
        return
    request_id = await request_for_reply(message) or actor.active_request_id
    if request_id is None:
        await message.answer(tr("no_active_request", lang), parse_mode="HTML")
        return
    try:
        message_id = await post_messages(bot, settings, actor, request_id, parts)
    except FileTooBig as exc:
        await message.answer(tr("file_too_large", lang, name=exc.name, mb=settings.max_upload_mb), parse_mode="HTML")
        return
    except NotFound:
        await set_active_request(actor, None)
        await message.answer(tr("no_active_request", lang), parse_mode="HTML")
        return
    except Conflict:
        await message.answer(tr("request_closed_hint", lang, id=request_id), parse_mode="HTML")
        return
    for part in parts:
        await remember(part, request_id=request_id, request_message_id=message_id)


def _has_account(event: object, actor: User | None = None) -> bool:
    return actor is not None


def get_router() -> Router:
    router = Router(name="customers")
    router.message.filter(F.chat.type == "private", _has_account)
    router.callback_query.filter(F.message.chat.type == "private", _has_account)
    # Abuse limits per Telegram user, around every handler of this router.
    rate_limit = CustomerRateLimit()
    router.message.middleware(rate_limit)
    router.callback_query.middleware(rate_limit)
    m = router.message
    m.register(on_start, CommandStart())
    m.register(on_new, Command("new"))
    m.register(on_cancel, Command("cancel"))
    m.register(on_my, Command("my"))
    not_command = ~F.text.startswith("/")
    m.register(on_title, NewRequest.title, not_command)
    m.register(on_description, NewRequest.description, not_command)
    m.register(on_category_text, NewRequest.category, not_command)
    m.register(on_message, not_command)
    cb = router.callback_query
    cb.register(on_language, LanguageChoice.filter())
    cb.register(on_category, CategoryChoice.filter())
    cb.register(on_switch_active, ActiveRequestChoice.filter())
    return router
