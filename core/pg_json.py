"""PostgreSQL REST reads straight to JSON: the staff hot paths (detail, list pages, a
thread) map asyncpg records to the serializers' shapes (core.serializers.request_data /
message_data) without model instances, the users joined in the same statement; and the
scalar subqueries ("riders") that answer them inside the token's own statement
(core.tokens.token_owner_with). The SQL building blocks, the counts and the model paths are
core.pg_queries. Equality with the model path is tested (tests/test_pg_json_rows.py) and
checked page by page on the bench data (bench.check_lists)."""

from __future__ import annotations

from typing import Any

import orjson

from core import i18n
from core.broad_counts import broad_count
from core.pg_queries import (
    MESSAGES,
    RATINGS_SQL,
    REQUESTS,
    USERS,
    completed_since_sql,
    count,
    count_sql,
    order_sql,
    sort_sql,
    trigram_search,
    where,
    word_search_result,
    word_search_sql,
)
from core.serializers import dt
from db.models import Status

_USER_FIELDS = ("id", "username", "first_name", "last_name", "email")
_REQUEST_COLUMNS = (
    'r."id", r."title", r."description", r."status", r."priority", r."category", '
    'r."assigned_admin_id", r."created_at", r."updated_at", r."last_message_at", '
    'r."messages_count", r."estimated_resolution_time", r."tags", r."rating", '
    'r."rating_comment", '
    'c."id", c."username", c."first_name", c."last_name", c."email", c."email_verified", '
    'c."banned_at", a."id", a."username", a."first_name", a."last_name", a."email"'
)
_REQUEST_JOINS = (
    f'JOIN "{USERS}" c ON c."id" = r."customer_id" '
    f'LEFT JOIN "{USERS}" a ON a."id" = r."assigned_admin_id"'
)
REQUEST_ROW_SQL = (
    f'SELECT {_REQUEST_COLUMNS} FROM "{REQUESTS}" r {_REQUEST_JOINS} WHERE r."id" = $1'
)
ROWS_BY_IDS_SQL = (
    f'SELECT {_REQUEST_COLUMNS} FROM "{REQUESTS}" r {_REQUEST_JOINS} '
    f'WHERE r."id" = ANY($1::int[])'
)


def _json_value(value: Any) -> Any:
    """A JSON(B) column as Python (asyncpg hands jsonb over as text)."""
    if isinstance(value, (str, bytes)):
        return orjson.loads(value)
    return value


def request_row_data(row: Any) -> dict[str, Any]:
    """core.serializers.request_data for a record of `_REQUEST_COLUMNS`."""
    (rid, title, description, status, priority, category, assigned_id, created_at, updated_at,
     last_message_at, messages_count, estimate, tags, rating, rating_comment,
     c_id, c_username, c_first, c_last, c_email, c_verified, c_banned,
     a_id, a_username, a_first, a_last, a_email) = row[:27]
    tags = _json_value(tags)
    return {
        "id": rid,
        "title": title,
        "description": description,
        "status": status,
        "priority": priority,
        "category": category,
        "customer": {
            "id": c_id, "username": c_username, "first_name": c_first, "last_name": c_last,
            "email": c_email, "avatar": None,
        },
        "assigned_admin": {
            "id": a_id, "username": a_username, "first_name": a_first, "last_name": a_last,
            "email": a_email, "avatar": None,
        } if assigned_id and a_id is not None else None,
        "created_at": dt(created_at),
        "updated_at": dt(updated_at),
        "last_message_at": dt(last_message_at),
        "messages_count": messages_count,
        "estimated_resolution_time": dt(estimate),
        "tags": tags if tags is not None else [],
        "customer_email_verified": bool(c_email and c_verified),
        "customer_banned": c_banned is not None,
        "rating": rating,
        "rating_comment": rating_comment or "",
    }


async def request_data_by_id(db: Any, request_id: int) -> dict[str, Any] | None:
    """The request's JSON (request_data), None when there is no such request."""
    _, rows = await db.execute_query(REQUEST_ROW_SQL, [int(request_id)])
    return request_row_data(rows[0]) if rows else None


