"""REST: /api/admin/chats/, the admins' own chats."""

from __future__ import annotations

from db.models import Event

CHATS = "/api/admin/chats/"


async def test_admin_creates_chat_and_talks_in_it(api, make_user, token_for):
    a1, a2, director = (
        await make_user("admin"),
        await make_user("admin"),
        await make_user("director"),
    )
    t1, t2, td = await token_for(a1), await token_for(a2), await token_for(director)
    r = await api.post(
        CHATS,
        t1,
        json={"name": " Поддержка L2 ", "chat_type": "department", "participant_ids": [a2.id]},
    )
    assert r.status_code == 201, r.text
    chat = r.json()
    assert chat["name"] == "Поддержка L2" and chat["chat_type"] == "department"
    assert [p["id"] for p in chat["participants"]] == [a1.id, a2.id]
    assert chat["last_message"] is None and chat["unread_count"] == 0 and chat["is_active"] is True
    assert set(chat["participants"][0]) == {
        "id",
        "username",
        "first_name",
        "last_name",
        "email",
        "avatar",
    }

    r = await api.post(f"{CHATS}{chat['id']}/messages/", t1, json={"content": "Кто возьмёт #42?"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert (
        first["sender"] == a1.id
        and first["sender_name"] == a1.full_name
        and first["chat"] == chat["id"]
    )
    assert set(first) == {
        "id",
        "chat",
        "sender",
        "sender_name",
        "sender_avatar",
        "content",
        "message_type",
        "reply_to",
        "is_read",
        "created_at",
    }
    r = await api.post(
        f"{CHATS}{chat['id']}/messages/", t2, json={"content": "Я", "reply_to": first["id"]}
    )
    assert r.status_code == 201 and r.json()["reply_to"] == first["id"]

    msgs = (await api.get(f"{CHATS}{chat['id']}/messages/", t2)).json()
    assert [m["content"] for m in msgs] == ["Кто возьмёт #42?", "Я"]  # oldest first

    listed = (await api.get(CHATS, t1)).json()
    assert [c["id"] for c in listed] == [chat["id"]]
    assert listed[0]["last_message"]["content"] == "Я"
    assert listed[0]["last_message"]["sender_name"] == a2.full_name
    assert listed[0]["unread_count"] == 1  # a2's message, unread by a1
    r = await api.post(f"{CHATS}{chat['id']}/read/", t1)
    assert r.status_code == 200 and r.json() == {"status": "read", "marked": 1}
    assert (await api.get(CHATS, t1)).json()[0]["unread_count"] == 0

    # the director is not a participant: not in their list, 403 on messages
    assert (await api.get(CHATS, td)).json() == []
    assert (await api.get(f"{CHATS}{chat['id']}/messages/", td)).status_code == 403
    assert (
        await api.post(f"{CHATS}{chat['id']}/messages/", td, json={"content": "x"})
    ).status_code == 403
    assert (await api.get(f"{CHATS}{chat['id']}/", td)).status_code == 403

    # chat messages are announced on the chat's topic
    assert await Event.filter(topic=f"chat:{chat['id']}", type="chat_message").count() == 2


async def test_join_and_leave_write_system_messages(api, make_user, token_for):
    a1, a2 = await make_user("admin"), await make_user("admin")
    t1, t2 = await token_for(a1), await token_for(a2)
    chat = (await api.post(CHATS, t1, json={"name": "Общий"})).json()
    assert chat["chat_type"] == "general"

    r = await api.post(f"{CHATS}{chat['id']}/join/", t2)
    assert r.status_code == 200 and r.json() == {"status": "joined"}
    # joining twice changes nothing
    assert (await api.post(f"{CHATS}{chat['id']}/join/", t2)).json() == {"status": "joined"}
    detail = (await api.get(f"{CHATS}{chat['id']}/", t2)).json()
    assert [p["id"] for p in detail["participants"]] == [a1.id, a2.id]

    r = await api.post(f"{CHATS}{chat['id']}/leave/", t2)
    assert r.status_code == 200 and r.json() == {"status": "left"}
    msgs = (await api.get(f"{CHATS}{chat['id']}/messages/", t1)).json()
    assert [m["message_type"] for m in msgs] == ["system", "system"]
    assert msgs[0]["content"] == f"{a2.full_name} присоединился к чату"
    assert msgs[1]["content"] == f"{a2.full_name} покинул чат"
    assert (await api.get(f"{CHATS}{chat['id']}/messages/", t2)).status_code == 403
    assert (await api.post(f"{CHATS}{chat['id']}/leave/", t2)).status_code == 403


async def test_private_chat_is_joined_by_invitation_only(api, make_user, token_for):
    a1, a2, director = (
        await make_user("admin"),
        await make_user("admin"),
        await make_user("director"),
    )
    t1, t2, td = await token_for(a1), await token_for(a2), await token_for(director)
    chat = (await api.post(CHATS, t1, json={"name": "1:1", "chat_type": "private"})).json()
    assert (await api.post(f"{CHATS}{chat['id']}/join/", t2)).status_code == 403
    assert (await api.post(f"{CHATS}{chat['id']}/join/", td)).status_code == 200


async def test_rename_and_deactivate_chat(api, make_user, token_for):
    a1, a2 = await make_user("admin"), await make_user("admin")
    t1, t2 = await token_for(a1), await token_for(a2)
    chat = (await api.post(CHATS, t1, json={"name": "Старое"})).json()
    r = await api.request(
        "PATCH", f"{CHATS}{chat['id']}/", t1, json={"name": "Новое", "chat_type": "department"}
    )
    assert (
        r.status_code == 200
        and r.json()["name"] == "Новое"
        and r.json()["chat_type"] == "department"
    )
    assert (
        await api.request("PATCH", f"{CHATS}{chat['id']}/", t2, json={"name": "x"})
    ).status_code == 403
    r = await api.request("PUT", f"{CHATS}{chat['id']}/", t1, json={"chat_type": "general"})
    assert r.status_code == 400 and "name" in r.json()
    r = await api.request("PATCH", f"{CHATS}{chat['id']}/", t1, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await api.get(CHATS, t1)).json() == []
    assert (await api.get(f"{CHATS}{chat['id']}/", t1)).status_code == 404


async def test_chats_refuse_customers_and_bad_input(api, make_user, token_for):
    admin, customer = await make_user("admin"), await make_user("customer")
    ta, tc = await token_for(admin), await token_for(customer)
    chat = (await api.post(CHATS, ta, json={"name": "c"})).json()
    for method, path in (
        ("GET", CHATS),
        ("POST", CHATS),
        ("GET", f"{CHATS}{chat['id']}/"),
        ("GET", f"{CHATS}{chat['id']}/messages/"),
        ("POST", f"{CHATS}{chat['id']}/join/"),
    ):
        r = await api.request(method, path, tc, json={"name": "x", "content": "x"})
        assert r.status_code == 403 and "detail" in r.json(), (method, path)
    assert (await api.get(CHATS)).status_code == 401

    bad_creates = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "c", "chat_type": "secret"}, "chat_type"),
        ({"name": "c", "chat_type": ["general"]}, "chat_type"),
        ({"name": "c", "participant_ids": "1,2"}, "participant_ids"),
        ({"name": "c", "participant_ids": [customer.id]}, "participant_ids"),
        ({"name": "c", "participant_ids": [999999]}, "participant_ids"),
    ]
    for body, field in bad_creates:
        r = await api.post(CHATS, ta, json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)
    r = await api.post(CHATS, ta, content=b"name=", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    url = f"{CHATS}{chat['id']}/messages/"
    for body, field in (
        ({}, "content"),
        ({"content": ""}, "content"),
        ({"content": 1}, "content"),
        ({"content": "x", "reply_to": "1"}, "reply_to"),
        ({"content": "x", "reply_to": 999999}, "reply_to"),
        ({"content": "x", "message_type": "system"}, "message_type"),
    ):
        r = await api.post(url, ta, json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)
    r = await api.request("PATCH", f"{CHATS}{chat['id']}/", ta, json={"is_active": "no"})
    assert r.status_code == 400 and "is_active" in r.json()
    for method, path in (
        ("GET", f"{CHATS}999999/"),
        ("GET", f"{CHATS}999999/messages/"),
        ("POST", f"{CHATS}999999/join/"),
        ("POST", f"{CHATS}999999/leave/"),
        ("PATCH", f"{CHATS}999999/"),
    ):
        r = await api.request(method, path, ta, json={"name": "x"})
        assert r.status_code == 404, (method, path)
