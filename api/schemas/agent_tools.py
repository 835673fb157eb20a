"""Bodies of the agent tools: /api/admin/canned-responses/ and /api/admin/audit-log/
(api.routes.canned, api.routes.audit).

Canned-response bodies are checked by core.canned (its messages are in the caller's
language); the model says what it accepts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictStr

from api.schemas.base import Body, Out, Page
from core.audit import ACTIONS
from core.canned import LANGUAGES, SHORTCUT_MAX
from core.limits import TITLE_MAX
from db.models import HistoryChannel

Language = Literal[LANGUAGES]
AuditAction = StrEnum("AuditAction", {name: name for name in ACTIONS})


class CannedResponse(Out):
    id: int
    shortcut: str = Field(max_length=SHORTCUT_MAX, pattern="^[a-z0-9_-]+$")
    title: str = Field(max_length=TITLE_MAX)
    content: str = Field(description="Placeholders: {customer_name}, {request_id}, {admin_name}")
    language: Language
    is_shared: bool
    created_by: int | None
    created_by_name: str
    created_at: datetime
    updated_at: datetime
    can_edit: bool


class PaginatedCannedResponses(Page):
    results: list[CannedResponse]


class CannedResponseUpdate(Body):
    """PATCH: any of these fields."""

    model_config = {"json_schema_extra": {"example": {"title": "Приветствие (новое)"}}}

    shortcut: StrictStr = Field(None, max_length=SHORTCUT_MAX)
    title: StrictStr = Field(None, max_length=TITLE_MAX)
    content: StrictStr = None
    language: Language = None
    is_shared: StrictBool = None


class CannedResponseWrite(CannedResponseUpdate):
    """POST and PUT."""

    model_config = {"json_schema_extra": {"example": {
        "shortcut": "greet", "title": "Приветствие", "language": "ru",
        "content": "Здравствуйте, {customer_name}! Запрос #{request_id} у меня, {admin_name}."}}}

    shortcut: StrictStr = Field(max_length=SHORTCUT_MAX)
    title: StrictStr = Field(max_length=TITLE_MAX)
    content: StrictStr


class AuditEntry(Out):
    id: int
    action: AuditAction
    actor_id: int | None
    actor_name: str
    channel: HistoryChannel
    client_address: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    at: datetime


class PaginatedAuditEntries(Page):
    results: list[AuditEntry]
