"""Stop steps that never keep the next one from running.

The servers' stop listeners (Sanic's `after_server_stop`, which runs them in reverse order
of registration) each close one part; one that fails is logged and the others still run,
so a broken Redis client never leaves the database open.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("helpdesk.shutdown")


def guarded(step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
    """`step`, with any exception it raises logged instead of propagated."""

    @functools.wraps(step)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await step(*args, **kwargs)
        except Exception:
            log.exception("stop step %s failed", getattr(step, "__qualname__", step))

    return run
