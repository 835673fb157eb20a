"""The staff console in a real headless Chromium (Playwright, Debian's /usr/bin/chromium):
sign in, a request created over REST appears live in the queue, take it, reply, the reply
reaches the customer's page (/r/<key>); director-only actions are hidden from admins and
refused if forced; keyboard, 360 px, CSP.

One browser and one server for the module (SQLite: the HTTP tests in tests/test_console.py
run every rule on both databases). Skipped without Chromium/Playwright unless
HELPDESK_REQUIRE_SERVICES=1. With HELPDESK_SCREENSHOTS=1 the tests save
docs/console-queue.png, docs/console-queue-360.png, docs/console-request.png and
docs/console-stats.png.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from db.models import CustomerRequest, Status
from tests.browser import CHROMIUM, LAUNCH_ARGS, need_browser

pytestmark = pytest.mark.asyncio(loop_scope="module")

DOCS = Path(__file__).resolve().parent.parent / "docs"
SHOTS = os.environ.get("HELPDESK_SCREENSHOTS") == "1"
PW = "pw-secret-1"


@dataclass
class Desk:
    base: str
    browser: object
    rest: httpx.AsyncClient
    tokens: dict[str, str]
    users: dict[str, object]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desk(tmp_path_factory):
    need_browser()
    from playwright.async_api import async_playwright
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    from bootstrap.app import create_app
    from core import runtime
    from core.settings import Settings
    from core.users import create_user, issue_token
    from db.setup import close_db, init_db, migrate_db
    from tests.live import serve

    tmp = tmp_path_factory.mktemp("console-browser")
    url = f"sqlite://{tmp / 'db.sqlite3'}"
    EXECUTOR_CACHE.clear()
    await migrate_db(url)
    await init_db(url)
    settings = Settings(database_url=url, media_root=tmp / "media", port=0, tz="Europe/Moscow")
    runtime.configure(settings)
    users = {
        "admin": await create_user("ivan", PW, role="admin", first_name="Иван", last_name="Петров"),
        "other": await create_user("maria", PW, role="admin", first_name="Мария", last_name="Смирнова"),
        "director": await create_user("olga", PW, role="director", first_name="Ольга", last_name="Директорова"),
        "customer": await create_user("anna", PW, role="customer", first_name="Анна", last_name="Клиентова",
                                      email="anna@example.com"),
    }
    tokens = {k: await issue_token(u) for k, u in users.items()}
    try:
        async with serve(create_app(settings)) as base, async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            async with httpx.AsyncClient(base_url=base, timeout=30) as rest:
                try:
                    yield Desk(base, browser, rest, tokens, users)
                finally:
                    await browser.close()
    finally:
        await close_db()


async def new_page(desk: Desk, *, width: int = 1280, height: int = 900, locale: str = "ru-RU"):
    context = await desk.browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = await context.new_page()
    page.csp_violations = []
    page.on("console", lambda m: page.csp_violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    return context, page


async def sign_in(page, desk: Desk, username: str) -> None:
    await page.goto(desk.base + "/console/")
    assert "/console/sign-in" in page.url  # not signed in: the sign-in page, coming back after
    await page.fill("#username", username)
    await page.fill("#password", PW)
    await page.click("#sign-in-form button[type=submit]")
    try:
        await page.wait_for_url(desk.base + "/console/", timeout=5000)
    except Exception:
        print("URL", page.url, await page.content())
        raise


async def seed_a_month(desk: Desk) -> None:
    """Requests over the last four weeks, worked by two admins, some rated: what a stats
    page shows after a month of work."""
    from datetime import UTC, datetime, timedelta

    from core import csat
    from core import requests as svc

    admins = (desk.users["admin"], desk.users["other"])
    now = datetime.now(UTC)
    for n in range(36):
        days_ago = (n * 11) % 29
        req = await svc.create_request(desk.users["customer"], title=f"Запрос {n}", description="d",
                                       priority=("low", "medium", "high", "urgent")[n % 4])
        admin = admins[n % 2]
        if n % 5 != 0:
            await svc.take_request(admin, req.id)
            await svc.post_message(admin, req.id, "Смотрим")
        if n % 5 in (2, 3, 4):
            await svc.complete_request(admin, req.id)
            await csat.rate_request(desk.users["customer"], req.id, 5 - n % 3)
        if n % 5 == 4:
            await svc.close_request(desk.users["director"], req.id)
        created = now - timedelta(days=days_ago, hours=n % 5)
        await CustomerRequest.filter(id=req.id).update(
            created_at=created, first_response_at=created + timedelta(minutes=5 + 7 * (n % 6)))


async def fits(page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_admin_signs_in_sees_a_rest_request_live_takes_it_and_the_reply_reaches_the_customer(desk):
    context, page = await new_page(desk)
    try:
        await sign_in(page, desk, "ivan")
        assert await page.inner_text("h1") == "Очередь запросов"
        await page.wait_for_selector("body[data-live=websocket]", timeout=10_000)
        # Keyboard: the first Tab stop is the skip link, which moves focus to the content.
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip-link"
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"

        # A request created over REST (the staff API) and one from the web form's JSON
        # route appear in the open queue without a reload.
        r = await desk.rest.post(
            "/api/admin/customer-requests/", headers={"Authorization": f"Token {desk.tokens['director']}"},
            json={"title": "Не работает VPN", "description": "С утра не подключается",
                  "priority": "urgent", "category": "technical", "customer_id": desk.users["customer"].id})
        assert r.status_code == 201, r.text
        vpn_id = r.json()["id"]
        await page.locator(f"#queue-results tr[data-id='{vpn_id}']").wait_for(timeout=10_000)
        r = await desk.rest.post("/api/public/requests/", headers={"Accept": "application/json"}, data={
            "name": "Анна Клиентова", "email": "anna@example.com", "category": "billing",
            "title": "Не проходит оплата картой", "description": "Ошибка 502 при оплате заказа 1234"})
        assert r.status_code == 201, r.text
        key, req_id = r.json()["access_key"], r.json()["request"]["id"]
        row = page.locator(f"#queue-results tr[data-id='{req_id}']")
        await row.wait_for(timeout=10_000)
        assert "is-new" in (await row.get_attribute("class") or "")
        assert "Найдено запросов: 2" in await page.inner_text("#queue-count")
        if SHOTS:
            await page.screenshot(path=str(DOCS / "console-queue.png"), full_page=True)

        # At 360 px the queue is a list of cards, with no horizontal scrolling.
        await page.set_viewport_size({"width": 360, "height": 780})
        assert await fits(page)
        if SHOTS:
            await page.screenshot(path=str(DOCS / "console-queue-360.png"), full_page=True)
        await page.set_viewport_size({"width": 1280, "height": 900})

        # Open it, take it, reply.
        await row.get_by_role("link").click()
        await page.wait_for_url(f"**/console/requests/{req_id}/")
        assert await page.inner_text("#request-status") == "Открыт"
        await page.click("#action-take")
        await page.wait_for_selector("#flash:has-text('Запрос взят в работу.')")
        assert await page.inner_text("#request-status") == "В работе"
        assert await page.inner_text("#request-assignee") == "Иван Петров"
        await page.fill("#reply-content", "Здравствуйте, Анна! Проверяем платёж. <script>alert(1)</script>")
        await page.click("#reply-submit")
        await page.wait_for_selector("#flash:has-text('Ответ отправлен клиенту.')")
        await page.fill("#note-content", "Клиент VIP, ответить в течение часа")
        await page.click("#note-form button[type=submit]")
        await page.wait_for_selector(".msg-internal:has-text('Клиент VIP')")

        # The customer writes on their page: the console shows it without a reload.
        customer_context, customer = await new_page(desk, width=390, height=844)
        try:
            await customer.goto(f"{desk.base}/r/{key}")
            await customer.get_by_text("Здравствуйте, Анна! Проверяем платёж.").wait_for(timeout=10_000)
            assert "Клиент VIP" not in await customer.inner_text("#thread")  # internal notes stay inside
            assert await customer.inner_text("#request-status") == "В работе"
            await customer.fill("#r-content", "Спасибо, жду!")
            await customer.click("#reply-form button[type=submit]")
            await page.locator("#thread li", has_text="Спасибо, жду!").wait_for(timeout=10_000)
        finally:
            await customer_context.close()
        assert await page.locator("#thread script").count() == 0
        if SHOTS:
            await page.screenshot(path=str(DOCS / "console-request.png"), full_page=True)
        await page.set_viewport_size({"width": 360, "height": 780})
        assert await fits(page)
        assert page.csp_violations == []
        stored = await CustomerRequest.get(id=req_id)
        assert stored.status == Status.in_progress and stored.assigned_admin_id == desk.users["admin"].id
    finally:
        await context.close()


async def test_directors_moves_are_hidden_from_admins_and_refused_if_forced(desk):
    from core import requests as svc

    req = await svc.create_request(desk.users["customer"], title="Вернуть деньги", description="Заказ 77")
    await svc.take_request(desk.users["admin"], req.id)
    await svc.complete_request(desk.users["admin"], req.id)
    context, page = await new_page(desk)
    try:
        await sign_in(page, desk, "ivan")
        await page.goto(f"{desk.base}/console/requests/{req.id}/")
        assert await page.locator("#director-actions").count() == 0
        assert await page.get_by_role("button", name="Закрыть запрос").count() == 0
        # Forced: the page's own CSRF token, posted by hand from this signed-in browser.
        token = await page.get_attribute("#note-form input[name=csrf_token]", "value")
        for action, form in (("close", {}), ("reopen", {}), ("status", {"status": "open"}),
                             ("reassign", {"admin_id": str(desk.users["other"].id)})):
            response = await page.request.post(f"{desk.base}/console/requests/{req.id}/{action}",
                                               form={"csrf_token": token, **form}, max_redirects=0)
            assert response.status == 403, (action, response.status)
        assert (await CustomerRequest.get(id=req.id)).status == Status.completed
    finally:
        await context.close()

    # The director sees and uses them; the stats page draws its charts.
    context, page = await new_page(desk)
    try:
        await sign_in(page, desk, "olga")
        await page.goto(f"{desk.base}/console/requests/{req.id}/")
        await page.get_by_role("button", name="Закрыть запрос").click()
        await page.wait_for_selector("#flash:has-text('Запрос закрыт.')")
        assert await page.inner_text("#request-status") == "Закрыт"
        assert (await CustomerRequest.get(id=req.id)).status == Status.closed
        await seed_a_month(desk)
        await page.get_by_role("link", name="Статистика").click()
        await page.wait_for_url("**/console/stats/")
        assert await page.locator("svg.chart").count() == 4
        assert await page.locator("#chart-per-day rect").count() >= 2
        if SHOTS:
            await page.screenshot(path=str(DOCS / "console-stats.png"), full_page=True)
        await page.set_viewport_size({"width": 360, "height": 780})
        assert await fits(page)
        # Sign out: back to the sign-in page, and the console is closed to this browser.
        await page.click("#sign-out")
        await page.wait_for_url("**/console/sign-in?signed_out=1")
        await page.goto(f"{desk.base}/console/stats/")
        assert "/console/sign-in" in page.url
        assert page.csp_violations == []
    finally:
        await context.close()
    await asyncio.sleep(0)
