"""Bodies of /api/admin/chats/ (api.routes.chats)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictStr

from api.schemas.base import Body, IdList, OptionalRowId, Out, RowId, Texts
from api.schemas.requests import PostedType, User
from core.limits import Limits
from core.texts import t
from db.models import ChatType, MessageType

LIMITS = Limits()
ChatName = Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.chat_name})]


class LastMessage(Out):
    content: str
    sender_name: str
    created_at: datetime


class AdminChat(Out):
    id: int
    name: str
    chat_type: ChatType
    participants: list[User]
    last_message: LastMessage | None
    unread_count: int
    is_active: bool
    created_at: datetime


class ChatMessage(Out):
    id: int
    chat: int
    sender: int
    sender_name: str
    sender_avatar: str | None
    content: str
    message_type: MessageType
    reply_to: int | None
    is_read: bool
    created_at: datetime


class ChatStatus(Out):
    status: Literal["joined", "left", "removed"]


class ChatRead(Out):
    status: Literal["read"]
    marked: int


class AdminChatUpdate(Body):
    """PATCH: any of these fields."""

    model_config = {"json_schema_extra": {"example": {"name": "Поддержка L2 (новое)"}}}

    name: ChatName = None
    chat_type: ChatType = None
    is_active: StrictBool = None


class AdminChatCreate(Body):
    """POST and PUT (PUT ignores participant_ids)."""

    model_config = {"json_schema_extra": {"example": {"name": "Поддержка L2", "chat_type": "department"}}}

    name: ChatName
    chat_type: ChatType = None
    is_active: StrictBool = None
    participant_ids: IdList = None


class ChatMessageCreate(Body):
    model_config = {"json_schema_extra": {"example": {"content": "Коллеги, кто возьмёт #42?"}}}

    content: Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.chat_message})]
    message_type: PostedType = MessageType.text
    reply_to: OptionalRowId = None


class RemoveParticipant(Body):
    model_config = {"json_schema_extra": {"example": {"user_id": 3}}}

    user_id: Annotated[RowId, Texts(
        required=t("err_required_member"),
        null=t("err_required_member"),
        wrong_type=t("err_required_member"),
    )]
