"""Broad searches' exact counts (PostgreSQL): one COUNT(*) per change of the data per worker,
shared by the searches that wait for it (core.pg_queries.search_page calls broad_count)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from db.models import CustomerRequest

REQUESTS = CustomerRequest._meta.db_table

# Broad searches' counts: {database + WHERE: (version, count)}, the most recent BROAD_CACHE of them.
BROAD_CACHE = 256
_broad: dict[str, tuple[int, int]] = {}
# The count in flight per key: concurrent searches for the same matches share it.
_broad_runs: dict[str, asyncio.Future[tuple[int | None, int]]] = {}
# How many searches wait on each count in flight: when the last of them is cancelled (its
# client went away, or its time ran out) the count is cancelled too, on the server as well.
_broad_waiting: dict[asyncio.Future[Any], int] = {}


async def broad_count(db: Any, cond: str, version: int | None) -> int:
    """The exact count of a search with more than SEARCH_COLLECT matches (`cond`: its
    WHERE clause, core.pg_queries.where).

    COUNT(*) reads every match (one pass over the table for a word most requests contain:
    about a second of database time at a million requests). The result is kept with the
    value of `request_counts_version` read in the same statement (the same snapshot), and
    reused when a later search's first statement reads the same version. The version
    changes in the same transaction as anything that can change what a search matches
    (migration 0014_counts), so a reused count is exact. Searches that arrive while that
    count is running wait for it and take it when its version is the one they read; when
    it is an older one, the first of them to see that starts a count and the others wait
    for that one: after a change, eight clients asking at once cost one pass, not eight.
    A broad search therefore costs one pass per change of the data, per worker, not per
    page or per client. A count nobody waits for any more (every search that waited was
    cancelled) is cancelled.
    """
    key = f"{getattr(db, 'host', '')}:{getattr(db, 'port', '')}/{getattr(db, 'database', '')}{cond}"
    loop = asyncio.get_running_loop()
    while True:
        kept = _broad.get(key)
        if version is not None and kept is not None and kept[0] == version:
            return kept[1]
        running = _broad_runs.get(key)
        if version is None or running is None or running.get_loop() is not loop:
            break
        try:
            counted, n = await _share(running)
        except asyncio.CancelledError:
            if not running.cancelled():
                raise  # this search was cancelled, not the count
            continue
        except Exception:  # its failure is its starter's: look again, count if none runs
            continue
        if counted == version:
            return n
        if counted is not None and counted > version:
            break  # the data moved past this search's snapshot: no later count will match
        # An older snapshot's count: a search of this one may have started another since
        # (the first to get here starts it, the others join it).
    run = _broad_runs[key] = asyncio.ensure_future(_count_matches(db, key, cond))
    run.add_done_callback(functools.partial(_count_done, key))
    return (await _share(run))[1]


async def _share(run: asyncio.Future[Any]) -> Any:
    """`run`'s result, awaited without cancelling it for the other searches waiting on it;
    the last one to be cancelled cancels it (asyncpg then cancels its statement)."""
    _broad_waiting[run] = _broad_waiting.get(run, 0) + 1
    try:
        return await asyncio.shield(run)
    except asyncio.CancelledError:
        if not run.done() and _broad_waiting[run] == 1:
            run.cancel()
        raise
    finally:
        left = _broad_waiting.pop(run) - 1
        if left:
            _broad_waiting[run] = left


def _count_done(key: str, run: asyncio.Future[Any]) -> None:
    if _broad_runs.get(key) is run:
        del _broad_runs[key]
    if not run.cancelled():
        run.exception()  # retrieved: raised to the search that started it, never logged


async def _count_matches(db: Any, key: str, cond: str) -> tuple[int | None, int]:
    """(request_counts_version, COUNT(*)) of `cond` in one snapshot; kept under `key`."""
    _, rows = await db.execute_query(
        f'SELECT (SELECT "v" FROM "request_counts_version"), COUNT(*) FROM "{REQUESTS}"{cond}'
    )
    n = int(rows[0][1])
    if rows[0][0] is None:
        return None, n
    version = int(rows[0][0])
    _broad.pop(key, None)
    while len(_broad) >= BROAD_CACHE:
        _broad.pop(next(iter(_broad)))
    _broad[key] = (version, n)
    return version, n
