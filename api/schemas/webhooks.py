"""Bodies of /api/admin/webhooks/ (api.routes.webhooks).

The write bodies are checked by core.webhooks (the URL rules need DNS and the settings, and
its messages are in the caller's language); these models say what it accepts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictStr

from api.schemas.base import Body, Out, Page
from core.webhooks import DELIVERY_STATUSES, DESCRIPTION_MAX, EVENT_NAMES

WebhookEvent = StrEnum("WebhookEvent", {name.replace(".", "_"): name for name in EVENT_NAMES})
DeliveryStatus = Literal[DELIVERY_STATUSES]


class WebhookSubscription(Out):
    id: int
    url: str = Field(json_schema_extra={"format": "uri"})
    events: list[WebhookEvent]
    description: str
    is_active: bool
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class WebhookSubscriptionCreated(WebhookSubscription):
    secret: str = Field(description="Signs every delivery; shown only now.")


class WebhookSubscriptionUpdate(Body):
    """PATCH: any of these fields."""

    model_config = {"json_schema_extra": {"example": {"is_active": False}}}

    url: StrictStr = Field(None, json_schema_extra={"format": "uri"}, description=(
        "http(s); loopback/private targets refused unless WEBHOOK_ALLOW_PRIVATE=1"))
    events: list[WebhookEvent] = Field(None, min_length=1)
    description: StrictStr = Field(None, max_length=DESCRIPTION_MAX)
    is_active: StrictBool = None


class WebhookSubscriptionWrite(WebhookSubscriptionUpdate):
    """POST and PUT."""

    model_config = {"json_schema_extra": {"example": {
        "url": "https://example.com/hooks/helpdesk",
        "events": ["request.created", "request.status_changed", "message.created"]}}}

    url: StrictStr = Field(json_schema_extra={"format": "uri"}, description=(
        "http(s); loopback/private targets refused unless WEBHOOK_ALLOW_PRIVATE=1"))
    events: list[WebhookEvent] = Field(min_length=1)


class AttemptLogEntry(Out):
    at: datetime
    status_code: int | None
    error: str | None
    ms: float


class WebhookPayload(Out):
    id: str
    event: WebhookEvent
    created_at: datetime
    data: dict[str, Any]


class WebhookDelivery(Out):
    id: int
    subscription: int
    delivery_id: str = Field(description="X-Helpdesk-Delivery (stable across retries)")
    event: WebhookEvent
    event_id: int | None
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    give_up_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    redelivery_of: int | None
    attempt_log: list[AttemptLogEntry]
    payload: WebhookPayload


class PaginatedWebhookDeliveries(Page):
    results: list[WebhookDelivery]
