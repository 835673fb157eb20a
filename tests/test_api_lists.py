"""REST: list pages. DRF pagination envelope, and a constant number of SQL queries per page
whatever the page size and however many messages the requests have."""

from __future__ import annotations

from core import chats
from core import requests as svc
from tests.api_helpers import ADMIN, CUSTOMER, count_queries


async def seed(customer, admin, n: int, messages_each: int) -> None:
    for i in range(n):
        req = await svc.create_request(customer, title=f"Запрос {i}", description="описание")
        for j in range(messages_each):
            await svc.post_message(customer, req.id, f"сообщение {j}")
        if i % 2:
            await svc.take_request(admin, req.id)


async def test_pagination_envelope(api, make_user, token_for):
    customer, admin = await make_user("customer"), await make_user("admin")
    await seed(customer, admin, 21, 0)
    tok = await token_for(admin)
    page1 = (await api.get(ADMIN, tok)).json()
    assert list(page1) == ["count", "next", "previous", "results"]
    assert page1["count"] == 21 and len(page1["results"]) == 20 and page1["previous"] is None
    assert page1["next"] == f"{api.base}{ADMIN}?page=2"
    assert page1["results"][0]["title"] == "Запрос 20"  # newest first
    page2 = (await api.get(ADMIN + "?page=2", tok)).json()
    assert [r["title"] for r in page2["results"]] == ["Запрос 0"]
    assert page2["next"] is None and page2["previous"] == f"{api.base}{ADMIN}"
    # filters are kept in the links
    filtered = (await api.get(ADMIN + "?status=open&priority=medium", tok)).json()
    assert filtered["count"] == 11 and filtered["next"] is None
    for bad in ("3", "0", "-1", "abc", "1.5"):
        r = await api.get(ADMIN + f"?page={bad}", tok)
        assert r.status_code == 404 and "detail" in r.json(), bad
    # an empty list is one empty page, not a 404
    other = await make_user("customer")
    empty = (await api.get(CUSTOMER, await token_for(other))).json()
    assert empty == {"count": 0, "next": None, "previous": None, "results": []}
    # the customer side pages the same way
    own = (await api.get(CUSTOMER + "?page=2", await token_for(customer))).json()
    assert own["count"] == 21 and len(own["results"]) == 1


async def test_list_page_query_count_is_constant(api, make_user, token_for):
    customer, admin = await make_user("customer"), await make_user("admin")
    ta, tc = await token_for(admin), await token_for(customer)
    await seed(customer, admin, 3, 0)
    first = await chats.create_chat(admin, name="first")
    await chats.post_chat_message(admin, first.id, "hello")

    async def queries(path: str, token: str) -> int:
        await api.get(path, token)  # warm up (token cache, prepared statements)
        with count_queries() as log:
            r = await api.get(path, token)
        assert r.status_code == 200, r.text
        return log.count

    from core import communications

    comm_body = {"from_department": "A", "to_department": "B", "subject": "s", "content": "c"}
    colleague = await make_user("admin")  # participants are staff (docs/security.md, Access model)
    await communications.create_communication(admin, {**comm_body, "participants": [colleague.id]})
    thread = (
        f"{ADMIN}{(await svc.create_request(customer, title='нить', description='d')).id}/messages/"
    )
    await svc.post_message(customer, int(thread.split("/")[-3]), "первое")
    paths = (
        (ADMIN, ta),
        (CUSTOMER, tc),
        ("/api/admin/chats/", ta),
        ("/api/admin/internal-communications/", ta),
        (thread, ta),
    )
    small = {p: await queries(p, t) for p, t in paths}
    await seed(customer, admin, 30, 4)
    for _ in range(25):
        await communications.create_communication(
            admin, {**comm_body, "participants": [admin.id, colleague.id]}
        )
    for i in range(30):
        await svc.post_message(customer, int(thread.split("/")[-3]), f"ещё {i}")
    # chats with messages and several participants
    other = await make_user("admin")
    for i in range(5):
        chat = await chats.create_chat(admin, name=f"chat {i}", participant_ids=[other.id])
        for j in range(3):
            await chats.post_chat_message(other if j % 2 else admin, chat.id, f"m{j}")
    big = {p: await queries(p, t) for p, t in paths}
    assert big == small, (small, big)
    assert small[ADMIN] <= 4 and small[CUSTOMER] <= 4
    page = (await api.get(ADMIN, ta)).json()
    assert len(page["results"]) == 20 and page["count"] == 34


async def test_filters_and_search(api, make_user, token_for):
    customer = await make_user(
        "customer", first_name="Анна", last_name="Смирнова", email="anna@shop.example"
    )
    admin = await make_user("admin")
    tok = await token_for(admin)
    await svc.create_request(
        customer, title="Двойное списание", description="карта", category="billing", priority="high"
    )
    await svc.create_request(customer, title="Не входит", description="пароль", category="account")
    r = await svc.create_request(
        customer, title="Заказ потерян", description="трек", category="order", priority="urgent"
    )
    await svc.take_request(admin, r.id)

    async def titles(query: str) -> list[str]:
        resp = await api.get(ADMIN + query, tok)
        assert resp.status_code == 200, resp.text
        return [x["title"] for x in resp.json()["results"]]

    assert await titles("?category=billing") == ["Двойное списание"]
    assert await titles("?priority=urgent") == ["Заказ потерян"]
    assert await titles("?status=in_progress") == ["Заказ потерян"]
    assert await titles("?search=ПАРОЛЬ") == ["Не входит"]
    assert len(await titles("?search=смирнова")) == 3
    assert len(await titles("?search=anna@shop")) == 3
    assert await titles(f"?assigned_admin={admin.id}") == ["Заказ потерян"]
    assert len(await titles("?unassigned=1")) == 2
    for bad in ("?priority=asap", "?category=x", "?status=done", "?assigned_admin=me"):
        assert (await api.get(ADMIN + bad, tok)).status_code == 400, bad
