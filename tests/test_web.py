"""Customer web channel over HTTP: the form, the private request page and its JSON routes.

Every test runs against a live server on loopback, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import secrets
from contextlib import asynccontextmanager

import httpx
import pytest

from db.models import CustomerRequest, RequestMessage, Role, SenderType, Source, Status, User

FORM = {
    "name": "Анна Петрова",
    "email": "Anna@Example.com",
    "title": "Не приходит чек",
    "description": "После оплаты заказа 1234 чек так и не пришёл.",
    "category": "billing",
}


@asynccontextmanager
async def web_server(settings, **overrides):
    """A live API server with these setting overrides; yields an httpx client."""
    from bootstrap.app import create_app
    from tests.live import serve

    app = create_app(settings.with_overrides(**overrides) if overrides else settings)
    async with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client


@pytest.fixture
async def web(settings):
    async with web_server(settings) as client:
        yield client


async def submit(client: httpx.AsyncClient, files=None, **fields) -> httpx.Response:
    data = {**FORM, **fields}
    return await client.post(
        "/api/public/requests/", data=data, files=files or [], headers={"Accept": "application/json"}
    )


def key_of(response: httpx.Response) -> str:
    return response.json()["access_key"]


async def test_form_is_russian_by_default_with_every_category_and_the_upload_limit(web):
    r = await web.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<html lang="ru">' in page
    assert "Новое обращение" in page
    for value in ("technical", "billing", "account", "order", "general"):
        assert f'<option value="{value}"' in page
    assert "Биллинг" in page
    assert "не более 10 МБ" in page
    assert 'data-max-bytes="10485760"' in page


async def test_form_speaks_english_by_query_cookie_or_accept_language(web):
    r = await web.get("/?lang=en")
    assert '<html lang="en">' in r.text and "New request" in r.text
    assert "lang=en" in r.headers.get("set-cookie", "")
    web.cookies.clear()
    r = await web.get("/", headers={"Accept-Language": "en-US,en;q=0.9,ru;q=0.5"})
    assert "New request" in r.text
    r = await web.get("/", headers={"Accept-Language": "de-DE, ru;q=0.3"})
    assert "Новое обращение" in r.text
    web.cookies.set("lang", "en")
    r = await web.get("/")
    assert "New request" in r.text


async def test_pages_forbid_inline_scripts_and_framing(web):
    r = await web.get("/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    for tag in re.findall(r"<script[^>]*>", r.text):
        assert 'src="/static/web/' in tag or 'type="application/json"' in tag, tag
    js = await web.get("/static/web/request.js")
    assert js.status_code == 200 and "innerHTML" not in js.text


async def test_customer_submits_form_with_file_and_gets_private_page(web):
    r = await submit(web, files=[("attachments", ("чек.txt", b"receipt body", "text/plain"))])
    assert r.status_code == 201, r.text
    body = r.json()
    key = body["access_key"]
    assert len(key) >= 40
    assert body["url"] == f"/r/{key}?created=1"
    assert body["request"]["status_label"] == "Открыт"

    req = await CustomerRequest.get(access_key=key).prefetch_related("customer")
    assert req.source == Source.web
    assert req.category == "billing"
    assert req.customer.email == "anna@example.com"
    assert req.customer.role == Role.customer
    assert req.customer.first_name == "Анна"

    page = await web.get(body["url"])
    assert page.status_code == 200
    assert "Не приходит чек" in page.text
    assert f"Обращение №{req.id} создано" in page.text

    state = (await web.get(f"/api/public/requests/{key}/")).json()
    assert state["request"]["title"] == "Не приходит чек"
    files = [a for m in state["messages"] for a in m["attachments"]]
    assert [f["name"] for f in files] == ["чек.txt"]
    download = await web.get(files[0]["url"])
    assert download.status_code == 200
    assert download.content == b"receipt body"
    assert "attachment" in download.headers["content-disposition"]
    assert "sandbox" in download.headers["content-security-policy"]


async def test_each_submission_gets_its_own_unverified_web_contact(web):
    # Anyone can type anyone's address: two submissions with one e-mail share nothing.
    k1 = key_of(await submit(web))
    k2 = key_of(await submit(web, email="anna@example.com", title="Второй вопрос"))
    r1 = await CustomerRequest.get(access_key=k1).prefetch_related("customer")
    r2 = await CustomerRequest.get(access_key=k2).prefetch_related("customer")
    assert r1.customer_id != r2.customer_id
    for req in (r1, r2):
        assert req.customer.is_web_contact and not req.customer.email_verified
        assert req.customer.password == "" and req.customer.telegram_id is None
    assert await User.filter(email="anna@example.com").count() == 2


async def test_plain_form_post_without_javascript_redirects_to_the_page(web):
    r = await web.post("/api/public/requests/", data=FORM, headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/r/")


async def test_plain_reply_without_javascript_redirects_back_to_the_page(web):
    key = key_of(await submit(web))
    r = await web.post(
        f"/api/public/requests/{key}/messages/", data={"content": "Ответ без JS"},
        headers={"Accept": "text/html"},
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/r/{key}"
    assert await RequestMessage.filter(content="Ответ без JS").exists()


async def test_missing_and_bad_fields_get_clear_messages_in_the_page_language(web):
    r = await web.post("/api/public/requests/", data={"email": "not-an-email", "category": "x"})
    assert r.status_code == 400
    errors = r.json()
    assert errors["name"] == ["Заполните это поле."]
    assert errors["email"] == ["Введите правильный адрес электронной почты."]
    assert errors["category"] == ["Выберите категорию из списка."]
    r = await web.post("/api/public/requests/?lang=en", data={**FORM, "title": "x" * 201})
    assert r.status_code == 400
    assert r.json() == {"title": ["Too long: at most 200 characters."]}
    assert await CustomerRequest.all().count() == 0


async def test_upload_over_the_limit_is_refused_with_413_and_nothing_is_created(settings):
    async with web_server(settings, max_upload_mb=1) as client:
        big = b"x" * (1024 * 1024 + 10)
        r = await submit(client, files=[("attachments", ("big.bin", big, "application/octet-stream"))])
        assert r.status_code == 413
        assert "допускается не более 1 МБ" in r.json()["detail"]
        assert await CustomerRequest.all().count() == 0


async def test_unknown_key_shows_a_404_page_and_ids_never_grant_access(web):
    r = await web.get(f"/r/{secrets.token_urlsafe(32)}")
    assert r.status_code == 404
    assert "Обращение не найдено" in r.text
    assert (await web.get("/r/<script>")).status_code == 404
    assert (await web.get(f"/api/public/requests/{secrets.token_urlsafe(32)}/")).status_code == 404

    # Anna's file cannot be downloaded through Boris's key by guessing its id.
    anna = key_of(await submit(web, files=[("attachments", ("a.txt", b"secret", "text/plain"))]))
    boris = key_of(await submit(web, email="boris@example.com"))
    state = (await web.get(f"/api/public/requests/{anna}/")).json()
    att_id = state["messages"][0]["attachments"][0]["id"]
    r = await web.get(f"/api/public/requests/{boris}/attachments/{att_id}/")
    assert r.status_code == 404
    r = await web.get(f"/api/public/requests/{anna}/attachments/{att_id}/")
    assert r.status_code == 200


async def test_internal_notes_and_their_files_never_reach_the_customer(web, make_user):
    from core.requests import post_message

    key = key_of(await submit(web))
    req = await CustomerRequest.get(access_key=key)
    admin = await make_user("admin")
    await post_message(admin, req.id, "клиент странный", is_internal=True)
    await post_message(admin, req.id, "Здравствуйте! Проверяем.")
    state = (await web.get(f"/api/public/requests/{key}/")).json()
    contents = [m["content"] for m in state["messages"]]
    assert contents == ["Здравствуйте! Проверяем."]
    assert state["messages"][0]["sender_type"] == "admin"


async def test_poll_returns_only_messages_after_the_last_seen_id(web, make_user):
    from core.requests import post_message

    key = key_of(await submit(web))
    req = await CustomerRequest.get(access_key=key)
    admin = await make_user("admin")
    first = await post_message(admin, req.id, "первый")
    second = await post_message(admin, req.id, "второй")
    state = (await web.get(f"/api/public/requests/{key}/?after={first.id}")).json()
    assert [m["id"] for m in state["messages"]] == [second.id]
    assert (await web.get(f"/api/public/requests/{key}/?after=abc")).status_code == 400


async def test_customer_reply_is_stored_as_the_customers_web_message(web):
    key = key_of(await submit(web))
    req = await CustomerRequest.get(access_key=key)
    r = await web.post(
        f"/api/public/requests/{key}/messages/",
        data={"content": "Спасибо, жду"},
        files=[("attachments", ("photo.png", b"\x89PNG fake", "image/png"))],
    )
    assert r.status_code == 201, r.text
    assert [m["content"] for m in r.json()["messages"]][0] == "Спасибо, жду"
    rows = await RequestMessage.filter(request_id=req.id).order_by("id")
    assert rows[0].content == "Спасибо, жду"
    assert rows[0].sender_type == SenderType.customer
    assert rows[0].sender_id == req.customer_id
    assert rows[0].source == Source.web
    assert rows[1].message_type == "image"
    empty = await web.post(f"/api/public/requests/{key}/messages/", data={"content": "  "})
    assert empty.status_code == 400 and "content" in empty.json()


async def test_reply_to_a_closed_request_is_refused(web):
    key = key_of(await submit(web))
    await CustomerRequest.filter(access_key=key).update(status=Status.closed)
    r = await web.post(f"/api/public/requests/{key}/messages/", data={"content": "ещё вопрос"})
    assert r.status_code == 400
    assert "закрыт" in r.json()["error"]
    page = await web.get(f"/r/{key}")
    assert 'id="reply-section" hidden' in page.text.replace("\n", " ") or "reply-section\" hidden" in page.text


async def test_script_typed_into_fields_is_rendered_as_text(web):
    evil = "<script>alert(1)</script>"
    key = key_of(await submit(web, title=evil, description=evil + '"><img src=x onerror=alert(2)>', name=evil))
    page = (await web.get(f"/r/{key}")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    # The page data block cannot be closed early by a title containing </script>.
    data_block = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', page, re.S)
    assert data_block and "<" not in data_block.group(1)


async def test_form_submissions_are_rate_limited_per_client(settings):
    async with web_server(settings, web_rate_limit_per_min=2) as client:
        assert (await submit(client)).status_code == 201
        assert (await submit(client)).status_code == 201
        r = await submit(client)
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "Попробуйте снова через" in r.json()["detail"]
        assert await CustomerRequest.all().count() == 2
