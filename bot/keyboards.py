"""Callback data factories and inline keyboards the handlers use.

`RequestAction` packs as `req:<action>:<id>` (`req:take:5`), the format agreed with the
relay's request cards, so a button on a card and a button under /queue are the same.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from db.models import Category, CustomerRequest
from telegram_delivery.callbacks import RateRequest, RequestAction, request_callback  # noqa: F401
from telegram_delivery.texts import category_label, plain


class LanguageChoice(CallbackData, prefix="lang"):
    code: str


class CategoryChoice(CallbackData, prefix="cat"):
    code: str


class ActiveRequestChoice(CallbackData, prefix="act"):
    id: int


def language_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[
            InlineKeyboardButton(text=plain("btn_ru", "ru"), callback_data=LanguageChoice(code="ru").pack()),
            InlineKeyboardButton(text=plain("btn_en", "en"), callback_data=LanguageChoice(code="en").pack()),
        ]]
    )


def category_keyboard(lang: str) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(text=category_label(c, lang), callback_data=CategoryChoice(code=c.value).pack())
        for c in Category
    ]
    return InlineKeyboardMarkup(inline_keyboard=[buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def take_button(request_id: int, lang: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=f"{plain('btn_take', lang)} #{request_id}",
        callback_data=request_callback("take", request_id),
    )


def queue_keyboard(requests: list[CustomerRequest], lang: str) -> InlineKeyboardMarkup | None:
    if not requests:
        return None
    buttons = [take_button(r.id, lang) for r in requests]
    return InlineKeyboardMarkup(inline_keyboard=[buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def mine_keyboard(requests: list[CustomerRequest], lang: str) -> InlineKeyboardMarkup | None:
    if not requests:
        return None
    rows = [
        [
            InlineKeyboardButton(
                text=f"{plain('btn_open', lang)} #{r.id}",
                callback_data=RequestAction(action="open", id=r.id).pack(),
            ),
            InlineKeyboardButton(
                text=f"{plain('btn_done', lang)} #{r.id}",
                callback_data=RequestAction(action="done", id=r.id).pack(),
            ),
        ]
        for r in requests
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def active_request_keyboard(requests: list[CustomerRequest], active_id: int | None) -> InlineKeyboardMarkup | None:
    if not requests:
        return None
    buttons = [
        InlineKeyboardButton(
            text=("★ " if r.id == active_id else "") + f"#{r.id} {r.title[:24]}",
            callback_data=ActiveRequestChoice(id=r.id).pack(),
        )
        for r in requests
    ]
    return InlineKeyboardMarkup(inline_keyboard=[[b] for b in buttons])


class CannedSend(CallbackData, prefix="cr"):
    """Send canned response `id` to request `request` (the /r list's buttons)."""

    id: int
    request: int


def canned_keyboard(items: list, request_id: int) -> InlineKeyboardMarkup | None:
    """One button per canned response: its shortcut, language and title (two a row)."""
    if not items:
        return None
    buttons = [
        InlineKeyboardButton(
            text=f"{item.shortcut} · {item.language} · {item.title}"[:64],
            callback_data=CannedSend(id=item.id, request=request_id).pack(),
        )
        for item in items
    ]
    return InlineKeyboardMarkup(inline_keyboard=[buttons[i : i + 2] for i in range(0, len(buttons), 2)])


