"""What every `helpdesk` command shares: settings, logging, a database for one command,
migrations."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from core.settings import Settings, SettingsError, load_settings

log = logging.getLogger("helpdesk")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"helpdesk: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def setup_process_logging(settings: Settings) -> None:
    from core.logging import setup_logging

    setup_logging(settings)
    # Tortoise logs every connect/shutdown at INFO: noise for an operator.
    logging.getLogger("tortoise").setLevel(logging.WARNING)


def with_db(settings: Settings, fn: Callable[[], Awaitable[Any]]) -> Any:
    from core import runtime
    from db.setup import close_db, init_db

    async def main() -> Any:
        runtime.configure(settings)
        await init_db(settings.database_url)
        try:
            return await fn()
        finally:
            await close_db()

    return asyncio.run(main())


def migrate(settings: Settings) -> None:
    from db.setup import migrate_db

    asyncio.run(migrate_db(settings.database_url))
    log.info("database is up to date (%s)", _safe_url(settings.database_url))


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url
