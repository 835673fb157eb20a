"""PostgreSQL read paths: request pages, single requests, threads and exact counts.

Chosen by core.queries when the database is PostgreSQL. Rows become model instances through
the executor Tortoise's own queries use (`models`: the client's `executor_class`, what
`Model.raw()` calls) and the related users through one more query; relations are attached
with the models' own setters, so callers get exactly what `select_related` gives. Hand-written SQL instead of the ORM's query builder
because the builder rebuilds a 50-column join on every call (about half the CPU of a list
page, docs/performance.md).

List filters are SQL literals, not $n parameters: asyncpg prepares and caches statements,
and after five runs PostgreSQL may switch a prepared statement to one generic plan for
every value. One plan cannot suit both a search matching 500 rows (trigram bitmap) and one
matching 86,000 (walk created_at, stop at 20), nor status 'open' (15%) and 'closed' (55%).
Every such value is an int, a validated enum value or a string escaped by `literal`.
Lookups by id (a request, its users, a thread) have one plan for every value: those are
parameters, so their statements are prepared once per connection.

Counts are exact. Without search and without a customer they come from `request_counts`
(migration 0014_counts): one row per (status, priority, category, assignee) kept exact by
triggers in the same transaction as every insert, update, delete and truncate of
`customer_requests`, so a count reads at most a few hundred rows whatever the table size.
With a customer (at most that customer's requests) or a search, COUNT(*) over the matches.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from core.broad_counts import broad_count
from db.models import CustomerRequest, RequestMessage, User

REQUESTS = CustomerRequest._meta.db_table
USERS = User._meta.db_table
MESSAGES = RequestMessage._meta.db_table

USERS_SQL = f'SELECT * FROM "{USERS}" WHERE "id" = ANY($1::int[])'
BY_IDS_SQL = f'SELECT * FROM "{REQUESTS}" WHERE "id" = ANY($1::int[]) ORDER BY "created_at" DESC, "id" DESC'

# Matches collected at once by a search page; more than this and the page walks the
# created_at order instead (see search_page).
SEARCH_COLLECT = 1000


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def literal(value: Any) -> str:
    """A PostgreSQL literal for an int or a string (E'' string: quotes and backslashes
    escaped, so it is safe whatever standard_conforming_strings says)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"unsupported literal {value!r}")
    if isinstance(value, int) and not isinstance(value, Enum):
        return str(int(value))
    text = str(value.value if isinstance(value, Enum) else value).replace("\x00", "")
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def where(conds: list[tuple[str, str, Any]], alias: str = "") -> str:
    """` WHERE ...` for the filters (column, op, value) of core.queries.conditions."""
    parts = where_parts(conds, alias)
    return (" WHERE " + " AND ".join(parts)) if parts else ""


def where_parts(conds: list[tuple[str, str, Any]], alias: str = "") -> list[str]:
    """One SQL condition per filter."""
    prefix = f"{alias}." if alias else ""
    parts: list[str] = []
    for column, op, value in conds:
        if op == "null":
            parts.append(f'{prefix}"{column}" IS NULL')
        elif op == "contains":
            parts.append(f'{prefix}"{column}" LIKE {like_pattern(value)}')
        else:
            parts.append(f'{prefix}"{column}" = {literal(value)}')
    return parts


def like_pattern(value: str) -> str:
    """`E'%value%' ESCAPE ...`: matches the strings containing `value`."""
    return f"{literal(f'%{escape_like(value)}%')} ESCAPE E'\\\\'"


def sort_sql(unassigned_first: bool = False, alias: str = "") -> str:
    """The list order: newest first; false sorts before true, so "assigned IS NOT NULL"
    puts the unassigned first."""
    p = f"{alias}." if alias else ""
    first = f'{p}"assigned_admin_id" IS NOT NULL, ' if unassigned_first else ""
    return f'ORDER BY {first}{p}"created_at" DESC, {p}"id" DESC'


def order_sql(offset: int, limit: int, unassigned_first: bool = False) -> str:
    return f"{sort_sql(unassigned_first)} LIMIT {int(limit)} OFFSET {int(offset)}"


