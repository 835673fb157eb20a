"""The auto-close job: completed requests quiet for AUTO_CLOSE_DAYS move to closed."""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.expressions import Q

from core import requests as svc
from core.clock import as_utc
from core.settings import Settings
from db.models import CustomerRequest, Status
from scheduler.jobs.common import (
    AUTO_CLOSE_BATCH,
    log,
)


async def run_auto_close(
    settings: Settings, now: datetime, slot: datetime | None = None
) -> list[int]:
    """Close completed requests whose last activity (last message or status change) is older
    than AUTO_CLOSE_DAYS. Each close is the domain's auto_close_request: conditional on the
    request still being completed, with a system message and a request_updated event."""
    cutoff = as_utc(now) - timedelta(days=settings.auto_close_days)
    ids = (
        await CustomerRequest.filter(status=Status.completed)
        .filter(
            Q(status_changed_at__lte=cutoff)
            | Q(status_changed_at__isnull=True, updated_at__lte=cutoff)
        )
        .filter(Q(last_message_at__isnull=True) | Q(last_message_at__lte=cutoff))
        .order_by("id")
        .limit(AUTO_CLOSE_BATCH)
        .values_list("id", flat=True)
    )
    closed = []
    for request_id in ids:
        if await svc.auto_close_request(request_id, settings.auto_close_days) is not None:
            closed.append(request_id)
    if closed:
        log.info("auto-closed %d request(s): %s", len(closed), closed)
    return closed
