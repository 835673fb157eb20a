"""Requests: the names every channel calls, gathered in one place.

The reads live in core.queries (get, list, thread, stats; core.pg_queries holds their
PostgreSQL paths); the writes in core.request_writes (create, update, delete), core.lifecycle
(the table of status moves and the one function that makes them) and core.thread (the one
writer of a request's thread). Their names stay importable from here, so
`core.requests.take_request` is core.lifecycle.take_request.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core import runtime
from core.clock import now  # noqa: F401  (re-exported)
from core.queries import (  # noqa: F401  (the read side, re-exported for callers)
    PAGE_SIZE,
    RequestFilters,
    conditions,
    filtered,
    get_request,
    list_messages,
    list_requests,
    stats,
)


def overdue_after(priority: str) -> timedelta:
    s = runtime.settings()
    minutes = {
        "urgent": s.remind_urgent_min,
        "high": s.remind_high_min,
        "medium": s.remind_medium_min,
        "low": s.remind_low_min,
    }[priority]
    return timedelta(minutes=minutes)


# The write use cases, importable from here as before (resolved on first use, so the
# modules that define them may import the reads above without a cycle).
_WRITES = {
    "build_search_text": "core.request_writes",
    "create_request": "core.request_writes",
    "update_request": "core.request_writes",
    "delete_request": "core.request_writes",
    "UPDATABLE": "core.request_writes",
    "take_request": "core.lifecycle",
    "complete_request": "core.lifecycle",
    "close_request": "core.lifecycle",
    "reopen_request": "core.lifecycle",
    "reassign_request": "core.lifecycle",
    "auto_close_request": "core.lifecycle",
    "set_status": "core.lifecycle",
    "post_message": "core.thread",
    "add_internal_system_note": "core.thread",
}


def __getattr__(name: str) -> Any:
    module = _WRITES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
