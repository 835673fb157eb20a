"""Size limits (SPEC part 2): one rule per field in the domain, the same answer on every
channel, each limit a setting; JSON bodies over 1 MB refused with 413 before parsing."""

from __future__ import annotations

import pytest

from core.limits import Limits, too_long
from core.settings import SettingsError, load_settings
from db.models import ChatMessage, CustomerRequest, InternalCommunication, RequestMessage
from tests.api_helpers import ADMIN, CUSTOMER, new_request, post_raw

CHATS = "/api/admin/chats/"
COMMS = "/api/admin/internal-communications/"
COMM = {"from_department": "Поддержка", "to_department": "Биллинг", "subject": "s", "content": "c"}


def test_limits_are_settings_with_the_spec_defaults() -> None:
    d = load_settings({}, dotenv=False).limits
    assert (d.title, d.content, d.chat_message, d.subject, d.communication) == (
        200, 10_000, 4_000, 200, 10_000)
    assert (d.name, d.tags, d.tag_length, d.json_body_bytes) == (150, 20, 50, 1_000_000)
    s = load_settings({"LIMIT_CONTENT": "500", "LIMIT_TAGS": "3"}, dotenv=False)
    assert s.limits.content == 500 and s.limits.tags == 3
    with pytest.raises(SettingsError, match="LIMIT_TITLE"):
        load_settings({"LIMIT_TITLE": "5000"}, dotenv=False)  # wider than the column
    with pytest.raises(SettingsError, match="LIMIT_CONTENT"):
        load_settings({"LIMIT_CONTENT": "zero"}, dotenv=False)


def test_messages_agree_with_the_number() -> None:
    assert too_long(200, "ru").endswith("не более 200 символов.")
    # "не более" takes the genitive: 21 символа, 4 символов (CLDR plurals, core.i18n)
    assert too_long(21, "ru").endswith("не более 21 символа.")
    assert too_long(4, "ru").endswith("не более 4 символов.")
    assert too_long(1, "en").endswith("no more than 1 character.")
    assert too_long(50, "en").endswith("no more than 50 characters.")


async def test_request_fields_are_limited_on_rest(api, make_user, token_for):
    customer, admin = await make_user("customer"), await make_user("admin", language="en")
    tc, ta = await token_for(customer), await token_for(admin)
    cases = [
        ({"title": "x" * 201, "description": "d"}, "title"),
        ({"title": "t", "description": "я" * 10_001}, "description"),
        ({"title": "t", "description": "d", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "t", "description": "d", "tags": ["x" * 51]}, "tags"),
        ({"title": "t", "description": "d", "tags": ["  "]}, "tags"),
    ]
    for body, field in cases:
        r = await api.post(ADMIN, ta, json=body)
        assert r.status_code == 400 and list(r.json()) == [field], (body, r.text)
    # The customer's route obeys the same rule, in the customer's language (Russian).
    r = await api.post(CUSTOMER, tc, json={"title": "t", "description": "я" * 10_001})
    assert r.status_code == 400
    assert r.json()["description"] == ["Убедитесь, что это значение содержит не более 10000 символов."]
    r = await api.post(ADMIN, ta, json={"title": "t", "description": "d", "tags": ["x" * 51]})
    assert r.json()["tags"] == ["A tag may have no more than 50 characters."]
    # At the limit it is accepted, and nothing over it was stored.
    body = {"title": "x" * 200, "description": "😀" * 10_000,
            "tags": [f"tag{i}" for i in range(20)]}
    r = await api.post(ADMIN, ta, json=body)
    assert r.status_code == 201, r.text
    assert await CustomerRequest.all().count() == 1
    rid = r.json()["id"]
    r = await api.request("PATCH", f"{ADMIN}{rid}/", ta, json={"tags": ["a"] * 3 + ["b" * 60]})
    assert r.status_code == 400 and "tags" in r.json()
    r = await api.request("PATCH", f"{ADMIN}{rid}/", ta, json={"tags": ["a", "a", " b "]})
    assert r.status_code == 200 and r.json()["tags"] == ["a", "b"]


async def test_thread_messages_are_limited(api, make_user, token_for):
    customer, admin = await make_user("customer"), await make_user("admin")
    tc, ta = await token_for(customer), await token_for(admin)
    req = await new_request(api, tc)
    for path, token in ((f"{CUSTOMER}{req['id']}/messages/", tc), (f"{ADMIN}{req['id']}/messages/", ta)):
        r = await api.post(path, token, json={"content": "x" * 10_001})
        assert r.status_code == 400 and "content" in r.json(), r.text
        assert (await api.post(path, token, json={"content": "x" * 10_000})).status_code == 201
    assert await RequestMessage.filter(request_id=req["id"]).count() == 2


