"""REST: the customer side, /api/customer/requests/, as a customer (or an integration) meets it."""

from __future__ import annotations

from db.models import CustomerRequest
from tests.api_helpers import ADMIN, CUSTOMER, new_request


async def test_customer_creates_and_follows_own_request(api, make_user, token_for):
    customer = await make_user("customer")
    tok = await token_for(customer)
    r = await api.post(
        CUSTOMER,
        tok,
        json={
            "title": "Не приходит письмо",
            "description": "Нет письма",
            "category": "account",
            "priority": "high",
            "status": "closed",
            "customer_id": 999,
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert await CustomerRequest.filter(id=created["id"], customer_id=customer.id).exists()
    assert created["status"] == "open"  # a customer cannot choose the status
    assert created["category"] == "account" and created["priority"] == "high"

    r = await api.get(CUSTOMER, tok)
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 1 and page["next"] is None and page["previous"] is None
    assert [x["id"] for x in page["results"]] == [created["id"]]

    r = await api.get(f"{CUSTOMER}{created['id']}/", tok)
    assert r.status_code == 200 and r.json()["title"] == "Не приходит письмо"

    r = await api.post(f"{CUSTOMER}{created['id']}/messages/", tok, json={"content": "Жду ответа"})
    assert r.status_code == 201, r.text
    msg = r.json()
    assert msg["sender_type"] == "customer" and msg["sender_name"] == customer.full_name
    assert "is_internal" not in msg and "sender" not in msg  # the customer-facing shape

    r = await api.get(f"{CUSTOMER}{created['id']}/messages/", tok)
    assert [m["content"] for m in r.json()] == ["Жду ответа"]


async def test_customer_never_sees_internal_notes(api, make_user, token_for):
    customer, admin = await make_user("customer"), await make_user("admin")
    tc, ta = await token_for(customer), await token_for(admin)
    req = await new_request(api, tc)
    await api.post(f"{ADMIN}{req['id']}/take/", ta)
    r = await api.post(
        f"{ADMIN}{req['id']}/messages/", ta, json={"content": "секрет", "is_internal": True}
    )
    assert r.status_code == 201 and r.json()["is_internal"] is True
    r = await api.post(f"{ADMIN}{req['id']}/messages/", ta, json={"content": "Здравствуйте"})
    assert r.status_code == 201
    contents = [
        m["content"] for m in (await api.get(f"{CUSTOMER}{req['id']}/messages/", tc)).json()
    ]
    assert "секрет" not in contents and "Здравствуйте" in contents
    # the system message of the take is visible, in order
    assert contents[0].startswith("Запрос взят в работу")
    # staff see the note
    staff_view = [m["content"] for m in (await api.get(f"{ADMIN}{req['id']}/messages/", ta)).json()]
    assert "секрет" in staff_view


async def test_customer_cannot_read_or_write_another_customers_request(api, make_user, token_for):
    alice, bob = await make_user("customer"), await make_user("customer")
    ta, tb = await token_for(alice), await token_for(bob)
    req = await new_request(api, ta)
    rid = req["id"]
    for path in (
        f"{CUSTOMER}{rid}/",
        f"{CUSTOMER}{rid}/messages/",
        f"{CUSTOMER}{rid}/attachments/",
    ):
        r = await api.get(path, tb)
        assert r.status_code == 404, path
        assert set(r.json()) == {"detail"}
    r = await api.post(f"{CUSTOMER}{rid}/messages/", tb, json={"content": "чужое"})
    assert r.status_code == 404
    r = await api.post(
        f"{CUSTOMER}{rid}/attachments/", tb, files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert r.status_code == 404
    # and the admin side is closed to customers altogether
    for method, path in (
        ("GET", f"{ADMIN}{rid}/"),
        ("GET", f"{ADMIN}{rid}/messages/"),
        ("POST", f"{ADMIN}{rid}/messages/"),
        ("PATCH", f"{ADMIN}{rid}/"),
        ("DELETE", f"{ADMIN}{rid}/"),
        ("GET", ADMIN),
    ):
        r = await api.request(method, path, tb, json={"content": "x"} if method != "GET" else None)
        assert r.status_code == 403, (method, path)
    # bob's list is empty, alice's thread untouched
    assert (await api.get(CUSTOMER, tb)).json()["count"] == 0
    assert (await api.get(f"{CUSTOMER}{rid}/messages/", ta)).json() == []


async def test_customer_list_shows_only_own_requests_with_filters(api, make_user, token_for):
    alice, bob = await make_user("customer"), await make_user("customer")
    ta, tb = await token_for(alice), await token_for(bob)
    await new_request(api, ta, title="Оплата", category="billing")
    await new_request(api, ta, title="Вход", category="account")
    await new_request(api, tb, title="Чужой", category="billing")
    page = (await api.get(CUSTOMER, ta)).json()
    assert page["count"] == 2 and [x["title"] for x in page["results"]] == ["Вход", "Оплата"]
    page = (await api.get(CUSTOMER + "?category=billing", ta)).json()
    assert [x["title"] for x in page["results"]] == ["Оплата"]
    page = (await api.get(CUSTOMER + "?search=чуж", ta)).json()
    assert page["count"] == 0
    # ?customer= cannot widen the scope
    page = (await api.get(CUSTOMER + f"?customer={bob.id}", ta)).json()
    assert page["count"] == 2


async def test_staff_may_create_on_customer_side_as_themselves(api, make_user, token_for):
    admin = await make_user("admin")
    other = await make_user("customer")
    tok = await token_for(admin)
    r = await api.post(
        CUSTOMER, tok, json={"title": "t", "description": "d", "customer_id": other.id}
    )
    assert r.status_code == 201
    assert await CustomerRequest.filter(id=r.json()["id"], customer_id=admin.id).exists()
    # the customer side shows staff only their own requests
    await new_request(api, await token_for(other))
    assert (await api.get(CUSTOMER, tok)).json()["count"] == 1


async def test_customer_cannot_post_to_closed_request(api, make_user, token_for):
    customer, director = await make_user("customer"), await make_user("director")
    tc, td = await token_for(customer), await token_for(director)
    req = await new_request(api, tc)
    for action in ("take", "complete", "close"):
        assert (await api.post(f"{ADMIN}{req['id']}/{action}/", td)).status_code == 200
    r = await api.post(f"{CUSTOMER}{req['id']}/messages/", tc, json={"content": "ещё вопрос"})
    assert r.status_code == 400 and "error" in r.json()


async def test_customer_side_bad_input_is_4xx(api, make_user, token_for):
    tok = await token_for(await make_user("customer"))
    cases = [
        ({"description": "d"}, "title"),
        ({"title": "t"}, "description"),
        ({"title": "x" * 201, "description": "d"}, "title"),
        ({"title": "t", "description": "d", "category": "weather"}, "category"),
        ({"title": "t", "description": "d", "priority": 3}, "priority"),
        ({"title": ["t"], "description": "d"}, "title"),
        ({"title": "t", "description": "d", "tags": "a,b"}, "tags"),
        ({"title": "   ", "description": "d"}, "title"),
    ]
    for body, field in cases:
        r = await api.post(CUSTOMER, tok, json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)
    r = await api.post(
        CUSTOMER, tok, content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = await api.post(
        CUSTOMER, tok, content=b'"just a string"', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    req = await new_request(api, tok)
    for body in ({}, {"content": ""}, {"content": 5}, {"content": "x", "message_type": "video"}):
        r = await api.post(f"{CUSTOMER}{req['id']}/messages/", tok, json=body)
        assert r.status_code == 400, (body, r.text)
    for path in (
        f"{CUSTOMER}999999/",
        f"{CUSTOMER}999999/messages/",
        f"{CUSTOMER}999999/attachments/",
    ):
        assert (await api.get(path, tok)).status_code == 404
    assert (await api.get(CUSTOMER + "?page=7", tok)).status_code == 404
    assert (await api.get(CUSTOMER + "?status=lost", tok)).status_code == 400


async def test_anonymous_is_refused_on_customer_side(api):
    for method, path in (("GET", CUSTOMER), ("POST", CUSTOMER), ("GET", f"{CUSTOMER}1/")):
        r = await api.request(method, path)
        assert r.status_code == 401 and "detail" in r.json()
    r = await api.get(CUSTOMER, "not-a-real-token")
    assert r.status_code == 401
