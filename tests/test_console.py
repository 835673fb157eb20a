"""The staff console over plain HTTP (SQLite and PostgreSQL): sign-in and its session
cookie, CSRF, customers refused, session expiry and sign-out, the actions through the
domain's rules (director's moves refused to admins), the queue's filters, stats, the
admin WebSocket signed in by the session cookie. The browser tests are in
tests/test_console_browser.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core import canned
from core import requests as svc
from db.models import (
    AuditEntry,
    ConsoleSession,
    CustomerRequest,
    LoginAttempt,
    RequestMessage,
    Status,
)
from tests.console_helpers import csrf_from, sign_in, signed_in
from tests.wsutil import recv_until, ws_url

PW = "pw-secret-1"


@pytest.fixture
async def staff(make_user):
    admin = await make_user("admin", password=PW, first_name="Ivan", last_name="Petrov")
    director = await make_user("director", password=PW, first_name="Olga", last_name="Boss")
    customer = await make_user("customer", password=PW, first_name="Anna", last_name="Client")
    return admin, director, customer


def set_cookie_header(response: httpx.Response, name: str) -> str:
    for value in response.headers.get_list("set-cookie"):
        if value.startswith(f"{name}="):
            return value
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


# --- sign-in, cookies, customers -------------------------------------------------------------


async def test_sign_in_gives_an_httponly_samesite_session_cookie_and_the_queue(api, staff):
    admin, _, _ = staff
    async with httpx.AsyncClient(base_url=api.base) as client:
        r = await client.get("/console/")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/sign-in?next=")
        r = await sign_in(client, admin.username)
        assert r.status_code == 303 and r.headers["location"] == "/console/"
        cookie = set_cookie_header(r, "console_session").lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # plain http, PUBLIC_URL not https
        r = await client.get("/console/")
        assert r.status_code == 200
        assert "Очередь запросов" in r.text and "Ivan Petrov" in r.text
        assert r.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
        assert "<script>" not in r.text.replace('<script type="application/json"', "")
    # Only a digest of the cookie is stored.
    value = client.cookies.get("console_session")
    row = await ConsoleSession.get(user_id=admin.id)
    assert row.digest != value and len(row.digest) == 64


async def test_session_cookie_is_secure_when_public_url_is_https(settings, staff):
    from bootstrap.app import create_app
    from tests.live import serve

    admin, _, _ = staff
    app = create_app(settings.with_overrides(public_url="https://desk.example.com"))
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/console/sign-in")
        csrf_cookie = set_cookie_header(page, "console_csrf")
        assert "secure" in csrf_cookie.lower() and "samesite=strict" in csrf_cookie.lower()
        # (A browser sends a Secure cookie back over HTTPS only; this test client talks
        # plain http to the server behind the "proxy", so it hands the cookie over itself.)
        value = csrf_cookie.split(";")[0].split("=", 1)[1]
        r = await client.post("/console/sign-in", headers={"Cookie": f"console_csrf={value}"}, data={
            "username": admin.username, "password": PW, "csrf_token": csrf_from(page.text)})
        assert r.status_code == 303
        cookie = set_cookie_header(r, "console_session").lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


async def test_customer_with_the_right_password_is_refused_without_a_session(api, staff):
    _, _, customer = staff
    async with httpx.AsyncClient(base_url=api.base) as client:
        r = await sign_in(client, customer.username)
        assert r.status_code == 403
        assert "только администраторам и директорам" in r.text
        assert "console_session" not in r.headers.get("set-cookie", "")
    assert not await ConsoleSession.filter(user_id=customer.id).exists()


async def test_wrong_password_is_refused_and_throttled_together_with_the_rest_login(api, staff, settings):
    admin, _, _ = staff
    async with httpx.AsyncClient(base_url=api.base) as client:
        for _ in range(settings.login_max_failures):
            r = await sign_in(client, admin.username, "wrong-password")
            assert r.status_code == 400 and "Неверное имя пользователя или пароль" in r.text
        r = await sign_in(client, admin.username, PW)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "Слишком много неудачных попыток" in r.text
        # The same counter throttles the REST login: one throttle for every channel.
        r = await client.post("/api/auth/token/", json={"username": admin.username, "password": PW})
        assert r.status_code == 429
    assert (await LoginAttempt.get(key=f"user:{admin.username}")).failures == settings.login_max_failures
    assert await AuditEntry.filter(action="login_failed", channel="web").count() == settings.login_max_failures


async def test_sign_in_needs_the_forms_csrf_token(api, staff):
    """Login CSRF: a foreign page cannot sign the browser in to someone's account."""
    admin, _, _ = staff
    async with httpx.AsyncClient(base_url=api.base) as client:
        # No CSRF cookie (the form was never loaded in this browser):
        r = await client.post("/console/sign-in", data={
            "username": admin.username, "password": PW, "csrf_token": "x" * 43})
        assert r.status_code == 403 and "console_session" not in r.headers.get("set-cookie", "")
        page = await client.get("/console/sign-in")
        # The cookie is there, the form's token is not the cookie's:
        r = await client.post("/console/sign-in", data={
            "username": admin.username, "password": PW, "csrf_token": "y" * 43})
        assert r.status_code == 403
        # A cross-site post (the browser says where it came from):
        r = await client.post("/console/sign-in", headers={"Origin": "https://evil.example"}, data={
            "username": admin.username, "password": PW, "csrf_token": csrf_from(page.text)})
        assert r.status_code == 403
    assert not await ConsoleSession.filter(user_id=admin.id).exists()


