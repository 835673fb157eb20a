"""The interactive API docs page in a real headless Chromium, with the network limited to
the local server (so a CDN dependency would show up as a blank page).

The page does not depend on the database, so this runs on SQLite only.
"""

from __future__ import annotations

import pytest

from tests.browser import CHROMIUM, LAUNCH_ARGS, need_browser


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_docs_page_lists_operations_and_tries_one_with_a_token(api, make_user, token_for):
    need_browser()
    from playwright.async_api import async_playwright

    admin = await make_user("admin")
    token = await token_for(admin)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=LAUNCH_ARGS,
        )
        try:
            page = await browser.new_page()
            external: list[str] = []

            async def only_local(route):
                if route.request.url.startswith(api.base):
                    await route.continue_()
                else:
                    external.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_local)
            await page.goto(api.base + "/api/docs/")
            await page.wait_for_selector("details.op")
            assert await page.locator("details.op").count() >= 40
            await page.fill("#token", token)
            await page.fill("#filter", "stats")
            # The filter narrows the list to the stats operations (requests and per admin).
            visible = page.locator("details.op:visible")
            assert 1 <= await visible.count() <= 3
            op = visible.filter(has_not_text="admins").first
            await op.locator("summary").click()
            await op.locator("button").click()
            await page.wait_for_selector("details.op:visible .status")
            assert (await op.locator(".status").inner_text()).startswith("200")
            assert "total_requests" in await op.locator("pre").inner_text()
            assert external == []
        finally:
            await browser.close()
