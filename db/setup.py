"""Database start-up: Tortoise config, migrations, connection lifecycle."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tortoise import Tortoise

log = logging.getLogger("helpdesk.db")

MODELS = ["db.models"]


def tortoise_config(database_url: str) -> dict[str, Any]:
    if database_url.startswith("sqlite://"):
        path = database_url[len("sqlite://") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": {"default": database_url},
        "apps": {
            "models": {
                "models": MODELS,
                "default_connection": "default",
                "migrations": "db.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def init_db(database_url: str) -> None:
    """Open the connection pool (no schema changes)."""
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)


async def migrate_db(database_url: str) -> None:
    """Apply every pending migration. Safe to run again: applied ones are skipped."""
    from tortoise.migrations.api.migrate import migrate

    await migrate(config=tortoise_config(database_url))
    await Tortoise.close_connections()


async def close_db() -> None:
    await Tortoise.close_connections()