async def models(
    model: Any, db: Any, sql: str, values: list[Any] | None = None,
    custom_fields: list[str] | None = None,
) -> list[Any]:
    """The rows of `sql` as `model` instances, built by the executor the ORM's own queries
    use (the client's public `executor_class`), so that values can be $n parameters: a
    statement that does not depend on a plan-sensitive value keeps one text and is
    prepared once per connection (asyncpg's statement cache)."""
    return await db.executor_class(model=model, db=db).execute_select(
        sql, values or [], custom_fields=custom_fields
    )


async def _with_users(requests: list[CustomerRequest], db: Any) -> list[CustomerRequest]:
    """Attach customer and assigned admin (one query for every user of the page)."""
    ids = {r.customer_id for r in requests} | {
        r.assigned_admin_id for r in requests if r.assigned_admin_id is not None
    }
    users: dict[int, User] = {}
    if ids:
        for u in await models(User, db, USERS_SQL, [sorted(ids)]):
            users[u.id] = u
    for r in requests:
        r.customer = users.get(r.customer_id)
        r.assigned_admin = users.get(r.assigned_admin_id) if r.assigned_admin_id else None
    return requests


REQUEST_SQL = f'SELECT * FROM "{REQUESTS}" WHERE "id" = $1'


async def request_only(db: Any, request_id: int) -> CustomerRequest | None:
    """The request without its users (one prepared statement)."""
    rows = await models(CustomerRequest, db, REQUEST_SQL, [int(request_id)])
    return rows[0] if rows else None


async def requests_by_ids(db: Any, ids: list[int]) -> list[CustomerRequest]:
    """These requests (newest first) with customer and assigned admin."""
    if not ids:
        return []
    rows = await models(CustomerRequest, db, BY_IDS_SQL, [[int(i) for i in ids]])
    return await _with_users(rows, db)


async def page(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool = False,
) -> list[CustomerRequest]:
    """One page, newest first. The page's ids are found first (an index-only scan where an
    index covers the filters, the order and the id: migration 0003), then only those rows
    are read, so a deep OFFSET skips index entries instead of table rows."""
    rows = await models(
        CustomerRequest, db,
        f'SELECT r.* FROM (SELECT "id" FROM "{REQUESTS}"{where(conds)} '
        f"{order_sql(offset, limit, unassigned_first)}) p "
        f'JOIN "{REQUESTS}" r ON r."id" = p."id" {sort_sql(unassigned_first, "r")}',
    )
    return await _with_users(rows, db)


async def search_page(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool = False,
) -> tuple[int, list[CustomerRequest] | None]:
    """(exact count, page) for a search; page None when the caller must fetch it with
    `page` (a broad search: see search_ids)."""
    total, ids, version = await search_ids(db, conds, offset, limit, unassigned_first)
    if ids is not None:
        found = {r.id: r for r in await requests_by_ids(db, ids)}
        return total, [found[i] for i in ids if i in found]
    return await broad_count(db, where(conds), version), None


async def search_ids(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool,
) -> tuple[int, list[int] | None, Any]:
    """(exact count, the page's ids, request_counts_version) of a search; ids None (and the
    count not yet known) when there are too many matches to collect.

    First through the word index (word_search), which collects up to WORD_POSTINGS
    matches. Otherwise up to SEARCH_COLLECT + 1 matches are collected once through the
    trigram index, counted and sorted in memory: walking created_at until 20 matches costs
    a full table walk when matches are rare, and LIKE estimates are too rough to choose.
    Beyond that the caller counts them exactly (broad_count) and pages along created_at.
    """
    found = await word_search(db, conds, offset, limit, unassigned_first)
    if found is not None:
        return found
    return await trigram_search(db, conds, offset, limit, unassigned_first)


