"""Shared fixtures: databases (SQLite and PostgreSQL), users, settings.

Every DB test runs twice, on SQLite and on PostgreSQL. Without a reachable PostgreSQL or
Redis the dependent tests are skipped with a reason; with HELPDESK_REQUIRE_SERVICES=1
(set by .ci/run) a missing service is a failure instead, and so is every other skip
(tests/require_services.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise import Tortoise, connections
from tortoise.backends.base.executor import EXECUTOR_CACHE

from core import runtime
from core.settings import Settings
from db.setup import close_db, init_db, migrate_db
from tests.procs import free_port  # noqa: F401  (the one port picker; tests import it from here too)

pytest_plugins = ["tests.conftest_telegram", "tests.require_services"]

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
# `make test` runs the suite in parallel workers (pytest-xdist: gw0, gw1, ...). Each worker
# has its own PostgreSQL database (RUN_ID below), its own ports (tests/procs.free_port) and,
# here, its own Redis database, so keys under the desk's fixed prefixes (rate limits, the
# bot's FSM) never meet another worker's. Pub/sub channels span databases: every test that
# listens names its own channel.
WORKER_INDEX = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{WORKER_INDEX % 16}")
REQUIRE_SERVICES = os.environ.get("HELPDESK_REQUIRE_SERVICES") == "1"
RUN_ID = uuid.uuid4().hex[:8]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _url_port_open(url: str, default_port: int) -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return _port_open(parsed.hostname or "127.0.0.1", parsed.port or default_port)


def postgres_available() -> bool:
    return _url_port_open(PG_ADMIN_URL, 5432)


def redis_available() -> bool:
    return _url_port_open(REDIS_TEST_URL, 6379)


def need_service(name: str, available: bool) -> None:
    """Skip (or fail under HELPDESK_REQUIRE_SERVICES=1) when a service is missing."""
    if available:
        return
    message = f"{name} is not reachable on 127.0.0.1; start it to run these tests"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (HELPDESK_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(message)


def pg_url(dbname: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class _Templates:
    """One migrated database per backend per test session; each test gets a clean copy."""

    sqlite_template: Path | None = None
    pg_db: str | None = None


_templates = _Templates()


@pytest.fixture(scope="session")
def tmp_session(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("helpdesk")


async def _sqlite_url(tmp_session: Path, tmp_path: Path) -> str:
    if _templates.sqlite_template is None:
        tpl = tmp_session / "template.sqlite3"
        await migrate_db(f"sqlite://{tpl}")
        _templates.sqlite_template = tpl
    target = tmp_path / "db.sqlite3"
    shutil.copy(_templates.sqlite_template, target)
    return f"sqlite://{target}"


async def _pg_url_clean() -> str:
    if _templates.pg_db is None:
        name = f"helpdesk_test_{RUN_ID}"
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}"')
        await _pg_admin(f'CREATE DATABASE "{name}"')
        await migrate_db(pg_url(name))
        _templates.pg_db = name
    url = pg_url(_templates.pg_db)
    return url


async def truncate_all() -> None:
    conn = connections.get("default")
    tables = [m._meta.db_table for m in Tortoise.apps["models"].values()]
    tables += ["admin_chat_participants", "internal_communication_participants"]
    if conn.capabilities.dialect == "postgres":
        await conn.execute_script(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    else:
        for t in tables:
            await conn.execute_script(f'DELETE FROM "{t}"')


def pytest_collection_modifyitems(config, items):
    """In parallel runs (pytest-xdist workers), the tests marked `heavy` go first, longest
    first: the scheduler then spreads the short ones around them, instead of a worker
    starting the hostile sweep (minutes) when the others have nothing left to do. Every
    worker sorts the same way, as xdist requires. One process keeps the file order."""
    if not hasattr(config, "workerinput"):
        return

    def seconds(item) -> float:
        mark = item.get_closest_marker("heavy")
        return float(mark.kwargs.get("seconds", 1)) if mark is not None else 0.0

    items.sort(key=seconds, reverse=True)  # stable: the rest keep their order


def pytest_sessionfinish(session, exitstatus):
    if _templates.pg_db:
        try:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{_templates.pg_db}" WITH (FORCE)'))
        except Exception:
            pass


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    if request.param == "postgres":
        need_service("PostgreSQL", postgres_available())
    return request.param


@pytest.fixture
def sqlite_only(request):
    return "sqlite"


@pytest.fixture
async def db_url(backend: str, tmp_session: Path, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database on `backend`, with Tortoise connected to it."""
    # Tortoise caches compiled INSERTs per connection name; tests switch dialects.
    EXECUTOR_CACHE.clear()
    if backend == "sqlite":
        url = await _sqlite_url(tmp_session, tmp_path)
        await init_db(url)
    else:
        url = await _pg_url_clean()
        await init_db(url)
        await truncate_all()
    try:
        yield url
    finally:
        await close_db()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    s = Settings(database_url=db_url, media_root=tmp_path / "media", port=0)
    runtime.configure(s)
    return s


@pytest.fixture
def make_user(db_url: str):
    from core.users import create_user

    counter = {"n": 0}

    async def make(role: str = "customer", **kw):
        counter["n"] += 1
        username = kw.pop("username", f"{role}{counter['n']}")
        kw.setdefault("first_name", username.capitalize())
        kw.setdefault("last_name", "Test")
        kw.setdefault("email", f"{username}@example.com")
        return await create_user(username, kw.pop("password", None), role=role, **kw)

    return make




@pytest.fixture
async def api(settings):
    """A live API server on loopback and a client for it."""
    from bootstrap.app import create_app
    from tests.live import Api, serve

    app = create_app(settings)
    async with serve(app) as base:
        client = Api(base)
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture
def token_for():
    from core.users import issue_token

    async def make(user) -> str:
        return await issue_token(user)

    return make


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line per skip reason, so a run without PostgreSQL/Redis/Chromium says plainly
    which suites it did not run and why."""
    from collections import Counter

    reasons: Counter[str] = Counter()
    files: dict[str, set[str]] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] += 1
        files.setdefault(reason, set()).add(report.nodeid.split("::")[0])
    if not reasons:
        return
    terminalreporter.section("skipped suites")
    for reason, count in reasons.most_common():
        terminalreporter.write_line(
            f"{count} tests skipped: {reason} ({len(files[reason])} files, e.g. "
            f"{', '.join(sorted(files[reason])[:3])})"
        )
    if not REQUIRE_SERVICES:
        terminalreporter.write_line(
            "Set HELPDESK_REQUIRE_SERVICES=1 (as .ci/run does) to make these failures."
        )
