"""Bodies of /api/admin/customer-requests/ (api.routes.requests, message_edits, history,
staff_stats, attachments)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StrictStr

from api.schemas.base import (
    Body,
    DateTimeIn,
    FormBool,
    OptionalRowId,
    Out,
    Page,
    RowId,
    StringList,
    Texts,
)
from core.csat import SCORES
from core.limits import TITLE_MAX, Limits
from core.texts import t
from db.models import Category, HistoryChannel, MessageType, Priority, Role, SenderType, Status

LIMITS = Limits()  # the defaults (LIMIT_* settings may lower them)
Title = Annotated[StrictStr, Field(json_schema_extra={"maxLength": TITLE_MAX})]
Content = Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.content})]
# What a client may post: "system" messages are the desk's own.
PostedType = Literal[MessageType.text, MessageType.image, MessageType.file]


class User(Out):
    id: int
    username: str
    first_name: str
    last_name: str
    email: str
    avatar: str | None


class CustomerRequest(Out):
    id: int
    title: str
    description: str
    status: Status
    priority: Priority
    category: Category
    customer: User | None
    assigned_admin: User | None
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    messages_count: int
    estimated_resolution_time: datetime | None
    tags: list[str]
    customer_email_verified: bool = Field(
        description="False for a web form's address (anyone can type any address) until the "
        "link in its confirmation mail is opened."
    )
    customer_banned: bool
    rating: int | None = Field(ge=min(SCORES), le=max(SCORES), description="The customer's satisfaction rating (CSAT)")
    rating_comment: str


class PaginatedCustomerRequests(Page):
    results: list[CustomerRequest]


class RequestMessage(Out):
    id: int
    request: int
    sender: int | None
    sender_type: SenderType
    sender_name: str
    sender_avatar: str | None
    content: str
    message_type: MessageType
    is_read: bool
    is_internal: bool
    created_at: datetime
    edited_at: datetime | None = Field(description="The last edit (docs/edits.md), or null.")


class Stats(Out):
    total_requests: int
    open_requests: int
    in_progress_requests: int
    completed_today: int
    completion_rate: float = Field(description="Percent, 2 decimals")
    csat_average: float | None = Field(description="Average rating, 2 decimals; null without ratings")
    csat_responses: int


class AdminStats(Out):
    id: int
    username: str
    name: str
    role: Role
    in_progress: int
    completed_today: int
    completed_7d: int
    median_first_response_minutes: float | None
    csat_average: float | None
    csat_responses: int


class HistoryEntry(Out):
    id: int
    field: str = Field(description="A request field, or `created` / `deleted`")
    old: Any = Field(description="JSON value before (the assignee as {id, name})")
    new: Any = Field(description="JSON value after")
    actor_id: int | None = Field(description="null: the desk itself")
    actor_name: str
    channel: HistoryChannel
    at: datetime


class PaginatedHistory(Page):
    results: list[HistoryEntry]


class Attachment(Out):
    id: int
    request: int
    message: int | None
    name: str
    file: str = Field(description="Download URL", json_schema_extra={"format": "uri"})
    size: int
    content_type: str
    created_at: datetime


class AttachmentUpload(Body):
    """multipart/form-data (streamed; read by api.routes.attachments, not by this model)."""

    file: bytes = Field(json_schema_extra={"format": "binary"})
    message: OptionalRowId = Field(None, description="Attach to this existing message instead of a new one.")
    caption: StrictStr | None = Field(None, description='Text of the new message (default: "Вложение: <name>").')
    is_internal: FormBool = Field(False, description="Staff only: internal file.")


# --- request bodies --------------------------------------------------------------------------


class CustomerRequestUpdate(Body):
    """PATCH: any of these fields."""

    model_config = {"json_schema_extra": {"example": {"priority": "urgent"}}}

    title: Title = None
    description: Content = None
    priority: Priority = None
    category: Category = None
    tags: StringList = None
    estimated_resolution_time: DateTimeIn = None
    status: Status = Field(None, description=(
        "Directors only, along the moves of the lifecycle table (in_progress -> completed or "
        "open, completed -> closed or in_progress, closed -> in_progress; an unassigned request "
        "reopens to open); others use take/complete. A move outside the table is a 400 on "
        "`status` naming the allowed statuses."))


class CustomerRequestReplace(CustomerRequestUpdate):
    """PUT: title and description required."""

    model_config = {"json_schema_extra": {"example": {"title": "Не работает оплата",
                                                      "description": "Ошибка при оплате картой"}}}

    title: Title
    description: Content


class CustomerRequestCreate(Body):
    model_config = {"json_schema_extra": {"example": {
        "title": "Не работает оплата",
        "description": "Ошибка при оплате картой",
        "priority": "high",
        "category": "billing",
    }}}

    title: Title
    description: Content
    priority: Priority = None
    category: Category = None
    tags: StringList = None
    estimated_resolution_time: DateTimeIn = None
    customer_id: OptionalRowId = Field(None, description="Staff only: create on behalf of this customer.")


class Reassign(Body):
    model_config = {"json_schema_extra": {"example": {"admin_id": 2}}}

    admin_id: Annotated[RowId, Texts(
        required=t("err_required_admin"),
        null=t("err_required_admin"),
        wrong_type=t("err_required_admin"),
    )]


class RequestMessageCreate(Body):
    model_config = {"json_schema_extra": {"example": {"content": "Здравствуйте! Проверяем."}}}

    content: Content
    message_type: PostedType = MessageType.text
    is_internal: FormBool = Field(
        False, description="Staff only: an internal note, never shown to the customer."
    )


class MessageEdit(Body):
    model_config = {"json_schema_extra": {"example": {"content": "Исправленный текст"}}}

    content: Content