async def trigram_search(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool,
) -> tuple[int, list[int] | None, Any]:
    """search_ids through the trigram index only."""
    ids_sql = (
        f'WITH m AS MATERIALIZED (SELECT "id", "created_at", "assigned_admin_id" FROM '
        f'"{REQUESTS}"{where(conds)} LIMIT {SEARCH_COLLECT + 1}) '
        f'SELECT (SELECT COUNT(*) FROM m) AS n, p."id", '
        f'(SELECT "v" FROM "request_counts_version") AS v FROM (SELECT 1) one LEFT JOIN '
        f'(SELECT "id" FROM m {order_sql(offset, limit, unassigned_first)}) p ON TRUE'
    )
    _, records = await db.execute_query(ids_sql)
    total = int(records[0][0])
    if total > SEARCH_COLLECT:
        return total, None, records[0][2]
    return total, [r[1] for r in records if r[1] is not None], records[0][2]


# The word index (migration 0016_search_words). Words are split on these characters.
WORD_SEPARATORS = " \t\n\r\f\v"
# A query (or piece of one) of at most WORD_STEP characters lies inside one vocabulary
# entry; the trigram index needs at least WORD_MIN.
WORD_STEP = 64
WORD_MIN = 3
# Bounds of one word search: vocabulary words it may expand to, postings it may read
# (index-only), candidates it may recheck against the request rows when the query is more
# than one word. Past them the search goes the trigram way.
WORD_VOCABULARY = 256
WORD_POSTINGS = 20_000
WORD_RECHECK = 4_000


def word_term(query: str) -> str | None:
    """The piece of `query` to look up in the vocabulary: its longest word, at most
    WORD_STEP characters; None when no piece is long enough to be selective."""
    pieces = "".join(" " if c in WORD_SEPARATORS else c for c in query).split(" ")
    term = max(pieces, key=len)[:WORD_STEP]
    return term if len(term) >= WORD_MIN else None


def word_search_sql(
    conds: list[tuple[str, str, Any]], offset: int, limit: int, unassigned_first: bool,
    rows: tuple[str, str] | None = None,
) -> str | None:
    """The word index's statement for a search (see word_search), None when the search
    cannot take it. One row: (vocabulary words found, postings read, their bound, matches,
    request_counts_version, the page's ids as an array); with `rows` (columns, joins of
    `r`, the request) one value instead: an array of ROW(those columns, the five figures),
    the page's requests or, for an empty page, one ROW of NULL columns and the figures."""
    search = [value for column, op, value in conds if op == "contains"]
    rest = [c for c in conds if c[1] != "contains"]
    if len(search) != 1 or any(column == "customer_id" for column, _, _ in rest):
        return None
    query = search[0]
    term = word_term(query)
    if term is None:
        return None
    filters = "".join(f" AND {part}" for part in where_parts(rest))
    cap = WORD_POSTINGS if term == query else WORD_RECHECK
    # Past a bound nothing further is read (one-time filters): the caller goes the trigram way.
    within = f"(SELECT COUNT(*) FROM c) <= {cap}"
    if term == query:
        # A request has one posting per word: duplicates only when the term is in several
        # words (then the hash of DISTINCT, otherwise skipped: half of a 5,000-match search).
        one = 'SELECT "request_id" AS "id", "created_at", "assigned_admin_id" FROM c'
        matches = (
            f"{one} WHERE (SELECT COUNT(*) FROM w) = 1 AND {within} UNION ALL "
            f"{one.replace('SELECT', 'SELECT DISTINCT', 1)} "
            f"WHERE (SELECT COUNT(*) FROM w) > 1 AND {within}"
        )
    else:
        matches = (
            f'SELECT "id", "created_at", "assigned_admin_id" FROM "{REQUESTS}" '
            f'WHERE "id" IN (SELECT "request_id" FROM c) AND "search_text" LIKE '
            f"{like_pattern(query)} AND {within}"
        )
    ids = f'SELECT "id" FROM m {order_sql(offset, limit, unassigned_first)}'
    head = (
        f'WITH w AS MATERIALIZED (SELECT "word" FROM "request_vocab" WHERE "word" LIKE '
        f"{like_pattern(term)} LIMIT {WORD_VOCABULARY + 1}), "
        f'c AS MATERIALIZED (SELECT "request_id", "created_at", "assigned_admin_id" '
        f'FROM "request_words" WHERE "word" = ANY (ARRAY(SELECT "word" FROM w)){filters} '
        f"AND (SELECT COUNT(*) FROM w) <= {WORD_VOCABULARY} LIMIT {cap + 1}), "
        f"m AS MATERIALIZED ({matches}) "
    )
    figures = (
        f"(SELECT COUNT(*) FROM w), (SELECT COUNT(*) FROM c), {cap}, (SELECT COUNT(*) FROM m), "
        f'(SELECT "v" FROM "request_counts_version")'
    )
    if rows is None:
        return f"{head}SELECT {figures}, ARRAY({ids})"
    return (
        f"{head}SELECT ARRAY(SELECT ROW({rows[0]}, f.*) FROM (SELECT {figures}) f "
        f'LEFT JOIN (({ids}) p JOIN "{REQUESTS}" r ON r."id" = p."id" {rows[1]}) ON TRUE '
        f'{sort_sql(unassigned_first, "r")})'
    )


