"""Open WebSockets follow permissions within a second: deactivation, role change, token
revocation, leaving or being removed from a chat, a chat closed. A real server on loopback
(SQLite and PostgreSQL), and two API processes sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from api.ws import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from core import chats, users
from tests.wsutil import close_code, connect, recv_until

NOTIFY = "/ws/admin/notifications/"


async def closed_within(ws, seconds: float = 1.0) -> tuple[int | None, float]:
    started = time.monotonic()
    code = await close_code(ws, timeout=seconds + 2)
    took = time.monotonic() - started
    print(f"socket closed {code} after {took * 1000:.0f} ms")
    return code, took


async def still_open(ws) -> bool:
    """The socket answers a ping (frames queued before the pong are skipped)."""
    await ws.send('{"type": "ping"}')
    try:
        await recv_until(ws, lambda f: f == {"type": "pong"}, timeout=2)
        return True
    except Exception:
        return False


async def test_deactivating_a_user_closes_their_sockets_with_4401(api, make_user, token_for):
    director, admin, other = (await make_user("director"), await make_user("admin"),
                              await make_user("admin"))
    chat = await chats.create_chat(admin, name="Ops", participant_ids=[other.id])
    ta = await token_for(admin)
    notify = await connect(api.base, NOTIFY, ta)
    in_chat = await connect(api.base, f"/ws/chats/{chat.id}/", ta)
    bystander = await connect(api.base, NOTIFY, await token_for(other))
    r = await api.request("PATCH", f"/api/admin/users/{admin.id}/", await token_for(director),
                          json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    for ws in (notify, in_chat):
        code, took = await closed_within(ws)
        assert code == CLOSE_UNAUTHENTICATED and took < 1.0, (code, took)
    assert await still_open(bystander)
    await bystander.close()
    assert (await api.get("/api/admin/customer-requests/", ta)).status_code == 401


async def test_a_demoted_admin_stops_receiving_admin_events(api, make_user, token_for):
    director, admin = await make_user("director"), await make_user("admin")
    ws = await connect(api.base, NOTIFY, await token_for(admin))
    r = await api.request("PATCH", f"/api/admin/users/{admin.id}/", await token_for(director),
                          json={"role": "customer"})
    assert r.status_code == 200 and r.json()["role"] == "customer"
    code, took = await closed_within(ws)
    assert code == CLOSE_FORBIDDEN and took < 1.0, (code, took)
    # only directors change access
    r = await api.request("PATCH", f"/api/admin/users/{director.id}/",
                          await token_for(await make_user("admin")), json={"is_active": False})
    assert r.status_code == 403


async def test_revoking_a_token_closes_only_its_sockets(api, make_user, token_for):
    admin = await make_user("admin")
    phone, laptop = await token_for(admin), await token_for(admin)
    on_phone = await connect(api.base, NOTIFY, phone)
    on_laptop = await connect(api.base, NOTIFY, laptop)
    assert (await api.request("DELETE", "/api/auth/token/", phone)).status_code == 204
    code, took = await closed_within(on_phone)
    assert code == CLOSE_UNAUTHENTICATED and took < 1.0, (code, took)
    assert await still_open(on_laptop)
    # helpdesk revoke-tokens: every token of the user
    await users.revoke_all_tokens(admin)
    code, took = await closed_within(on_laptop)
    assert code == CLOSE_UNAUTHENTICATED and took < 1.0, (code, took)
    assert await close_code(await connect(api.base, NOTIFY, laptop)) == CLOSE_UNAUTHENTICATED


async def test_leaving_or_being_removed_from_a_chat_closes_that_chat_socket(
    api, make_user, token_for
):
    owner, leaver, removed = (await make_user("admin"), await make_user("admin"),
                              await make_user("admin"))
    chat = await chats.create_chat(owner, name="Ops", participant_ids=[leaver.id, removed.id])
    path = f"/ws/chats/{chat.id}/"
    tl, tr, to = await token_for(leaver), await token_for(removed), await token_for(owner)
    leaver_ws, leaver_notify = await connect(api.base, path, tl), await connect(api.base, NOTIFY, tl)
    removed_ws, owner_ws = await connect(api.base, path, tr), await connect(api.base, path, to)
    r = await api.post(f"/api/admin/chats/{chat.id}/leave/", tl)
    assert r.status_code == 200
    code, took = await closed_within(leaver_ws)
    assert code == CLOSE_FORBIDDEN and took < 1.0, (code, took)
    assert await still_open(leaver_notify)
    # only the creator (or a director) removes someone
    r = await api.post(f"/api/admin/chats/{chat.id}/remove_participant/", tr,
                       json={"user_id": owner.id})
    assert r.status_code == 403
    r = await api.post(f"/api/admin/chats/{chat.id}/remove_participant/", to,
                       json={"user_id": removed.id})
    assert r.status_code == 200 and r.json() == {"status": "removed"}
    code, took = await closed_within(removed_ws)
    assert code == CLOSE_FORBIDDEN and took < 1.0, (code, took)
    assert not await chats.is_participant(chat.id, removed.id)
    assert await still_open(owner_ws)
    for ws in (leaver_notify, owner_ws):
        await ws.close()


async def test_closing_a_chat_closes_every_socket_on_it(api, make_user, token_for):
    owner, member = await make_user("admin"), await make_user("admin")
    chat = await chats.create_chat(owner, name="Ops", participant_ids=[member.id])
    path = f"/ws/chats/{chat.id}/"
    sockets = [await connect(api.base, path, await token_for(u)) for u in (owner, member)]
    r = await api.request("PATCH", f"/api/admin/chats/{chat.id}/", await token_for(owner),
                          json={"is_active": False})
    assert r.status_code == 200
    for ws in sockets:
        code, took = await closed_within(ws)
        assert code == CLOSE_NOT_FOUND and took < 1.0, (code, took)


# --- across processes ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_change_made_on_one_process_closes_sockets_on_another(db_url, tmp_path, make_user,
                                                                       token_for):
    import uuid

    from tests.procs import ApiProcess, RedisServer, redis_server_available

    if not redis_server_available():
        from tests.conftest import need_service

        need_service("redis-server binary", False)
    redis = RedisServer().start()
    chan = f"helpdesk-test:{uuid.uuid4().hex[:10]}:events"
    procs = [ApiProcess(db_url, redis_url=redis.url, channel=chan, media_root=tmp_path / "media",
                        log_path=tmp_path / f"api{i}.log") for i in "ab"]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
        a, b = procs
        director, admin = await make_user("director"), await make_user("admin")
        member = await make_user("admin")
        chat = await chats.create_chat(director, name="Ops", participant_ids=[member.id])
        ta, tm = await token_for(admin), await token_for(member)
        on_b = await connect(b.base, NOTIFY, ta)
        member_chat_on_b = await connect(b.base, f"/ws/chats/{chat.id}/", tm)
        async with httpx.AsyncClient(timeout=20) as http:
            r = await http.patch(f"{a.base}/api/admin/users/{admin.id}/",
                                 headers={"Authorization": f"Token {await token_for(director)}"},
                                 json={"is_active": False})
            assert r.status_code == 200, r.text
            code, took = await closed_within(on_b)
            assert code == CLOSE_UNAUTHENTICATED and took < 1.0, (code, took)
            r = await http.post(f"{a.base}/api/admin/chats/{chat.id}/leave/",
                                headers={"Authorization": f"Token {tm}"})
            assert r.status_code == 200, r.text
            code, took = await closed_within(member_chat_on_b)
            assert code == CLOSE_FORBIDDEN and took < 1.0, (code, took)
    finally:
        for p in procs:
            p.stop()
        redis.stop()
