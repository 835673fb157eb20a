"""Graceful shutdown of the real `helpdesk api` process: SIGTERM in the middle of a slow
upload lets that request finish (Sanic's GRACEFUL_SHUTDOWN_TIMEOUT), then the process exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

BOUNDARY = "helpdesk-test-boundary"


def multipart_chunks(fields: dict[str, str], filename: str, size: int, parts: int) -> list[bytes]:
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachments"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    body = head + b"x" * size + f"\r\n--{BOUNDARY}--\r\n".encode()
    step = -(-len(body) // parts)
    return [body[i : i + step] for i in range(0, len(body), step)]


async def test_sigterm_lets_an_in_flight_upload_finish_then_exits_cleanly(tmp_path: Path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKERS": "1",
        "LOG_FORMAT": "json",
        "HELPDESK_ENV_FILE": str(tmp_path / "no.env"),
    }
    for name in ("REDIS_URL", "TELEGRAM_BOT_TOKEN"):
        env.pop(name, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from bootstrap.cli import main; raise SystemExit(main(['api']))",
        cwd=Path(__file__).resolve().parent.parent, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API did not start"
                await asyncio.sleep(0.2)

            chunks = multipart_chunks(
                {"name": "Slow", "email": "slow@example.com", "title": "Slow upload",
                 "description": "sent slowly", "category": "general"},
                "big.bin", 600_000, parts=6,
            )
            signalled = asyncio.Event()

            async def slow_body():
                for i, chunk in enumerate(chunks):
                    yield chunk
                    if i == 1:
                        proc.send_signal(signal.SIGTERM)  # the server is asked to stop now
                        signalled.set()
                    await asyncio.sleep(0.25)

            r = await client.post(
                "/api/public/requests/",
                content=slow_body(),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                         "Accept": "application/json"},
            )
            assert signalled.is_set()
            assert r.status_code == 201, r.text
            assert r.json()["request"]["title"] == "Slow upload"
        code = await asyncio.wait_for(proc.wait(), 20)
        assert code == 0
        # The logs (JSON lines) show the order: stop requested, request finished, stopped.
        lines = [json.loads(x) for x in (await proc.stderr.read()).decode().splitlines()
                 if x.startswith("{")]
        messages = [entry["msg"] for entry in lines]
        stopping = next(i for i, m in enumerate(messages) if m.startswith("Stopping worker"))
        created = next(i for i, m in enumerate(messages) if m.startswith("web request #"))
        stopped = next(i for i, m in enumerate(messages) if m == "Server Stopped")
        assert stopping < created < stopped
        stored = list((tmp_path / "media").rglob("*big.bin"))
        assert len(stored) == 1 and stored[0].stat().st_size == 600_000
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