def word_search_result(value: Any, rows: bool = False) -> tuple[int, list[Any], Any] | None:
    """(exact count, the page, request_counts_version) from word_search_sql's row (or, for
    `rows`, its one value); None when the search went past the word index's bounds (then
    it takes the trigram way)."""
    if rows:
        first = value[0]
        words, postings, cap, total, version = tuple(first)[-5:]
        page = [r for r in value if r[0] is not None]
    else:
        words, postings, cap, total, version, page = value
    if words > WORD_VOCABULARY or postings > cap:
        return None
    return int(total), list(page), version


async def word_search(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool, rows: tuple[str, str] | None = None,
) -> tuple[int, list[Any], Any] | None:
    """(exact count, the page, request_counts_version) through the word index, or None when
    it cannot answer within its bounds (then the caller takes the trigram way). The page is
    the requests' ids or, with `rows` (columns, joins of `r`, the request), those columns.

    One statement: the vocabulary words containing the term (trigram index of a small
    table), their postings with the list filters (an index-only scan: the postings carry
    created_at and the filter columns), then, only when the term is not the whole query, a
    recheck of those candidates' rows with the query's LIKE. A request whose text contains
    the query has a word containing the term, so nothing is missed; a query that is its own
    term needs no recheck, as a posting's word containing it means the text does. Not for
    a customer's own list (at most that customer's requests: the trigram way is cheap).
    """
    sql = word_search_sql(conds, offset, limit, unassigned_first, rows)
    if sql is None:
        return None
    _, records = await db.execute_query(sql)
    return word_search_result(records[0], rows is not None)


def count_sql(conds: list[tuple[str, str, Any]]) -> str:
    """A statement (or scalar subquery) giving the exact number of matching requests:
    a sum over the counters unless a customer or a search is among the filters."""
    columns = {column for column, _, _ in conds}
    if not columns & {"customer_id", "search_text"}:
        parts = []
        for column, op, value in conds:
            if column == "assigned_admin_id":
                parts.append(f'"assignee_id" = {0 if op == "null" else literal(int(value))}')
            else:
                parts.append(f'"{column}" = {literal(value)}')
        cond = (" WHERE " + " AND ".join(parts)) if parts else ""
        return f'SELECT COALESCE(SUM("n"), 0)::bigint FROM "request_counts"{cond}'
    return f'SELECT COUNT(*) FROM "{REQUESTS}"{where(conds)}'


async def count(db: Any, conds: list[tuple[str, str, Any]]) -> int:
    """The exact number of requests matching the filters."""
    _, rows = await db.execute_query(count_sql(conds))
    return int(rows[0][0])


async def count_and_page(
    db: Any, conds: list[tuple[str, str, Any]], offset: int, limit: int,
    unassigned_first: bool = False,
) -> tuple[int, list[CustomerRequest]]:
    """(exact count, the page) without search: both in one statement (one snapshot), the
    count as a column of every row; only an empty page asks for the count again."""
    rows = await models(
        CustomerRequest, db,
        f'SELECT r.*, ({count_sql(conds)}) AS "total_" FROM (SELECT "id" FROM '
        f'"{REQUESTS}"{where(conds)} {order_sql(offset, limit, unassigned_first)}) p '
        f'JOIN "{REQUESTS}" r ON r."id" = p."id" {sort_sql(unassigned_first, "r")}',
        custom_fields=["total_"],
    )
    if not rows:
        return await count(db, conds), []
    total = int(rows[0].total_)
    for r in rows:
        del r.total_
    return total, await _with_users(rows, db)


