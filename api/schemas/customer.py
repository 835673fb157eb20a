"""Bodies of /api/customer/requests/ (api.routes.customer, message_edits, ratings) and of
the public web page's JSON (api.web): a request as its customer sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictStr, WithJsonSchema

from api.http import int_from_text
from api.schemas.base import REQUIRED, Body, Out, Page, StringList, drf_error
from api.schemas.requests import Content, PostedType, Title
from core.csat import SCORES
from db.models import Category, MessageType, Priority, SenderType, Status


class StaffName(Out):
    name: str
    avatar: str | None


class OwnRequest(Out):
    """A request as its customer sees it (customer REST, web page, its socket)."""

    id: int
    title: str
    description: str
    status: Status
    priority: Priority
    category: Category
    assigned_admin: StaffName | None = Field(description="Staff appear by display name only.")
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    messages_count: int = Field(description="Messages the customer can see.")
    estimated_resolution_time: datetime | None
    rating: int | None = Field(ge=min(SCORES), le=max(SCORES), description="Your satisfaction rating (CSAT)")
    rating_comment: str


class PaginatedOwnRequests(Page):
    results: list[OwnRequest]


class OwnAttachment(Out):
    id: int
    name: str
    size: int
    content_type: str
    url: str


class OwnMessage(Out):
    """A thread message as the customer sees it (never internal notes)."""

    id: int
    request: int
    sender_type: SenderType
    sender_name: str = Field(description="First and last name; empty when none.")
    sender_avatar: str | None
    content: str
    message_type: MessageType
    created_at: datetime
    edited_at: datetime | None = Field(description="The last edit (docs/edits.md), or null.")
    attachments: list[OwnAttachment] = Field(
        None, description="The web page's thread only: the message's files."
    )


class CustomerRequestCreateOwn(Body):
    model_config = {"json_schema_extra": {"example": {
        "title": "Не приходит письмо", "description": "Письмо с подтверждением не пришло"}}}

    title: Title
    description: Content
    priority: Priority = None
    category: Category = None
    tags: StringList = None


class CustomerMessageCreate(Body):
    model_config = {"json_schema_extra": {"example": {"content": "Спасибо, жду."}}}

    content: Content
    message_type: PostedType = MessageType.text


def _rating_text(value: Any) -> Any:
    """A form sends the rating as decimal text; whether it is a whole number from 1 to 5
    is core.csat's rule (its message is in the caller's language)."""
    if value is None:
        raise drf_error(REQUIRED)
    if isinstance(value, str):
        parsed = int_from_text(value.strip())
        return parsed if parsed is not None else value
    return value


class Rating(Body):
    """The range (1-5) is core.csat's rule."""

    model_config = {"json_schema_extra": {"example": {"rating": 5, "comment": "Быстро и вежливо"}}}

    rating: Annotated[Any, BeforeValidator(_rating_text),
                      WithJsonSchema({"type": "integer", "minimum": min(SCORES), "maximum": max(SCORES)})]
    comment: StrictStr | None = None


# --- the web page's JSON (api.web) -----------------------------------------------------------


class PublicRequest(OwnRequest):
    status_label: str
    category_label: str
    accepts_messages: bool
    can_rate: bool


class PublicThread(Out):
    request: PublicRequest
    messages: list[OwnMessage]


class PublicCreated(Out):
    access_key: str
    url: str
    request: PublicRequest
    failed_attachments: list[str]


class PublicReplied(Out):
    messages: list[OwnMessage]
    failed_attachments: list[str]


class PublicRated(Out):
    request: PublicRequest


class PublicRequestForm(Body):
    """multipart/form-data (or urlencoded), read by api.web.public."""

    name: str
    email: str = Field(json_schema_extra={"format": "email"})
    title: Title
    description: Content
    category: Category = None
    attachments: list[bytes] = Field(None, json_schema_extra={"items": {"type": "string", "format": "binary"}})


class PublicReplyForm(Body):
    """Text, files or both."""

    model_config = {"json_schema_extra": {"example": {"content": "Спасибо, жду."}}}

    content: Content = None
    attachments: list[bytes] = Field(None, json_schema_extra={"items": {"type": "string", "format": "binary"}})