async def test_chat_and_communication_fields_are_limited(api, make_user, token_for):
    admin = await make_user("admin")
    ta = await token_for(admin)
    r = await api.post(CHATS, ta, json={"name": "x" * 101})
    assert r.status_code == 400 and "name" in r.json()
    chat = (await api.post(CHATS, ta, json={"name": "Смена"})).json()
    r = await api.post(f"{CHATS}{chat['id']}/messages/", ta, json={"content": "x" * 4_001})
    assert r.status_code == 400 and "content" in r.json()
    r = await api.post(f"{CHATS}{chat['id']}/messages/", ta, json={"content": "x" * 4_000})
    assert r.status_code == 201
    assert await ChatMessage.filter(chat_id=chat["id"], content="x" * 4_001).count() == 0
    for field, size in (("subject", 201), ("content", 10_001), ("from_department", 51)):
        r = await api.post(COMMS, ta, json={**COMM, field: "x" * size})
        assert r.status_code == 400 and list(r.json()) == [field], (field, r.text)
    assert await InternalCommunication.all().count() == 0


async def test_json_body_over_one_megabyte_is_413_before_parsing(api, make_user, token_for):
    admin = await make_user("admin")
    ta = await token_for(admin)
    headers = {"Authorization": f"Token {ta}", "Content-Type": "application/json"}
    big = b'{"title": "t", "description": "' + b"x" * 1_100_000 + b'"}'
    status, body = await post_raw(api.base, ADMIN, headers,
                                  [big[i:i + 65_536] for i in range(0, len(big), 65_536)])
    assert status == 413 and "1000000" in body.decode()
    # 2.6 MB without a Content-Length: cut off once it passes the limit.
    status, body = await post_raw(api.base, ADMIN, headers, [b"x" * 65_536] * 40, chunked=True)
    assert status == 413 and "1000000" in body.decode()
    # Under the limit the domain's own limit answers, with a field error.
    small = b'{"title": "t", "description": "' + b"x" * 900_000 + b'"}'
    r = await api.http.post(ADMIN, content=small, headers=headers)
    assert r.status_code == 400 and "description" in r.json()
    assert (await api.get("/health")).status_code == 200
    assert await CustomerRequest.all().count() == 0


async def test_web_form_shows_the_same_limits_in_the_page_language(settings):
    from tests.test_web import FORM, web_server

    async with web_server(settings) as web:
        r = await web.post("/api/public/requests/?lang=en", data={**FORM, "description": "x" * 10_001},
                           headers={"Accept": "application/json"})
        assert r.status_code == 400
        assert r.json()["description"] == ["Too long: at most 10000 characters."]
        r = await web.post("/api/public/requests/", data={**FORM, "name": "x" * 151},
                           headers={"Accept": "application/json"})
        assert r.status_code == 400 and "name" in r.json()
        r = await web.post("/api/public/requests/", data={**FORM, "description": "x" * 10_000},
                           headers={"Accept": "application/json"})
        assert r.status_code in (200, 201), r.text
        key = r.json()["access_key"]
        r = await web.post(f"/api/public/requests/{key}/messages/", data={"content": "x" * 10_001},
                           headers={"Accept": "application/json"})
        assert r.status_code == 400 and "content" in r.json()
        status = await post_raw(str(web.base_url).rstrip("/"), "/api/public/requests/",
                                {"Content-Type": "application/json", "Accept": "application/json"},
                                [b"{" + b" " * 1_200_000 + b"}"])
        assert status[0] == 413


async def test_a_lowered_limit_applies_to_every_channel(api, make_user, token_for, settings):
    from core import runtime

    runtime.configure(settings.with_overrides(limits=Limits(content=100)))
    customer = await make_user("customer")
    tc = await token_for(customer)
    r = await api.post(CUSTOMER, tc, json={"title": "t", "description": "x" * 101})
    assert r.status_code == 400
    assert r.json()["description"] == ["Убедитесь, что это значение содержит не более 100 символов."]


async def test_chat_socket_frames_obey_the_chat_message_limit(api, make_user, token_for):
    import json

    from core import chats
    from tests.wsutil import connect, recv_json

    alice = await make_user("admin")
    chat = await chats.create_chat(alice, name="Ops")
    async with await connect(api.base, f"/ws/chats/{chat.id}/", await token_for(alice)) as ws:
        await ws.send(json.dumps({"message": "x" * 4_001}))
        frame = await recv_json(ws)
        assert frame["type"] == "error" and frame["code"] == "invalid", frame
        assert frame["detail"]["message"] == [
            "Убедитесь, что это значение содержит не более 4000 символов."]
        await ws.send(json.dumps({"message": "x" * 4_000}))
        ok = await recv_json(ws)
        assert ok["type"] == "message" and len(ok["message"]) == 4_000
    assert await ChatMessage.filter(chat_id=chat.id).count() == 1