async def _rows_data(db: Any, ids: list[int]) -> list[dict[str, Any]]:
    """These requests' JSON, in the order of `ids`."""
    if not ids:
        return []
    _, rows = await db.execute_query(ROWS_BY_IDS_SQL, [[int(i) for i in ids]])
    found = {r[0]: r for r in rows}
    return [request_row_data(found[i]) for i in ids if i in found]


async def count_and_page_data(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool = False,
) -> tuple[int, list[dict[str, Any]]]:
    """count_and_page as JSON: the count, the page and its users in one statement."""
    _, rows = await db.execute_query(
        f'SELECT {_REQUEST_COLUMNS}, ({count_sql(conds)}) FROM (SELECT "id" FROM '
        f'"{REQUESTS}"{where(conds)} {order_sql(offset, limit, unassigned_first)}) p '
        f'JOIN "{REQUESTS}" r ON r."id" = p."id" {_REQUEST_JOINS} '
        f'{sort_sql(unassigned_first, "r")}'
    )
    if not rows:
        return await count(db, conds), []
    return int(rows[0][27]), [request_row_data(r) for r in rows]


async def page_data(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool = False,
) -> list[dict[str, Any]]:
    """page as JSON (users joined)."""
    _, rows = await db.execute_query(
        f'SELECT {_REQUEST_COLUMNS} FROM (SELECT "id" FROM "{REQUESTS}"{where(conds)} '
        f"{order_sql(offset, limit, unassigned_first)}) p "
        f'JOIN "{REQUESTS}" r ON r."id" = p."id" {_REQUEST_JOINS} '
        f'{sort_sql(unassigned_first, "r")}'
    )
    return [request_row_data(r) for r in rows]


async def search_page_data(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool = False, word_index: bool = True,
) -> tuple[int, list[dict[str, Any]] | None]:
    """search_page as JSON; the page None when the caller must fetch it with page_data.
    `word_index` False: the word index was tried already (a rider past its bounds)."""
    sql = search_rider(conds, offset, limit, unassigned_first) if word_index else None
    if sql is not None:
        _, rows = await db.execute_query(sql)
        found = search_from_rider(rows[0][0])
        if found is not None:
            return found
    total, ids, version = await trigram_search(db, conds, offset, limit, unassigned_first)
    if ids is not None:
        return total, await _rows_data(db, ids)
    return await broad_count(db, where(conds), version), None


_THREAD_COLUMNS = (
    'm."id", m."request_id", m."sender_id", m."sender_type", m."content", m."content_i18n", '
    'm."message_type", m."is_read", m."is_internal", m."created_at", m."edited_at", '
    'u."first_name", u."last_name", u."username"'
)
_THREAD_SQL = (
    f'SELECT {_THREAD_COLUMNS} FROM "{REQUESTS}" r '
    f'LEFT JOIN "{MESSAGES}" m ON m."request_id" = r."id" AND NOT m."is_deleted"{{internal}} '
    f'LEFT JOIN "{USERS}" u ON u."id" = m."sender_id" '
    f'WHERE r."id" = $1 ORDER BY m."created_at", m."id"'
)
THREAD_SQL = _THREAD_SQL.format(internal="")
PUBLIC_THREAD_SQL = _THREAD_SQL.format(internal=' AND NOT m."is_internal"')


def message_row_data(row: Any, lang: str | None) -> dict[str, Any]:
    """core.serializers.message_data for a record of `_THREAD_COLUMNS`."""
    (mid, request_id, sender_id, sender_type, content, content_i18n, message_type, is_read,
     is_internal, created_at, edited_at, first_name, last_name, username) = row
    if lang and content_i18n:
        text = i18n.from_json(_json_value(content_i18n))
        if text is not None:
            content = text.in_language(lang)
    if username is None:
        sender_name = ""
    else:
        sender_name = f"{first_name} {last_name}".strip() or username
    return {
        "id": mid,
        "request": request_id,
        "sender": sender_id,
        "sender_type": sender_type,
        "sender_name": sender_name,
        "sender_avatar": None,
        "content": content,
        "message_type": message_type,
        "is_read": is_read,
        "is_internal": is_internal,
        "created_at": dt(created_at),
        "edited_at": dt(edited_at),
    }


