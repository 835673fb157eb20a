"""Admin chats (AdminChat / ChatMessage): create, list, messages, join, leave.

Staff only. Messages and membership changes are recorded with events on topic
"chat:<id>", which the WebSocket hub and the bot's chat bridge consume.
"""

from __future__ import annotations

from typing import Any

from tortoise.functions import Count, Max
from tortoise.transactions import in_transaction

from core import events
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import is_director, require_director, require_staff
from core.serializers import chat_data, chat_frame, chat_message_data
from core.texts import t
from core.users import record_access_change
from db.models import AdminChat, ChatMessage, ChatType, MessageType, Source, User


async def get_chat(actor: User, chat_id: int, *, must_participate: bool = True) -> AdminChat:
    require_staff(actor)
    chat = await AdminChat.filter(id=chat_id, is_active=True).first()
    if chat is None:
        raise NotFound(t("err_not_found", actor.language))
    if must_participate and not await is_participant(chat.id, actor.id):
        raise PermissionDenied(t("err_not_participant", actor.language))
    return chat


async def is_participant(chat_id: int, user_id: int) -> bool:
    return await AdminChat.filter(id=chat_id, participants__id=user_id).exists()


async def list_chats(actor: User) -> list[dict[str, Any]]:
    """Active chats the actor takes part in, newest first, serialized with participants,
    last message and unread count. A fixed number of queries whatever the chat count."""
    require_staff(actor)
    chats = await AdminChat.filter(participants__id=actor.id, is_active=True).order_by("-created_at")
    return await _serialize_many(actor, chats)


async def _serialize_many(actor: User, chats: list[AdminChat]) -> list[dict[str, Any]]:
    if not chats:
        return []
    ids = [c.id for c in chats]
    through = await AdminChat.filter(id__in=ids).values("id", "participants__id")
    user_ids = {r["participants__id"] for r in through if r["participants__id"]}
    users = {u.id: u for u in await User.filter(id__in=list(user_ids))}
    members: dict[int, list[User]] = {i: [] for i in ids}
    for r in through:
        if r["participants__id"]:
            members[r["id"]].append(users[r["participants__id"]])
    last_rows = (
        await ChatMessage.filter(chat_id__in=ids).group_by("chat_id")
        .annotate(last_id=Max("id")).values("chat_id", "last_id")
    )
    latest = {
        m.chat_id: m
        for m in await ChatMessage.filter(id__in=[r["last_id"] for r in last_rows]).select_related("sender")
    }
    unread_rows = (
        await ChatMessage.filter(chat_id__in=ids, is_read=False)
        .exclude(sender_id=actor.id)
        .group_by("chat_id")
        .annotate(n=Count("id"))
        .values("chat_id", "n")
    )
    unread = {r["chat_id"]: r["n"] for r in unread_rows}
    return [
        chat_data(c, sorted(members[c.id], key=lambda u: u.id), latest.get(c.id), unread.get(c.id, 0))
        for c in chats
    ]


async def serialize_chats(actor: User, chats: list[AdminChat]) -> list[dict[str, Any]]:
    """AdminChatSerializer for `chats` as seen by `actor` (unread count is per actor)."""
    return await _serialize_many(actor, chats)


async def chat_detail(actor: User, chat_id: int) -> dict[str, Any]:
    chat = await get_chat(actor, chat_id)
    return (await _serialize_many(actor, [chat]))[0]


async def create_chat(
    actor: User, *, name: str, chat_type: str = ChatType.general, participant_ids: list[int] | None = None
) -> AdminChat:
    """Create a chat; the creator joins it (and any listed staff participants)."""
    require_staff(actor)
    errors: dict[str, list[str]] = {}
    check_text(errors, "name", name, current_limits().chat_name, actor.language)
    if chat_type not in ChatType.__members__:
        errors["chat_type"] = [t("err_invalid_choice", value=chat_type)]
    others: list[User] = []
    if participant_ids:
        others = await User.filter(id__in=participant_ids, is_active=True, role__in=["admin", "director"])
        if len(others) != len(set(participant_ids)):
            errors["participant_ids"] = [t("err_chat_staff_only")]
    if errors:
        raise ValidationFailed(errors)
    async with in_transaction() as conn:
        chat = await AdminChat.create(name=name.strip(), chat_type=chat_type, created_by=actor, using_db=conn)
        await chat.participants.add(actor, *[u for u in others if u.id != actor.id], using_db=conn)
    return chat


