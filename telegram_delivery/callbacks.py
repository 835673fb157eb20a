"""Callback data of the buttons the desk sends, one spelling each: the delivery package
builds them on cards, summaries and reminders; the bot's handlers parse them (bot.keyboards
re-exports them beside the keyboards)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class RequestAction(CallbackData, prefix="req"):
    action: str  # take | done | open
    id: int


def request_callback(action: str, request_id: int) -> str:
    """A request button's callback data, `req:<action>:<id>`: the one spelling, used by the
    cards, the summaries, /queue and the scheduler's reminders; `RequestAction` parses it."""
    return RequestAction(action=action, id=request_id).pack()


class RateRequest(CallbackData, prefix="rate"):
    """A customer's 1-5 rating of request `id` (`rate:<id>:<score>`, as telegram_delivery.cards builds
    the survey buttons the relay sends with the "completed" notice)."""

    id: int
    score: int
