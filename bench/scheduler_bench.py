"""Time and memory of the scheduler's jobs on the bench database (not a test).

    .venv/bin/python -m bench.scheduler_bench --database-url postgres://.../helpdesk_bench_1m

Runs, in one process, what each job reads: the reminders' overdue query
(`scheduler.jobs.reminders._waiting_requests`), one auto-close batch (`run_auto_close`: it closes up
to AUTO_CLOSE_BATCH requests in the bench database) and the digest's figures
(`core.digest.build_digest`). Telegram is not configured, so nothing is sent. Prints
wall and CPU time and the process's peak resident memory growth per job.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from datetime import UTC, datetime

from bench.fill_pg import DEFAULT_URL
from core import digest, runtime
from core.settings import Settings
from db.setup import close_db, init_db
from scheduler import jobs
from scheduler.jobs import reminders


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(url: str) -> None:
    settings = Settings(database_url=url)
    runtime.configure(settings)
    await init_db(url)
    now = datetime.now(UTC)
    try:
        for name, job in (
            ("reminders: overdue query", lambda: reminders._waiting_requests(now)),
            ("auto-close: one batch", lambda: jobs.run_auto_close(settings, now)),
            ("digest: figures", lambda: digest.build_digest(now)),
        ):
            before, wall, cpu = peak_mb(), time.perf_counter(), time.process_time()
            result = await job()
            size = len(result) if isinstance(result, list) else "-"
            print(f"{name:<28} wall {time.perf_counter() - wall:7.2f} s  "
                  f"CPU {time.process_time() - cpu:7.2f} s  rows {size!s:>8}  "
                  f"peak RSS +{peak_mb() - before:7.1f} MB (now {peak_mb():.0f} MB)", flush=True)
    finally:
        await close_db()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    asyncio.run(main(args.database_url.replace("postgresql://", "postgres://", 1)))
