"""The satisfaction survey in a customer's private chat: the 1-5 buttons the relay sends
with the "completed" notice, then an optional comment (the next message, or /skip).

A press calls core.csat.rate_request (its rules: own request, only while completed; a
refusal becomes an alert through CallbackGuard); pressing again changes the rating.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.keyboards import RateRequest
from bot.middlewares import CallbackReply, CustomerRateLimit
from core import csat
from db.models import User
from telegram_delivery import cards
from telegram_delivery.texts import plain, tr


class RatingComment(StatesGroup):
    text = State()


async def on_rate(
    query: CallbackQuery, callback_data: RateRequest, actor: User, lang: str, state: FSMContext,
    callback_reply: CallbackReply,
) -> None:
    req = await csat.rate_request(actor, callback_data.id, callback_data.score)
    callback_reply.toast(plain("csat_thanks", lang, id=req.id, score=req.rating))
    if query.message is None:
        return
    try:  # mark the chosen score on the buttons; the rating stands even if this fails
        markup = InlineKeyboardMarkup.model_validate(cards.rating_keyboard(req.id, req.rating))
        await query.message.edit_reply_markup(reply_markup=markup)
    except TelegramAPIError:
        pass
    await state.set_state(RatingComment.text)
    await state.update_data(rating_request=req.id, rating_score=req.rating)
    await query.message.answer(
        tr("csat_thanks", lang, id=req.id, score=req.rating) + "\n" + tr("csat_ask_comment", lang),
        parse_mode="HTML",
    )


async def on_comment(message: Message, actor: User, lang: str, state: FSMContext) -> None:
    data = await state.get_data()
    await state.clear()
    request_id, score = data.get("rating_request"), data.get("rating_score")
    if request_id is None or score is None:
        return
    req = await csat.rate_request(actor, int(request_id), int(score), message.text or "")
    await message.answer(tr("csat_comment_saved", lang, id=req.id), parse_mode="HTML")


async def on_skip(message: Message, lang: str, state: FSMContext) -> None:
    await state.clear()
    await message.answer(tr("csat_comment_skipped", lang), parse_mode="HTML")


def _has_account(event: object, actor: User | None = None) -> bool:
    return actor is not None


def get_router() -> Router:
    """Include before the customers' router: in the comment state the next message is the
    comment, not a message to the request."""
    router = Router(name="satisfaction")
    router.message.filter(F.chat.type == "private", _has_account)
    router.callback_query.filter(F.message.chat.type == "private", _has_account)
    # The customers' abuse limit (BOT_MESSAGES_PER_MIN) holds for presses and comments too.
    rate_limit = CustomerRateLimit()
    router.message.middleware(rate_limit)
    router.callback_query.middleware(rate_limit)
    router.callback_query.register(on_rate, RateRequest.filter())
    router.message.register(on_skip, RatingComment.text, Command("skip"))
    router.message.register(on_comment, RatingComment.text, F.text, ~F.text.startswith("/"))
    return router
