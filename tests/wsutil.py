"""Small helpers for WebSocket tests (the `websockets` client)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


class SyncedSocket:
    """A client socket whose frames that arrived before the sync pong are read first.

    Events committed just before `connect` may be published after the socket registered
    and so reach it ahead of the pong; they are kept, not dropped or mistaken for it."""

    def __init__(self, ws: Any, early: list[str]) -> None:
        self._ws = ws
        self._early = early

    async def recv(self, *args: Any, **kw: Any) -> Any:
        if self._early:
            return self._early.pop(0)
        return await self._ws.recv(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    def __aiter__(self):
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> SyncedSocket:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._ws.close()


async def connect(base: str, path: str, token: str | None = None, sync: bool = True, **kw: Any):
    """Open a client socket. With `sync`, wait for a pong first: the server answers frames
    only once the socket is registered for live events, so nothing published after this
    returns can be missed; frames that came before the pong are kept for `recv`. (Not needed
    with last_event_id: the replay covers the gap. A refused connection is returned as is,
    for `close_code`.)"""
    url = ws_url(base, path)
    if token is not None:
        url += ("&" if "?" in url else "?") + f"token={token}"
    ws = await websockets.connect(url, open_timeout=10, **kw)
    if not sync or "last_event_id=" in url:
        return ws
    early: list[str] = []
    try:
        await ws.send('{"type": "ping"}')
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time()))
            if json.loads(raw) == {"type": "pong"}:
                break
            early.append(raw)
    except ConnectionClosed:
        pass
    return SyncedSocket(ws, early)


async def recv_json(ws, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, predicate, timeout: float = 10.0) -> dict[str, Any]:
    """The first frame matching `predicate` (others are skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await recv_json(ws, max(0.01, deadline - loop.time()))
        if predicate(frame):
            return frame


async def collect(ws, quiet: float = 0.5) -> list[dict[str, Any]]:
    """Every frame until nothing arrives for `quiet` seconds."""
    frames = []
    while True:
        try:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), quiet)))
        except TimeoutError:
            return frames


async def close_code(ws, timeout: float = 10.0) -> int | None:
    """Wait until the server closes the connection; return its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
