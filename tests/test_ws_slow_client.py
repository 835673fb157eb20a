"""A client that stops reading is disconnected (4408) and never stalls the others."""

from __future__ import annotations

import asyncio

import pytest

from api.ws import CLOSE_SLOW_CONSUMER
from bootstrap.app import create_app
from tests.live import serve
from tests.wsutil import close_code, connect, recv_json


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_slow_client_is_disconnected_and_others_get_every_event(
    settings, make_user, token_for
):
    admin = await make_user("admin")
    tok = await token_for(admin)
    app = create_app(settings.with_overrides(extra={"ws_send_queue": 32}))
    async with serve(app) as base:
        # max_queue=1: the slow client's library stops reading the socket almost at once.
        slow = await connect(base, "/ws/admin/notifications/", tok, max_queue=1)
        fast = await connect(base, "/ws/admin/notifications/", tok)
        await asyncio.sleep(0.1)
        assert app.ctx.ws_hub.connections == 2
        bus = app.ctx.events_runtime.bus
        blob = "x" * 16_000
        total = 600  # ~10 MB: more than the loopback socket buffers hold
        received: list[int] = []

        async def read_fast() -> None:
            while len(received) < total:
                received.append((await recv_json(fast))["event_id"])

        reader = asyncio.create_task(read_fast())
        for i in range(total):
            await bus.publish(
                [
                    {
                        "id": 10_000_000 + i,
                        "type": "new_request",
                        "topic": "admin",
                        "data": {"id": i, "blob": blob},
                    }
                ]
            )
            await asyncio.sleep(0.002)  # a busy desk, not a tight loop
        await asyncio.wait_for(reader, 30)
        assert received == [10_000_000 + i for i in range(total)]
        code = await close_code(slow, timeout=30)
        assert code == CLOSE_SLOW_CONSUMER, code
        assert app.ctx.ws_hub.connections == 1
        await fast.send('{"type": "ping"}')
        assert await recv_json(fast) == {"type": "pong"}
        await fast.close()
