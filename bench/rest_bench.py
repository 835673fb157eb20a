"""Drive one API worker with concurrent clients and report latency, throughput and CPU.

    .venv/bin/python -m bench.fill_pg          # once: 100,000 requests x 3 messages
    .venv/bin/python -m bench.rest_bench --duration 10

Starts one API process (`bootstrap.app.create_app(load_settings())`, Sanic single process, access
log off) on a free 127.0.0.1 port against the bench database, then runs each scenario for
`--duration` seconds with `--connections` concurrent keep-alive clients (after a short
warm-up that is not measured). Client: `wrk` when installed (Debian package `wrk`; a Lua
script per scenario sets the token and randomizes ids), otherwise a built-in aiohttp
client (it competes with the server for the two cores, so prefer wrk).

Per scenario it prints p50/p95/p99 latency, requests per second, errors (non-2xx or socket
errors) and the API process's CPU milliseconds per request (utime+stime delta from
/proc/<pid>/stat divided by completed requests). The issue's targets: p95 < 20 ms for
everything except `search_broad` (< 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from bench.fill_pg import BROAD_TERM, DEFAULT_URL, SMALL_TERM, bench_token

ROOT = Path(__file__).resolve().parent.parent
BASE = "/api/admin/customer-requests/"
TARGET_MS = {"search_broad": 200.0}
DEFAULT_TARGET_MS = 20.0

SERVER_CODE = """
import logging, os, sys
from sanic import Sanic
from bootstrap.app import create_app
from core.settings import load_settings
logging.basicConfig(level=logging.WARNING)
settings = load_settings()
app = create_app(settings, name="helpdesk_bench")
app.run(host="127.0.0.1", port=int(os.environ["PORT"]), single_process=True,
        access_log=False, debug=False, motd=False)
"""


@dataclass
class Scenario:
    name: str
    method: str
    path: str  # may contain {id}
    body: str | None = None
    auth: bool = True
    expect_status: int = 200


def scenarios() -> list[Scenario]:
    small, broad = quote(SMALL_TERM), quote(BROAD_TERM)
    create_body = json.dumps({
        "title": "Не работает оплата картой",
        "description": "После обновления приложения оплата картой не проходит, ошибка 502.",
        # Chosen to stay out of the filtered and searched scenarios' result sets.
        "priority": "low",
        "category": "technical",
    }, ensure_ascii=False)
    return [
        # Framework floor: routing, auth header parsing and an error response, no database.
        Scenario("floor_401", "GET", BASE + "{id}/", auth=False, expect_status=401),
        Scenario("detail", "GET", BASE + "{id}/"),
        Scenario("messages", "GET", BASE + "{id}/messages/"),
        Scenario("stats", "GET", BASE + "stats/"),
        Scenario("list_p1", "GET", BASE),
        Scenario("list_status_priority_p1", "GET", BASE + "?status=open&priority=high"),
        Scenario("list_status_priority_p50", "GET", BASE + "?status=open&priority=high&page=50"),
        Scenario("list_category_p1", "GET", BASE + "?category=billing"),
        Scenario("list_category_p50", "GET", BASE + "?category=billing&page=50"),
        Scenario("search_small", "GET", BASE + f"?search={small}"),
        # Under 1,000 matches at 1,000,000 requests too (SMALL_TERM alone has ~5,000 there).
        Scenario("search_small_open", "GET", BASE + f"?search={small}&status=open"),
        Scenario("search_broad", "GET", BASE + f"?search={broad}"),
        # Last, so the read scenarios all see the data set as filled.
        Scenario("message_post", "POST", BASE + "{id}/messages/",
                 # an internal note: staff may add one to any request (a reply needs the
                 # request to be theirs or open)
                 json.dumps({"content": "Проверили, ждём ответа.", "is_internal": True},
                            ensure_ascii=False),
                 expect_status=201),
        Scenario("create", "POST", BASE, create_body, expect_status=201),
    ]


@dataclass
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    target_ms: float
    db_cpu_ms_per_req: float = 0.0
    rss_mb: float = 0.0

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.p95_ms < self.target_ms


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (from /proc/<pid>/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid` and every process below it (Sanic's workers when WORKERS > 1)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                raw = (proc / "stat").read_text()
                ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += cpu_seconds(current)
        except (OSError, ValueError):
            pass
        todo.extend(children.get(current, []))
    return total


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def db_cpu_seconds(dbname: str) -> dict[int, float]:
    """utime + stime of every PostgreSQL backend serving `dbname` (process titles read
    "postgres: <user> <db> <client> <state>"), per pid, so the database's CPU per request
    is measured next to the API's (db_cpu_delta)."""
    found: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres: ") and f" {dbname} " in title:
                found[int(proc.name)] = cpu_seconds(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def db_cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """The backends' CPU between two samples. Per backend: a pool may close an idle
    connection meanwhile (the other server's, during a paired run), and subtracting
    totals would then count its whole life's CPU as negative."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def http(base: str, token: str, method: str, path: str, body: str | None = None):
    req = urllib.request.Request(
        base + path, method=method, data=body.encode() if body else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def start_server(database_url: str, port: int, raw: bool = False, workers: int = 1,
                 profile: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url, "HOST": "127.0.0.1", "PORT": str(port),
        "LOG_LEVEL": "WARNING", "HELPDESK_ENV_FILE": "/nonexistent/.env",
        "PYTHONPATH": str(ROOT),
    })
    if raw:
        return subprocess.Popen([sys.executable, "-m", "bench.raw_server"], cwd=ROOT, env=env)
    if workers > 1:
        # As deployed: `helpdesk api` with WORKERS=n (Sanic's worker manager; events and
        # WebSocket fan-out through Redis, REDIS_URL from the environment).
        env["WORKERS"] = str(workers)
        env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
        return subprocess.Popen([sys.executable, "-m", "bootstrap", "api"], cwd=ROOT, env=env)
    if profile:
        # cProfile around the one API process; its stats are written when it stops
        # (read them with `python -m pstats FILE`).
        # (the profiled script is written next to FILE: cProfile runs files, not code)
        script = Path(profile).with_suffix(".server.py")
        script.write_text(SERVER_CODE)
        return subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", profile, str(script)], cwd=ROOT, env=env
        )
    return subprocess.Popen([sys.executable, "-c", SERVER_CODE], cwd=ROOT, env=env)


def wait_ready(base: str, token: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"API process exited with {proc.returncode}")
        try:
            status, _ = http(base, token, "GET", BASE + "stats/")
            if status == 200:
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit("API process did not become ready")


# --- wrk client ----------------------------------------------------------------------------

WRK_LUA = """
local token = "%(token)s"
local expect = %(expect)d
local method = "%(method)s"
local path = "%(path)s"
local body = %(body)s
local max_id = %(max_id)d
local headers = {["Content-Type"] = "application/json"}
if token ~= "" then headers["Authorization"] = "Token " .. token end
unexpected = 0

local threads = {}

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed)
end

