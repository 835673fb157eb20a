"""Request card buttons (`req:take|done|open:<id>`), wherever the card or list is shown.

The handlers call the domain services and answer the callback; the card itself is edited
by the relay when the `request_updated` event arrives.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery

from bot.handlers.lookup import topic_of
from bot.handlers.render import not_linked, request_summary, thread_excerpt, topic_link
from bot.keyboards import RequestAction
from bot.middlewares import CallbackReply
from core.errors import Conflict
from core.permissions import require_staff
from core.requests import complete_request, get_request, list_messages, take_request
from core.texts import t
from db.models import User
from telegram_delivery.texts import plain, tr


async def on_take(
    query: CallbackQuery, callback_data: RequestAction, actor: User | None, lang: str,
    callback_reply: CallbackReply,
) -> None:
    if actor is None:
        callback_reply.alert(not_linked(lang, query.from_user, html=False))
        return
    try:
        await take_request(actor, callback_data.id)
    except Conflict as exc:
        # Race lost (or taken earlier): say who has it.
        req = await get_request(actor, callback_data.id)
        if req.assigned_admin_id and req.assigned_admin_id != actor.id:
            callback_reply.alert(t("err_already_assigned_to", lang, name=req.assigned_admin.full_name))
        else:
            callback_reply.alert(exc.message)
        return
    callback_reply.toast(plain("taken_ok", lang, id=callback_data.id))


async def on_complete(
    query: CallbackQuery, callback_data: RequestAction, actor: User | None, lang: str,
    callback_reply: CallbackReply,
) -> None:
    if actor is None:
        callback_reply.alert(not_linked(lang, query.from_user, html=False))
        return
    await complete_request(actor, callback_data.id)
    callback_reply.toast(plain("completed_ok", lang, id=callback_data.id))


async def on_open(
    query: CallbackQuery, callback_data: RequestAction, actor: User | None, lang: str,
    callback_reply: CallbackReply,
) -> None:
    """Show the request's summary and its latest messages where the button was pressed."""
    if actor is None:
        callback_reply.alert(not_linked(lang, query.from_user, html=False))
        return
    require_staff(actor)
    req = await get_request(actor, callback_data.id)
    messages = await list_messages(actor, req.id)
    parts = [request_summary(req, lang)]
    thread = await topic_of(req.id)
    if thread and thread.topic_id:
        link = topic_link(thread.chat_id, thread.topic_id)
        if link:
            parts.append(link)
    if messages:
        parts.append(tr("thread_recent", lang) + "\n" + thread_excerpt(messages, lang))
    if query.message is not None:
        await query.message.answer("\n\n".join(parts), parse_mode="HTML")
    callback_reply.toast(plain("thread_open", lang, id=req.id, title=req.title[:100]))


def get_router() -> Router:
    router = Router(name="request_buttons")
    router.callback_query.register(on_take, RequestAction.filter(F.action == "take"))
    router.callback_query.register(on_complete, RequestAction.filter(F.action == "done"))
    router.callback_query.register(on_open, RequestAction.filter(F.action == "open"))
    return router
