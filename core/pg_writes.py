"""PostgreSQL write paths of the hottest writes: a new request and a thread's new message.

Chosen by core.request_writes, core.thread and core.events when the database is PostgreSQL
(SQLite keeps the ORM's `create`). Each write is ONE statement whose values are all $n
parameters, so its text is the same on every call and asyncpg prepares it once per
connection:

- a new message: the message row, its request's counters (last_message_at,
  messages_count, public_messages_count), the first staff reply (first_response_at/_by)
  and the `new_message` event row;
- a new request: the request row, its history row ("created") and the `new_request`
  event row.

The parts are data-modifying CTEs of one statement, so they commit or fail together even
outside a transaction (one round trip where the ORM took a BEGIN, three or four INSERTs
and UPDATEs and a COMMIT). The event's payload is the row's JSON built in Python before
the INSERT; only its "id" is the new row's, set in SQL (`jsonb_set`). The new row comes
back as a model instance through the executor the ORM's own queries use
(core.pg_queries.models), exactly what `Model.create` returns, and every value goes through
its field's own `to_db_value` (enums, JSON, time zones), as the ORM's own INSERT does.

Which message is a first reply is core.staff_stats's rule (`is_first_response`); the
statement only keeps the first one (`first_response_at IS NULL`, under the UPDATE's row
lock, so of two concurrent first replies one is kept).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from core.pg_queries import REQUESTS, models
from db.models import CustomerRequest, Event, RequestHistory, RequestMessage

EVENTS = Event._meta.db_table

# Statement texts per shape: a handful in all.
_SQL: dict[tuple[Any, ...], str] = {}


def draft(model: Any, values: dict[str, Any], **related: Any) -> Any:
    """A row about to be inserted as the serializers read it (for its event's payload):
    `values`, `related` objects and every other field None (the id too). Not a model
    instance: the model's constructor converts and checks every field, about a tenth of
    a request's whole CPU here."""
    return SimpleNamespace(**{**dict.fromkeys(model._meta.fields_map), **values, **related})


def _params(model: Any, values: dict[str, Any]) -> list[Any]:
    fields = model._meta.fields_map
    return [fields[name].to_db_value(value, None) for name, value in values.items()]


def _insert(model: Any, columns: tuple[str, ...], first: int) -> str:
    """INSERT INTO the model's table with these columns as $first, $first+1, ..."""
    meta = model._meta
    names = ", ".join(f'"{meta.fields_db_projection[c]}"' for c in columns)
    marks = ", ".join(f"${i}" for i in range(first, first + len(columns)))
    return f'INSERT INTO "{meta.db_table}" ({names}) VALUES ({marks})'


def _typed(model: Any, column: str, mark: str) -> str:
    """`mark` cast to the column's type: a parameter in a SELECT list has none of its own
    (text for strings, so that a value too long for a VARCHAR column is an error, as in
    VALUES, not cut)."""
    sql_type = model._meta.fields_map[column].get_for_dialect("postgres", "SQL_TYPE")
    return f"{mark}::{'text' if sql_type.upper().startswith('VARCHAR') else sql_type}"


def _logged(first: int) -> str:
    """The event row of the new row "added": $first type, +1 topic, +2 payload, +3 time."""
    t, topic, payload, at = (f"${first + i}" for i in range(4))
    return (
        f'"logged" AS (INSERT INTO "{EVENTS}" ("type", "topic", "payload", "created_at", '
        f'"published") SELECT {t}::text, {topic}::text, jsonb_set({payload}::jsonb, '
        f'\'{{id}}\', to_jsonb("added"."id")), {_typed(Event, "created_at", at)}, FALSE '
        'FROM "added")'
    )


def _event_params(event: tuple[str, str, dict[str, Any]], at: Any) -> list[Any]:
    type_, topic, payload = event
    return [type_, topic, Event._meta.fields_map["payload"].to_db_value(payload, None), at]


async def insert(model: Any, db: Any, values: dict[str, Any]) -> Any:
    """One row of `model` with exactly these column values (every column without a
    database default must be given), returned as a model instance."""
    key = ("insert", model, tuple(values))
    sql = _SQL.get(key)
    if sql is None:
        # a query, not a bare INSERT: the client reads no rows back from a statement that
        # starts with INSERT
        sql = _SQL[key] = (
            f'WITH "added" AS ({_insert(model, tuple(values), 1)} RETURNING *) '
            'SELECT * FROM "added"'
        )
    rows = await models(model, db, sql, _params(model, values))
    return rows[0]


async def insert_event(db: Any, type_: str, topic: str, payload: Any, created_at: Any) -> Event:
    return await insert(Event, db, {
        "type": type_, "topic": topic, "payload": payload, "created_at": created_at,
        "published": False,
    })


async def add_message(
    db: Any, values: dict[str, Any], *, first_response: bool,
    event: tuple[str, str, dict[str, Any]] | None,
) -> RequestMessage:
    """The message row (`values`: request_id and sender_id first, then every other column,
    created_at and is_internal among them), its request's counters and, unless `event` is
    None (the caller records it later, after the message's files), the event
    (type, topic, payload without the id) in one statement."""
    columns = tuple(values)
    if columns[:2] != ("request_id", "sender_id"):
        raise ValueError("request_id and sender_id come first")
    n = len(columns)
    key = ("message", columns, event is not None)
    sql = _SQL.get(key)
    if sql is None:
        at, public, first = f"${n + 1}", f"${n + 2}", f"${n + 3}"
        parts = [
            f'"counted" AS (UPDATE "{REQUESTS}" SET "last_message_at" = {at}, '
            '"messages_count" = "messages_count" + 1, '
            f'"public_messages_count" = "public_messages_count" + {public}, '
            f'"first_response_at" = CASE WHEN {first} AND "first_response_at" IS NULL '
            f'THEN {at} ELSE "first_response_at" END, '
            f'"first_response_by_id" = CASE WHEN {first} AND "first_response_at" IS NULL '
            'THEN $2 ELSE "first_response_by_id" END WHERE "id" = $1)',
            f'"added" AS ({_insert(RequestMessage, columns, 1)} RETURNING *)',
        ]
        if event is not None:
            parts.append(_logged(n + 4))
        sql = _SQL[key] = "WITH " + ", ".join(parts) + ' SELECT * FROM "added"'
    params = _params(RequestMessage, values) + [
        values["created_at"], 0 if values["is_internal"] else 1, bool(first_response),
    ]
    if event is not None:
        params += _event_params(event, values["created_at"])
    rows = await models(RequestMessage, db, sql, params)
    return rows[0]


async def add_request(
    db: Any, values: dict[str, Any], history: dict[str, Any],
    event: tuple[str, str, dict[str, Any]],
) -> CustomerRequest:
    """The request row (`values`, created_at among them), its history row (`history`: the
    columns but request_id) and its event (type, topic, payload without the id), in one
    statement."""
    columns, noted = tuple(values), tuple(history)
    n, h = len(columns), len(history)
    key = ("request", columns, noted)
    sql = _SQL.get(key)
    if sql is None:
        meta = RequestHistory._meta
        names = ", ".join(f'"{meta.fields_db_projection[c]}"' for c in noted)
        marks = ", ".join(
            _typed(RequestHistory, c, f"${n + 1 + i}") for i, c in enumerate(noted)
        )
        sql = _SQL[key] = (
            f'WITH "added" AS ({_insert(CustomerRequest, columns, 1)} RETURNING *), '
            f'"noted" AS (INSERT INTO "{meta.db_table}" ("request_id", {names}) '
            f'SELECT "added"."id", {marks} FROM "added"), '
            f'{_logged(n + h + 1)} SELECT * FROM "added"'
        )
    params = (
        _params(CustomerRequest, values) + _params(RequestHistory, history)
        + _event_params(event, values["created_at"])
    )
    rows = await models(CustomerRequest, db, sql, params)
    return rows[0]