function response(status, headers, body)
  if status ~= expect then unexpected = unexpected + 1 end
end

function request()
  local p = path:gsub("{id}", tostring(math.random(1, max_id)))
  return wrk.format(method, p, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("unexpected") end
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"errors\\": %%d, " ..
    "\\"p50\\": %%d, \\"p95\\": %%d, \\"p99\\": %%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + bad,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def lua_string(value: str) -> str:
    """A Lua string literal (every byte as a decimal escape: safe for any UTF-8 text)."""
    return '"' + "".join(f"\\{b:03d}" for b in value.encode()) + '"'


def run_wrk(base: str, token: str, sc: Scenario, max_id: int, seconds: float,
            connections: int, threads: int, workdir: Path) -> dict:
    script = workdir / f"{sc.name}.lua"
    script.write_text(WRK_LUA % {
        "token": token if sc.auth else "", "expect": sc.expect_status, "method": sc.method, "path": sc.path,
        "body": lua_string(sc.body) if sc.body else "nil", "max_id": max_id,
    })
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
         "--timeout", "10s", "-s", str(script), base],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[len("WRKJSON "):])
            return {
                "requests": data["requests"], "errors": data["errors"],
                "seconds": data["duration_us"] / 1e6,
                "p50": data["p50"] / 1000, "p95": data["p95"] / 1000, "p99": data["p99"] / 1000,
            }
    raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")


# --- built-in aiohttp client -------------------------------------------------------------


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


