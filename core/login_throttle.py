"""Login throttling that holds under concurrency.

Attempts are counted per key (`user:<username>` and `addr:<client address>`) in fixed
windows of LOGIN_WINDOW_SECONDS that start with a key's first counted attempt. An attempt
takes a place in both counters BEFORE its password is checked, with one conditional upsert
each:

    INSERT INTO login_attempts (key, failures, window_start) VALUES (k, 1, now)
    ON CONFLICT (key) DO UPDATE SET failures = <1 if the window passed, else failures + 1>, ...
    WHERE <the window passed> OR login_attempts.failures < limit
    RETURNING failures

The database serializes the upserts of one key, so of any number of simultaneous attempts
at most `limit - failures` get a place; every other one is refused (Throttled: 429 with
Retry-After until the window ends) without its password being looked at. A successful
login gives its places back (the username's counter is cleared, the address's decremented),
so only failures stay counted. Unknown usernames are counted like known ones (no hint which
exist), which is why the table is pruned: rows of passed windows go, now and then during
logins and by the scheduler's housekeeping, so it holds at most the keys of one window.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tortoise import connections

from core.errors import Throttled
from db.models import LoginAttempt

log = logging.getLogger("helpdesk.auth")

TABLE = LoginAttempt._meta.db_table
KEY_MAX = LoginAttempt._meta.fields_map["key"].max_length
PRUNE_EVERY = 200  # counted attempts per process between two prunes

_since_prune = 0


@dataclass(frozen=True)
class Place:
    """A counted attempt: the key and the window it was counted in."""

    key: str
    window_start: float


def username_key(username: str) -> str:
    return ("user:" + username)[:KEY_MAX]


def address_key(address: str) -> str:
    return ("addr:" + address)[:KEY_MAX]


def _sql(postgres: bool) -> str:
    if postgres:
        k, now, expired, limit = "$1", "$2", "$3", "$4"
    else:
        k, now, expired, limit = "?1", "?2", "?3", "?4"
    t = f'"{TABLE}"'
    return (
        f'INSERT INTO {t} ("key", "failures", "window_start", "updated_at") '
        f"VALUES ({k}, 1, {now}, CURRENT_TIMESTAMP) "
        f'ON CONFLICT ("key") DO UPDATE SET '
        f'"failures" = CASE WHEN {t}."window_start" <= {expired} THEN 1 '
        f'ELSE {t}."failures" + 1 END, '
        f'"window_start" = CASE WHEN {t}."window_start" <= {expired} THEN {now} '
        f'ELSE {t}."window_start" END, '
        f'"updated_at" = CURRENT_TIMESTAMP '
        f'WHERE {t}."window_start" <= {expired} OR {t}."failures" < {limit} '
        f'RETURNING "failures", "window_start"'
    )


async def take_place(key: str, limit: int, window: float) -> Place | None:
    """Count one attempt for `key` unless it already has `limit` in the current window.
    Atomic (one statement). None when refused."""
    conn = connections.get("default")
    postgres = conn.capabilities.dialect == "postgres"
    now = time.time()
    rows = await conn.execute_query_dict(_sql(postgres), [key, now, now - window, limit])
    if not rows:
        return None
    return Place(key, float(rows[0]["window_start"]))


async def retry_after(key: str, window: float) -> int:
    """Seconds until `key`'s current window ends (at least 1)."""
    row = await LoginAttempt.filter(key=key).first()
    if row is None:
        return 1
    return max(1, int(row.window_start + window - time.time()) + 1)


async def give_back(place: Place) -> None:
    """Uncount an attempt (it succeeded, or another counter refused it), unless its window
    has been replaced meanwhile."""
    await LoginAttempt.filter(
        key=place.key, window_start=place.window_start, failures__gt=0
    ).update(failures=_minus_one())


async def clear(key: str) -> None:
    await LoginAttempt.filter(key=key).delete()


def _minus_one():
    from tortoise.expressions import F

    return F("failures") - 1


async def prune(window: float, now: float | None = None) -> int:
    """Delete the rows whose window has passed. Returns how many."""
    cutoff = (now if now is not None else time.time()) - window
    return await LoginAttempt.filter(window_start__lte=cutoff).delete()


async def _maybe_prune(window: float) -> None:
    global _since_prune
    _since_prune += 1
    if _since_prune >= PRUNE_EVERY:
        _since_prune = 0
        try:
            removed = await prune(window)
        except Exception:  # pruning is housekeeping: never fail a login for it
            log.exception("pruning login attempts failed")
        else:
            if removed:
                log.info("pruned %d expired login attempt counters", removed)


async def admit(
    username: str, address: str | None, *, per_user: int, per_address: int, window: float,
    message: str,
) -> list[Place]:
    """Count this attempt for the address and the username, or raise Throttled (nothing
    stays counted then). Returns the places, to give back if the login succeeds."""
    await _maybe_prune(window)
    places: list[Place] = []
    checks = [(username_key(username), per_user)]
    if address:
        checks.insert(0, (address_key(address), per_address))
    for key, limit in checks:
        place = await take_place(key, limit, window)
        if place is None:
            for taken in places:
                await give_back(taken)
            raise Throttled(message, await retry_after(key, window))
        places.append(place)
    return places
