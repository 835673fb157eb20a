"""Does the CSV export's memory stay flat as the table grows? (docs/agent-tools.md)

    .venv/bin/python -m bench.export_bench                       # 1,000 / 10,000 / 100,000 rows
    .venv/bin/python -m bench.export_bench --sizes 1000,10000,100000,1000000

Drops and re-creates a PostgreSQL database (its name must contain "bench"; default
`helpdesk_export_bench` on 127.0.0.1), applies the migrations, creates one admin and 200
customers, then for each size: adds requests until the table holds that many (one
INSERT ... SELECT generate_series; descriptions of about 300 characters with commas,
quotes and line breaks, so every row needs CSV quoting), starts a fresh API process
(Sanic, single process), warms it up with a one-row export, then downloads the full
export once, streaming (the client counts bytes and lines, keeps nothing).

Reported per size: rows, megabytes, seconds, rows/s, the API process's resident memory
after the warm-up and its peak during the export (VmHWM from /proc/<pid>/status, a fresh
process per size, its peak reset after the warm-up with /proc/<pid>/clear_refs, so the
peak is that export's own), and the growth between the two.
Flat means the growth does not follow the row count. `--json FILE` writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/helpdesk_export_bench"
EXPORT = "/api/admin/customer-requests/export/"
PASSWORD = "bench-export-pass"

SERVER_CODE = """
import logging, os
from bootstrap.app import create_app
from core.settings import load_settings
logging.basicConfig(level=logging.WARNING)
app = create_app(load_settings(), name="helpdesk_export_bench")
app.run(host="127.0.0.1", port=int(os.environ["PORT"]), single_process=True,
        access_log=False, debug=False, motd=False)
"""

FILL_SQL = """
INSERT INTO customer_requests (title, description, status, priority, category, customer_id,
    created_at, updated_at, tags, messages_count, source, search_text, status_changed_at)
SELECT
    'Запрос ' || g || ', "срочно"',
    repeat('Описание, с запятой и "кавычками"' || chr(10) || md5(g::text) || ' ', 4),
    (ARRAY['open','in_progress','completed','closed'])[1 + g % 4],
    (ARRAY['low','medium','high','urgent'])[1 + g % 4],
    (ARRAY['technical','billing','account','order','general'])[1 + g % 5],
    $1 + g % 200,
    now() - (g || ' seconds')::interval, now(), '["bench", "export"]', 0, 'api', '', now()
FROM generate_series($2::int, $3::int) AS g
"""


def _pg(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _admin_url(url: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path="/postgres"))


async def recreate(url: str) -> None:
    import asyncpg

    name = urlparse(url).path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the database name must contain 'bench'")
    conn = await asyncpg.connect(_pg(_admin_url(url)))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def prepare(url: str) -> int:
    """Migrate, create the admin and 200 customers; returns the first customer's id."""
    from tortoise import Tortoise

    from core.users import create_user
    from db.setup import init_db, migrate_db

    await migrate_db(url)
    await init_db(url)
    try:
        await create_user("bench_export_admin", PASSWORD, role="admin", first_name="Bench")
        first = None
        for n in range(200):
            user = await create_user(f"bench_customer{n}", role="customer", first_name=f"Клиент {n}",
                                     last_name="Тестов, мл.", email=f"c{n}@example.com")
            first = first or user.id
        return int(first)
    finally:
        await Tortoise.close_connections()


async def fill_to(url: str, first_customer: int, have: int, want: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg(url))
    try:
        step = 200_000
        for start in range(have + 1, want + 1, step):
            await conn.execute(FILL_SQL, first_customer, start, min(want, start + step - 1))
        await conn.execute("ANALYZE customer_requests")
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def start_server(url: str, port: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING",
        "HELPDESK_ENV_FILE": "/nonexistent/.env", "PYTHONPATH": str(ROOT),
        "SCHEDULER_ENABLED": "false", "TELEGRAM_MODE": "off",
    })
    return subprocess.Popen([sys.executable, "-c", SERVER_CODE], cwd=ROOT, env=env)


async def wait_token(base: str, proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"API process exited with {proc.returncode}")
            try:
                r = await client.post("/api/auth/token/", json={
                    "username": "bench_export_admin", "password": PASSWORD})
                if r.status_code == 200:
                    return r.json()["token"]
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("API process did not become ready")


async def download(base: str, token: str, query: str = "") -> tuple[int, int]:
    """(bytes, lines) of one export, streamed and dropped."""
    size = lines = 0
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        async with client.stream("GET", EXPORT + query, headers={"Authorization": f"Token {token}"}) as r:
            if r.status_code != 200:
                raise SystemExit(f"export answered {r.status_code}: {(await r.aread())[:300]!r}")
            tail = b""
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                lines += (tail + chunk).count(b"\r\n")  # one CSV record ends with \r\n
                tail = chunk[-1:]
    return size, lines


async def measure(url: str, rows: int) -> dict[str, float]:
    port = free_port()
    proc = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        token = await wait_token(base, proc)
        await download(base, token, "?search=" + "запрос 1,")  # warm-up: every code path once
        # Reset the peak (VmHWM) so it is this export's, not the login's (scrypt takes 16 MB).
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
        before = memory_kb(proc.pid)
        started = time.perf_counter()
        size, lines = await download(base, token)
        seconds = time.perf_counter() - started
        after = memory_kb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "rows": rows, "csv_lines": lines, "mb": round(size / 1e6, 1), "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds), "rss_before_mb": round(before["VmRSS"] / 1024, 1),
        "peak_mb": round(after["VmHWM"] / 1024, 1),
        "growth_mb": round((after["VmHWM"] - before["VmRSS"]) / 1024, 1),
    }


async def run(url: str, sizes: list[int]) -> list[dict[str, float]]:
    await recreate(url)
    first = await prepare(url)
    have, results = 0, []
    print(f"{'rows':>9} {'MB':>7} {'s':>7} {'rows/s':>8} {'RSS before':>11} {'peak':>7} {'growth':>7}")
    for n in sizes:
        t0 = time.perf_counter()
        await fill_to(url, first, have, n)
        have = n
        fill_s = time.perf_counter() - t0
        res = await measure(url, n)
        res["fill_seconds"] = round(fill_s, 1)
        if res["csv_lines"] != n + 1:  # the header and one record per row (\n inside quotes)
            raise SystemExit(f"expected {n} rows, the CSV has {res['csv_lines']} lines")
        results.append(res)
        print(f"{n:>9,} {res['mb']:>7} {res['seconds']:>7} {res['rows_per_s']:>8,} "
              f"{res['rss_before_mb']:>9} MB {res['peak_mb']:>4} MB {res['growth_mb']:>4} MB", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    sizes = sorted(int(s.replace("_", "")) for s in args.sizes.split(","))
    print(f"load average before: {os.getloadavg()}")
    results = asyncio.run(run(args.database_url, sizes))
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
