"""CSV export of the request list: the list's filters, its order, one request a row.

`export_rows` yields the rows in batches fetched by keyset pagination (newest first, as
the list: created_at, then id), so memory stays flat however many rows there are: each
batch is one query starting strictly after the previous batch's last (created_at, id),
never an OFFSET. The condition is written as `created_at <= last AND (created_at < last
OR id < last_id)`, so PostgreSQL walks the created_at index (or a filter's
(column, created_at) index) from where the previous batch stopped instead of from the top.
`csv_chunks` turns them into UTF-8 CSV with a header row (the csv module quotes commas,
quotes and line breaks). See docs/agent-tools.md and bench/export_bench.py.

Cells that a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a
carriage return) get a leading apostrophe: an export is opened in Excel, and a customer
controls titles and names (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from tortoise.expressions import Q

from core.permissions import require_staff
from core.queries import RequestFilters, conditions, filtered
from core.serializers import dt
from db.models import User

BATCH = 1000

# (CSV header, ORM field) in column order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("title", "title"),
    ("description", "description"),
    ("status", "status"),
    ("priority", "priority"),
    ("category", "category"),
    ("customer_id", "customer_id"),
    ("customer_first_name", "customer__first_name"),
    ("customer_last_name", "customer__last_name"),
    ("customer_email", "customer__email"),
    ("assigned_admin_id", "assigned_admin_id"),
    ("assigned_admin_first_name", "assigned_admin__first_name"),
    ("assigned_admin_last_name", "assigned_admin__last_name"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("last_message_at", "last_message_at"),
    ("completed_at", "completed_at"),
    ("estimated_resolution_time", "estimated_resolution_time"),
    ("tags", "tags"),
    ("messages_count", "messages_count"),
    ("source", "source"),
    ("rating", "rating"),
    ("rating_comment", "rating_comment"),
)
HEADER = [name for name, _ in COLUMNS]
_FIELDS = [f for _, f in COLUMNS]
_ID, _CREATED = _FIELDS.index("id"), _FIELDS.index("created_at")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def check(actor: User, filters: RequestFilters) -> None:
    """Refuse before anything is streamed: staff only, valid filters (ValidationFailed)."""
    require_staff(actor)
    conditions(actor, filters)


async def export_rows(
    actor: User, filters: RequestFilters, batch: int = BATCH
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The matching requests, newest first, `batch` rows (at most) per yield, one query each."""
    check(actor, filters)
    last: tuple[datetime, int] | None = None
    while True:
        qs = filtered(actor, filters)
        if last is not None:
            created, ident = last
            qs = qs.filter(created_at__lte=created).filter(Q(created_at__lt=created) | Q(id__lt=ident))
        rows = await qs.order_by("-created_at", "-id").limit(batch).values_list(*_FIELDS)
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        last = (rows[-1][_CREATED], rows[-1][_ID])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return dt(value)
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    elif not isinstance(value, str):
        return str(value)
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: list[tuple[Any, ...]] | None = None, *, header: bool = False) -> bytes:
    """UTF-8 CSV lines (\\r\\n, quoted where needed) for `rows`, after the header if asked."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(HEADER)
    for row in rows or []:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue().encode("utf-8")


async def csv_chunks(actor: User, filters: RequestFilters, batch: int = BATCH) -> AsyncIterator[bytes]:
    """The export as CSV bytes: the header, then one chunk per batch."""
    yield to_csv(header=True)
    async for rows in export_rows(actor, filters, batch):
        yield to_csv(rows)
