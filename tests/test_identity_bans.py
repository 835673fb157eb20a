"""Bans: directors ban and unban customers (REST and /ban, /unban in the admin group); a
banned customer is refused politely on every channel; nothing stored is lost.
SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from core import bans, web_form
from core.errors import PermissionDenied
from core.requests import create_request, post_message
from db.models import CustomerRequest, Event, RequestMessage, User
from tests.api_helpers import ADMIN, CUSTOMER, new_request
from tests.bot_handlers_support import eventually, reply_containing, running_bot, texts_to

BANS = "/api/admin/customers/"


async def test_directors_ban_and_a_banned_customer_is_refused_on_rest(api, make_user, token_for):
    customer, admin, director = (await make_user("customer"), await make_user("admin"),
                                 await make_user("director"))
    tc, ta, td = await token_for(customer), await token_for(admin), await token_for(director)
    req = await new_request(api, tc)
    await api.post(f"{CUSTOMER}{req['id']}/messages/", tc, json={"content": "before the ban"})
    assert (await api.post(f"{BANS}{customer.id}/ban/", ta)).status_code == 403
    assert (await api.post(f"{BANS}{admin.id}/ban/", td)).status_code == 400  # staff: no
    assert (await api.post(f"{BANS}999999/ban/", td)).status_code == 404
    r = await api.post(f"{BANS}{customer.id}/ban/", td)
    assert r.status_code == 200 and r.json()["banned"] is True and r.json()["banned_at"]
    # refused politely, with a clear message
    r = await api.post(CUSTOMER, tc, json={"title": "t", "description": "d"})
    assert r.status_code == 403 and "заблокирован" in r.json()["detail"]
    r = await api.post(f"{CUSTOMER}{req['id']}/messages/", tc, json={"content": "after"})
    assert r.status_code == 403 and "заблокирован" in r.json()["detail"]
    r = await api.post(f"{CUSTOMER}{req['id']}/attachments/", tc,
                       files={"file": ("a.txt", b"x", "text/plain")})
    assert r.status_code == 403
    # nothing stored is lost: the customer still reads, staff still see and answer
    assert (await api.get(f"{CUSTOMER}{req['id']}/", tc)).status_code == 200
    msgs = (await api.get(f"{CUSTOMER}{req['id']}/messages/", tc)).json()
    assert [m["content"] for m in msgs] == ["before the ban"]
    staff = (await api.get(f"{ADMIN}{req['id']}/", ta)).json()
    assert staff["customer_banned"] is True
    r = await api.post(f"{ADMIN}{req['id']}/messages/", ta, json={"content": "ответ"})
    assert r.status_code == 201
    # recorded in the event log with the director
    ev = await Event.filter(type="user_access").order_by("-id").first()
    assert ev.payload == {"user_id": customer.id, "reason": "banned", "by": director.id}
    # unban: accepted again
    r = await api.post(f"{BANS}{customer.id}/unban/", td)
    assert r.status_code == 200 and r.json()["banned"] is False
    r = await api.post(f"{CUSTOMER}{req['id']}/messages/", tc, json={"content": "after unban"})
    assert r.status_code == 201


async def test_the_web_form_and_page_refuse_a_banned_customer(api, make_user):
    director = await make_user("director")
    async with httpx.AsyncClient(base_url=api.base, timeout=30) as web:
        form = {"name": "Bob B", "email": "bob@example.com", "title": "Вопрос",
                "description": "Текст", "category": "general"}
        r = await web.post("/api/public/requests/", data=form,
                           headers={"Accept": "application/json"})
        assert r.status_code == 201
        key = r.json()["access_key"]
        contact = (await CustomerRequest.get(access_key=key).prefetch_related("customer")).customer
        await bans.ban_customer(director, contact.id)
        # the page's replies are refused, with a message the page shows
        r = await web.post(f"/api/public/requests/{key}/messages/", data={"content": "ещё"},
                           headers={"Accept": "application/json"})
        assert r.status_code == 403 and "заблокирован" in r.json()["detail"]
        # a new submission with that address too, in the page's language
        r = await web.post("/api/public/requests/?lang=en", data={**form, "email": "BOB@example.com"},
                           headers={"Accept": "application/json"})
        assert r.status_code == 403 and "cannot accept" in r.json()["detail"]
        # the page still shows everything
        r = await web.get(f"/api/public/requests/{key}/")
        assert r.status_code == 200 and r.json()["request"]["title"] == "Вопрос"
    assert await CustomerRequest.filter(customer_id=contact.id).count() == 1
    # the rule is the domain's: any caller of the web form's create meets it
    users, requests = await User.all().count(), await CustomerRequest.all().count()
    with pytest.raises(PermissionDenied, match="cannot accept"):
        await web_form.create_web_request(
            email=" Bob@Example.com", name="Bob", language="en", title="t", description="d",
            category="general",
        )
    assert (await User.all().count(), await CustomerRequest.all().count()) == (users, requests)


CUSTOMER_TG, ADMIN_TG, DIRECTOR_TG = 5401, 7401, 7402


async def test_ban_and_unban_in_the_admin_group_and_the_bot_refuses_politely(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    group = fake.admin_chat_id
    customer = await make_user("customer", first_name="Ivan", telegram_id=CUSTOMER_TG)
    await make_user("admin", username="anna", telegram_id=ADMIN_TG)
    await make_user("director", username="olga", telegram_id=DIRECTOR_TG)
    req = await create_request(customer, title="Старый", description="d")
    await post_message(customer, req.id, "до блокировки")
    from core.users import set_active_request

    await set_active_request(customer, req.id)
    who = fake.user(CUSTOMER_TG, "Ivan")
    async with running_bot(telegram_settings):
        fake.message_update(group, fake.user(ADMIN_TG, "Anna"), f"/ban {customer.id}")
        await reply_containing(fake, group, "директору")
        assert (await User.get(id=customer.id)).banned_at is None
        fake.message_update(group, fake.user(DIRECTOR_TG, "Olga"), f"/ban {customer.id}")
        await reply_containing(fake, group, "заблокирован")
        assert (await User.get(id=customer.id)).banned_at is not None

        fake.message_update(CUSTOMER_TG, who, "/new")
        await reply_containing(fake, CUSTOMER_TG, "заблокирован")
        fake.message_update(CUSTOMER_TG, who, "пустите меня")
        await eventually(lambda: _replies(fake, "заблокирован", 2))
        assert not await RequestMessage.filter(content="пустите меня").exists()

        fake.message_update(group, fake.user(DIRECTOR_TG, "Olga"), f"/unban {customer.id}")
        await reply_containing(fake, group, "разблокирован")
        fake.message_update(CUSTOMER_TG, who, "снова можно")
        await eventually(lambda: RequestMessage.filter(content="снова можно").exists())
    # nothing stored was lost
    assert await RequestMessage.filter(request_id=req.id, content="до блокировки").exists()


async def _replies(fake, fragment: str, n: int) -> bool:
    return sum(fragment in t for t in texts_to(fake, CUSTOMER_TG)) >= n
