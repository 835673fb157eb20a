"""Editing and deleting a message of a request's thread, from any channel.

One rule for REST, the web page and Telegram: people edit and delete their OWN messages
(never someone else's, never system messages). Over REST and the web page only within
MESSAGE_EDIT_WINDOW_HOURS of sending; an edit made in Telegram is taken whenever it comes
(Telegram already shows the new text there, and staff must not read an outdated one).
A banned customer (core.bans) can neither edit nor delete, on any channel, like their
other actions.

Each change is one transaction: the message row, one history row (`message_edited` /
`message_deleted`, old and new text with the message id) and one event (`message_updated`
/ `message_deleted`, the message's REST JSON). The event reaches the WebSockets (public
page: never for internal notes) and the Telegram relay, which edits or deletes every
Telegram copy of the message (telegram_delivery.relay). A deletion is soft: the row stays with
`is_deleted`, its text is kept in the row and in the history, and it is shown nowhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from core import events, history, runtime
from core.bans import require_not_banned
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import can_see_internal
from core.queries import get_request
from core.serializers import message_data
from core.texts import t
from db.models import CustomerRequest, MessageType, RequestMessage, User

EDITED = "message_edited"
DELETED = "message_deleted"


def _window_hours() -> int:
    return int(getattr(runtime.settings(), "message_edit_window_hours", 48))


async def _own_message(actor: User, request_id: int, message_id: int, *, windowed: bool) -> RequestMessage:
    """The actor's own live message of a request they can see, else a clear refusal
    (a banned customer: PermissionDenied, as for a new message)."""
    await get_request(actor, request_id)  # NotFound / PermissionDenied for the request
    require_not_banned(actor)
    msg = await RequestMessage.filter(id=message_id, request_id=request_id, is_deleted=False).first()
    if msg is None or (msg.is_internal and not can_see_internal(actor)):
        raise NotFound(t("err_not_found", actor.language))
    if msg.message_type == MessageType.system:
        raise PermissionDenied(t("err_edit_system", actor.language))
    if msg.sender_id != actor.id:
        raise PermissionDenied(t("err_edit_not_own", actor.language))
    if windowed:
        hours = _window_hours()
        if datetime.now(UTC) - msg.created_at > timedelta(hours=hours):
            raise PermissionDenied(t("err_edit_window", actor.language, hours=hours))
    return msg


def _later_telegram_edit(message_id: int, order: int):
    """The message, if no Telegram edit at or after `order` was applied to it yet."""
    return RequestMessage.filter(id=message_id).filter(
        Q(telegram_edit_order__isnull=True) | Q(telegram_edit_order__lt=order))


async def edit_message(
    actor: User, request_id: int, message_id: int, content: str, *, windowed: bool = True,
    telegram_order: int | None = None,
) -> RequestMessage:
    """Change the text of the actor's own message.

    Refusals: NotFound (no such live message the actor may see), PermissionDenied (someone
    else's or a system message; a banned customer; with `windowed`, older than the edit
    window),
    ValidationFailed (the text's limits, as for a new message). An unchanged text changes
    nothing and announces nothing. Otherwise atomic: the row, a `message_edited` history
    row (old and new text) and a `message_updated` event commit together.

    `telegram_order` (an edit made in Telegram: where it stands among the message's edits,
    bot.handlers.message_edits.edit_order_key) applies the edit only if no later Telegram
    edit of the message was applied first, in this process or another: Telegram may hand two
    edits of one message to two replicas at once, and the newer text must win. An edit that
    leaves the text as it is still records its place, so older edits stay out.
    """
    msg = await _own_message(actor, request_id, message_id, windowed=windowed)
    errors: dict[str, list[str]] = {}
    check_text(errors, "content", content, current_limits().content, actor.language)
    if errors:
        raise ValidationFailed(errors)
    msg.sender = actor
    if content == msg.content:
        if telegram_order is not None:  # nothing to store, but older edits now come too late
            await _later_telegram_edit(msg.id, telegram_order).update(telegram_edit_order=telegram_order)
        return msg
    old = msg.content
    edited_at = datetime.now(UTC)
    async with in_transaction() as conn:
        if telegram_order is None:
            await RequestMessage.filter(id=msg.id).using_db(conn).update(content=content, edited_at=edited_at)
        else:
            changed = await _later_telegram_edit(msg.id, telegram_order).using_db(conn).update(
                content=content, edited_at=edited_at, telegram_edit_order=telegram_order)
            if not changed:  # a newer edit is already in: this older one changes nothing
                return msg
        msg.content, msg.edited_at = content, edited_at
        await history.record(conn, request_id, actor, [
            (EDITED, {"message_id": msg.id, "content": old}, {"message_id": msg.id, "content": content}),
        ])
        await events.record_event(events.MESSAGE_UPDATED, message_data(msg, actor), using_db=conn)
    events.committed()
    return msg


async def delete_message(actor: User, request_id: int, message_id: int, *, windowed: bool = True) -> None:
    """Soft-delete the actor's own message (refusals as `edit_message`).

    Atomic: `is_deleted` set, the request's message counts lowered (`messages_count`, and
    `public_messages_count` unless it is an internal note), a `message_deleted` history row
    with the text, and a `message_deleted` event. Deleting it again is NotFound.
    """
    msg = await _own_message(actor, request_id, message_id, windowed=windowed)
    async with in_transaction() as conn:
        gone = await RequestMessage.filter(id=msg.id, is_deleted=False).using_db(conn).update(is_deleted=True)
        if not gone:  # a concurrent deletion won
            raise NotFound(t("err_not_found", actor.language))
        await CustomerRequest.filter(id=request_id, messages_count__gt=0).using_db(conn).update(
            messages_count=F("messages_count") - 1
        )
        if not msg.is_internal:
            await CustomerRequest.filter(
                id=request_id, public_messages_count__gt=0
            ).using_db(conn).update(public_messages_count=F("public_messages_count") - 1)
        await history.record(conn, request_id, actor, [
            (DELETED, {"message_id": msg.id, "content": msg.content}, None),
        ])
        msg.is_deleted = True
        data = message_data(msg, actor)
        data["is_deleted"] = True
        await events.record_event(events.MESSAGE_DELETED, data, using_db=conn)
    events.committed()


async def message_for_telegram(chat_id: int, telegram_message_id: int) -> RequestMessage | None:
    """The stored message a person's Telegram message became (its "origin" link), if any."""
    from db.models import TelegramMessageLink

    link = await TelegramMessageLink.filter(
        chat_id=chat_id, message_id=telegram_message_id, request_message_id__isnull=False,
    ).first()
    if link is None or link.kind not in ("origin", ""):
        return None
    return await RequestMessage.filter(id=link.request_message_id, is_deleted=False).first()
