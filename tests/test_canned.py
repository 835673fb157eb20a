"""Canned responses over REST: who sees, who edits, validation; filling at send time."""

from __future__ import annotations

from core import canned
from core import requests as svc
from db.models import Event, RequestMessage

URL = "/api/admin/canned-responses/"


async def create(api, token: str, **fields) -> dict:
    body = {"shortcut": "greet", "title": "Greeting", "content": "Hello {customer_name}!", **fields}
    r = await api.post(URL, token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_personal_responses_are_their_authors_and_shared_ones_everyones(api, make_user, token_for):
    anna, boris = await make_user("admin"), await make_user("admin")
    boss = await make_user("director")
    ta, tb, td = await token_for(anna), await token_for(boris), await token_for(boss)
    mine = await create(api, ta, shortcut="Mine", language="en")
    assert mine["shortcut"] == "mine" and mine["created_by"] == anna.id and mine["is_shared"] is False
    assert set(mine) >= {"id", "shortcut", "title", "content", "language", "is_shared", "created_by"}
    shared = await create(api, ta, shortcut="thanks", is_shared=True, content="Спасибо!")

    listed = (await api.get(URL, tb)).json()
    assert listed["count"] == 1 and [c["id"] for c in listed["results"]] == [shared["id"]]
    assert (await api.get(f"{URL}{mine['id']}/", tb)).status_code == 404
    assert (await api.get(f"{URL}{mine['id']}/", td)).status_code == 404  # a director too
    assert (await api.get(URL, ta)).json()["count"] == 2

    # only the author edits; a shared one, a director as well
    r = await api.request("PATCH", f"{URL}{shared['id']}/", tb, json={"title": "Hijack"})
    assert r.status_code == 403 and "detail" in r.json()
    assert (await api.request("DELETE", f"{URL}{shared['id']}/", tb)).status_code == 403
    r = await api.request("PATCH", f"{URL}{shared['id']}/", td, json={"title": "Thanks"})
    assert r.status_code == 200 and r.json()["title"] == "Thanks"
    r = await api.request("PUT", f"{URL}{mine['id']}/", ta, json={
        "shortcut": "mine", "title": "Mine v2", "content": "v2", "language": "ru"})
    assert r.status_code == 200 and r.json()["content"] == "v2" and r.json()["language"] == "ru"
    assert (await api.request("DELETE", f"{URL}{mine['id']}/", ta)).status_code == 204
    assert (await api.get(f"{URL}{mine['id']}/", ta)).status_code == 404
    # customers never
    customer = await make_user("customer")
    assert (await api.get(URL, await token_for(customer))).status_code == 403


async def test_shortcuts_are_unique_per_language_within_their_scope(api, make_user, token_for):
    anna, boris = await make_user("admin"), await make_user("admin")
    ta, tb = await token_for(anna), await token_for(boris)
    await create(api, ta, language="ru")
    r = await api.post(URL, ta, json={"shortcut": "greet", "title": "t", "content": "c", "language": "ru"})
    assert r.status_code == 400 and "shortcut" in r.json()
    await create(api, ta, language="en")  # same shortcut, other language
    await create(api, tb, language="ru")  # same shortcut, someone else's personal one
    await create(api, ta, language="ru", is_shared=True)  # same shortcut, shared
    r = await api.post(URL, tb, json={"shortcut": "greet", "title": "t", "content": "c",
                                      "language": "ru", "is_shared": True})
    assert r.status_code == 400 and "shortcut" in r.json()
    bad = await api.post(URL, ta, json={"shortcut": "hello world", "title": "", "content": 5,
                                        "language": "de", "is_shared": "yes"})
    assert bad.status_code == 400
    assert set(bad.json()) == {"shortcut", "title", "content", "language", "is_shared"}
    assert (await api.get(URL + "?language=en", ta)).json()["count"] == 1
    assert (await api.get(URL + "?language=de", ta)).status_code == 400
    assert (await api.get(URL + "?is_shared=true", tb)).json()["count"] == 1
    assert (await api.get(URL + "?search=gre", tb)).json()["count"] == 2


async def test_sending_fills_placeholders_in_the_readers_language_through_the_thread_writer(
    settings, make_user
):
    admin = await make_user("admin", first_name="Anna", last_name="Smirnova")
    customer = await make_user("customer", first_name="John", last_name="Smith", language="en")
    req = await svc.create_request(customer, title="t", description="d")
    await canned.create_canned(admin, {"shortcut": "greet", "title": "ru", "language": "ru",
                                       "content": "Здравствуйте, {customer_name}!"})
    await canned.create_canned(admin, {"shortcut": "greet", "title": "en", "language": "en", "is_shared": True,
                                       "content": "Hi {customer_name}, {admin_name} here about #{request_id} {other}"})
    await svc.take_request(admin, req.id)
    msg, item = await canned.send_canned(admin, req.id, shortcut="GREET")
    assert item.language == "en"
    assert msg.content == f"Hi John Smith, Anna Smirnova here about #{req.id} {{other}}"
    stored = await RequestMessage.get(id=msg.id)
    assert stored.sender_id == admin.id and stored.sender_type == "admin" and not stored.is_internal
    # announced like any reply
    event = await Event.filter(type="new_message").order_by("-id").first()
    assert event.payload["id"] == msg.id and event.payload["content"] == msg.content
    # a customer without a name is addressed in their language
    nameless = await make_user("customer", first_name="", last_name="", language="ru")
    other = await svc.create_request(nameless, title="t", description="d")
    await svc.take_request(admin, other.id)
    msg, item = await canned.send_canned(admin, other.id, shortcut="greet")
    assert msg.content == "Здравствуйте, клиент!"
    # a customer cannot smuggle a placeholder through their name
    sly = await make_user("customer", first_name="{admin_name}", last_name="", language="ru")
    third = await svc.create_request(sly, title="t", description="d")
    await svc.take_request(admin, third.id)
    msg, _ = await canned.send_canned(admin, third.id, shortcut="greet")
    assert msg.content == "Здравствуйте, {admin_name}!"
