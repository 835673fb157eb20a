"""A request's history: every change to it, field by field (db.models.RequestHistory).

Written by the domain services of core.requests (and core.csat) inside the transaction
that makes the change, so a change is never recorded without happening, nor the other
way round. Each row: field, old and new value (JSON), actor id and name (as they were),
channel (core.origin) and time. Values: text fields and enums as strings, tags as a list,
the estimate as an ISO timestamp, the assignee as `{"id", "name"}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient

from core import origin
from core.errors import NotFound
from core.permissions import require_staff
from core.serializers import dt
from core.texts import t
from db.models import CustomerRequest, RequestHistory, User

PAGE_SIZE = 20

# The request's own fields whose changes are recorded, in the order a diff lists them.
TRACKED = (
    "status",
    "assigned_admin",
    "priority",
    "category",
    "title",
    "description",
    "tags",
    "estimated_resolution_time",
    "rating",
    "rating_comment",
)
CREATED = "created"
DELETED = "deleted"


def _person(user: User | None, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return {"id": user_id, "name": user.full_name if user is not None else ""}


def value_of(req: CustomerRequest, field: str) -> Any:
    """A tracked field of `req` as the history stores it (needs assigned_admin fetched)."""
    if field == "assigned_admin":
        admin = req.assigned_admin if req.assigned_admin_id else None
        return _person(admin, req.assigned_admin_id)
    value = getattr(req, field)
    if field == "estimated_resolution_time":
        return dt(value)
    if field == "tags":
        return list(value or [])
    if field == "rating_comment":
        return value or ""
    if value is None or isinstance(value, (int, list)):
        return value
    return str(value)


def diff(before: CustomerRequest, after: CustomerRequest) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for every tracked field that differs."""
    changes = []
    for field in TRACKED:
        old, new = value_of(before, field), value_of(after, field)
        if old != new:
            changes.append((field, old, new))
    return changes


async def record(
    conn: BaseDBAsyncClient,
    request_id: int,
    actor: User | None,
    changes: list[tuple[str, Any, Any]],
) -> int:
    """Write one row per change in the caller's transaction; `actor` None is the desk itself
    (auto-close). The channel is the current origin's. Returns the number of rows."""
    if not changes:
        return 0
    channel = origin.current().channel
    rows = [
        RequestHistory(request_id=request_id, **columns(field, old, new, actor, channel))
        for field, old, new in changes
    ]
    await RequestHistory.bulk_create(rows, using_db=conn)
    return len(rows)


def columns(
    field: str, old: Any, new: Any, actor: User | None, channel: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The columns of one history row but its request (the channel: the current origin's
    by default; `at`: its time, else the database row's default of now)."""
    row: dict[str, Any] = {
        "field": field,
        "old_value": _encode(old),
        "new_value": _encode(new),
        "actor_id": actor.id if actor is not None else None,
        "actor_name": actor.full_name if actor is not None else "",
        "channel": channel if channel is not None else origin.current().channel,
    }
    if at is not None:
        row["created_at"] = at
    return row


def created_columns(req: CustomerRequest, actor: User, at: datetime) -> dict[str, Any]:
    """The history row of a request's creation (core.pg_writes.add_request writes it in
    the request's own statement; record_created elsewhere)."""
    return columns(CREATED, None, req.title, actor, at=at)


async def record_diff(
    conn: BaseDBAsyncClient, before: CustomerRequest, after: CustomerRequest, actor: User | None
) -> int:
    """Record what differs between the request as read before a change and after it."""
    return await record(conn, before.id, actor, diff(before, after))


async def record_created(conn: BaseDBAsyncClient, req: CustomerRequest, actor: User) -> int:
    return await record(conn, req.id, actor, [(CREATED, None, req.title)])


async def record_deleted(conn: BaseDBAsyncClient, req: CustomerRequest, actor: User) -> int:
    return await record(conn, req.id, actor, [(DELETED, req.title, None)])


def _encode(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _decode(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def entry_data(row: RequestHistory) -> dict[str, Any]:
    """The JSON of one history row."""
    return {
        "id": row.id,
        "field": row.field,
        "old": _decode(row.old_value),
        "new": _decode(row.new_value),
        "actor_id": row.actor_id,
        "actor_name": row.actor_name,
        "channel": str(row.channel),
        "at": dt(row.created_at),
    }


async def list_history(
    actor: User, request_id: int, page: int = 1, page_size: int = PAGE_SIZE
) -> tuple[int, list[RequestHistory]]:
    """One page of a request's history, oldest first, and the total. Staff only; NotFound
    for a request that does not exist (or a page past the last). Two queries."""
    require_staff(actor)
    from core.queries import get_request

    await get_request(actor, request_id)
    qs = RequestHistory.filter(request_id=request_id)
    total = await qs.count()
    offset = (page - 1) * page_size
    if page < 1 or (page > 1 and offset >= total):
        raise NotFound(t("err_bad_page"))
    rows = await qs.order_by("id").offset(offset).limit(page_size)
    return total, list(rows)
