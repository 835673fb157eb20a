"""Web-form identity (the private link is the only key) and customers seeing only their side
(one customer-facing serializer: customer REST, the web page, its socket, the bot).
SQLite and PostgreSQL."""

from __future__ import annotations

import json

import httpx

from core import requests as svc
from db.models import CustomerRequest, User
from tests.api_helpers import ADMIN, CUSTOMER, new_request
from tests.bot_handlers_support import reply_containing, running_bot
from tests.wsutil import collect, connect

ALICE_TG = 5101
FORM = {"name": "Mallory M", "email": "ALICE@example.com", "title": "Верните деньги",
        "description": "Я Алиса, честно", "category": "billing"}


async def submit_form(base: str, **fields) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.post("/api/public/requests/", data={**FORM, **fields},
                            headers={"Accept": "application/json"})
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_web_submission_with_an_accounts_email_never_reaches_that_account(
    api, make_user, token_for
):
    alice = await make_user("customer", username="alice", email="alice@example.com",
                            password="alice-pass", telegram_id=ALICE_TG)
    admin = await make_user("admin")
    ta, tadmin = await token_for(alice), await token_for(admin)
    own = await new_request(api, ta, title="Alice's own")
    created = await submit_form(api.base)
    req = await CustomerRequest.get(access_key=created["access_key"]).prefetch_related("customer")
    assert req.customer_id != alice.id
    assert req.customer.is_web_contact and req.customer.email == "alice@example.com"
    # Alice's own list does not show it, and she cannot open it
    page = (await api.get(CUSTOMER, ta)).json()
    assert [r["id"] for r in page["results"]] == [own["id"]]
    assert (await api.get(f"{CUSTOMER}{req.id}/", ta)).status_code == 404
    # staff see the address as unverified; Alice's account's address as verified
    staff_view = (await api.get(f"{ADMIN}{req.id}/", tadmin)).json()
    assert staff_view["customer"]["email"] == "alice@example.com"
    assert staff_view["customer_email_verified"] is False
    assert (await api.get(f"{ADMIN}{own['id']}/", tadmin)).json()["customer_email_verified"] is True
    # staff replies reach only the private page, which shows nothing of Alice's account
    await svc.take_request(admin, req.id)
    await svc.post_message(admin, req.id, "Ответ только по ссылке")
    state = (await api.get(f"/api/public/requests/{created['access_key']}/")).text
    assert "Ответ только по ссылке" in state
    for secret in ("alice@example.com", "alice", "ALICE@example.com"):
        assert secret not in state.lower().replace("алиса", ""), secret
    # Alice's own request is not reachable through the page either
    assert (await api.get(f"/api/public/requests/{own['id']}/")).status_code == 404


async def test_the_bot_lists_only_the_accounts_own_requests(
    telegram_settings, fake_telegram, make_user
):
    from bootstrap.app import create_app
    from tests.live import serve

    alice = await make_user("customer", username="alice", email="alice@example.com",
                            telegram_id=ALICE_TG)
    await svc.create_request(alice, title="Моя настоящая заявка", description="d")
    app = create_app(telegram_settings)
    async with serve(app) as base:
        await submit_form(base, title="Чужая заявка с моим адресом")
        async with running_bot(telegram_settings):
            fake_telegram.message_update(ALICE_TG, fake_telegram.user(ALICE_TG, "Alice"), "/my")
            listing = await reply_containing(fake_telegram, ALICE_TG, "Моя настоящая заявка")
        assert "Чужая заявка" not in listing.params["text"]


async def _staff_scene(make_user, access_key: bool = False):
    """A request taken by an admin with a username and e-mail, tagged, with an internal
    note and a public reply."""
    admin = await make_user("admin", username="ivan_admin", first_name="Иван",
                            last_name="Петров", email="ivan@corp.example")
    customer = await make_user("customer", username="cust_login", email="cust@example.com")
    req = await svc.create_request(customer, title="Вопрос", description="d",
                                   with_access_key=access_key)
    await svc.take_request(admin, req.id)
    await svc.update_request(admin, req.id, {"tags": ["vip", "refund-risk"]})
    await svc.post_message(admin, req.id, "Клиент грубит, осторожно", is_internal=True)
    await svc.post_message(admin, req.id, "Здравствуйте!")
    return admin, customer, await CustomerRequest.get(id=req.id)


STAFF_SECRETS = ("ivan_admin", "ivan@corp.example", "refund-risk", "Клиент грубит")


