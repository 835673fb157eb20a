"""Abuse limits on the WebSockets, against a real server on loopback: frames per connection,
frame size, open customer-page sockets per client address, resumes per access key, and a
customer-page resume whose cost is bounded however long the event log is."""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

import pytest
import websockets

from api.ws import CLOSE_RATE_LIMITED, PUBLIC_REPLAY_SCAN_MAX
from core import requests
from core.serializers import request_data
from db.models import CustomerRequest, Event
from tests.wsutil import close_code, connect, recv_json, ws_url

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@asynccontextmanager
async def server(settings, **overrides):
    from bootstrap.app import create_app
    from tests.live import serve

    async with serve(create_app(settings.with_overrides(**overrides))) as base:
        yield base


async def page_key(make_user) -> tuple[CustomerRequest, str]:
    customer = await make_user("customer")
    req = await requests.create_request(customer, title="Printer", description="jams",
                                        with_access_key=True)
    return req, f"/ws/public/requests/{req.access_key}/"


async def pong_after(ws, frame: str) -> list[dict]:
    """Send `frame` then a ping; the frames that came back before the pong."""
    await ws.send(frame)
    await ws.send('{"type": "ping"}')
    seen = []
    while (f := await recv_json(ws)) != {"type": "pong"}:
        seen.append(f)
    return seen


@sqlite_only
async def test_a_socket_sending_too_many_frames_is_closed_with_4429(settings, make_user):
    _, path = await page_key(make_user)
    async with server(settings, ws_frame_rate=(5, 10)) as base:
        ws = await connect(base, path)  # its sync ping is frame 1
        for _ in range(4):
            await ws.send('{"type": "ping"}')
            assert await recv_json(ws) == {"type": "pong"}
        await ws.send('{"type": "ping"}')  # the sixth frame within 10 s
        assert await close_code(ws) == CLOSE_RATE_LIMITED
        # Another connection has its own budget.
        async with await connect(base, path) as other:
            await other.send('{"type": "ping"}')
            assert await recv_json(other) == {"type": "pong"}


@sqlite_only
async def test_a_frame_over_the_size_limit_is_closed_with_1009(settings, make_user):
    _, path = await page_key(make_user)
    async with server(settings, ws_max_frame_bytes=4096) as base:
        ws = await connect(base, path)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 3000}))  # under: still served
        assert (await recv_json(ws))["type"] == "pong"
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 5000}))
        assert await close_code(ws) == 1009


@sqlite_only
async def test_open_customer_page_sockets_are_limited_per_client_address(settings, make_user):
    _, path = await page_key(make_user)
    async with server(settings, ws_public_sockets_per_client=2) as base:
        first = await connect(base, path)
        second = await connect(base, path)
        third = await connect(base, path, sync=False)
        assert await close_code(third) == CLOSE_RATE_LIMITED
        await first.close()
        # A closed socket gives its place back.
        for _ in range(50):
            candidate = await connect(base, path, sync=False)
            await candidate.send('{"type": "ping"}')
            try:
                assert await recv_json(candidate, timeout=2) == {"type": "pong"}
                break
            except websockets.ConnectionClosed:
                continue
        else:
            raise AssertionError("the freed place was never given back")
        await candidate.close()
        await second.close()


@sqlite_only
async def test_resumes_are_limited_per_access_key_across_sockets(settings, make_user):
    req, path = await page_key(make_user)
    async with server(settings, ws_resume_rate=(2, 60)) as base:
        ws = await connect(base, path)
        assert await pong_after(ws, '{"type": "resume", "last_event_id": 0}') is not None
        assert await pong_after(ws, '{"type": "resume", "last_event_id": 0}') is not None
        await ws.send('{"type": "resume", "last_event_id": 0}')
        assert await close_code(ws) == CLOSE_RATE_LIMITED
        # A new socket for the same request cannot resume on connect either...
        again = await websockets.connect(ws_url(base, path) + "?last_event_id=0")
        assert await close_code(again) == CLOSE_RATE_LIMITED
        # ...but it may connect and receive live events without resuming.
        async with await connect(base, path) as live:
            await requests.post_message(await req.customer, req.id, "hi")
            frame = await recv_json(live)
            assert frame["type"] in ("new_message", "request_updated")


async def test_a_resume_on_a_customer_page_is_cheap_however_long_the_log(settings, make_user):
    req, path = await page_key(make_user)
    other = await requests.create_request(await make_user("customer"), title="Other " * 10,
                                          description="x" * 800)
    other = await CustomerRequest.filter(id=other.id).select_related("customer", "assigned_admin").first()
    payload = request_data(other)  # ~1.3 KB, like every request_updated in the admin log
    noise = [Event(type="request_updated", topic="admin", payload=payload, published=True)
             for _ in range(20_000)]
    for start in range(0, len(noise), 2000):
        await Event.bulk_create(noise[start:start + 2000])
    await Event.filter(published=False).update(published=True)
    async with server(settings) as base:
        async with await connect(base, path) as ws:
            timings = []
            for _ in range(3):
                started = time.perf_counter()
                await ws.send('{"type": "resume", "last_event_id": 0}')
                frame = await recv_json(ws)
                timings.append(time.perf_counter() - started)
                # The page's own creation event lies beyond the bounded scan: told to reload.
                assert frame["type"] == "resync_required", frame
    best = min(timings)
    print(f"public resume over 20,000 events: {[round(t * 1000) for t in timings]} ms "
          f"(scan bound {PUBLIC_REPLAY_SCAN_MAX} rows)")
    # Scanning the whole log took ~500 ms on SQLite; the bounded scan takes a few ms.
    assert best < 0.1, timings
