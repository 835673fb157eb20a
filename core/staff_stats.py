"""Per-admin figures: load, completions, first-response time, satisfaction.

Read by `GET /api/admin/customer-requests/stats/admins/`, the scheduled digest and the
bot's /stats, so all three show the same numbers. Three queries whatever the table size
(counts grouped by assignee, medians grouped by first responder, names), each served by
an index on PostgreSQL (see db.models.CustomerRequest.Meta.indexes):

- in_progress: requests assigned to the admin and in progress now;
- completed_today / completed_7d: requests assigned to the admin that moved to completed
  since local midnight (TZ) / in the last 7 days and have not been reopened since
  (`completed_at`, set by every move to completed; closing keeps it);
- median_first_response_minutes: over requests whose first non-internal staff reply came
  in the last 7 days and was the admin's, the median of (first reply - created), in
  minutes, one decimal; null without any;
- csat_average (two decimals) and csat_responses: ratings of requests assigned to the
  admin, all time; the average is null without any.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.functions import Count, Sum

from core import runtime
from db.models import CustomerRequest, MessageType, RequestMessage, Role, SenderType, Status, User

WINDOW = timedelta(days=7)
DONE = (Status.completed, Status.closed)


def is_first_response(sender_type: str, is_internal: bool, message_type: str) -> bool:
    """Whether such a message is a staff reply the customer sees, so that the first of them
    is the request's first response (not an internal note, not a system message)."""
    return sender_type == SenderType.admin and not is_internal and message_type != MessageType.system


async def note_first_response(conn: BaseDBAsyncClient, req: CustomerRequest, msg: RequestMessage) -> None:
    """Remember the request's first non-internal staff reply (when and by whom), in the
    caller's transaction. Conditional, so of concurrent first replies one is kept; no
    query at all once the request has one. (On PostgreSQL core.pg_writes.add_message
    does the same in the message's own statement.)"""
    if req.first_response_at is not None or not is_first_response(
        msg.sender_type, msg.is_internal, msg.message_type
    ):
        return
    await CustomerRequest.filter(id=req.id, first_response_at__isnull=True).using_db(conn).update(
        first_response_at=msg.created_at, first_response_by_id=msg.sender_id
    )


def today_start(tz: str, now: datetime | None = None) -> datetime:
    """Where "today" began: local midnight in zone `tz` of `now` (default: the current
    time), in UTC. The one boundary of every "completed today" (the desk's stats and
    each admin's)."""
    local = now.astimezone(ZoneInfo(tz)) if now is not None else datetime.now(ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def _counts(today_start: datetime, week_start: datetime) -> dict[int, dict[str, Any]]:
    rows = (
        await CustomerRequest.filter(assigned_admin_id__isnull=False)
        .filter(
            Q(status=Status.in_progress)
            | Q(completed_at__gte=week_start)
            | Q(rating__isnull=False)
        )
        .annotate(
            progress_n=Count("id", _filter=Q(status=Status.in_progress)),
            today_n=Count("id", _filter=Q(status__in=DONE, completed_at__gte=today_start)),
            week_n=Count("id", _filter=Q(status__in=DONE, completed_at__gte=week_start)),
            rated_n=Count("id", _filter=Q(rating__isnull=False)),
            # Sum, not Avg: Tortoise casts an average back to the column's integer type.
            rating_sum=Sum("rating", _filter=Q(rating__isnull=False)),
        )
        .group_by("assigned_admin_id")
        .values("assigned_admin_id", "progress_n", "today_n", "week_n", "rated_n", "rating_sum")
    )
    return {int(r["assigned_admin_id"]): r for r in rows}


async def _medians(week_start: datetime) -> dict[int, float]:
    """Median first-response minutes per first responder over the window: one query."""
    conn = connections.get("default")
    table = CustomerRequest._meta.db_table
    if conn.capabilities.dialect == "postgres":
        _, rows = await conn.execute_query(
            f'SELECT "first_response_by_id", percentile_cont(0.5) WITHIN GROUP (ORDER BY '
            f'EXTRACT(EPOCH FROM ("first_response_at" - "created_at"))) / 60.0 FROM "{table}" '
            f'WHERE "first_response_at" >= $1 AND "first_response_by_id" IS NOT NULL '
            f'GROUP BY "first_response_by_id"',
            [week_start],
        )
        return {int(r[0]): float(r[1]) for r in rows}
    # SQLite has no percentile: the window's (responder, minutes) pairs, one query.
    pairs = await CustomerRequest.filter(
        first_response_at__gte=week_start, first_response_by_id__isnull=False
    ).values_list("first_response_by_id", "created_at", "first_response_at")
    minutes: dict[int, list[float]] = {}
    for admin_id, created, first in pairs:
        minutes.setdefault(int(admin_id), []).append((first - created).total_seconds() / 60.0)
    return {k: statistics.median(v) for k, v in minutes.items()}


async def admin_stats(now: datetime | None = None, tz: str | None = None) -> list[dict[str, Any]]:
    """Every active admin and director (and anyone else with figures), busiest first."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    week_start = now - WINDOW
    counts = await _counts(today_start(tz or runtime.settings().tz, now), week_start)
    medians = await _medians(week_start)
    known = set(counts) | set(medians)
    people = await User.filter(
        Q(role__in=[Role.admin, Role.director], is_active=True) | Q(id__in=list(known) or [0])
    ).only("id", "username", "first_name", "last_name", "role")
    result = []
    for user in people:
        c = counts.get(user.id, {})
        median = medians.get(user.id)
        rated = int(c.get("rated_n") or 0)
        avg = int(c.get("rating_sum") or 0) / rated if rated else None
        result.append(
            {
                "id": user.id,
                "username": user.username,
                "name": user.full_name,
                "role": str(user.role),
                "in_progress": int(c.get("progress_n") or 0),
                "completed_today": int(c.get("today_n") or 0),
                "completed_7d": int(c.get("week_n") or 0),
                "median_first_response_minutes": round(median, 1) if median is not None else None,
                "csat_average": round(float(avg), 2) if avg is not None else None,
                "csat_responses": rated,
            }
        )
    result.sort(key=lambda a: (-a["in_progress"], -a["completed_today"], -a["completed_7d"],
                               a["name"].lower()))
    return result
