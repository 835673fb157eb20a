"""WebSocket routes on one live server (in-process bus), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest

from api.ws import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
)
from core import chats, requests
from core.serializers import request_data
from db.models import CustomerRequest, Event
from tests.wsutil import close_code, collect, connect, recv_json, recv_until

NOTIFY = "/ws/admin/notifications/"
# Protocol tests that do not depend on the database run on SQLite only (time budget).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def published() -> None:
    """Wait until the outbox relay has published every committed event."""
    from db.models import Event

    for _ in range(200):
        if not await Event.filter(published=False).exists():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("events were not published")


async def test_admin_sees_new_request_created_over_rest(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    async with await connect(api.base, NOTIFY, await token_for(admin)) as ws:
        r = await api.post(
            "/api/admin/customer-requests/",
            await token_for(admin),
            json={"title": "Printer", "description": "It jams", "customer_id": customer.id},
        )
        assert r.status_code == 201, r.text
        frame = await recv_json(ws)
    assert frame["type"] == "new_request"
    assert isinstance(frame["event_id"], int)
    # Same JSON as the REST API's detail.
    detail = await api.get(
        f"/api/admin/customer-requests/{r.json()['id']}/", await token_for(admin)
    )
    assert frame["data"] == detail.json()


async def test_admin_sees_take_and_message_as_rest_json(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    req = await requests.create_request(customer, title="VPN", description="down")
    tok = await token_for(admin)
    async with await connect(api.base, NOTIFY, tok) as ws:
        r = await api.post(f"/api/admin/customer-requests/{req.id}/take/", tok)
        assert r.status_code == 200, r.text
        # (the create's new_request may still arrive first: it was committed just before)
        pair: dict[str, dict] = {}
        while len(pair) < 2:
            frame = await recv_json(ws)
            if frame["type"] in ("request_updated", "new_message"):
                pair[frame["type"]] = frame
        updated, system = pair["request_updated"], pair["new_message"]
        r = await api.post(
            f"/api/admin/customer-requests/{req.id}/messages/",
            tok,
            json={"content": "On it", "is_internal": True},
        )
        assert r.status_code == 201, r.text
        note = await recv_until(ws, lambda f: f["type"] == "new_message")
    assert updated["data"]["status"] == "in_progress"
    assert updated["data"]["assigned_admin"]["id"] == admin.id
    assert system["data"]["message_type"] == "system"
    assert note["data"] == r.json()
    assert note["data"]["is_internal"] is True


@sqlite_only
async def test_ping_gets_pong(api, make_user, token_for):
    admin = await make_user("director")
    async with await connect(api.base, NOTIFY, await token_for(admin)) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"type": "pong"}


@sqlite_only
async def test_token_in_authorization_header_is_accepted(api, make_user, token_for):
    admin = await make_user("admin")
    async with await connect(
        api.base, NOTIFY, additional_headers={"Authorization": f"Token {await token_for(admin)}"}
    ) as ws:
        await ws.send('{"type": "ping"}')
        assert (await recv_json(ws))["type"] == "pong"


@sqlite_only
async def test_malformed_frames_get_error_frames_and_connection_survives(api, make_user, token_for):
    admin = await make_user("admin")
    async with await connect(api.base, NOTIFY, await token_for(admin)) as ws:
        for bad in [
            "not json",
            "[1, 2]",
            '"text"',
            "{}",
            '{"type": "dance"}',
            '{"type": "resume", "last_event_id": "x"}',
            '{"type": "resume"}',
            "\x00\x01",
        ]:
            await ws.send(bad)
            frame = await recv_json(ws)
            assert frame["type"] == "error", (bad, frame)
            assert frame["code"] and frame["detail"]
        await ws.send(b"\x01\x02binary")
        assert (await recv_json(ws))["code"] == "invalid_frame"
        await ws.send('{"type": "ping"}')
        assert await recv_json(ws) == {"type": "pong"}
    # The server is fine too.
    async with await connect(api.base, NOTIFY, await token_for(admin)) as ws:
        await ws.send('{"type": "ping"}')
        assert await recv_json(ws) == {"type": "pong"}


@sqlite_only
@pytest.mark.parametrize("token", [None, "", "nonsense-token"])
async def test_unauthenticated_notifications_refused_with_4401(api, token):
    ws = await connect(api.base, NOTIFY, token)
    assert await close_code(ws) == CLOSE_UNAUTHENTICATED


@sqlite_only
async def test_customer_refused_on_admin_notifications_with_4403(api, make_user, token_for):
    customer = await make_user("customer")
    ws = await connect(api.base, NOTIFY, await token_for(customer))
    assert await close_code(ws) == CLOSE_FORBIDDEN


@sqlite_only
async def test_bad_last_event_id_refused_with_4400(api, make_user, token_for):
    admin = await make_user("admin")
    ws = await connect(api.base, NOTIFY + "?last_event_id=abc", await token_for(admin))
    assert await close_code(ws) == CLOSE_BAD_REQUEST


async def test_reconnecting_admin_catches_up_by_last_event_id(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    tok = await token_for(admin)
    async with await connect(api.base, NOTIFY, tok) as ws:
        first = await requests.create_request(customer, title="One", description="1")
        seen = await recv_json(ws)
    assert seen["data"]["id"] == first.id
    # Offline: three changes happen.
    second = await requests.create_request(customer, title="Two", description="2")
    await requests.post_message(customer, second.id, "hello")
    third = await requests.create_request(customer, title="Three", description="3")
    await published()
    async with await connect(api.base, NOTIFY + f"?last_event_id={seen['event_id']}", tok) as ws:
        fourth = await requests.create_request(customer, title="Four", description="4")
        frames = await collect(ws)
    ids = [f["event_id"] for f in frames]
    assert ids == sorted(ids) and len(ids) == len(set(ids)), ids
    assert [
        (f["type"], f["data"].get("id") if f["type"] != "new_message" else f["data"]["request"])
        for f in frames
    ] == [
        ("new_request", second.id),
        ("new_message", second.id),
        ("new_request", third.id),
        ("new_request", fourth.id),
    ]


async def test_resume_frame_replays_what_came_after_the_given_event(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    tok = await token_for(admin)
    a = await requests.create_request(customer, title="A", description="a")
    b = await requests.create_request(customer, title="B", description="b")
    c = await requests.create_request(customer, title="C", description="c")
    await published()
    first = await Event.filter(type="new_request").order_by("id").first()
    async with await connect(api.base, NOTIFY, tok) as ws:
        await ws.send(json.dumps({"type": "resume", "last_event_id": first.id}))
        frames = await collect(ws)
        assert [f["data"]["id"] for f in frames] == [b.id, c.id]
        await ws.send(json.dumps({"type": "resume", "last_event_id": frames[-1]["event_id"]}))
        assert await collect(ws) == []  # nothing after the last one
    assert a.id < b.id


async def test_catch_up_racing_live_events_has_no_gap_and_no_duplicate(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    tok = await token_for(admin)
    before = [
        (await requests.create_request(customer, title=f"B{i}", description="x")).id
        for i in range(5)
    ]
    await published()

    async def keep_creating() -> list[int]:
        ids = []
        for i in range(10):
            ids.append((await requests.create_request(customer, title=f"L{i}", description="x")).id)
            await asyncio.sleep(0.005)
        return ids

    creator = asyncio.create_task(keep_creating())
    async with await connect(api.base, NOTIFY + "?last_event_id=0", tok) as ws:
        during = await creator
        frames = await collect(ws, quiet=1.0)
    ids = [f["data"]["id"] for f in frames]
    assert sorted(ids) == sorted(before + during), ids
    assert len(ids) == len(set(ids))


@sqlite_only
async def test_deleted_request_is_announced_as_request_updated(api, make_user, token_for):
    admin = await make_user("director")
    customer = await make_user("customer")
    req = await requests.create_request(customer, title="Spam", description="x")
    async with await connect(api.base, NOTIFY, await token_for(admin)) as ws:
        r = await api.request(
            "DELETE", f"/api/admin/customer-requests/{req.id}/", await token_for(admin)
        )
        assert r.status_code == 204, r.text
        frame = await recv_until(ws, lambda f: f["type"] == "request_updated")
    assert frame["data"]["id"] == req.id and frame["data"]["deleted"] is True


# --- chats ------------------------------------------------------------------------------------


async def test_chat_message_is_saved_and_broadcast_to_every_participant(api, make_user, token_for):
    alice = await make_user("admin", first_name="Alice", last_name="A")
    bob = await make_user("director", first_name="Bob", last_name="B")
    chat = await chats.create_chat(alice, name="Ops", participant_ids=[bob.id])
    path = f"/ws/chats/{chat.id}/"
    async with (
        await connect(api.base, path, await token_for(alice)) as wa,
        await connect(api.base, path, await token_for(bob)) as wb,
    ):
        await wa.send(json.dumps({"message": "Привет, <b>команда</b>"}))
        fa, fb = await recv_json(wa), await recv_json(wb)
    assert fa == fb
    assert fa["type"] == "message"
    assert fa["message"] == "Привет, <b>команда</b>"
    assert fa["sender"] == "Alice A" and fa["sender_id"] == alice.id
    assert fa["timestamp"] and fa["event_id"]
    saved = await chats.list_chat_messages(bob, chat.id)
    assert [m.content for m in saved] == ["Привет, <b>команда</b>"]
    assert fa["id"] == saved[0].id


async def test_chat_message_posted_over_rest_arrives_on_the_socket(api, make_user, token_for):
    alice = await make_user("admin", first_name="Alice")
    bob = await make_user("admin", first_name="Bob")
    chat = await chats.create_chat(alice, name="Ops", participant_ids=[bob.id])
    async with await connect(api.base, f"/ws/chats/{chat.id}/", await token_for(bob)) as ws:
        r = await api.post(
            f"/api/admin/chats/{chat.id}/messages/",
            await token_for(alice),
            json={"content": "from REST"},
        )
        assert r.status_code == 201, r.text
        frame = await recv_json(ws)
    assert frame["type"] == "message" and frame["message"] == "from REST"
    assert frame["sender_id"] == alice.id


@sqlite_only
async def test_join_and_leave_arrive_as_system_messages(api, make_user, token_for):
    alice = await make_user("admin")
    carol = await make_user("admin")
    chat = await chats.create_chat(alice, name="Ops")
    async with await connect(api.base, f"/ws/chats/{chat.id}/", await token_for(alice)) as ws:
        await chats.join_chat(carol, chat.id)
        joined = await recv_json(ws)
        await chats.leave_chat(carol, chat.id)
        left = await recv_json(ws)
    assert joined["event"] == "join" and joined["sender_id"] == carol.id
    assert joined["message_type"] == "system"
    assert left["event"] == "leave"


async def test_chat_non_participant_refused_with_4403(api, make_user, token_for):
    alice = await make_user("admin")
    outsider = await make_user("admin")
    customer = await make_user("customer")
    chat = await chats.create_chat(alice, name="Ops")
    ws = await connect(api.base, f"/ws/chats/{chat.id}/", await token_for(outsider))
    assert await close_code(ws) == CLOSE_FORBIDDEN
    ws = await connect(api.base, f"/ws/chats/{chat.id}/", await token_for(customer))
    assert await close_code(ws) == CLOSE_FORBIDDEN
    ws = await connect(api.base, f"/ws/chats/{chat.id}/")
    assert await close_code(ws) == CLOSE_UNAUTHENTICATED


@sqlite_only
async def test_unknown_chat_refused_with_4404(api, make_user, token_for):
    alice = await make_user("admin")
    ws = await connect(api.base, "/ws/chats/999999/", await token_for(alice))
    assert await close_code(ws) == CLOSE_NOT_FOUND


@sqlite_only
async def test_invalid_chat_message_gets_error_frame(api, make_user, token_for):
    alice = await make_user("admin")
    chat = await chats.create_chat(alice, name="Ops")
    async with await connect(api.base, f"/ws/chats/{chat.id}/", await token_for(alice)) as ws:
        await ws.send(json.dumps({"message": "   "}))
        err = await recv_json(ws)
        assert err["type"] == "error" and "message" in err["detail"]
        await ws.send(json.dumps({"message": 42}))
        assert (await recv_json(ws))["type"] == "error"
        await ws.send(json.dumps({"message": "ok"}))
        assert (await recv_json(ws))["message"] == "ok"


async def test_chat_catches_up_by_last_event_id(api, make_user, token_for):
    alice = await make_user("admin")
    chat = await chats.create_chat(alice, name="Ops")
    await chats.post_chat_message(alice, chat.id, "one")
    await chats.post_chat_message(alice, chat.id, "two")
    path = f"/ws/chats/{chat.id}/?last_event_id=0"
    async with await connect(api.base, path, await token_for(alice)) as ws:
        frames = await collect(ws)
    assert [f["message"] for f in frames] == ["one", "two"]


# --- the customer's page ------------------------------------------------------------------------


async def test_customer_page_gets_public_messages_and_status_only(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    req = await requests.create_request(
        customer, title="Web", description="x", with_access_key=True
    )
    other = await requests.create_request(customer, title="Other", description="y")
    key = (await CustomerRequest.get(id=req.id)).access_key
    async with await connect(api.base, f"/ws/public/requests/{key}/") as ws:
        await requests.post_message(admin, req.id, "secret note", is_internal=True)
        await requests.post_message(admin, other.id, "other request")
        await requests.post_message(admin, req.id, "Здравствуйте!")
        await requests.take_request(admin, req.id)
        frames = await collect(ws)
    kinds = [(f["type"], f["data"].get("content") or f["data"].get("status")) for f in frames]
    assert ("new_message", "Здравствуйте!") in kinds
    assert ("request_updated", "in_progress") in kinds
    assert all(f["data"].get("content") not in ("secret note", "other request") for f in frames)
    updated = next(f for f in frames if f["type"] == "request_updated")
    assert "email" not in updated["data"]["assigned_admin"]
    # counts what the customer sees: the greeting and the "taken" system message
    assert updated["data"]["messages_count"] == 2


async def test_customer_page_replays_only_public_events(api, make_user):
    admin = await make_user("admin")
    customer = await make_user("customer")
    req = await requests.create_request(
        customer, title="Web", description="x", with_access_key=True
    )
    key = (await CustomerRequest.get(id=req.id)).access_key
    await requests.post_message(admin, req.id, "internal", is_internal=True)
    await requests.post_message(admin, req.id, "public")
    async with await connect(api.base, f"/ws/public/requests/{key}/?last_event_id=0") as ws:
        frames = await collect(ws)
    assert [f["data"]["content"] for f in frames] == ["public"]


@sqlite_only
async def test_unknown_access_key_refused_with_4404(api):
    ws = await connect(api.base, "/ws/public/requests/not-a-real-key-123456/")
    assert await close_code(ws) == CLOSE_NOT_FOUND


async def test_rest_serializer_and_event_payload_agree(settings, make_user):
    customer = await make_user("customer")
    req = await requests.create_request(customer, title="Same", description="json")
    fresh = await CustomerRequest.get(id=req.id).prefetch_related("customer", "assigned_admin")
    from db.models import Event

    event = await Event.filter(type="new_request").order_by("-id").first()
    assert event.payload == json.loads(json.dumps(request_data(fresh)))


@sqlite_only
async def test_server_keeps_working_when_a_client_vanishes(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    tok = await token_for(admin)
    ws = await connect(api.base, NOTIFY, tok)
    ws.transport.abort()  # no close handshake
    await asyncio.sleep(0.1)
    async with await connect(api.base, NOTIFY, tok) as ws2:
        await requests.create_request(customer, title="After", description="abort")
        assert (await recv_json(ws2))["type"] == "new_request"


@sqlite_only
async def test_clients_are_told_going_away_when_the_server_stops(settings, make_user, token_for):
    from bootstrap.app import create_app
    from tests.live import serve

    admin = await make_user("admin")
    app = create_app(settings)
    async with serve(app) as base:
        ws = await connect(base, NOTIFY, await token_for(admin))
        for _ in range(100):
            if app.ctx.ws_hub.connections:
                break
            await asyncio.sleep(0.01)
    assert await close_code(ws) == 1001
