"""Bodies of /api/admin/internal-communications/ (api.routes.communications)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictStr

from api.schemas.base import Body, IdList, OptionalRowId, Out, Page
from core.limits import Limits
from db.models import CommPriority, CommStatus

LIMITS = Limits()
Department = Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.department})]


class InternalCommunication(Out):
    id: int
    request: int | None
    from_department: str
    to_department: str
    subject: str
    content: str
    priority: CommPriority
    status: CommStatus
    sender: int
    participants: list[int]
    created_at: datetime


class PaginatedInternalCommunications(Page):
    results: list[InternalCommunication]


class InternalCommunicationUpdate(Body):
    """PATCH: any of these fields."""

    model_config = {"json_schema_extra": {"example": {"status": "read"}}}

    request: OptionalRowId = None
    from_department: Department = None
    to_department: Department = None
    subject: Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.subject})] = None
    content: Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.communication})] = None
    priority: CommPriority = None
    status: CommStatus = None
    participants: IdList = None


class InternalCommunicationWrite(InternalCommunicationUpdate):
    """POST and PUT."""

    model_config = {"json_schema_extra": {"example": {
        "from_department": "Поддержка",
        "to_department": "Биллинг",
        "subject": "Двойное списание",
        "content": "Проверьте, пожалуйста, платёж",
    }}}

    from_department: Department
    to_department: Department
    subject: Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.subject})]
    content: Annotated[StrictStr, Field(json_schema_extra={"maxLength": LIMITS.communication})]
