"""Figures behind the charts: requests per day by status, ratings by score.

Read by the staff console's stats page (30 days) and the Telegram digest's chart (7 days),
so both draw the same numbers. Each is one query whatever the table size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tortoise.expressions import Q
from tortoise.functions import Count

from core import runtime
from db.models import CustomerRequest, Status

STATUSES = (Status.open, Status.in_progress, Status.completed, Status.closed)


@dataclass(frozen=True)
class DayCounts:
    """Requests created on one local day, by their status now."""

    day: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def requests_per_day(
    days: int, now: datetime | None = None, tz: str | None = None
) -> list[DayCounts]:
    """The last `days` local days (TZ; today included, oldest first): how many requests
    were created on each, split by their current status.

    One query: the window's rows grouped by status, with one conditional count per day
    whose bounds are local midnights converted to UTC here (so a day is 23 or 25 hours
    long across a DST change, and SQLite needs no time zone support). Served by the
    created_at index.
    """
    if not 1 <= days <= 366:
        raise ValueError("days must be 1..366")
    zone = ZoneInfo(tz or runtime.settings().tz)
    local_now = (now or datetime.now(UTC)).astimezone(zone)
    first = local_now.date() - timedelta(days=days - 1)
    # Midnights in the zone (fold=0), as UTC instants: days + 1 bounds.
    bounds = [
        datetime.combine(first + timedelta(days=i), datetime.min.time(), zone).astimezone(UTC)
        for i in range(days + 1)
    ]
    annotations = {
        f"d{i}": Count("id", _filter=Q(created_at__gte=bounds[i], created_at__lt=bounds[i + 1]))
        for i in range(days)
    }
    rows = (
        await CustomerRequest.filter(created_at__gte=bounds[0], created_at__lt=bounds[-1])
        .annotate(**annotations)
        .group_by("status")
        .values("status", *annotations)
    )
    by_status = {str(r["status"]): r for r in rows}
    result = []
    for i in range(days):
        counts = {s.value: int((by_status.get(s.value) or {}).get(f"d{i}") or 0) for s in STATUSES}
        result.append(DayCounts(first + timedelta(days=i), counts))
    return result


async def ratings_by_score() -> dict[int, int]:
    """How many rated requests got each score 1-5 (all time): one grouped query."""
    rows = (
        await CustomerRequest.filter(rating__isnull=False)
        .annotate(n=Count("id"))
        .group_by("rating")
        .values("rating", "n")
    )
    counts = dict.fromkeys(range(1, 6), 0)
    for r in rows:
        if r["rating"] in counts:
            counts[int(r["rating"])] = int(r["n"] or 0)
    return counts


def days_payload(days: list[DayCounts]) -> list[dict[str, object]]:
    """The days as JSON (a Telegram queue row carries them to the sender, which draws the
    picture at send time)."""
    return [{"day": d.day.isoformat(), "counts": dict(d.counts)} for d in days]


def days_from_payload(data: list[dict[str, object]]) -> list[DayCounts]:
    return [
        DayCounts(date.fromisoformat(str(d["day"])), {str(k): int(v) for k, v in dict(d["counts"]).items()})
        for d in data
    ]