async def status_counts(db: Any) -> dict[str, int]:
    """Requests per status, from the counters."""
    _, rows = await db.execute_query(
        'SELECT "status", SUM("n") FROM "request_counts" GROUP BY "status"'
    )
    return {str(r[0]): int(r[1]) for r in rows}


# Completions per quarter hour (migration 0017_stats_counters): the requests completed since
# a start (local midnight) are the counters from the first quarter hour at or after it on,
# plus, only when the start is not itself a quarter hour's start (no real zone's midnight),
# a COUNT(*) of those before that quarter hour. At most 96 counters a day, whatever the
# table size. The aligned form does not name `customer_requests` at all: planning a
# statement that does costs about 0.5 ms (its 17 indexes), which PostgreSQL pays on every
# run of a prepared statement whose generic plan it judges worse than a custom one.
COMPLETION_BUCKET = 900  # seconds


def completed_since_sql(bucket: str, start: str | None = None) -> str:
    """An expression: the requests completed (status completed, status_changed_at) from
    parameter `bucket` (completion_bucket of the start) on, plus, with parameter `start`
    (a start before `bucket`), those from `start` to `bucket`."""
    counters = f'(SELECT COALESCE(SUM("n"), 0) FROM "request_completions" WHERE "bucket" >= {bucket})'
    if start is None:
        return f"{counters}::bigint"
    return (
        f'({counters} + (SELECT COUNT(*) FROM "{REQUESTS}" WHERE "status" = \'completed\''
        f' AND "status_changed_at" >= {start} AND "status_changed_at" < {bucket}))::bigint'
    )


def completion_bucket(start: datetime) -> datetime:
    """The first quarter hour's start at or after `start` (an aware datetime)."""
    return datetime.fromtimestamp(
        math.ceil(start.timestamp() / COMPLETION_BUCKET) * COMPLETION_BUCKET, UTC
    )


def completed_since_values(start: datetime) -> list[datetime]:
    """completed_since_sql's parameters for `start`: [bucket] when `start` begins a quarter
    hour, else [bucket, start]."""
    bucket = completion_bucket(start)
    return [bucket] if bucket == start else [bucket, start]


async def completed_since(db: Any, start: datetime) -> int:
    """The requests completed at or after `start`, exact (see completed_since_sql)."""
    values = completed_since_values(start)
    sql = completed_since_sql("$1", "$2" if len(values) > 1 else None)
    _, rows = await db.execute_query(f"SELECT {sql}", values)
    return int(rows[0][0])


# The ratings' count and sum from the counters per score (migration 0017_stats_counters).
RATINGS_SQL = (
    '(SELECT COALESCE(SUM("n"), 0)::bigint FROM "request_ratings"), '
    '(SELECT COALESCE(SUM("rating" * "n"), 0)::bigint FROM "request_ratings")'
)


async def rating_totals(db: Any) -> tuple[int, int]:
    """(rated requests, sum of their ratings), exact."""
    _, rows = await db.execute_query(f"SELECT {RATINGS_SQL}")
    return int(rows[0][0]), int(rows[0][1])


async def messages(
    db: Any, request_id: int, internal: bool, after_id: int = 0, limit: int | None = None
) -> list[RequestMessage]:
    """A thread, oldest first, with senders (two queries: messages, their senders)."""
    # One text per (internal?) shape: the id, the cursor and the limit are parameters.
    cond = '"request_id" = $1 AND NOT "is_deleted" AND "id" > $2'
    if not internal:
        cond += ' AND NOT "is_internal"'
    rows = await models(
        RequestMessage, db,
        f'SELECT * FROM "{MESSAGES}" WHERE {cond} ORDER BY "created_at", "id" LIMIT $3',
        [int(request_id), int(after_id or 0), int(limit) if limit else None],
    )
    ids = {m.sender_id for m in rows}
    users: dict[int, User] = {}
    if ids:
        for u in await models(User, db, USERS_SQL, [sorted(ids)]):
            users[u.id] = u
    for m in rows:
        m.sender = users[m.sender_id]
    return rows
