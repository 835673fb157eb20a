"""Abuse limits on the web form and web replies: per client address, and a forwarded
address counts only when the direct peer is a trusted proxy (TRUSTED_PROXIES)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest

from api.client_address import resolve_client
from core.settings import SettingsError, load_settings
from db.models import CustomerRequest, RequestMessage
from tests.test_web import FORM, key_of, submit

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@asynccontextmanager
async def server(settings, sanic_proxies_count: int = 0, **overrides):
    """A live API server; `sanic_proxies_count` as SANIC_PROXIES_COUNT would set it."""
    from bootstrap.app import create_app
    from tests.live import serve

    app = create_app(settings.with_overrides(**overrides))
    app.config.PROXIES_COUNT = sanic_proxies_count
    async with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client


def forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, "Accept": "application/json"}


async def post_form(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/api/public/requests/", data=FORM, headers=headers)


async def test_forged_forwarded_for_from_an_untrusted_peer_does_not_reset_the_limit(settings):
    # The deployment: SANIC_PROXIES_COUNT=1 and port 8000 reachable directly.
    async with server(settings, sanic_proxies_count=1, web_rate_limit_per_min=2) as client:
        assert (await post_form(client, forwarded("203.0.113.1"))).status_code == 201
        assert (await post_form(client, forwarded("203.0.113.2"))).status_code == 201
        refused = await post_form(client, forwarded("203.0.113.3"))
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "Попробуйте снова через" in refused.json()["detail"]
        # Another forged address, or none at all: still the same client (the peer).
        assert (await post_form(client, forwarded("198.51.100.7"))).status_code == 429
        assert (await submit(client)).status_code == 429
        assert await CustomerRequest.all().count() == 2


@sqlite_only
async def test_a_proxy_list_that_does_not_include_the_peer_is_not_believed(settings):
    async with server(settings, web_rate_limit_per_min=1, trusted_proxies=("10.0.0.0/8",)) as client:
        assert (await post_form(client, forwarded("203.0.113.1"))).status_code == 201
        assert (await post_form(client, forwarded("203.0.113.2"))).status_code == 429


@sqlite_only
async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(settings):
    async with server(settings, web_rate_limit_per_min=2, trusted_proxies=("127.0.0.1",)) as client:
        assert (await post_form(client, forwarded("203.0.113.1"))).status_code == 201
        assert (await post_form(client, forwarded("203.0.113.1"))).status_code == 201
        refused = await post_form(client, forwarded("203.0.113.1"))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        # The proxy appends the real peer: what the client wrote on the left is ignored.
        spoofed = await post_form(client, forwarded("198.51.100.9, 203.0.113.1"))
        assert spoofed.status_code == 429
        # Someone else behind the same proxy is not affected.
        assert (await post_form(client, forwarded("203.0.113.2"))).status_code == 201
        assert await CustomerRequest.all().count() == 3


@sqlite_only
async def test_form_posted_without_javascript_gets_a_page_saying_when_to_try_again(settings):
    browser = {"Accept": "text/html,application/xhtml+xml"}
    async with server(settings, web_rate_limit_per_min=1) as client:
        first = await client.post("/api/public/requests/", data=FORM, headers=browser)
        assert first.status_code == 303
        refused = await client.post("/api/public/requests/?lang=en", data=FORM, headers=browser)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Too many submissions. Try again in" in refused.text
    assert 'href="/"' in refused.text


@sqlite_only
async def test_web_replies_are_limited_per_client_address(settings):
    async with server(settings, web_rate_limit_per_min=2) as client:
        key = key_of(await submit(client))
        url = f"/api/public/requests/{key}/messages/"
        json_headers = {"Accept": "application/json"}
        for n in range(2):
            r = await client.post(url, data={"content": f"reply {n}"}, headers=json_headers)
            assert r.status_code == 201, r.text
        refused = await client.post(url, data={"content": "one too many"}, headers=json_headers)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        page = await client.post(url, data={"content": "no js"}, headers={"Accept": "text/html"})
        assert page.status_code == 429 and f'href="/r/{key}"' in page.text
        assert not await RequestMessage.filter(content__in=["one too many", "no js"]).exists()


def test_client_address_resolution_rules():
    trusted = ("127.0.0.1/32", "10.0.0.0/8")
    # No proxy configured: the header is ignored whatever it says.
    assert resolve_client("192.0.2.5", ["203.0.113.1"], ()) == "192.0.2.5"
    # An untrusted peer: ignored too.
    assert resolve_client("192.0.2.5", ["203.0.113.1"], trusted) == "192.0.2.5"
    # A trusted peer: the rightmost address that is not a trusted proxy.
    assert resolve_client("127.0.0.1", ["203.0.113.1"], trusted) == "203.0.113.1"
    assert resolve_client("127.0.0.1", ["6.6.6.6, 203.0.113.1, 10.1.2.3"], trusted) == "203.0.113.1"
    assert resolve_client("127.0.0.1", ["6.6.6.6", "203.0.113.1"], trusted) == "203.0.113.1"
    assert resolve_client("127.0.0.1", ["[2001:db8::1]:4711"], trusted) == "2001:db8::1"
    assert resolve_client("127.0.0.1", ["203.0.113.1:80"], trusted) == "203.0.113.1"
    # Nothing forwarded, or garbage where the proxy's entry should be: the proxy counts.
    assert resolve_client("127.0.0.1", [], trusted) == "127.0.0.1"
    assert resolve_client("127.0.0.1", ["unknown"], trusted) == "127.0.0.1"
    assert resolve_client("::ffff:127.0.0.1", ["203.0.113.1"], trusted) == "203.0.113.1"


def test_abuse_settings_are_read_and_validated():
    s = load_settings(
        {
            "TRUSTED_PROXIES": "172.16.0.0/12, 127.0.0.1 ::1",
            "BOT_NEW_REQUESTS_PER_HOUR": "3",
            "BOT_MESSAGES_PER_MIN": "7",
            "WS_FRAME_RATE": "5/2",
            "WS_RESUME_RATE": "4/60",
            "WS_MAX_FRAME_BYTES": "4096",
            "WS_PUBLIC_SOCKETS_PER_CLIENT": "3",
        },
        dotenv=False,
    )
    assert s.trusted_proxies == ("172.16.0.0/12", "127.0.0.1/32", "::1/128")
    assert (s.bot_new_requests_per_hour, s.bot_messages_per_min) == (3, 7)
    assert s.ws_frame_rate == (5, 2) and s.ws_resume_rate == (4, 60)
    assert s.ws_max_frame_bytes == 4096 and s.ws_public_sockets_per_client == 3
    defaults = load_settings({}, dotenv=False)
    assert defaults.trusted_proxies == ()
    assert defaults.ws_frame_rate == (20, 10)
    for name, bad in [("TRUSTED_PROXIES", "proxy.local"), ("WS_FRAME_RATE", "20"),
                      ("WS_RESUME_RATE", "0/60"), ("BOT_MESSAGES_PER_MIN", "0")]:
        with pytest.raises(SettingsError, match=name):
            load_settings({name: bad}, dotenv=False)


async def test_the_limiter_keeps_counting_in_process_while_redis_is_unreachable(caplog):
    import redis.asyncio as aioredis

    from core.ratelimit import RedisRateLimiter
    from tests.conftest import free_port

    # Nothing listens on this port: every Redis call fails at once.
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    try:
        limiter = RedisRateLimiter(client, 2, window=60, prefix="unreachable:")
        assert (await limiter.hit("create:192.0.2.1")).allowed
        assert (await limiter.hit("create:192.0.2.1")).allowed
        refused = await limiter.hit("create:192.0.2.1")
        assert not refused.allowed and refused.retry_after >= 1
    finally:
        await client.aclose()
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # one line per state change, not one per request
