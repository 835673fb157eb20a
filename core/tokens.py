"""API tokens: issued one per device (only the SHA-256 digest is stored), looked up on
every authenticated request (one prepared join on PostgreSQL, optionally carrying the
request's own read: `token_owner_with`), revoked one by one or all at once; and the
access-change event that makes every process re-check the user's open WebSockets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from core import audit, events, pg_queries, runtime
from core.security import new_token_key, token_digest
from db.models import AuthToken, User


async def issue_token(user: User, *, origin: str = "login") -> str:
    """A new API token for `user` (one per device: earlier tokens stay valid). Returns the
    key; only its SHA-256 digest is stored, so this is the one time anyone sees it."""
    key = new_token_key()
    async with in_transaction() as conn:
        token = await AuthToken.create(
            digest=token_digest(key), user_id=user.id, origin=origin, using_db=conn
        )
        await audit.record(
            "token_issued", user, target=("user", user.id),
            details={"token_id": token.id, "origin": origin}, using_db=conn,
        )
    return key


_TOKEN_USER_SQL = (
    'SELECT u.*, t."id" AS "token_id_", t."created" AS "token_created_" FROM "users" u '
    'JOIN "auth_tokens" t ON t."user_id" = u."id" WHERE t."digest" = $1'
)


# What a key can look like (core.security.new_token_key: 40 hex characters). Anything else
# is refused before it is hashed or looked up.
TOKEN_KEY_RE = re.compile(r"[0-9A-Za-z]{1,40}")


@dataclass(frozen=True)
class TokenOwner:
    """The user a token belongs to, and which of their tokens it is."""

    user: User
    token_id: int


def token_expired(created: datetime) -> bool:
    """Whether a token issued at `created` is past TOKEN_TTL_DAYS (never, when unset)."""
    days = runtime.settings().token_ttl_days
    if not days:
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created < datetime.now(UTC) - timedelta(days=days)


async def token_owner(key: str) -> TokenOwner | None:
    """The active user owning API token `key`, with the token's id; None for an unknown,
    malformed or expired (TOKEN_TTL_DAYS) key, or an inactive user."""
    if not isinstance(key, str) or not TOKEN_KEY_RE.fullmatch(key):
        return None
    digest = token_digest(key)
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        owner, _ = await _pg_token_owner(conn, _TOKEN_USER_SQL, [digest], False)
        return owner
    token = await AuthToken.filter(digest=digest).select_related("user").first()
    if token is None:
        return None
    user, token_id, created = token.user, token.id, token.created
    if not user.is_active or token_expired(created):
        return None
    return TokenOwner(user, token_id)


async def _pg_token_owner(
    conn: Any, sql: str, values: list[Any], rider: bool
) -> tuple[TokenOwner | None, Any]:
    # Every authenticated request pays for this lookup: one prepared join, its user
    # built by the executor the ORM's own queries use (the token's id and date come
    # as its custom fields), costs about half the CPU of the ORM's select_related
    # query builder (docs/performance.md).
    extra = ["token_id_", "token_created_", "rider_"] if rider else ["token_id_", "token_created_"]
    found = await pg_queries.models(User, conn, sql, values, custom_fields=extra)
    if not found:
        return None, None
    user = found[0]
    token_id, created = user.token_id_, user.token_created_
    del user.token_id_, user.token_created_
    value = None
    if rider:
        value = user.rider_
        del user.rider_
    if not user.is_active or token_expired(created):
        return None, None
    return TokenOwner(user, token_id), value


# The statements built for fixed riders (detail, thread) are kept; list riders carry their
# filters and offset as literals, so the cache is capped: past it a statement is built
# each time (a string replace, microseconds), and memory stays flat whatever pages are read.
_RIDER_SQL: dict[str, str] = {}
RIDER_CACHE_MAX = 256


async def token_owner_with(key: str, column_sql: str, values: list[Any]) -> tuple[TokenOwner | None, Any]:
    """token_owner, and one more value read in the same statement (PostgreSQL only): the
    scalar subquery `column_sql`, whose parameters are $2, $3... (`values`). One round trip
    where a request's token and what it asks for would take two; the token is checked
    exactly as token_owner checks it (the value is dropped when the token is refused)."""
    if not isinstance(key, str) or not TOKEN_KEY_RE.fullmatch(key):
        return None, None
    sql = _RIDER_SQL.get(column_sql)
    if sql is None:
        sql = _TOKEN_USER_SQL.replace(
            ' FROM "users" u ', f' , ({column_sql}) AS "rider_" FROM "users" u ', 1
        )
        if len(_RIDER_SQL) < RIDER_CACHE_MAX:
            _RIDER_SQL[column_sql] = sql
    return await _pg_token_owner(
        connections.get("default"), sql, [token_digest(key), *values], True
    )


async def user_for_token(key: str) -> User | None:
    """The active user owning API token `key`; None for an unknown or malformed key."""
    owner = await token_owner(key)
    return owner.user if owner else None


async def revoke_token(user: User, token_id: int) -> bool:
    """Revoke one token (the one a client signed in with). Open WebSockets authenticated
    with it close with 4401 (event user_access). False if it was already gone."""
    async with in_transaction() as conn:
        deleted = await AuthToken.filter(id=token_id, user_id=user.id).using_db(conn).delete()
        if deleted:
            await record_access_change(
                user.id, "token_revoked", using_db=conn, token_ids=[token_id]
            )
            await audit.record(
                "token_revoked", user, target=("user", user.id),
                details={"token_id": token_id}, using_db=conn,
            )
    if deleted:
        events.committed()
    return bool(deleted)


async def revoke_all_tokens(user: User) -> int:
    """Revoke every token of `user` (`helpdesk revoke-tokens`); their WebSockets close
    with 4401. Returns how many there were."""
    async with in_transaction() as conn:
        deleted = await AuthToken.filter(user_id=user.id).using_db(conn).delete()
        await record_access_change(user.id, "token_revoked", using_db=conn)
        await audit.record(
            "token_revoked", None, actor_name="helpdesk revoke-tokens",
            target=("user", user.id), details={"tokens": deleted, "all": True}, using_db=conn,
        )
    events.committed()
    return deleted


async def record_access_change(
    user_id: int, reason: str, *, using_db: Any, token_ids: list[int] | None = None,
    chat_id: int | None = None, by: int | None = None,
) -> None:
    """Record (in the caller's transaction) that what `user_id` may see changed: every
    process's WebSocket hub re-checks that user's sockets and closes those no longer
    allowed (api/ws.py)."""
    data: dict[str, Any] = {"user_id": user_id, "reason": reason}
    if token_ids is not None:
        data["token_ids"] = token_ids
    if chat_id is not None:
        data["chat_id"] = chat_id
    if by is not None:
        data["by"] = by
    await events.record_event(
        events.USER_ACCESS, data, topic=events.ACCESS_TOPIC, using_db=using_db
    )
