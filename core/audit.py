"""The audit log: security- and settings-level actions (db.models.AuditEntry).

Recorded by the domain where the action happens, in its transaction when it has one
(`using_db`): logins and failed logins, API token issue and revocation, Telegram account
links, bans, deletions, account creation, binding an admin chat to a Telegram group.
Each entry carries the actor (id and name as they were), the channel and client address
(core.origin), a target (`"request", 12`) and details. Directors read it through
`GET /api/admin/audit-log/`; the scheduler's housekeeping deletes entries older than
AUDIT_RETENTION_DAYS (a year by default), independently of the event log's 30 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from core import origin
from core.errors import NotFound, ValidationFailed
from core.permissions import require_director
from core.serializers import dt
from core.texts import t
from db.models import AuditEntry, CustomerRequest, RequestHistory, User

PAGE_SIZE = 20

# The actions the desk records (the `action` filter accepts exactly these).
ACTIONS = (
    "login",
    "login_failed",
    "console_sign_out",
    "token_issued",
    "token_revoked",
    "account_linked",
    "user_created",
    "customer_banned",
    "customer_unbanned",
    "request_deleted",
    "chat_bound",
)


async def record(
    action: str,
    actor: User | None,
    *,
    target: tuple[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
    using_db: BaseDBAsyncClient | None = None,
) -> AuditEntry:
    """Write one entry (in the caller's transaction when `using_db` is given). `actor`
    None with `actor_name`: someone not (yet) identified, such as a failed login's
    username."""
    here = origin.current()
    target_type, target_id = target if target is not None else ("", "")
    return await AuditEntry.create(
        action=action,
        actor_id=actor.id if actor is not None else None,
        actor_name=(actor.full_name if actor is not None else (actor_name or ""))[:301],
        channel=here.channel,
        client_address=here.client_address,
        target_type=target_type,
        target_id=str(target_id)[:64],
        details=details or {},
        using_db=using_db,
    )


@dataclass
class AuditFilters:
    actor: int | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def entry_data(row: AuditEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "action": row.action,
        "actor_id": row.actor_id,
        "actor_name": row.actor_name,
        "channel": str(row.channel),
        "client_address": row.client_address,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "details": row.details,
        "at": dt(row.created_at),
    }


async def list_entries(
    actor: User, filters: AuditFilters, page: int = 1, page_size: int = PAGE_SIZE
) -> tuple[int, list[AuditEntry]]:
    """One page, newest first, and the total. Directors only (PermissionDenied otherwise);
    ValidationFailed for an unknown action; NotFound for a page past the last."""
    require_director(actor)
    if filters.action is not None and filters.action not in ACTIONS:
        raise ValidationFailed(
            {"action": [t("err_invalid_choice_of", value=filters.action, names=", ".join(ACTIONS))]}
        )
    qs = AuditEntry.all()
    if filters.actor is not None:
        qs = qs.filter(actor_id=filters.actor)
    if filters.action is not None:
        qs = qs.filter(action=filters.action)
    if filters.since is not None:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until is not None:
        qs = qs.filter(created_at__lt=filters.until)
    total = await qs.count()
    offset = (page - 1) * page_size
    if page < 1 or (page > 1 and offset >= total):
        raise NotFound(t("err_bad_page"))
    rows = await qs.order_by("-id").offset(offset).limit(page_size)
    return total, list(rows)


async def prune(before: datetime) -> int:
    """Delete audit entries older than `before`, and the history of requests that no longer
    exist when it is older than that too (a live request keeps its whole history).
    Returns how many rows were deleted."""
    removed = await AuditEntry.filter(created_at__lt=before).delete()
    from tortoise.expressions import Subquery

    removed += await RequestHistory.filter(created_at__lt=before).exclude(
        request_id__in=Subquery(CustomerRequest.all().values("id"))
    ).delete()
    return removed