async def _run_python(base: str, token: str, sc: Scenario, max_id: int, seconds: float,
                      connections: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    if sc.auth:
        headers["Authorization"] = f"Token {token}"
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:
        t0 = time.perf_counter()
        stop = t0 + seconds

        async def client(rng: random.Random) -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                path = sc.path.replace("{id}", str(rng.randint(1, max_id)))
                start = time.perf_counter()
                try:
                    async with session.request(sc.method, path, data=sc.body) as resp:
                        await resp.read()
                        if resp.status != sc.expect_status:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(client(random.Random(i)) for i in range(connections)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "seconds": elapsed,
        "p50": percentile(latencies, 50) * 1000, "p95": percentile(latencies, 95) * 1000,
        "p99": percentile(latencies, 99) * 1000,
    }


def run_python(base, token, sc, max_id, seconds, connections, threads, workdir) -> dict:
    return asyncio.run(_run_python(base, token, sc, max_id, seconds, connections))


# --- main ----------------------------------------------------------------------------------


def preflight(base: str, token: str, scs: list[Scenario], max_id: int) -> None:
    """One request per scenario: fail fast on an error, show what the list pages return."""
    for sc in scs:
        if sc.method != "GET" or not sc.auth:
            continue
        path = sc.path.replace("{id}", str(max_id // 2))
        t0 = time.perf_counter()
        status, data = http(base, token, sc.method, path)
        ms = (time.perf_counter() - t0) * 1000
        extra = ""
        if isinstance(data, dict) and "count" in data:
            extra = f"count={data['count']} rows={len(data['results'])}"
        print(f"  {sc.name:<26} HTTP {status} {ms:7.1f} ms (cold) {extra}", flush=True)


def max_request_id(database_url: str) -> int:
    import asyncpg

    async def go() -> int:
        conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
        try:
            return await conn.fetchval("SELECT max(id) FROM customer_requests") or 0
        finally:
            await conn.close()

    return asyncio.run(go())


def drop_created_requests(database_url: str, max_id: int, since: datetime, creator: str) -> int:
    """Delete the requests the `create` scenario added (ids above `max_id`, created since the
    run began, by `creator`, the staff user whose token the run used; their messages go with them, their history rows
    too), so each run leaves the table at its fill size. Otherwise every run puts a few
    thousand requests that match no search term at the head of the newest-first order, and
    a later run's broad search walks past all of them for its first page (at 100,000 rows,
    after a day of runs, 64,517 of them: 200 ms a page instead of 5). Only in a database
    whose name contains "bench", as `fill_pg` requires; a failure is reported, not raised."""
    import asyncpg

    if "bench" not in database_url.rsplit("/", 1)[-1]:
        print("not removing the requests this run created: the database's name has no "
              "'bench'", flush=True)
        return 0

    async def go() -> int:
        conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
        try:
            async with conn.transaction():
                ids = await conn.fetchval(
                    "WITH gone AS (DELETE FROM customer_requests WHERE id > $1 "
                    "AND created_at >= $2 AND customer_id = (SELECT id FROM users "
                    "WHERE username = $3) RETURNING id) SELECT array_agg(id) FROM gone",
                    max_id, since, creator,
                )
                if ids:
                    await conn.execute(
                        "DELETE FROM request_history WHERE request_id = ANY($1::int[])", ids
                    )
                return len(ids or [])
        finally:
            await conn.close()

    try:
        return asyncio.run(go())
    except Exception as exc:  # the run's figures stand; say what was left behind
        print(f"could not remove the requests this run created: {exc!r}", flush=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--duration", type=float, default=10, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--user", default="bench_admin1", help="staff user whose token is used")
    parser.add_argument("--json", dest="json_out", default="", help="write results here")
    parser.add_argument("--pair", action="store_true",
                        help="run the API and bench/raw_server.py side by side: each scenario "
                             "on one, then on the other, and print the CPU ratios")
    parser.add_argument("--repeat", type=int, default=1, help="run the scenario list N times")
    parser.add_argument("--workers", type=int, default=1, help="API worker processes")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the (single-worker) API under cProfile, stats to FILE")
    parser.add_argument("--raw", action="store_true",
                        help="drive bench/raw_server.py (hand-written SQL) instead of the API; "
                             "it answers every scenario")
    args = parser.parse_args(argv)

    if args.profile and args.workers > 1:
        parser.error("--profile runs one API process: it cannot go with --workers")
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    runner = run_wrk if client == "wrk" else run_python
    scs = scenarios()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.name for s in scs}
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
        scs = [s for s in scs if s.name in wanted]

    database_url = args.database_url.replace("postgresql://", "postgres://", 1)
    dbname = database_url.rsplit("/", 1)[1].split("?")[0]
    max_id = max_request_id(database_url)
    started = datetime.now(UTC)
    if max_id == 0:
        sys.exit("the bench database is empty: run python -m bench.fill_pg first")
    token = bench_token(args.user)
    load_before = load_average()
    kinds = ["api", "raw"] if args.pair else ["raw" if args.raw else "api"]
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    results: list[Result] = []
    try:
        for kind in kinds:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            proc = start_server(database_url, port, raw=kind == "raw", workers=args.workers,
                                profile=args.profile if kind == "api" else None)
            servers[kind] = (proc, base)
            wait_ready(base, token, proc)
            print(f"{kind} pid {proc.pid} on {base}; client {client}, {args.connections} "
                  f"connections, {args.duration:g} s per scenario; load average {load_before}",
                  flush=True)
            preflight(base, token, scs, max_id)
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeat):
                for sc in scs:
                    for kind in kinds:
                        proc, base = servers[kind]
                        if args.warmup > 0:
                            runner(base, token, sc, max_id, args.warmup, args.connections,
                                   args.threads, Path(tmp))
                        cpu0, db0 = tree_cpu_seconds(proc.pid), db_cpu_seconds(dbname)
                        r = runner(base, token, sc, max_id, args.duration, args.connections,
                                   args.threads, Path(tmp))
                        cpu1, db1 = tree_cpu_seconds(proc.pid), db_cpu_seconds(dbname)
                        n = max(1, r["requests"])
                        name = sc.name if len(kinds) == 1 else f"{sc.name}:{kind}"
                        res = Result(
                            scenario=name, requests=r["requests"], errors=r["errors"],
                            seconds=round(r["seconds"], 2),
                            rps=round(r["requests"] / r["seconds"], 1),
                            p50_ms=round(r["p50"], 2), p95_ms=round(r["p95"], 2),
                            p99_ms=round(r["p99"], 2),
                            cpu_ms_per_req=round((cpu1 - cpu0) * 1000 / n, 3),
                            target_ms=TARGET_MS.get(sc.name, DEFAULT_TARGET_MS),
                            db_cpu_ms_per_req=round(db_cpu_delta(db0, db1) * 1000 / n, 3),
                            rss_mb=rss_mb(proc.pid),
                        )
                        results.append(res)
                        print(f"  {res.scenario:<30} done: {res.rps:8.1f} req/s p95 "
                              f"{res.p95_ms:.1f} ms CPU {res.cpu_ms_per_req:.2f} "
                              f"DB {res.db_cpu_ms_per_req:.2f} RSS {res.rss_mb:.0f} MB", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        dropped = drop_created_requests(database_url, max_id, started, args.user)
        if dropped:
            print(f"removed the {dropped} requests this run created", flush=True)
    load_after = load_average()

    print()
    print("| scenario | req/s | p50 ms | p95 ms | p99 ms | CPU ms/req | DB CPU ms/req | errors "
          "| p95 target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        mark = "ok" if r.ok else "MISSED"
        print(f"| {r.scenario} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} "
              f"| {r.cpu_ms_per_req:.2f} | {r.db_cpu_ms_per_req:.2f} | {r.errors} "
              f"| < {r.target_ms:g} ms {mark} |")
    print(f"\nload average before {load_before}, after {load_after}")
    if args.pair:
        print()
        print("| scenario | API CPU ms/req | raw CPU ms/req | ratio | ratio range | API DB CPU "
              "ms/req | raw DB CPU ms/req | DB ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")

        def median(values: list[float]) -> float:
            values = sorted(values)
            middle = len(values) // 2
            return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2

        for sc in scs:
            # Each repeat ran the API and the floor back to back: the ratio is taken per
            # repeat (paired, so the machine's drift between repeats cancels), then the
            # median of those; the figures beside it are the medians of each column.
            api = [r for r in results if r.scenario == f"{sc.name}:api"]
            raw = [r for r in results if r.scenario == f"{sc.name}:raw"]
            ratios = [a.cpu_ms_per_req / r.cpu_ms_per_req
                      for a, r in zip(api, raw, strict=True) if r.cpu_ms_per_req]
            db_ratios = [a.db_cpu_ms_per_req / r.db_cpu_ms_per_req
                         for a, r in zip(api, raw, strict=True) if r.db_cpu_ms_per_req > 0]
            a_cpu = median([r.cpu_ms_per_req for r in api])
            r_cpu = median([r.cpu_ms_per_req for r in raw])
            a_db = median([r.db_cpu_ms_per_req for r in api])
            r_db = median([r.db_cpu_ms_per_req for r in raw])
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
            print(f"| {sc.name} | {a_cpu:.2f} | {r_cpu:.2f} | "
                  f"{median(ratios) if ratios else 0:.2f} | {spread} | {a_db:.2f} | {r_db:.2f} | "
                  f"{median(db_ratios) if db_ratios else 0:.2f} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "client": client, "connections": args.connections, "duration": args.duration,
            "load_before": load_before, "load_after": load_after,
            "results": [asdict(r) for r in results],
        }, indent=2))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
