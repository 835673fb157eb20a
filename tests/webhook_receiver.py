"""A real webhook receiver for tests and the benchmark: an aiohttp server on 127.0.0.1.

It verifies every delivery's signature with the secret registered for its path (exactly as
the README tells integrators to), records what arrived, and misbehaves on request: a
script of answers per path (`500`, `hang` (answers after `hang_seconds`), `close` (drops
the connection), or `ok`), then `ok` for the rest. `stop()`/`start()` take it away and
bring it back on the same port ("down for a while").
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from core.webhooks import verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    valid: bool
    answered: int | str
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        return self.headers.get("X-Helpdesk-Delivery", "")

    @property
    def event(self) -> str:
        return self.headers.get("X-Helpdesk-Event", "")


class Receiver:
    def __init__(self, hang_seconds: float = 5.0) -> None:
        self.secrets: dict[str, str] = {}
        self.scripts: dict[str, list[str]] = {}
        self.received: list[Received] = []
        self.hang_seconds = hang_seconds
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.changed = asyncio.Event()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: str) -> None:
        self.scripts[path] = list(answers)

    def ok(self, path: str | None = None) -> list[Received]:
        """Deliveries this receiver accepted (2xx) with a valid signature."""
        return [r for r in self.received if r.answered == 200 and r.valid
                and (path is None or r.path == path)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        secret = self.secrets.get(request.path, "")
        valid = verify(secret, request.headers.get("X-Helpdesk-Timestamp", ""), body,
                       request.headers.get("X-Helpdesk-Signature", ""))
        script = self.scripts.get(request.path) or []
        answer = script.pop(0) if script else "ok"
        record = Received(request.path, dict(request.headers), body, valid, answer)
        self.received.append(record)
        self.changed.set()
        if answer == "500":
            record.answered = 500
            return web.Response(status=500, text="receiver is failing on purpose")
        if answer == "hang":
            await asyncio.sleep(self.hang_seconds)
            record.answered = "hang"
            return web.Response(status=200, text="too late")
        if answer == "close":
            assert request.transport is not None
            request.transport.close()
            record.answered = "closed"
            return web.Response(status=200)
        record.answered = 200 if valid else 401
        return web.Response(status=record.answered, text="ok" if valid else "bad signature")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait(self, predicate, timeout: float = 10.0) -> None:
        """Until `predicate(self)` is true; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"receiver: condition not met in {timeout}s; got "
                                     f"{[(r.path, r.event, r.answered) for r in self.received][-20:]}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 0.2))
            except TimeoutError:
                pass
