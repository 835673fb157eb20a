"""The customer web channel in a real headless Chromium (Playwright for Python, Debian's
/usr/bin/chromium) against a live server.

Skipped with a reason when Chromium or Playwright is missing, unless
HELPDESK_REQUIRE_SERVICES=1 (CI), which turns the skip into a failure.
With HELPDESK_SCREENSHOTS=1 the test also saves docs/web-form.png and docs/web-request.png.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from db.models import CustomerRequest, RequestMessage, SenderType, Source
from tests.browser import CHROMIUM, LAUNCH_ARGS, need_browser

DOCS = Path(__file__).resolve().parent.parent / "docs"
SCRIPT = "<script>alert(1)</script>"




async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_customer_submits_follows_live_and_replies_in_a_real_browser(
    settings, make_user, token_for, tmp_path
):
    need_browser()
    from playwright.async_api import async_playwright

    from bootstrap.app import create_app
    from tests.live import Api, serve

    screenshots = os.environ.get("HELPDESK_SCREENSHOTS") == "1"
    admin = await make_user("admin", first_name="Мария", last_name="Иванова")
    token = await token_for(admin)
    upload = tmp_path / "screenshot-error.txt"
    upload.write_text("Ошибка 502 при оплате\n", encoding="utf-8")

    app = create_app(settings)
    async with serve(app) as base, async_playwright() as pw:
        rest = Api(base)
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=LAUNCH_ARGS,
        )
        try:
            context = await browser.new_context(viewport={"width": 1000, "height": 900}, locale="ru-RU")
            page = await context.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
            csp_violations: list[str] = []
            page.on(
                "console",
                lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None,
            )

            # The form, in Russian by default; an empty submit puts focus on the first field.
            await page.goto(base + "/")
            assert await page.inner_text("h1") == "Новое обращение"
            await page.click("button[type=submit]")
            assert await page.evaluate("document.activeElement.id") == "f-name"
            assert await page.inner_text("#f-name-error") == "Заполните это поле."

            await page.fill("#f-name", "Анна Петрова")
            await page.fill("#f-email", "anna@example.com")
            await page.select_option("#f-category", "billing")
            await page.fill("#f-title", "Не проходит оплата картой")
            await page.fill(
                "#f-description",
                "При оплате заказа 1234 страница показывает ошибку 502. Прикладываю текст ошибки.",
            )
            await page.set_input_files("#f-attachments", str(upload))
            if screenshots:
                await page.screenshot(path=str(DOCS / "web-form.png"), full_page=True)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/r/**")

            key = page.url.split("/r/")[1].split("?")[0]
            req = await CustomerRequest.get(access_key=key)
            assert req.source == Source.web
            assert await page.is_visible("#created-notice")
            assert await page.inner_text("#request-title") == "Не проходит оплата картой"
            assert await page.inner_text("#request-status") == "Открыт"
            if any(r.path.startswith("ws/public/requests") for r in app.router.routes):
                # Live over the WebSocket (polling stays on as the slow fallback).
                await page.wait_for_selector("body[data-live=websocket]", timeout=10_000)
            await page.get_by_role("link", name="screenshot-error.txt").wait_for(timeout=10_000)
            # New messages are announced to screen readers from now on.
            assert await page.get_attribute("#thread", "aria-live") == "polite"

            # An admin replies over REST: the page shows it without a reload.
            r = await rest.post(
                f"/api/admin/customer-requests/{req.id}/messages/",
                token=token,
                json={"content": "Здравствуйте! Уже проверяем платёж."},
            )
            assert r.status_code == 201, r.text
            await page.get_by_text("Здравствуйте! Уже проверяем платёж.").wait_for(timeout=10_000)
            assert "Мария Иванова" in await page.inner_text("#thread")

            # The status change (taken) shows up live too.
            r = await rest.post(f"/api/admin/customer-requests/{req.id}/take/", token=token)
            assert r.status_code == 200, r.text
            await page.locator("#request-status", has_text="В работе").wait_for(timeout=10_000)

            # The customer replies, with a script typed into the field: shown as text.
            await page.fill("#r-content", f"Спасибо! {SCRIPT}")
            await page.click("#reply-form button[type=submit]")
            await page.locator("p.content", has_text=f"Спасибо! {SCRIPT}").first.wait_for(timeout=10_000)

            async def stored() -> bool:
                return await RequestMessage.filter(
                    request_id=req.id, sender_type=SenderType.customer, content=f"Спасибо! {SCRIPT}"
                ).exists()

            await wait_until(stored)
            msg = await RequestMessage.get(request_id=req.id, content=f"Спасибо! {SCRIPT}")
            assert msg.sender_id == req.customer_id and msg.source == Source.web
            # Rendered as text: no element was created from it, no dialog fired.
            assert await page.locator("#thread script").count() == 0
            await asyncio.sleep(0.3)
            assert dialogs == []
            assert csp_violations == []
            # One copy of each message, although WebSocket nudges and polls both deliver.
            ids = await page.eval_on_selector_all("#thread li[data-id]", "els => els.map(e => e.dataset.id)")
            assert len(ids) == len(set(ids))
            if screenshots:
                await page.screenshot(path=str(DOCS / "web-request.png"), full_page=True)

            # Usable on a phone: no horizontal scrolling at 390 px.
            await page.set_viewport_size({"width": 390, "height": 844})
            assert await page.evaluate(
                "document.documentElement.scrollWidth <= window.innerWidth"
            )
            await context.close()
        finally:
            await browser.close()
            await rest.close()


async def test_request_page_stays_live_by_polling_when_the_websocket_is_unavailable(
    settings, make_user
):
    need_browser()
    from playwright.async_api import async_playwright

    from bootstrap.app import create_app
    from core.requests import post_message
    from tests.live import Api, serve

    admin = await make_user("admin", first_name="Олег", last_name="Смирнов")
    app = create_app(settings)
    async with serve(app) as base, async_playwright() as pw:
        rest = Api(base)
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=LAUNCH_ARGS,
        )
        try:
            context = await browser.new_context(locale="en-US")
            page = await context.new_page()
            # Every WebSocket is refused, as behind a proxy that does not pass upgrades.
            await page.route_web_socket("**/*", lambda ws: asyncio.ensure_future(ws.close()))
            r = await rest.post(
                "/api/public/requests/",
                data={"name": "Bob", "email": "bob@example.com", "title": "Login fails",
                      "description": "Password reset link expired.", "category": "account"},
                headers={"Accept": "application/json"},
            )
            assert r.status_code == 201, r.text
            await page.goto(base + r.json()["url"])
            assert await page.inner_text("#request-status") == "Open"  # English by Accept-Language
            req = await CustomerRequest.get(access_key=r.json()["access_key"])
            await post_message(admin, req.id, "Hello Bob, a new link is on its way.")
            await page.get_by_text("Hello Bob, a new link is on its way.").wait_for(timeout=10_000)
            assert await page.get_attribute("body", "data-live") == "polling"
            await context.close()
        finally:
            await browser.close()
            await rest.close()