# --- CSRF on actions, sign-out, expiry ------------------------------------------------------


async def test_actions_without_the_sessions_csrf_token_are_refused_and_change_nothing(api, staff):
    admin, _, customer = staff
    req = await svc.create_request(customer, title="VPN", description="down")
    async with signed_in(api.base, admin.username) as (client, token):
        for data in ({}, {"csrf_token": ""}, {"csrf_token": token[:-1] + "x"}):
            r = await client.post(f"/console/requests/{req.id}/take", data=data)
            assert r.status_code == 403 and "Форма устарела" in r.text
        r = await client.post(f"/console/requests/{req.id}/take", data={"csrf_token": token},
                              headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        # Another session's token is not this one's.
        async with signed_in(api.base, admin.username) as (_, other_token):
            pass
        assert other_token != token
        r = await client.post(f"/console/requests/{req.id}/take", data={"csrf_token": other_token})
        assert r.status_code == 403
    fresh = await CustomerRequest.get(id=req.id)
    assert fresh.status == Status.open and fresh.assigned_admin_id is None


async def test_sign_out_ends_the_session_for_good(api, staff):
    admin, _, _ = staff
    async with signed_in(api.base, admin.username) as (client, token):
        stolen = client.cookies.get("console_session")
        r = await client.post("/console/sign-out", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?signed_out=1"
        assert "max-age=0" in set_cookie_header(r, "console_session").lower()
    assert not await ConsoleSession.filter(user_id=admin.id).exists()
    async with httpx.AsyncClient(base_url=api.base, cookies={"console_session": stolen}) as again:
        r = await again.get("/console/")
        assert r.status_code == 303 and "/console/sign-in" in r.headers["location"]
    assert await AuditEntry.filter(action="console_sign_out", actor_id=admin.id).exists()


async def test_session_expires_after_idle_time_and_after_its_maximum_age(api, staff, settings):
    admin, _, _ = staff
    async with signed_in(api.base, admin.username) as (client, _):
        row = await ConsoleSession.get(user_id=admin.id)
        idle = timedelta(minutes=settings.console_idle_minutes)
        # Active a minute before the limit: still signed in, and the idle clock restarts.
        await ConsoleSession.filter(digest=row.digest).update(
            last_seen_at=datetime.now(UTC) - idle + timedelta(minutes=1))
        assert (await client.get("/console/")).status_code == 200
        seen = (await ConsoleSession.get(digest=row.digest)).last_seen_at
        assert seen > datetime.now(UTC) - timedelta(minutes=1)
        # Idle past the limit: signed out, the row is gone.
        await ConsoleSession.filter(digest=row.digest).update(
            last_seen_at=datetime.now(UTC) - idle - timedelta(seconds=1))
        r = await client.get("/console/")
        assert r.status_code == 303 and "/console/sign-in" in r.headers["location"]
        assert not await ConsoleSession.filter(digest=row.digest).exists()
    # Maximum age: however active, a session ends CONSOLE_MAX_HOURS after sign-in.
    async with signed_in(api.base, admin.username) as (client, _):
        row = await ConsoleSession.get(user_id=admin.id)
        await ConsoleSession.filter(digest=row.digest).update(
            created_at=datetime.now(UTC) - timedelta(hours=settings.console_max_hours, seconds=1))
        r = await client.get("/console/")
        assert r.status_code == 303


async def test_a_deactivated_or_demoted_user_loses_the_session(api, staff):
    from db.models import User

    admin, director, _ = staff
    async with signed_in(api.base, admin.username) as (client, _):
        await User.filter(id=admin.id).update(role="customer")
        assert (await client.get("/console/")).status_code == 303
    async with signed_in(api.base, director.username) as (client, _):
        await User.filter(id=director.id).update(is_active=False)
        assert (await client.get("/console/stats/")).status_code == 303


# --- actions: the domain's rules --------------------------------------------------------------


async def test_admin_takes_replies_notes_and_completes_through_the_domain(api, staff):
    admin, _, customer = staff
    req = await svc.create_request(customer, title="Оплата", description="Карта отклонена",
                                   source="web", with_access_key=True)
    async with signed_in(api.base, admin.username) as (client, token):
        page = f"/console/requests/{req.id}/"
        r = await client.post(page + "take", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == page
        r = await client.get(page)
        assert "Запрос взят в работу." in r.text  # the notice, shown once
        assert "Запрос взят в работу." not in (await client.get(page)).text
        r = await client.post(page + "reply", data={"csrf_token": token, "content": "Проверяем <платёж>"})
        assert r.status_code == 303
        r = await client.post(page + "note", data={"csrf_token": token, "content": "VIP, звонил"})
        assert r.status_code == 303
        r = await client.get(page)
        assert "Проверяем &lt;платёж&gt;" in r.text
        assert 'msg-internal' in r.text and "Внутренняя заметка" in r.text
        r = await client.post(page + "complete", data={"csrf_token": token})
        assert r.status_code == 303
    fresh = await CustomerRequest.get(id=req.id)
    assert fresh.status == Status.completed and fresh.assigned_admin_id == admin.id
    reply = await RequestMessage.get(request_id=req.id, content="Проверяем <платёж>")
    assert reply.sender_id == admin.id and not reply.is_internal and reply.source == "web"
    assert (await RequestMessage.get(request_id=req.id, content="VIP, звонил")).is_internal
    # The customer's page shows the reply, never the note.
    async with httpx.AsyncClient(base_url=api.base) as anon:
        state = (await anon.get(f"/api/public/requests/{req.access_key}/")).json()
        contents = [m["content"] for m in state["messages"]]
        assert "Проверяем <платёж>" in contents and "VIP, звонил" not in contents


async def test_refused_moves_come_back_as_a_notice_and_keep_the_draft(api, staff):
    admin, director, customer = staff
    req = await svc.create_request(customer, title="x", description="y")
    await svc.take_request(director, req.id)
    async with signed_in(api.base, admin.username) as (client, token):
        page = f"/console/requests/{req.id}/"
        r = await client.post(page + "take", data={"csrf_token": token})
        assert r.status_code == 303
        r = await client.get(page)
        assert "Запрос уже назначен другому администратору" in r.text
        # Replying to someone else's request: the domain's 403, as on REST.
        r = await client.post(page + "reply", data={"csrf_token": token, "content": "hi"})
        assert r.status_code == 403 and "не можете управлять" in r.text
        # Too long: the notice, and the text stays in the box.
        await svc.take_request(admin, (await svc.create_request(customer, title="z", description="z")).id)
        mine = await CustomerRequest.filter(assigned_admin_id=admin.id).first()
        r = await client.post(f"/console/requests/{mine.id}/reply",
                              data={"csrf_token": token, "content": "я" * 10_001})
        assert r.status_code == 303
        r = await client.get(f"/console/requests/{mine.id}/")
        assert "10000" in r.text.replace("\u00a0", "").replace(" ", "") and "я" * 10_001 in r.text


@pytest.mark.parametrize("action,data", [
    ("close", {}), ("reopen", {}), ("reassign", {"admin_id": "ADMIN"}), ("status", {"status": "closed"}),
])
async def test_admin_forcing_a_directors_move_gets_403_and_nothing_changes(api, staff, action, data):
    admin, director, customer = staff
    req = await svc.create_request(customer, title="x", description="y")
    await svc.take_request(admin, req.id)
    await svc.complete_request(admin, req.id)
    async with signed_in(api.base, admin.username) as (client, token):
        page = await client.get(f"/console/requests/{req.id}/")
        assert 'id="director-actions"' not in page.text and "Закрыть запрос" not in page.text
        form = {k: (str(director.id) if v == "ADMIN" else v) for k, v in data.items()}
        r = await client.post(f"/console/requests/{req.id}/{action}", data={"csrf_token": token, **form})
        assert r.status_code == 403, r.text
        assert "только директору" in r.text
    fresh = await CustomerRequest.get(id=req.id)
    assert fresh.status == Status.completed and fresh.assigned_admin_id == admin.id


async def test_director_closes_reopens_reassigns_and_sets_status(api, staff):
    admin, director, customer = staff
    req = await svc.create_request(customer, title="x", description="y")
    async with signed_in(api.base, director.username) as (client, token):
        page = f"/console/requests/{req.id}/"
        r = await client.get(page)
        assert 'id="director-actions"' in r.text
        assert (await client.post(page + "reassign", data={"csrf_token": token, "admin_id": str(admin.id)})).status_code == 303
        assert (await CustomerRequest.get(id=req.id)).assigned_admin_id == admin.id
        assert (await client.post(page + "complete", data={"csrf_token": token})).status_code == 303
        assert (await client.post(page + "close", data={"csrf_token": token})).status_code == 303
        assert (await CustomerRequest.get(id=req.id)).status == Status.closed
        assert (await client.post(page + "reopen", data={"csrf_token": token})).status_code == 303
        assert (await CustomerRequest.get(id=req.id)).status == Status.in_progress
        assert (await client.post(page + "status", data={"csrf_token": token, "status": "open"})).status_code == 303
        fresh = await CustomerRequest.get(id=req.id)
        assert fresh.status == Status.open and fresh.assigned_admin_id is None
        r = await client.get(page)
        # The history lists the moves, with the channel.
        assert "исполнитель" in r.text and "веб" in r.text


async def test_canned_response_is_sent_filled_in_and_offered_for_insertion(api, staff):
    admin, _, customer = staff
    req = await svc.create_request(customer, title="x", description="y")
    await svc.take_request(admin, req.id)
    item = await canned.create_canned(admin, {
        "shortcut": "hello", "title": "Привет", "is_shared": True,
        "content": "Здравствуйте, {customer_name}! Запрос #{request_id}. {admin_name}"})
    async with signed_in(api.base, admin.username) as (client, token):
        page = await client.get(f"/console/requests/{req.id}/")
        filled = f"Здравствуйте, Anna Client! Запрос #{req.id}. Ivan Petrov"
        assert f'data-text="{filled}"' in page.text
        r = await client.post(f"/console/requests/{req.id}/canned",
                              data={"csrf_token": token, "canned_id": str(item.id)})
        assert r.status_code == 303
        assert "Шаблон «Привет» отправлен клиенту." in (await client.get(f"/console/requests/{req.id}/")).text
    assert await RequestMessage.filter(request_id=req.id, content=filled, sender_id=admin.id).exists()


async def test_attachments_are_listed_and_downloaded_with_the_session(api, staff):
    from core import attachments

    admin, _, customer = staff
    req = await svc.create_request(customer, title="x", description="y")
    att = await attachments.save_attachment(customer, req.id, name="ошибка.txt", content=b"502 Bad Gateway",
                                            content_type="text/plain", source="api")
    async with signed_in(api.base, admin.username) as (client, _):
        page = await client.get(f"/console/requests/{req.id}/")
        assert f'href="/console/attachments/{att.id}/"' in page.text and "ошибка.txt" in page.text
        r = await client.get(f"/console/attachments/{att.id}/")
        assert r.status_code == 200 and r.content == b"502 Bad Gateway"
        assert r.headers["content-disposition"].startswith("attachment;")
        assert r.headers["content-security-policy"].startswith("sandbox")
    async with httpx.AsyncClient(base_url=api.base) as anon:
        r = await anon.get(f"/console/attachments/{att.id}/")
        assert r.status_code == 303  # no session: sign in first


# --- the queue -------------------------------------------------------------------------------


async def test_queue_filters_search_and_unassigned_first(api, staff):
    admin, director, customer = staff
    a = await svc.create_request(customer, title="Счёт не пришёл", description="billing", category="billing")
    b = await svc.create_request(customer, title="VPN", description="tech", priority="urgent")
    c = await svc.create_request(customer, title="Заказ 42", description="order", category="order")
    await svc.take_request(admin, c.id)
    def ids(html: str) -> list[int]:
        import re

        return [int(x) for x in re.findall(r'<tr data-id="(\d+)"', html)]

    async with signed_in(api.base, director.username) as (client, _):
        r = await client.get("/console/")
        assert ids(r.text) == [c.id, b.id, a.id] and "Найдено запросов: 3" in r.text
        r = await client.get("/console/", params={"unassigned_first": "1"})
        assert ids(r.text) == [b.id, a.id, c.id]
        r = await client.get("/console/", params={"category": "billing"})
        assert ids(r.text) == [a.id]
        r = await client.get("/console/", params={"priority": "urgent"})
        assert ids(r.text) == [b.id]
        r = await client.get("/console/", params={"assigned": "none"})
        assert ids(r.text) == [b.id, a.id]
        r = await client.get("/console/", params={"assigned": str(admin.id)})
        assert ids(r.text) == [c.id]
        r = await client.get("/console/", params={"search": "заказ"})
        assert ids(r.text) == [c.id] and "Найдено запросов: 1" in r.text
        r = await client.get("/console/", params={"status": "in_progress", "lang": "en"})
        assert ids(r.text) == [c.id] and "Requests found: 1" in r.text and "In progress" in r.text
        # A bad value is a page saying so, not an error.
        for params in ({"status": "bogus"}, {"search": "a\x00b"}, {"assigned": "9" * 40},
                       {"page": "0"}, {"page": "99"}, {"page": "x" * 50}):
            r = await client.get("/console/", params=params)
            assert r.status_code in (400, 404), (params, r.status_code)


async def test_queue_pages_hold_twenty_requests(api, staff):
    admin, _, customer = staff
    for n in range(23):
        await svc.create_request(customer, title=f"Запрос {n}", description="d")
    async with signed_in(api.base, admin.username) as (client, _):
        r = await client.get("/console/")
        assert r.text.count("<tr data-id=") == 20 and "Страница 1 из 2" in r.text
        r = await client.get("/console/", params={"page": "2"})
        assert r.text.count("<tr data-id=") == 3 and 'rel="prev"' in r.text


async def test_english_by_accept_language_and_the_switcher_cookie(api, staff):
    admin, _, _ = staff
    async with signed_in(api.base, admin.username) as (client, _):
        r = await client.get("/console/", headers={"Accept-Language": "en-US,en;q=0.9"})
        assert "Request queue" in r.text and '<html lang="en">' in r.text
        r = await client.get("/console/stats/", params={"lang": "en"})
        assert "Requests per day" in r.text
        r = await client.get("/console/stats/")  # the cookie remembers
        assert "Requests per day" in r.text


async def test_hostile_console_input_gets_no_server_error(api, staff):
    admin, _, customer = staff
    req = await svc.create_request(customer, title="x", description="y")
    async with signed_in(api.base, admin.username) as (client, token):
        for path in ("/console/requests/0/", "/console/requests/2147483648/", "/console/requests/99999/",
                     f"/console/requests/{req.id}/?hp=0", f"/console/requests/{req.id}/?hp=9" + "9" * 40,
                     "/console/attachments/99999/", "/static/console/nope.js", "/static/console/..%2f__init__.py"):
            r = await client.get(path)
            assert r.status_code in (400, 404), (path, r.status_code)
        for action, data in (("bogus", {}), ("reply", {"content": "a\x00b"}), ("reassign", {"admin_id": "x"}),
                             ("reassign", {"admin_id": "99999999999"}), ("status", {"status": "x" * 500}),
                             ("canned", {"canned_id": "-1"}), ("edit", {"priority": "nope"})):
            r = await client.post(f"/console/requests/{req.id}/{action}", data={"csrf_token": token, **data})
            assert r.status_code in (303, 403, 404), (action, r.status_code, r.text[:200])
        r = await client.post("/console/requests/2147483648/take", data={"csrf_token": token})
        assert r.status_code == 404


# --- stats -----------------------------------------------------------------------------------


async def test_stats_page_shows_todays_figures_and_server_drawn_charts(api, staff):
    from core import csat

    admin, director, customer = staff
    done = await svc.create_request(customer, title="x", description="y")
    await svc.take_request(admin, done.id)
    await svc.post_message(admin, done.id, "fixed")
    await svc.complete_request(admin, done.id)
    await csat.rate_request(customer, done.id, 5)
    await svc.create_request(customer, title="open one", description="y")
    async with signed_in(api.base, director.username) as (client, _):
        r = await client.get("/console/stats/")
        assert r.status_code == 200
        html = r.text
        assert html.count("<svg") == 4 and 'role="img"' in html
        assert "Запросы по дням за 30 дней" in html and "Оценки клиентов" in html
        assert "5.00 из 5 (1 оценка)" in html  # CLDR plural, not "1 оценок"
        assert "Завершено сегодня" in html
        assert "Ivan Petrov" in html  # load and first response per person
        assert "cdn" not in html.lower() and "<script>" not in html


async def test_requests_per_day_counts_each_local_day_by_current_status(settings, make_user):
    from core.reports import requests_per_day

    customer = await make_user("customer")
    admin = await make_user("admin")
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    made = []
    for days_ago, status in ((0, "open"), (0, "in_progress"), (1, "open"), (6, "completed"), (7, "open")):
        req = await svc.create_request(customer, title="t", description="d")
        if status != "open":
            await svc.take_request(admin, req.id)
        if status == "completed":
            await svc.complete_request(admin, req.id)
        await CustomerRequest.filter(id=req.id).update(created_at=now - timedelta(days=days_ago))
        made.append(req)
    days = await requests_per_day(7, now=now, tz="Europe/Moscow")
    assert [d.day.isoformat() for d in days][0] == "2026-11-18" and days[-1].day.isoformat() == "2026-11-24"
    assert days[-1].counts == {"open": 1, "in_progress": 1, "completed": 0, "closed": 0}
    assert days[-2].total == 1 and days[0].counts["completed"] == 1
    assert sum(d.total for d in days) == 4  # 7 days ago is outside the window


# --- the admin WebSocket with the session cookie ------------------------------------------------


async def test_admin_websocket_accepts_the_session_cookie_from_our_origin_only(api, staff, monkeypatch):
    import websockets

    from api.ws import access as ws_module

    admin, _, customer = staff
    monkeypatch.setattr(ws_module, "SESSION_CHECK_SECONDS", 0.2)
    url = ws_url(api.base, "/ws/admin/notifications/")
    own_origin = api.base
    async with signed_in(api.base, admin.username) as (client, token):
        cookie = f"console_session={client.cookies.get('console_session')}"
        # A foreign page's handshake carries the cookie too (SameSite aside): refused.
        async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": "https://evil.example"}) as bad:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(bad.recv(), 5)
            assert bad.close_code == 4401
        async with websockets.connect(url, additional_headers={"Cookie": cookie}) as no_origin:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(no_origin.recv(), 5)
            assert no_origin.close_code == 4401
        async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": own_origin}) as ws:
            await ws.send('{"type": "ping"}')
            assert (await recv_until(ws, lambda f: f.get("type") == "pong"))["type"] == "pong"
            req = await svc.create_request(customer, title="Живой", description="d")
            frame = await recv_until(ws, lambda f: f.get("type") == "new_request")
            assert frame["data"]["id"] == req.id
            # Signing out closes the socket within the check interval.
            await client.post("/console/sign-out", data={"csrf_token": token})
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4401


async def test_unassigned_first_on_every_list_path_and_over_rest(api, staff, token_for):
    """The ordering the console's checkbox asks for, in the domain (plain list, and the
    search path PostgreSQL runs through its own query) and as REST's ?unassigned_first=1."""
    admin, _, customer = staff
    a = await svc.create_request(customer, title="a", description="same words")
    b = await svc.create_request(customer, title="b", description="same words")
    c = await svc.create_request(customer, title="c", description="same words")
    await svc.take_request(admin, c.id)
    await svc.take_request(admin, a.id)
    for search in (None, "same"):
        _, rows = await svc.list_requests(admin, svc.RequestFilters(search=search))
        assert [r.id for r in rows] == [c.id, b.id, a.id]
        _, rows = await svc.list_requests(admin, svc.RequestFilters(search=search, unassigned_first=True))
        assert [r.id for r in rows] == [b.id, c.id, a.id]
    r = await api.get("/api/admin/customer-requests/?unassigned_first=1", await token_for(admin))
    assert [x["id"] for x in r.json()["results"]] == [b.id, c.id, a.id]
