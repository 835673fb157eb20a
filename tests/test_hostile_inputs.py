"""Issue 17: each input the issue names as a 500 now gets a clear 4xx (or a 4xxx close code),
on SQLite and PostgreSQL. The route-by-route sweep is tests/test_hostile_sweep.py."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from api.ws import CLOSE_BAD_REQUEST, CLOSE_NOT_FOUND
from core import chats
from tests.api_helpers import ADMIN, CUSTOMER, multipart_parts, new_request
from tests.wsutil import close_code, connect

HUGE = [2**31, 2**63 - 1, 2**63, 2**70, -(2**63) - 1]


def no_server_error_logged(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage()[:300] for r in bad]


async def test_long_malformed_and_non_ascii_tokens_are_401_and_never_logged(
    api, make_user, token_for, caplog
):
    caplog.set_level(logging.INFO)
    for size in (39, 41, 50, 64, 65, 200):
        token = "k" * size
        for scheme in ("Token", "Bearer"):
            r = await api.get(CUSTOMER, headers={"Authorization": f"{scheme} {token}"})
            assert r.status_code == 401, (size, r.text)
        r = await api.get(f"{CUSTOMER}?token={token}")
        assert r.status_code == 401
    for raw in (b"Token \xff\xfe\xfd", b"Token caf\xc3\xa9", b"Bearer \x80" * 3, b"\xff"):
        r = await api.get(CUSTOMER, headers=[(b"Authorization", raw)])
        assert r.status_code == 401, (raw, r.text)
    no_server_error_logged(caplog)
    server_log = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "k" * 41 not in server_log


async def test_login_with_a_username_over_150_characters_is_a_field_error(api, make_user):
    await make_user("customer", username="ivan", password="secret-pass")
    r = await api.post("/api/auth/token/", json={"username": "u" * 151, "password": "x"})
    assert r.status_code == 400 and "username" in r.json(), r.text
    r = await api.post("/api/auth/token/", json={"username": "u" * 100_000, "password": "x"})
    assert r.status_code == 400 and "username" in r.json(), r.text
    r = await api.post("/api/auth/token/", json={"username": "ivan", "password": "secret-pass"})
    assert r.status_code == 200


async def test_extreme_estimated_resolution_times_are_field_errors(api, make_user, token_for):
    ta = await token_for(await make_user("admin"))
    for value in (
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00",
        "9999-12-31T23:59:59.999999Z",
        "99999-01-01T00:00:00",
    ):
        r = await api.post(
            ADMIN, ta, json={"title": "t", "description": "d", "estimated_resolution_time": value}
        )
        assert r.status_code in (201, 400), (value, r.text)
        if r.status_code == 400:
            assert "estimated_resolution_time" in r.json()
        else:
            assert (await api.get(f"{ADMIN}{r.json()['id']}/", ta)).status_code == 200
            assert (await api.get(ADMIN, ta)).status_code == 200
    r = await api.post(
        ADMIN, ta,
        json={"title": "t", "description": "d", "estimated_resolution_time": "0001-01-01T00:00:00+01:00"},
    )
    assert r.status_code == 400 and "estimated_resolution_time" in r.json()


async def test_out_of_range_ids_in_bodies_are_field_errors(api, make_user, token_for):
    director, admin, customer = (
        await make_user("director"), await make_user("admin"), await make_user("customer")
    )
    td, tc = await token_for(director), await token_for(customer)
    req = await new_request(api, tc)
    chat = await chats.create_chat(director, name="Ops", participant_ids=[admin.id])
    for value in HUGE:
        cases = [
            (ADMIN, {"title": "t", "description": "d", "customer_id": value}, "customer_id"),
            (f"{ADMIN}{req['id']}/reassign/", {"admin_id": value}, "admin_id"),
            (f"/api/admin/chats/{chat.id}/messages/", {"content": "hi", "reply_to": value}, "reply_to"),
            ("/api/admin/chats/", {"name": "n", "participant_ids": [value]}, "participant_ids"),
            (
                "/api/admin/internal-communications/",
                {"from_department": "a", "to_department": "b", "subject": "s", "content": "c",
                 "request": value},
                "request",
            ),
            (
                "/api/admin/internal-communications/",
                {"from_department": "a", "to_department": "b", "subject": "s", "content": "c",
                 "participants": [value]},
                "participants",
            ),
        ]
        for path, body, field in cases:
            r = await api.post(path, td, json=body)
            assert r.status_code == 400 and field in r.json(), (path, body, r.text)


async def test_huge_message_id_on_an_upload_is_a_field_error(api, make_user, token_for):
    tc = await token_for(await make_user("customer"))
    req = await new_request(api, tc)
    for value in ("9223372036854775808", "2147483648", "-1", "1e5"):
        ctype, head, tail = multipart_parts({"message": value}, "a.txt", "text/plain")
        r = await api.post(
            f"{CUSTOMER}{req['id']}/attachments/", tc,
            content=head + b"hello" + tail, headers={"Content-Type": ctype},
        )
        assert r.status_code == 400 and "message" in r.json(), (value, r.text)


async def test_huge_page_with_search_is_a_404_page(api, make_user, token_for):
    ta, tc = await token_for(await make_user("admin")), await token_for(await make_user("customer"))
    await new_request(api, tc)
    for page in ("2147483648", "99999999999", "9" * 30, "10" * 40):
        for path, token in ((ADMIN, ta), (CUSTOMER, tc), ("/api/admin/internal-communications/", ta)):
            r = await api.get(path, token, params={"page": page, "search": "вход"})
            assert r.status_code == 404, (path, page, r.text)


async def test_public_page_rejects_huge_after_and_attachment_ids(api):
    r = await api.post(
        "/api/public/requests/",
        data={"name": "Анна", "email": "a@example.com", "title": "T", "description": "D"},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 201, r.text
    key = r.json()["access_key"]
    for after in ("1" + "0" * 20, str(2**63), "-" + "9" * 25):
        r = await api.get(f"/api/public/requests/{key}/", params={"after": after})
        assert r.status_code == 400 and "after" in r.json(), (after, r.text)
    for att in (2**31, 2**63, 2**70):
        r = await api.get(f"/api/public/requests/{key}/attachments/{att}/")
        assert r.status_code == 404, r.text


async def test_static_directory_and_nul_paths_are_404(api):
    for path in ("/static/web/", "/static/web/%00", "/static/web/a%00b.js", "/static/web/..%2f..%2fetc%2fpasswd",
                 "/static/web/%ff", "/static/web/" + "a" * 5000):
        r = await api.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert (await api.get("/static/web/form.js")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_websocket_huge_last_event_id_and_chat_id_close_with_4xxx(
    api, make_user, token_for, caplog
):
    caplog.set_level(logging.INFO)
    director = await make_user("director")
    td = await token_for(director)
    chat = await chats.create_chat(director, name="Ops", participant_ids=[])
    for value in (str(2**63), "1" + "0" * 20, "-1", "abc"):
        ws = await connect(api.base, f"/ws/admin/notifications/?last_event_id={value}", td)
        assert await close_code(ws) == CLOSE_BAD_REQUEST, value
        ws = await connect(api.base, f"/ws/chats/{chat.id}/?last_event_id={value}", td)
        assert await close_code(ws) == CLOSE_BAD_REQUEST, value
    for chat_id in (2**31, 2**63, 2**70):
        ws = await connect(api.base, f"/ws/chats/{chat_id}/", td)
        assert await close_code(ws) == CLOSE_NOT_FOUND, chat_id
    # resume frames with a huge id get an error frame, the socket stays open
    async with await connect(api.base, "/ws/admin/notifications/", td) as ws:
        await ws.send(json.dumps({"type": "resume", "last_event_id": 2**70}))
        frame = await ws.recv()
        assert '"invalid_frame"' in frame
        await ws.send('{"type": "ping"}')
        assert await ws.recv() == '{"type":"pong"}'
    no_server_error_logged(caplog)


async def test_webhook_rejects_huge_update_ids_and_malformed_updates(settings, fake_telegram):
    from bootstrap.app import create_app
    from tests.live import serve

    s = settings.with_overrides(
        telegram_bot_token=fake_telegram.token, telegram_api_server=fake_telegram.base_url,
        telegram_admin_chat_id=fake_telegram.admin_chat_id,
        telegram_mode="webhook", telegram_webhook_secret="s3cr3t-token",
    )
    app = create_app(s)
    headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cr3t-token"}
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        url = "/telegram/webhook/"
        for update in (
            {"update_id": 2**70},
            {"update_id": 2**63},
            {"update_id": -(2**70)},
            {"update_id": 5, "message": "hello"},
            {"update_id": 6, "message": {"message_id": "x"}},
            {"update_id": 7, "callback_query": [1, 2]},
            {"update_id": 8, "message": {"message_id": 1, "date": 2**70, "chat": {"id": 2**70, "type": "private"}}},
        ):
            r = await client.post(url, json=update, headers=headers)
            assert r.status_code == 400, (update, r.status_code, r.text)
        for raw in (b"\xff\xfe", b"[1]", b"null", b'{"update_id": 1e400}'):
            r = await client.post(url, content=raw, headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 400, (raw, r.text)
        r = await client.post(url, json={"update_id": 9}, headers=headers)
        assert r.status_code == 200


async def test_database_refusals_are_400_and_real_bugs_stay_500_without_the_token(settings, caplog):
    """The net behind the routes' own checks: a value the database driver refuses is the
    client's fault (400, one warning line); any other exception stays a 500 with its
    traceback logged, the caller's token blanked out."""
    from bootstrap.app import create_app
    from tests.live import serve

    caplog.set_level(logging.INFO)
    app = create_app(settings)

    @app.get("/_probe/too-large-int")
    async def too_large_int(request):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    @app.get("/_probe/bug")
    async def bug(request):
        raise RuntimeError(f"bug while handling {request.headers.get('authorization')}")

    token = "f" * 40
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/_probe/too-large-int")
        assert r.status_code == 400 and r.json() == {"detail": "Некорректные данные в запросе."}
        r = await client.get("/_probe/bug", headers={"Authorization": f"Token {token}"})
        assert r.status_code == 500
    server = [rec for rec in caplog.records if rec.name == "helpdesk.api"]
    assert [rec.levelname for rec in server] == ["WARNING", "ERROR"]
    assert "OverflowError" in server[0].getMessage()
    assert "RuntimeError: bug while handling Token <token>" in server[1].getMessage()
    assert token not in caplog.text
