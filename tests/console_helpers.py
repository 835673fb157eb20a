"""Signing in to the staff console over plain HTTP (httpx), for tests/test_console*.py."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator

import httpx

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(page: str) -> str:
    match = CSRF_RE.search(page)
    assert match, "no CSRF token on the page"
    return html.unescape(match.group(1))


async def sign_in(client: httpx.AsyncClient, username: str, password: str = "pw-secret-1",
                  **headers: str) -> httpx.Response:
    """The sign-in form as a browser fills it: GET (CSRF cookie and token), then POST."""
    page = await client.get("/console/sign-in")
    assert page.status_code == 200, page.text
    return await client.post(
        "/console/sign-in",
        data={"username": username, "password": password, "csrf_token": csrf_from(page.text),
              "next": "/console/"},
        headers=headers,
    )


@contextlib.asynccontextmanager
async def signed_in(base: str, username: str, password: str = "pw-secret-1") -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client signed in as `username`, and the session's CSRF token."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await sign_in(client, username, password)
        assert r.status_code == 303, r.text
        page = await client.get("/console/")
        assert page.status_code == 200, page.text
        yield client, csrf_from(page.text)