def can_edit_chat(actor: User, chat: AdminChat) -> bool:
    """Renaming a chat, changing its type and deactivating it: its creator or a director."""
    return is_director(actor) or chat.created_by_id == actor.id


async def update_chat(actor: User, chat_id: int, changes: dict[str, Any]) -> AdminChat:
    """Rename, retype or (de)activate a chat: only its creator or a director
    (PermissionDenied for other participants). Deactivating closes the chat's open
    WebSockets (event user_access with the chat id, 4404 on every process)."""
    chat = await get_chat(actor, chat_id, must_participate=not is_director(actor))
    if not can_edit_chat(actor, chat):
        raise PermissionDenied(t("err_chat_owner_only", actor.language))
    errors: dict[str, list[str]] = {}
    if "name" in changes:
        check_text(errors, "name", changes["name"], current_limits().chat_name, actor.language)
    if "chat_type" in changes and changes["chat_type"] not in ChatType.__members__:
        errors["chat_type"] = [t("err_invalid_choice", value=changes["chat_type"])]
    if errors:
        raise ValidationFailed(errors)
    allowed = {k: v for k, v in changes.items() if k in ("name", "chat_type", "is_active")}
    if isinstance(allowed.get("name"), str):
        allowed["name"] = allowed["name"].strip()
    if allowed:
        async with in_transaction() as conn:
            await AdminChat.filter(id=chat.id).using_db(conn).update(**allowed)
            if allowed.get("is_active") is False:
                await record_access_change(actor.id, "chat_closed", using_db=conn, chat_id=chat.id)
        events.committed()
    return await AdminChat.get(id=chat.id)


async def list_chat_messages(actor: User, chat_id: int, limit: int | None = None) -> list[ChatMessage]:
    chat = await get_chat(actor, chat_id)
    qs = ChatMessage.filter(chat_id=chat.id).select_related("sender")
    if limit:
        rows = await qs.order_by("-created_at", "-id").limit(limit)
        return list(reversed(rows))
    return await qs.order_by("created_at", "id")


async def post_chat_message(
    actor: User,
    chat_id: int,
    content: str,
    *,
    reply_to_id: int | None = None,
    message_type: str = MessageType.text,
    source: Source = Source.api,
) -> ChatMessage:
    """Save a chat message and announce it (event chat_message, topic chat:<id>)."""
    chat = await get_chat(actor, chat_id)
    errors: dict[str, list[str]] = {}
    check_text(errors, "content", content, current_limits().chat_message, actor.language)
    if message_type not in (MessageType.text, MessageType.image, MessageType.file):
        errors["message_type"] = [t("err_invalid_choice", value=message_type)]
    if reply_to_id is not None and not await ChatMessage.filter(id=reply_to_id, chat_id=chat.id).exists():
        errors["reply_to"] = [t("err_pk_missing", value=reply_to_id)]
    if errors:
        raise ValidationFailed(errors)
    async with in_transaction() as conn:
        msg = await ChatMessage.create(
            chat_id=chat.id, sender_id=actor.id, content=content, message_type=message_type,
            reply_to_id=reply_to_id, source=source, using_db=conn,
        )
        await events.record_event(
            events.CHAT_MESSAGE,
            {**chat_frame(msg, actor), "data": chat_message_data(msg, actor), "source": str(source)},
            topic=events.chat_topic(chat.id),
            using_db=conn,
        )
    events.committed()
    msg.sender = actor
    return msg


