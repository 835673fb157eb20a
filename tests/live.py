"""Run a real Sanic server inside the test's event loop (REST and WebSocket over loopback)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
from sanic import Sanic

Sanic.test_mode = True


@contextlib.asynccontextmanager
async def serve(app: Sanic) -> AsyncIterator[str]:
    """Start `app` on 127.0.0.1 (free port); yields the base URL."""
    # Sanic turns port 0 into 8000; bind a free port ourselves so parallel runs never collide.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Sanic's touch-up rewrites a few of its own methods at start (an AST pass, about 50 ms) to
    # drop signal dispatches nobody listens to; it changes no behaviour, and the suite
    # starts hundreds of servers. The desk's own processes keep it (tests/procs.py).
    app.config.TOUCHUP = False
    server = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    sock = server.server.sockets[0]
    port = sock.getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


class Api:
    """A tiny authenticated client: `await api.get(path, token=...)`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=30)

    async def request(self, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Token {token}"
        return await self.http.request(method, path, headers=headers, **kw)

    async def get(self, path: str, token: str | None = None, **kw) -> httpx.Response:
        return await self.request("GET", path, token, **kw)

    async def post(self, path: str, token: str | None = None, **kw) -> httpx.Response:
        return await self.request("POST", path, token, **kw)

    async def close(self) -> None:
        await self.http.aclose()