def assert_customer_view(data: dict) -> None:
    text = json.dumps(data, ensure_ascii=False)
    for secret in STAFF_SECRETS:
        assert secret not in text, secret
    assert data["assigned_admin"] == {"name": "Иван Петров", "avatar": None}
    assert "tags" not in data and "customer" not in data
    # the take system message and the reply; not the internal note
    assert data["messages_count"] == 2


async def test_customer_rest_shows_staff_by_display_name_and_counts_only_visible_messages(
    api, make_user, token_for
):
    admin, customer, req = await _staff_scene(make_user)
    assert req.messages_count == 3 and req.public_messages_count == 2
    tc = await token_for(customer)
    assert_customer_view((await api.get(f"{CUSTOMER}{req.id}/", tc)).json())
    assert_customer_view((await api.get(CUSTOMER, tc)).json()["results"][0])
    messages = (await api.get(f"{CUSTOMER}{req.id}/messages/", tc)).json()
    text = json.dumps(messages, ensure_ascii=False)
    assert all(s not in text for s in STAFF_SECRETS)
    assert [m["sender_name"] for m in messages] == ["Иван Петров", "Иван Петров"]
    assert all("sender" not in m and "is_internal" not in m for m in messages)
    # staff still see everything
    staff = (await api.get(f"{ADMIN}{req.id}/", await token_for(admin))).json()
    assert staff["messages_count"] == 3 and staff["tags"] == ["vip", "refund-risk"]


async def test_a_nameless_admin_appears_without_username_to_customers(api, make_user, token_for):
    admin = await make_user("admin", username="ops_login_7", first_name="", last_name="")
    customer = await make_user("customer")
    req = await svc.create_request(customer, title="q", description="d")
    await svc.take_request(admin, req.id)
    await svc.post_message(admin, req.id, "ok")
    tc = await token_for(customer)
    detail = (await api.get(f"{CUSTOMER}{req.id}/", tc)).text
    messages = (await api.get(f"{CUSTOMER}{req.id}/messages/", tc)).text
    assert "ops_login_7" not in detail and "ops_login_7" not in messages


async def test_the_web_page_and_its_socket_show_only_the_customers_side(api, make_user):
    admin = await make_user("admin", username="ivan_admin", first_name="Иван",
                            last_name="Петров", email="ivan@corp.example")
    created = await submit_form(api.base, email="owner@example.com", name="Olga Owner")
    key = created["access_key"]
    req = await CustomerRequest.get(access_key=key)
    async with await connect(api.base, f"/ws/public/requests/{key}/") as ws:
        await svc.take_request(admin, req.id)
        await svc.post_message(admin, req.id, "Клиент грубит, осторожно", is_internal=True)
        await svc.update_request(admin, req.id, {"tags": ["refund-risk"]})
        frames = await collect(ws, quiet=1.0)
        await svc.post_message(admin, req.id, "Здравствуйте!")
        frames += await collect(ws, quiet=1.0)
    text = json.dumps(frames, ensure_ascii=False)
    for secret in (*STAFF_SECRETS, "owner@example.com", "web-"):
        assert secret not in text, secret
    updates = [f["data"] for f in frames if f["type"] == "request_updated"]
    assert updates and all(u["assigned_admin"] == {"name": "Иван Петров", "avatar": None}
                           for u in updates)
    # the take's system message; not the internal note (staff count 2 by then)
    assert updates[-1]["messages_count"] == 1
    replies = [f["data"] for f in frames if f["type"] == "new_message"
               and f["data"]["content"] == "Здравствуйте!"]
    assert replies and replies[0]["sender_name"] == "Иван Петров"
    assert "is_internal" not in replies[0] and "sender" not in replies[0]
    state = (await api.get(f"/api/public/requests/{key}/")).json()
    for secret in (*STAFF_SECRETS, "owner@example.com"):
        assert secret not in json.dumps(state, ensure_ascii=False), secret
    assert state["request"]["messages_count"] == 2
    assert state["request"]["assigned_admin"]["name"] == "Иван Петров"
    # a replay shows the same shapes
    async with await connect(api.base, f"/ws/public/requests/{key}/?last_event_id=0") as ws:
        replayed = await collect(ws, quiet=1.0)
    assert "refund-risk" not in json.dumps(replayed, ensure_ascii=False)
    assert {f["type"] for f in replayed} == {"request_updated", "new_message"}
    assert await User.filter(email="owner@example.com", is_web_contact=True).count() == 1
