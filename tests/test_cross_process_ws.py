"""Two API server processes sharing PostgreSQL and Redis, as behind a load balancer.

A change made through process A reaches WebSocket clients on process B; Redis is killed and
restarted mid-test: REST keeps working and the events committed meanwhile are delivered once
Redis is back, nothing lost and nothing twice; catch-up by last_event_id across processes.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from api.ws import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from core import chats
from tests.procs import ApiProcess, RedisServer, redis_server_available
from tests.wsutil import close_code, collect, connect, recv_json, recv_until

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

NOTIFY = "/ws/admin/notifications/"


@pytest.fixture
async def cluster(db_url, tmp_path):
    """Private redis-server + two API processes on one PostgreSQL database."""
    if not redis_server_available():
        from tests.conftest import need_service

        need_service("redis-server binary", False)
    redis = RedisServer().start()
    chan = f"helpdesk-test:{uuid.uuid4().hex[:10]}:events"
    procs = [
        ApiProcess(
            db_url,
            redis_url=redis.url,
            channel=chan,
            media_root=tmp_path / "media",
            log_path=tmp_path / f"api{i}.log",
        )
        for i in "ab"
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
        yield redis, procs[0], procs[1]
    finally:
        for p in procs:
            p.stop()
        redis.stop()


async def create(http: httpx.AsyncClient, base: str, token: str, customer_id: int, title: str):
    r = await http.post(
        f"{base}/api/admin/customer-requests/",
        headers={"Authorization": f"Token {token}"},
        json={"title": title, "description": "cross-process", "customer_id": customer_id},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_change_through_process_a_reaches_client_on_process_b_and_survives_redis_restart(
    cluster, make_user, token_for
):
    redis, a, b = cluster
    admin = await make_user("admin")
    customer = await make_user("customer")
    tok = await token_for(admin)
    async with httpx.AsyncClient(timeout=20) as http:
        on_b = await connect(b.base, NOTIFY, tok)
        on_a = await connect(a.base, NOTIFY, tok)

        first = await create(http, a.base, tok, customer.id, "Made on A")
        frame = await recv_until(on_b, lambda f: f["type"] == "new_request")
        assert frame["data"] == first  # same JSON as the REST response
        assert (await recv_until(on_a, lambda f: f["type"] == "new_request"))["data"] == first

        # Redis dies. REST keeps working on both processes; events wait in the outbox.
        redis.stop()
        during = [
            await create(http, a.base, tok, customer.id, f"A while down {i}") for i in range(3)
        ]
        during.append(await create(http, b.base, tok, customer.id, "B while down"))
        r = await http.get(
            f"{b.base}/api/admin/customer-requests/", headers={"Authorization": f"Token {tok}"}
        )
        assert r.status_code == 200 and r.json()["count"] == 5

        await asyncio.sleep(1.5)
        redis.start()
        expected = sorted(d["id"] for d in during)
        for ws in (on_a, on_b):
            got: list[int] = []
            while len(got) < len(expected):
                f = await recv_until(ws, lambda f: f["type"] == "new_request", timeout=20)
                got.append(f["data"]["id"])
            extra = [f for f in await collect(ws, quiet=1.5) if f["type"] == "new_request"]
            assert sorted(got) == expected and extra == [], (got, extra)

        # After the restart, live delivery across processes works again.
        after = await create(http, b.base, tok, customer.id, "After restart")
        frame = await recv_until(on_a, lambda f: f["type"] == "new_request")
        assert frame["data"]["id"] == after["id"]
        last_seen = frame["event_id"]
        await on_a.close()
        await on_b.close()

        # Catch-up across processes: missed on B, replayed by A.
        missed = await create(http, b.base, tok, customer.id, "Missed while offline")
        async with await connect(a.base, NOTIFY + f"?last_event_id={last_seen}", tok) as ws:
            frames = await collect(ws, quiet=1.0)
        assert [f["data"]["id"] for f in frames if f["type"] == "new_request"] == [missed["id"]]
        assert len({f["event_id"] for f in frames}) == len(frames)


async def test_chat_message_sent_on_a_reaches_participant_on_b(cluster, make_user, token_for):
    _, a, b = cluster
    alice = await make_user("admin", first_name="Alice", last_name="A")
    bob = await make_user("admin", first_name="Bob", last_name="B")
    outsider = await make_user("admin")
    chat = await chats.create_chat(alice, name="Ops", participant_ids=[bob.id])
    path = f"/ws/chats/{chat.id}/"
    async with (
        await connect(a.base, path, await token_for(alice)) as wa,
        await connect(b.base, path, await token_for(bob)) as wb,
    ):
        await wa.send(json.dumps({"message": "hello from A"}))
        fb = await recv_json(wb)
        fa = await recv_json(wa)
        assert fb == fa
        assert (fb["type"], fb["message"], fb["sender"], fb["sender_id"]) == (
            "message",
            "hello from A",
            "Alice A",
            alice.id,
        )
        await wb.send("{broken")
        assert (await recv_json(wb))["type"] == "error"
        await wb.send('{"type": "ping"}')
        assert await recv_json(wb) == {"type": "pong"}
    # Refusals are the same on every process.
    assert (
        await close_code(await connect(b.base, path, await token_for(outsider))) == CLOSE_FORBIDDEN
    )
    assert await close_code(await connect(b.base, path, "bad-token")) == CLOSE_UNAUTHENTICATED