async def _membership(actor: User, chat_id: int, join: bool) -> None:
    chat = await get_chat(actor, chat_id, must_participate=not join)
    if (
        join
        and chat.chat_type == ChatType.private
        and not is_director(actor)
        and not await is_participant(chat.id, actor.id)
    ):
        # A private chat is joined by invitation (participant_ids), not by knowing its id.
        raise PermissionDenied(t("err_not_participant", actor.language))
    key = "chat_joined" if join else "chat_left"
    async with in_transaction() as conn:
        if join:
            if await is_participant(chat.id, actor.id):
                return
            await chat.participants.add(actor, using_db=conn)
        else:
            await chat.participants.remove(actor, using_db=conn)
        msg = await ChatMessage.create(
            chat_id=chat.id, sender_id=actor.id, content=t(key, actor.language, name=actor.full_name),
            message_type=MessageType.system, using_db=conn,
        )
        await events.record_event(
            events.CHAT_JOIN if join else events.CHAT_LEAVE,
            {**chat_frame(msg, actor), "data": chat_message_data(msg, actor)},
            topic=events.chat_topic(chat.id),
            using_db=conn,
        )
        if not join:  # their sockets on this chat close (4403), on every process
            await record_access_change(actor.id, "chat_left", using_db=conn, chat_id=chat.id)
    events.committed()


async def join_chat(actor: User, chat_id: int) -> None:
    """Join (idempotent: joining twice writes one system message)."""
    await _membership(actor, chat_id, True)


async def leave_chat(actor: User, chat_id: int) -> None:
    await _membership(actor, chat_id, False)


async def remove_participant(actor: User, chat_id: int, user_id: int) -> None:
    """The chat's creator or a director removes a participant (leaving is leave_chat).
    A system message says so (event chat_leave); the removed user's sockets on this chat
    close with 4403 on every process. NotFound for someone who is not a participant."""
    chat = await get_chat(actor, chat_id, must_participate=not is_director(actor))
    if not can_edit_chat(actor, chat):
        raise PermissionDenied(t("err_chat_owner_only", actor.language))
    if user_id == actor.id:
        await leave_chat(actor, chat_id)
        return
    target = await User.filter(id=user_id).first()
    if target is None or not await is_participant(chat.id, target.id):
        raise NotFound(t("err_not_found", actor.language))
    async with in_transaction() as conn:
        await chat.participants.remove(target, using_db=conn)
        msg = await ChatMessage.create(
            chat_id=chat.id, sender_id=actor.id,
            content=t("chat_removed", actor.language, name=target.full_name),
            message_type=MessageType.system, using_db=conn,
        )
        await events.record_event(
            events.CHAT_LEAVE,
            {**chat_frame(msg, actor), "data": chat_message_data(msg, actor),
             "removed_user_id": target.id},
            topic=events.chat_topic(chat.id),
            using_db=conn,
        )
        await record_access_change(target.id, "chat_removed", using_db=conn, chat_id=chat.id)
    events.committed()


async def mark_chat_read(actor: User, chat_id: int) -> int:
    chat = await get_chat(actor, chat_id)
    return await ChatMessage.filter(chat_id=chat.id, is_read=False).exclude(sender_id=actor.id).update(is_read=True)


__all__ = [
    "create_chat", "get_chat", "list_chats", "chat_detail", "list_chat_messages",
    "post_chat_message", "join_chat", "leave_chat", "is_participant", "mark_chat_read", "update_chat",
    "serialize_chats", "remove_participant", "can_edit_chat",
]


async def bind_telegram_chat(actor: User, chat_id: int, telegram_chat_id: int) -> AdminChat:
    """Bind an admin chat to a Telegram group so messages flow both ways.

    Directors only (binding decides who outside the desk reads the chat). A Telegram group
    bound to another chat is moved to this one (one group, one chat).
    """
    require_director(actor)
    chat = await get_chat(actor, chat_id, must_participate=False)
    async with in_transaction() as conn:
        await AdminChat.filter(telegram_chat_id=telegram_chat_id).exclude(id=chat.id).using_db(
            conn
        ).update(telegram_chat_id=None)
        await AdminChat.filter(id=chat.id).using_db(conn).update(telegram_chat_id=telegram_chat_id)
        from core import audit

        await audit.record(
            "chat_bound", actor, target=("admin_chat", chat.id),
            details={"telegram_chat_id": telegram_chat_id, "previous": chat.telegram_chat_id},
            using_db=conn,
        )
    chat.telegram_chat_id = telegram_chat_id
    return chat


async def chat_for_telegram(telegram_chat_id: int) -> AdminChat | None:
    """The active admin chat bound to this Telegram group, if any."""
    return await AdminChat.filter(telegram_chat_id=telegram_chat_id, is_active=True).first()
