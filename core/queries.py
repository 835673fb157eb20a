"""Request reads: one request, list pages with exact counts, threads, stats.

The write side (core.requests) loads through `load_request` too. On PostgreSQL the list,
detail and thread paths run core.pg_queries (hand-written SQL, models built by
`Model.raw`); elsewhere (SQLite) the ORM. The choice is made once per database connection
(`_pg`). Both build their filters from `conditions`, so they never disagree about what a
filter means. Counts are exact everywhere (SPEC "Lists at scale"; docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import connections
from tortoise.expressions import Q, RawSQL
from tortoise.functions import Count

from core import pg_json, pg_queries, runtime, staff_stats
from core.errors import NotFound, ValidationFailed
from core.permissions import RequestAccess, can_see_internal, can_view_request, is_staff
from core.serializers import message_data, request_data
from core.texts import t
from db.models import Category, CustomerRequest, Priority, RequestMessage, Status, User

PAGE_SIZE = 20

def _pg(db: Any) -> bool:
    """Whether `db` is PostgreSQL. Read from the client each time (two attribute reads):
    a cache keyed by id(client) answered for a new SQLite client that reused the id of a
    closed PostgreSQL one (tests open several databases in one process)."""
    return db.capabilities.dialect == "postgres"


async def load_request(request_id: int, using_db: Any = None) -> CustomerRequest:
    """The request with its customer and assigned admin; NotFound if there is none."""
    db = using_db or connections.get("default")
    if _pg(db):
        rows = await pg_queries.requests_by_ids(db, [int(request_id)])
        req = rows[0] if rows else None
    else:
        req = (
            await CustomerRequest.filter(id=request_id)
            .using_db(using_db)
            .select_related("customer", "assigned_admin")
            .first()
        )
    if req is None:
        raise NotFound(t("err_not_found"))
    return req


async def get_request(actor: User, request_id: int) -> CustomerRequest:
    """The request if `actor` may see it; NotFound otherwise (ids never leak existence)."""
    req = await load_request(request_id)
    if not can_view_request(actor, req):
        raise NotFound(t("err_not_found", actor.language))
    return req


async def get_request_only(actor: User, request_id: int) -> CustomerRequest:
    """get_request without `customer` and `assigned_admin` fetched (for writes that need
    only the request's own columns: one statement less)."""
    db = connections.get("default")
    if _pg(db):
        req = await pg_queries.request_only(db, request_id)
    else:
        req = await CustomerRequest.filter(id=request_id).first()
    if req is None or not can_view_request(actor, req):
        raise NotFound(t("err_not_found", actor.language))
    return req


@dataclass
class RequestFilters:
    status: str | None = None
    priority: str | None = None
    category: str | None = None
    search: str | None = None
    assigned_admin_id: int | None = None
    unassigned: bool = False
    customer_id: int | None = None
    # Order: unassigned requests first, then the rest (each newest first). The staff
    # console's "unassigned first"; REST `?unassigned_first=1`.
    unassigned_first: bool = False


def _validate_filters(f: RequestFilters) -> None:
    errors: dict[str, list[str]] = {}
    for name, enum in (("status", Status), ("priority", Priority), ("category", Category)):
        value = getattr(f, name)
        if value is not None and value not in enum.__members__:
            errors[name] = [t("err_select_choice", value=value)]
    if errors:
        raise ValidationFailed(errors)


def conditions(
    actor: User | None, f: RequestFilters, *, staff: bool | None = None
) -> list[tuple[str, str, Any]]:
    """The list filters as (column, operator, value): operator is "=", "null" or "contains".

    Both the ORM query (`filtered`) and PostgreSQL's hand-written queries are built from
    these, so the two can never disagree about what a filter means.
    """
    _validate_filters(f)
    conds: list[tuple[str, str, Any]] = []
    if not (is_staff(actor) if staff is None else staff):
        conds.append(("customer_id", "=", actor.id))
    elif f.customer_id is not None:
        conds.append(("customer_id", "=", f.customer_id))
    for name in ("status", "priority", "category"):
        value = getattr(f, name)
        if value:
            conds.append((name, "=", value))
    if f.assigned_admin_id is not None:
        conds.append(("assigned_admin_id", "=", f.assigned_admin_id))
    if f.unassigned:
        conds.append(("assigned_admin_id", "null", None))
    if f.search and f.search.strip():
        conds.append(("search_text", "contains", f.search.strip().lower()))
    return conds


def filtered(actor: User, f: RequestFilters):
    """The ORM queryset of the requests `actor` may list with filters `f` (unordered)."""
    qs = CustomerRequest.all()
    for column, op, value in conditions(actor, f):
        if op == "=":
            qs = qs.filter(**{column: value})
        elif op == "null":
            qs = qs.filter(**{f"{column}__isnull": True})
        else:
            qs = qs.filter(**{f"{column}__contains": value})
    return qs


def _past_end(page: int, offset: int, total: int) -> None:
    if page > 1 and offset >= total:
        raise NotFound(t("err_bad_page"))


async def list_requests(
    actor: User, filters: RequestFilters, page: int = 1, page_size: int = PAGE_SIZE
) -> tuple[int, list[CustomerRequest]]:
    """One page, newest first (created_at, then id), and the exact total count; with
    `filters.unassigned_first` the unassigned requests come before the rest. NotFound for
    a page before the first or past the last, so every page up to ceil(count / size)
    exists. A constant number of queries whatever the page or data size (at most 5;
    2 for a page without search on PostgreSQL)."""
    if page < 1:
        raise NotFound(t("err_bad_page"))
    conds = conditions(actor, filters)
    offset = (page - 1) * page_size
    db = connections.get("default")
    if _pg(db):
        if any(op == "contains" for _, op, _ in conds):
            total, rows = await pg_queries.search_page(
                db, conds, offset, page_size, filters.unassigned_first
            )
            _past_end(page, offset, total)
            if rows is None:
                rows = await pg_queries.page(db, conds, offset, page_size, filters.unassigned_first)
            return total, rows
        total, rows = await pg_queries.count_and_page(
            db, conds, offset, page_size, filters.unassigned_first
        )
        _past_end(page, offset, total)
        return total, rows
    qs = filtered(actor, filters)
    total = await qs.count()
    _past_end(page, offset, total)
    order = ("-created_at", "-id")
    if filters.unassigned_first:
        qs = qs.annotate(_assigned=RawSQL('"assigned_admin_id" IS NOT NULL'))
        order = ("_assigned", *order)
    rows = await (
        qs.order_by(*order).offset(offset).limit(page_size).select_related("customer", "assigned_admin")
    )
    return total, list(rows)


async def list_messages(
    actor: User, request_id: int, *, after_id: int = 0, limit: int | None = None
) -> list[RequestMessage]:
    """Oldest first, with senders; customers never see internal notes; deleted messages
    (core.message_edits) are left out. `after_id` and `limit` fetch only what a page that
    polls has not shown yet."""
    req = await get_request(actor, request_id)
    internal = can_see_internal(actor)
    db = connections.get("default")
    if _pg(db):
        return await pg_queries.messages(db, req.id, internal, after_id, limit)
    qs = RequestMessage.filter(request_id=req.id, is_deleted=False)
    if not internal:
        qs = qs.filter(is_internal=False)
    if after_id:
        qs = qs.filter(id__gt=after_id)
    qs = qs.order_by("created_at", "id").select_related("sender")
    return await (qs.limit(limit) if limit else qs)


async def request_json(actor: User, request_id: int) -> dict[str, Any]:
    """The request's JSON (core.serializers.request_data) if `actor` may see it; NotFound
    otherwise. Staff on PostgreSQL: one statement mapped straight to JSON."""
    db = connections.get("default")
    if is_staff(actor) and _pg(db):
        data = await pg_json.request_data_by_id(db, request_id)
        if data is None:
            raise NotFound(t("err_not_found", actor.language))
        return data
    return request_data(await get_request(actor, request_id))


async def list_requests_json(
    actor: User, filters: RequestFilters, page: int = 1, page_size: int = PAGE_SIZE,
    word_index: bool = True,
) -> tuple[int, list[dict[str, Any]]]:
    """list_requests with each request as its JSON (request_data). On PostgreSQL the
    records are mapped straight to JSON, the users joined in the page's statement.
    `word_index` False: a search skips the word index (list_from_rider tried it)."""
    db = connections.get("default")
    if not _pg(db):
        total, rows = await list_requests(actor, filters, page, page_size)
        return total, [request_data(r) for r in rows]
    if page < 1:
        raise NotFound(t("err_bad_page"))
    conds = conditions(actor, filters)
    offset = (page - 1) * page_size
    first = filters.unassigned_first
    if any(op == "contains" for _, op, _ in conds):
        total, data = await pg_json.search_page_data(
            db, conds, offset, page_size, first, word_index
        )
        _past_end(page, offset, total)
        if data is None:
            data = await pg_json.page_data(db, conds, offset, page_size, first)
        return total, data
    total, data = await pg_json.count_and_page_data(db, conds, offset, page_size, first)
    _past_end(page, offset, total)
    return total, data


async def thread_json(actor: User, request_id: int, lang: str | None) -> list[dict[str, Any]]:
    """list_messages as JSON (core.serializers.message_data in the reader's `lang`). Staff
    on PostgreSQL: one statement (the request's existence, its messages and senders)."""
    db = connections.get("default")
    if is_staff(actor) and _pg(db):
        data = await pg_json.thread_data(db, request_id, can_see_internal(actor), lang)
        if data is None:
            raise NotFound(t("err_not_found", actor.language))
        return data
    return [message_data(m, lang=lang) for m in await list_messages(actor, request_id)]


def riders() -> bool:
    """Whether staff REST reads can ride on the token's statement (PostgreSQL): then the
    routes use the *_RIDER SQL of core.pg_json with api.http.authenticate_staff_with
    and turn the value into JSON with the functions below."""
    return _pg(connections.get("default"))


def detail_from_rider(actor: User, row: Any) -> dict[str, Any]:
    """request_json from pg_json.DETAIL_RIDER's value (None: no such request)."""
    if row is None:
        raise NotFound(t("err_not_found", actor.language))
    return pg_json.request_row_data(row)


def access_from_rider(actor: User, row: Any) -> RequestAccess:
    """What get_request_only gives the access rules, from pg_json.ACCESS_RIDER's value
    (None: no such request); NotFound unless `actor` may see the request."""
    req = None if row is None else RequestAccess(*row)
    if req is None or not can_view_request(actor, req):
        raise NotFound(t("err_not_found", actor.language))
    return req


def thread_from_rider(actor: User, rows: Any, lang: str | None) -> list[dict[str, Any]]:
    """thread_json (staff) from pg_json.THREAD_RIDER's value (None: no such request)."""
    if rows is None:
        raise NotFound(t("err_not_found", actor.language))
    return [pg_json.message_row_data(r, lang) for r in rows]


def list_rider(filters: RequestFilters, page: int, page_size: int = PAGE_SIZE) -> str | None:
    """pg_json.page_rider for a staff page without search, pg_json.search_rider for one
    with a search the word index can answer; None when the page takes list_requests_json
    (another search, or `page` out of range). ValidationFailed for bad filters."""
    if page < 1:
        return None
    conds = conditions(None, filters, staff=True)
    offset, first = (page - 1) * page_size, filters.unassigned_first
    if any(op == "contains" for _, op, _ in conds):
        return pg_json.search_rider(conds, offset, page_size, first)
    return pg_json.page_rider(conds, offset, page_size, first)


async def list_from_rider(
    actor: User, filters: RequestFilters, page: int, value: Any,
    page_size: int = PAGE_SIZE,
) -> tuple[int, list[dict[str, Any]]]:
    """list_requests_json from list_rider's value."""
    conds = conditions(actor, filters)
    if any(op == "contains" for _, op, _ in conds):
        found = pg_json.search_from_rider(value)
        if found is None:  # past the word index's bounds
            return await list_requests_json(actor, filters, page, page_size, word_index=False)
        total, data = found
    else:
        total, data = await pg_json.page_from_rider(connections.get("default"), conds, value)
    _past_end(page, (page - 1) * page_size, total)
    return total, data


class _SharedRun:
    """Concurrent callers share one run of a query, without ever getting a stale answer.

    A caller that arrives while no run is in flight starts one. Callers that arrive while
    a run is in flight wait for it to end and then share the next run (started once for
    all of them). So every caller gets a result computed entirely after it called, and a
    process runs at most one such query at a time, however many clients ask at once.
    """

    def __init__(self) -> None:
        self._running: asyncio.Future[Any] | None = None
        self._next: asyncio.Future[Any] | None = None

    async def __call__(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        for fut in (self._running, self._next):
            if fut is not None and fut.get_loop() is not loop:  # left over from another loop
                self._running = self._next = None
        fut = self._next
        if fut is None:
            if self._running is None:
                fut = self._running = asyncio.ensure_future(fn())
                fut.add_done_callback(self._finished)
            else:
                fut = self._next = asyncio.ensure_future(self._after(self._running, fn))
        return await asyncio.shield(fut)

    async def _after(self, previous: asyncio.Future[Any], fn: Callable[[], Awaitable[Any]]) -> Any:
        await asyncio.wait([previous])
        me = asyncio.current_task()
        self._running, self._next = me, None
        if me is not None:
            me.add_done_callback(self._finished)
        return await fn()

    def _finished(self, fut: asyncio.Future[Any]) -> None:
        if self._running is fut:
            self._running = None
        if not fut.cancelled():
            fut.exception()  # retrieved: a failure is raised to the callers, never logged twice


_stats_runs: dict[str, _SharedRun] = {}


async def _stats_counts(today_start: datetime) -> tuple[int, int, int, int, int]:
    """(open, in_progress, completed, closed, completed since today_start): two small reads
    on PostgreSQL (the status counters, and today's completions from the quarter hours'
    counters), one aggregate elsewhere."""
    db = connections.get("default")
    if _pg(db):
        per_status = await pg_queries.status_counts(db)
        today = await pg_queries.completed_since(db, today_start)
        return (
            per_status.get("open", 0), per_status.get("in_progress", 0),
            per_status.get("completed", 0), per_status.get("closed", 0), today,
        )
    row = (
        await CustomerRequest.all()
        .annotate(
            open_n=Count("id", _filter=Q(status=Status.open)),
            progress_n=Count("id", _filter=Q(status=Status.in_progress)),
            completed_n=Count("id", _filter=Q(status=Status.completed)),
            closed_n=Count("id", _filter=Q(status=Status.closed)),
            today_n=Count(
                "id", _filter=Q(status=Status.completed, status_changed_at__gte=today_start)
            ),
        )
        .first()
        .values("open_n", "progress_n", "completed_n", "closed_n", "today_n")
    )
    return tuple(  # type: ignore[return-value]
        row[k] or 0 for k in ("open_n", "progress_n", "completed_n", "closed_n", "today_n")
    )


def _stats_data(
    open_n: int, progress_n: int, completed_n: int, closed_n: int, today_n: int,
    csat_summary: dict[str, Any],
) -> dict[str, Any]:
    total = open_n + progress_n + completed_n + closed_n
    return {
        "total_requests": total,
        "open_requests": open_n,
        "in_progress_requests": progress_n,
        "completed_today": today_n,
        "completion_rate": round(completed_n / total * 100, 2) if total else 0,
        **csat_summary,
    }


def stats_rider() -> tuple[str, list[Any]]:
    """The stats' statement riding on the token's (pg_json.STATS_RIDER, or its form for a
    midnight that starts no quarter hour) and its parameters, for today in TZ."""
    values = pg_queries.completed_since_values(staff_stats.today_start(runtime.settings().tz))
    return (pg_json.STATS_RIDER if len(values) == 1 else pg_json.STATS_RIDER_UNALIGNED), values


def stats_from_rider(row: Any) -> dict[str, Any]:
    """stats() from the value of stats_rider()'s statement."""
    from core import csat

    open_n, progress_n, completed_n, closed_n, today_n, rated, rating_sum = row
    return _stats_data(
        int(open_n), int(progress_n), int(completed_n), int(closed_n), int(today_n),
        csat.summary_of(int(rated), int(rating_sum)),
    )


async def stats(tz: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The seed's stats (the status counts: two small reads), plus `csat_average` and `csat_responses`
    (core.csat.summary, one more). completed_today counts requests moved to
    completed since local midnight (in TZ) of `now` (default: the current time).

    Concurrent calls in one process share a query (see _SharedRun): each result is still
    computed after its call began, so a caller always sees its own earlier writes.
    """
    zone_name = tz or runtime.settings().tz
    ZoneInfo(zone_name)  # an unknown zone fails here, before any query
    from core import csat

    async def compute() -> dict[str, Any]:
        counts = await _stats_counts(staff_stats.today_start(zone_name, now))
        return _stats_data(*counts, await csat.summary())

    if now is not None:
        return await compute()
    run = _stats_runs.setdefault(zone_name, _SharedRun())
    return dict(await run(compute))