async def thread_data(
    db: Any, request_id: int, internal: bool, lang: str | None
) -> list[dict[str, Any]] | None:
    """A whole thread's JSON (message_data), oldest first, senders joined; None when there
    is no such request. One statement: the request's existence and its messages."""
    _, rows = await db.execute_query(
        THREAD_SQL if internal else PUBLIC_THREAD_SQL, [int(request_id)]
    )
    if not rows:
        return None
    return [message_row_data(r, lang) for r in rows if r[0] is not None]


# --- reads riding on the token's statement -------------------------------------------------
# Scalar subqueries (core.tokens.token_owner_with: parameters from $2) that answer a staff REST
# read in the same statement as the caller's token: one round trip per request, as the raw
# floor does (docs/performance.md).

DETAIL_RIDER = f'SELECT ROW({_REQUEST_COLUMNS}) FROM "{REQUESTS}" r {_REQUEST_JOINS} WHERE r."id" = $2'
THREAD_RIDER = (
    f'SELECT CASE WHEN EXISTS (SELECT 1 FROM "{REQUESTS}" WHERE "id" = $2) THEN ARRAY('
    f'SELECT ROW({_THREAD_COLUMNS}) FROM "{MESSAGES}" m '
    f'LEFT JOIN "{USERS}" u ON u."id" = m."sender_id" '
    f'WHERE m."request_id" = $2 AND NOT m."is_deleted" ORDER BY m."created_at", m."id") END'
)


# The desk's stats (core.queries.stats): requests per status from the counters, the
# completions since local midnight (pg_queries.completed_since_sql: $2 the quarter hour it
# starts, and $3 the start itself in the rare case it does not start one) and the ratings'
# count and sum (core.csat), all from counters.
def _stats_rider(completed: str) -> str:
    return (
        "SELECT ROW("
        + ", ".join(
            f'COALESCE(SUM("n") FILTER (WHERE "status" = \'{status}\'), 0)::bigint'
            for status in (Status.open, Status.in_progress, Status.completed, Status.closed)
        )
        + f', {completed}, {RATINGS_SQL}) FROM "request_counts"'
    )


STATS_RIDER = _stats_rider(completed_since_sql("$2"))
STATS_RIDER_UNALIGNED = _stats_rider(completed_since_sql("$2", "$3"))


# The columns the access rules read (core.permissions.RequestAccess), for a write that
# checks a request first (a message POST): core.queries.access_from_rider.
ACCESS_RIDER = (
    f'SELECT ROW(r."id", r."customer_id", r."assigned_admin_id", r."status") '
    f'FROM "{REQUESTS}" r WHERE r."id" = $2'
)


def page_rider(
    conds: list[tuple[str, str, Any]], offset: int, limit: int, unassigned_first: bool = False,
) -> str:
    """count_and_page_data's statement as one array column: each row the request's columns
    and the exact count (no search among `conds`)."""
    return (
        f'SELECT ARRAY(SELECT ROW({_REQUEST_COLUMNS}, ({count_sql(conds)})) FROM (SELECT "id" '
        f'FROM "{REQUESTS}"{where(conds)} {order_sql(offset, limit, unassigned_first)}) p '
        f'JOIN "{REQUESTS}" r ON r."id" = p."id" {_REQUEST_JOINS} '
        f'{sort_sql(unassigned_first, "r")})'
    )


def search_rider(
    conds: list[tuple[str, str, Any]], offset: int, limit: int, unassigned_first: bool = False,
) -> str | None:
    """A search page through the word index (pg_queries.word_search_sql with the page's
    rows as `_REQUEST_COLUMNS`) as one array column; None when the search cannot take it."""
    return word_search_sql(
        conds, offset, limit, unassigned_first, rows=(_REQUEST_COLUMNS, _REQUEST_JOINS)
    )


def search_from_rider(value: Any) -> tuple[int, list[dict[str, Any]]] | None:
    """(exact count, page JSON) from search_rider's value; None when the search went past
    the word index's bounds."""
    found = word_search_result(value, rows=True)
    if found is None:
        return None
    return found[0], [request_row_data(r) for r in found[1]]


async def page_from_rider(
    db: Any, conds: list[tuple[str, str, Any]], rows: list[Any]
) -> tuple[int, list[dict[str, Any]]]:
    """(exact count, page JSON) from page_rider's value."""
    if not rows:
        return await count(db, conds), []
    return int(rows[0][27]), [request_row_data(r) for r in rows]
