"""core.backoff.run_loop, the loop of every background worker: a pass's delay is waited
(cut short by a wake-up), a failed pass backs off through LoopHealth and the loop goes on,
and it ends once `stopping()` says so."""

from __future__ import annotations

import asyncio
import logging

from core.backoff import LoopHealth, run_loop


async def test_run_loop_waits_wakes_backs_off_and_stops(caplog):
    wake = asyncio.Event()
    health = LoopHealth("test loop", logging.getLogger("helpdesk.test"), base=0.01, cap=0.02)
    passes: list[str] = []
    stop = False

    async def one_pass() -> float:
        passes.append("pass")
        if len(passes) == 2:
            raise ConnectionRefusedError("database gone")
        return 30.0  # long: only a wake-up brings the next pass soon

    task = asyncio.create_task(run_loop(one_pass, health=health, wake=wake, stopping=lambda: stop))
    await asyncio.sleep(0.05)
    assert passes == ["pass"]  # waiting its 30 s
    wake.set()  # pass 2 fails, backs off ~0.01 s, pass 3 runs and waits again
    await asyncio.sleep(0.2)
    assert len(passes) == 3 and not health.failing
    assert "cannot reach a service" in caplog.text and "recovered" in caplog.text
    stop = True
    wake.set()
    await asyncio.wait_for(task, timeout=1)
    assert len(passes) == 3
