"""Small helpers for WebSocket tests (the `websockets` client)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


async def connect(base: str, path: str, token: str | None = None, sync: bool = True, **kw: Any):
    """Open a client socket. With `sync`, wait for a pong first: the server answers frames
    only once the socket is registered for live events, so nothing published after this
    returns can be missed. (Not needed with last_event_id: the replay covers the gap. A
    refused connection is returned as is, for `close_code`.)"""
    url = ws_url(base, path)
    if token is not None:
        url += ("&" if "?" in url else "?") + f"token={token}"
    ws = await websockets.connect(url, open_timeout=10, **kw)
    if sync and "last_event_id=" not in url:
        try:
            await ws.send('{"type": "ping"}')
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame == {"type": "pong"}, frame
        except ConnectionClosed:
            pass
    return ws


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
