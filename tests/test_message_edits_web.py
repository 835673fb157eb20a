"""Edits and deletions from the customer's web page (api.web.edits) and the staff console
(api.console.actions), over plain HTTP on SQLite and PostgreSQL: the same domain rules as
REST (own message, within MESSAGE_EDIT_WINDOW_HOURS), history with the old text, refusals in
the page's language, CSRF on the console, and the Telegram copy edited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from core import requests as svc
from core.history import entry_data, list_history
from db.models import CustomerRequest, RequestMessage, Source
from tests.bot_handlers_support import card_for, running_bot
from tests.console_helpers import signed_in
from tests.fake_telegram import FakeTelegram

PW = "pw-secret-1"
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}
FORM = {"name": "Anna", "email": "anna@example.com", "title": "Receipt", "description": "No receipt.",
        "category": "billing"}


async def _web_request(client: httpx.AsyncClient) -> tuple[str, CustomerRequest]:
    r = await client.post("/api/public/requests/", data=FORM, headers=JSON)
    key = r.json()["access_key"]
    return key, await CustomerRequest.get(access_key=key).prefetch_related("customer")


async def _history(actor, request_id: int, field: str) -> list[dict]:
    return [entry_data(e)["old"] for e in (await list_history(actor, request_id))[1] if e.field == field]


async def test_customer_edits_and_deletes_own_message_from_the_page(api, make_user):
    admin = await make_user("admin", password=PW)
    async with httpx.AsyncClient(base_url=api.base, timeout=30) as client:
        key, req = await _web_request(client)
        r = await client.post(f"/api/public/requests/{key}/messages/", data={"content": "Order 12345"},
                              headers=JSON)
        mid = r.json()["messages"][-1]["id"]
        # The page offers the controls (the thread is drawn by request.js from page data).
        page = await client.get(f"/r/{key}")
        assert '"edit_window_hours": 48' in page.text or '"edit_window_hours":48' in page.text
        # A plain form post (no JavaScript): back to the page, the text changed.
        r = await client.post(f"/api/public/requests/{key}/messages/{mid}/edit?lang=en",
                              data={"content": "Order 12346"}, headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == f"/r/{key}"
        row = await RequestMessage.get(id=mid)
        assert row.content == "Order 12346" and row.edited_at is not None
        # The script's PATCH answers the public message.
        r = await client.patch(f"/api/public/requests/{key}/messages/{mid}/edit",
                               json={"content": "Order 12347"}, headers=JSON)
        assert r.status_code == 200 and r.json()["content"] == "Order 12347" and r.json()["edited_at"]
        state = (await client.get(f"/api/public/requests/{key}/")).json()
        assert [m["content"] for m in state["messages"] if m["id"] == mid] == ["Order 12347"]
        r = await client.post(f"/api/public/requests/{key}/messages/{mid}/delete", headers=HTML)
        assert r.status_code == 303
        row = await RequestMessage.get(id=mid)
        assert row.is_deleted and row.content == "Order 12347"
        state = (await client.get(f"/api/public/requests/{key}/")).json()
        assert mid not in [m["id"] for m in state["messages"]]
        # Deleting again: gone, said on a page in the page's language.
        r = await client.post(f"/api/public/requests/{key}/messages/{mid}/delete?lang=en", headers=HTML)
        assert r.status_code == 404 and "has been deleted" in r.text
    assert {"message_id": mid, "content": "Order 12345"} in await _history(admin, req.id, "message_edited")
    assert {"message_id": mid, "content": "Order 12347"} in await _history(admin, req.id, "message_deleted")


async def test_page_refuses_others_messages_and_messages_past_the_window(api, make_user):
    admin = await make_user("admin", password=PW)
    async with httpx.AsyncClient(base_url=api.base, timeout=30) as client:
        key, req = await _web_request(client)
        await svc.take_request(admin, req.id)
        reply = await svc.post_message(admin, req.id, "We are on it", source=Source.api)
        r = await client.post(f"/api/public/requests/{key}/messages/{reply.id}/edit?lang=en",
                              data={"content": "hacked"}, headers=HTML)
        assert r.status_code == 403 and "only your own messages" in r.text
        r = await client.post(f"/api/public/requests/{key}/messages/{reply.id}/delete?lang=ru", headers=HTML)
        assert r.status_code == 403 and "только свои сообщения" in r.text  # the page language
        r = await client.delete(f"/api/public/requests/{key}/messages/{reply.id}/delete", headers=JSON)
        assert r.status_code == 403 and "только свои" in r.json()["detail"]
        r = await client.post(f"/api/public/requests/{key}/messages/", data={"content": "Old one"},
                              headers=JSON)
        mine = r.json()["messages"][-1]["id"]
        await RequestMessage.filter(id=mine).update(created_at=datetime.now(UTC) - timedelta(hours=49))
        r = await client.post(f"/api/public/requests/{key}/messages/{mine}/edit?lang=en",
                              data={"content": "New one"}, headers=HTML)
        assert r.status_code == 403 and "within 48 h" in r.text
        r = await client.patch(f"/api/public/requests/{key}/messages/{mine}/edit",
                               json={"content": "New one"}, headers=JSON)
        assert r.status_code == 403
        # Another request's key does not reach this request's messages.
        other_key, _ = await _web_request(client)
        r = await client.post(f"/api/public/requests/{other_key}/messages/{mine}/delete", headers=JSON)
        assert r.status_code == 404
    assert (await RequestMessage.get(id=reply.id)).content == "We are on it"
    row = await RequestMessage.get(id=mine)
    assert row.content == "Old one" and not row.is_deleted


async def test_console_edits_and_deletes_own_reply_and_note_with_csrf(api, make_user):
    admin = await make_user("admin", password=PW, first_name="Ivan")
    other = await make_user("admin", password=PW, first_name="Petr")
    customer = await make_user("customer", password=PW)
    req = await svc.create_request(customer, title="VPN", description="down")
    await svc.take_request(admin, req.id)
    reply = await svc.post_message(admin, req.id, "Reboot the routr", source=Source.web)
    note = await svc.post_message(admin, req.id, "VIP client", is_internal=True, source=Source.web)
    theirs = await svc.post_message(other, req.id, "Petr's note", is_internal=True, source=Source.web)
    base = f"/console/requests/{req.id}/"
    async with signed_in(api.base, admin.username) as (client, token):
        page = (await client.get(base)).text
        assert f'name="message_id" value="{reply.id}"' in page and f'name="message_id" value="{note.id}"' in page
        assert f'name="message_id" value="{theirs.id}"' not in page
        # Without the session's CSRF token: refused, nothing changes.
        for data in ({"message_id": reply.id, "content": "x"}, {"message_id": reply.id, "content": "x", "csrf_token": "bad"}):
            r = await client.post(base + "edit_message", data=data)
            assert r.status_code == 403
        r = await client.post(base + "delete_message", data={"message_id": note.id})
        assert r.status_code == 403
        assert (await RequestMessage.get(id=reply.id)).content == "Reboot the routr"
        assert not (await RequestMessage.get(id=note.id)).is_deleted
        # With it: through the domain.
        r = await client.post(base + "edit_message", data={"csrf_token": token, "message_id": reply.id,
                                                            "content": "Reboot the router"})
        assert r.status_code == 303
        assert "Сообщение изменено" in (await client.get(base)).text
        r = await client.post(base + "delete_message", data={"csrf_token": token, "message_id": note.id})
        assert r.status_code == 303
        # Someone else's note and a message past the window: the domain's refusal, a 403 page.
        r = await client.post(base + "edit_message", data={"csrf_token": token, "message_id": theirs.id,
                                                            "content": "mine now"})
        assert r.status_code == 403 and "только свои сообщения" in r.text
        await RequestMessage.filter(id=reply.id).update(created_at=datetime.now(UTC) - timedelta(hours=49))
        r = await client.post(base + "delete_message", data={"csrf_token": token, "message_id": reply.id})
        assert r.status_code == 403 and "48 ч" in r.text
        assert f'name="message_id" value="{reply.id}"' not in (await client.get(base)).text
    assert (await RequestMessage.get(id=reply.id)).content == "Reboot the router"
    assert not (await RequestMessage.get(id=reply.id)).is_deleted
    assert (await RequestMessage.get(id=note.id)).is_deleted
    assert (await RequestMessage.get(id=theirs.id)).content == "Petr's note"
    assert {"message_id": reply.id, "content": "Reboot the routr"} in await _history(admin, req.id, "message_edited")
    assert {"message_id": note.id, "content": "VIP client"} in await _history(admin, req.id, "message_deleted")


async def test_console_edit_reaches_the_customers_telegram_copy(
    api, telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    async with running_bot(telegram_settings):
        admin = await make_user("admin", password=PW, first_name="Olga")
        customer = await make_user("customer", first_name="Kim", telegram_id=7403)
        req = await svc.create_request(customer, title="Printer", description="jammed")
        await card_for(fake, req.id, timeout=15)
        await svc.take_request(admin, req.id)
        reply = await svc.post_message(admin, req.id, "Open tray two", source=Source.web)
        sent = (await fake.wait_for("sendMessage", where=lambda c: c.params.get("chat_id") == 7403
                                    and "tray two" in str(c.params.get("text"))))[0]
        async with signed_in(api.base, admin.username) as (client, token):
            r = await client.post(f"/console/requests/{req.id}/edit_message", data={
                "csrf_token": token, "message_id": reply.id, "content": "Open tray three"})
            assert r.status_code == 303
        await fake.wait_for("editMessageText", where=lambda c: c.params.get("chat_id") == 7403
                            and "tray three" in c.params["text"])
    assert fake.messages[(7403, sent.result["message_id"])]["text"].endswith("Open tray three")
