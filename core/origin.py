"""Where the current action came from: its channel (and client address), for the history
and the audit log.

A context variable, set once by each channel's entry point, and read by the domain when it
records a change:

- REST API: a request middleware (api/app.py): `rest`, or `web` for the customer pages
  and their JSON routes; with the client's address.
- Telegram: an outer middleware of the Dispatcher (bot/middlewares.py): `telegram`.
- Scheduler: `SchedulerRuntime.fire` (scheduler/runtime.py): `scheduler`.
- Anything else (the `helpdesk` CLI, a script, a shell): `cli`, the default.

Why a context variable and not a `channel=` parameter on every service: the channel is a
fact about the entry point, not about the use case. A parameter would have to be threaded
through every route and handler that calls take/complete/update/delete/post (and every new
one would have to remember it), while the entry points are four. asyncio copies the
context into tasks, so work a handler starts inherits its channel; each REST request and
each Telegram update sets it again before its handler runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from db.models import HistoryChannel


@dataclass(frozen=True)
class Origin:
    channel: HistoryChannel = HistoryChannel.cli
    client_address: str = ""


_DEFAULT = Origin()
_current: ContextVar[Origin | None] = ContextVar("helpdesk_origin", default=None)


def current() -> Origin:
    """The origin of the action being handled (`cli` when no entry point said otherwise)."""
    return _current.get() or _DEFAULT


def set_origin(channel: HistoryChannel | str, client_address: str = "") -> None:
    """Declare the channel of everything that follows in this task (an entry point's job)."""
    _current.set(Origin(HistoryChannel(channel), (client_address or "")[:64]))


@contextlib.contextmanager
def acting_from(channel: HistoryChannel | str, client_address: str = "") -> Iterator[None]:
    """`with acting_from("scheduler"):` for a block; the previous origin comes back after."""
    token = _current.set(Origin(HistoryChannel(channel), (client_address or "")[:64]))
    try:
        yield
    finally:
        _current.reset(token)
