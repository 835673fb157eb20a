"""The satisfaction survey on the customer's request page, in a real headless Chromium:
it appears live when the request is completed, a press rates without leaving the page, and
it goes away when the request is closed. Skipped without Chromium/Playwright (unless CI)."""

from __future__ import annotations

import asyncio

from core import requests as svc
from db.models import CustomerRequest
from tests.browser import CHROMIUM, LAUNCH_ARGS, need_browser


async def wait_until(predicate, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_customer_rates_from_the_page_with_the_script(settings, make_user):
    need_browser()
    import httpx
    from playwright.async_api import async_playwright

    from bootstrap.app import create_app
    from tests.live import serve

    admin = await make_user("admin")
    boss = await make_user("director")
    async with serve(create_app(settings)) as base, async_playwright() as pw:
        async with httpx.AsyncClient(base_url=base) as client:
            r = await client.post("/api/public/requests/", data={
                "name": "Анна", "email": "anna@example.com", "title": "Чек", "description": "нет чека",
            }, headers={"Accept": "application/json"})
            key, rid = r.json()["access_key"], r.json()["request"]["id"]
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = await browser.new_page(locale="ru-RU")
            csp: list[str] = []
            page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(f"{base}/r/{key}")
            assert await page.is_hidden("#rating-section")
            await svc.take_request(admin, rid)
            await svc.complete_request(admin, rid)
            # shown live (WebSocket nudge, then the poll), no reload
            await page.wait_for_selector("#rating-section", state="visible", timeout=15000)
            await page.fill("#rating-comment", "Спасибо, всё решили")
            await page.click("#rating-form button[value='4']")
            await page.wait_for_selector("#rating-status:has-text('Спасибо за оценку!')", timeout=10000)
            assert await page.get_attribute("#rating-form button[value='4']", "aria-pressed") == "true"
            assert await page.get_attribute("#rating-form button[value='5']", "aria-pressed") == "false"
            assert page.url == f"{base}/r/{key}"  # stayed on the page

            async def rated() -> bool:
                req = await CustomerRequest.get(id=rid)
                return req.rating == 4 and req.rating_comment == "Спасибо, всё решили"

            await wait_until(rated)
            await svc.close_request(boss, rid)
            await page.wait_for_selector("#rating-section", state="hidden", timeout=15000)
            assert csp == []
        finally:
            await browser.close()
