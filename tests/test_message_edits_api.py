"""Edits and deletions over REST and the WebSockets, mirrored to every Telegram copy
(core.message_edits, api.routes.message_edits, api.ws, telegram_delivery.relay, telegram_delivery.sender)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core import requests as svc
from core.history import entry_data, list_history
from db.models import RequestMessage, TelegramOutbox, User
from tests.bot_handlers_support import card_for, eventually, running_bot
from tests.fake_telegram import FakeTelegram
from tests.wsutil import connect, recv_until

CUSTOMER_TG = 7402
ADMIN = "/api/admin/customer-requests"
CUSTOMER = "/api/customer/requests"


def to_chat(chat_id: int, needle: str = ""):
    return lambda c: c.params.get("chat_id") == chat_id and needle in str(c.params.get("text") or "")


async def _taken(make_user, fake: FakeTelegram | None = None, **customer_kw):
    admin = await make_user("admin", first_name="Olga")
    customer = await make_user("customer", first_name="Kim", **customer_kw)
    req = await svc.create_request(customer, title="Printer", description="jammed", with_access_key=True)
    if fake is not None:  # the card first (with its Take button), then the take
        await card_for(fake, req.id, timeout=15)
    await svc.take_request(admin, req.id)
    return admin, customer, req


# --- REST rules ---------------------------------------------------------------------------


async def test_own_message_is_edited_and_deleted_within_the_window(api, settings, make_user, token_for):
    admin, customer, req = await _taken(make_user)
    reply = await svc.post_message(admin, req.id, "Restart it, plaese")
    mine = await svc.post_message(customer, req.id, "Doesnt work")
    staff, cust = await token_for(admin), await token_for(customer)

    r = await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{reply.id}/", staff, json={"content": "Restart it, please"})
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "Restart it, please" and r.json()["edited_at"]
    r = await api.request("PATCH", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust, json={"content": "Doesn't work"})
    assert r.status_code == 200, r.text
    thread = (await api.get(f"{CUSTOMER}/{req.id}/messages/", cust)).json()
    assert [m["content"] for m in thread if m["message_type"] == "text"] == ["Restart it, please", "Doesn't work"]

    r = await api.request("DELETE", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust)
    assert r.status_code == 204, r.text
    thread = (await api.get(f"{ADMIN}/{req.id}/messages/", staff)).json()
    assert mine.id not in [m["id"] for m in thread]
    row = await RequestMessage.get(id=mine.id)
    assert row.is_deleted and row.content == "Doesn't work"  # soft: nothing is lost
    entries = [entry_data(e) for e in (await list_history(admin, req.id))[1]]
    assert {"message_id": mine.id, "content": "Doesn't work"} in [e["old"] for e in entries if e["field"] == "message_deleted"]
    assert {"message_id": reply.id, "content": "Restart it, plaese"} in [e["old"] for e in entries if e["field"] == "message_edited"]
    r = await api.request("DELETE", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust)
    assert r.status_code == 404


async def test_someone_elses_message_and_an_old_one_are_refused_with_a_reason(api, settings, make_user, token_for):
    admin, customer, req = await _taken(make_user)
    other = await make_user("admin", first_name="Ivan")
    reply = await svc.post_message(admin, req.id, "Reply")
    mine = await svc.post_message(customer, req.id, "Question")
    r = await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{reply.id}/", await token_for(other), json={"content": "x"})
    assert r.status_code == 403 and "свои" in r.text
    r = await api.request("DELETE", f"{ADMIN}/{req.id}/messages/{mine.id}/", await token_for(admin))
    assert r.status_code == 403 and "свои" in r.text
    await RequestMessage.filter(id=mine.id).update(created_at=datetime.now(UTC) - timedelta(hours=49))
    cust = await token_for(customer)
    r = await api.request("PATCH", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust, json={"content": "Question!"})
    assert r.status_code == 403 and "48" in r.text
    r = await api.request("DELETE", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust)
    assert r.status_code == 403
    assert (await RequestMessage.get(id=mine.id)).content == "Question"
    # A stranger's request: not found, whatever the message.
    stranger = await make_user("customer")
    r = await api.request("PATCH", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", await token_for(stranger), json={"content": "x"})
    assert r.status_code == 404


async def test_customer_routes_answer_customer_facing_and_counts_follow_deletions(
    api, settings, make_user, token_for
):
    admin, customer, req = await _taken(make_user)
    await svc.post_message(admin, req.id, "Reply")
    note = await svc.post_message(admin, req.id, "Staff only", is_internal=True)
    mine = await svc.post_message(customer, req.id, "Question")
    staff, cust = await token_for(admin), await token_for(customer)
    before = (await api.get(f"{CUSTOMER}/{req.id}/", cust)).json()["messages_count"]
    staff_before = (await api.get(f"{ADMIN}/{req.id}/", staff)).json()["messages_count"]

    r = await api.request("PATCH", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust, json={"content": "Question!"})
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "Question!" and r.json()["edited_at"]
    assert not {"sender", "is_internal", "is_read"} & set(r.json())  # customer_message_data

    # Deleting an internal note: the customer's count does not move (it never counted it).
    assert (await api.request("DELETE", f"{ADMIN}/{req.id}/messages/{note.id}/", staff)).status_code == 204
    assert (await api.get(f"{CUSTOMER}/{req.id}/", cust)).json()["messages_count"] == before
    # Deleting a public message lowers both counts.
    assert (await api.request("DELETE", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust)).status_code == 204
    assert (await api.get(f"{CUSTOMER}/{req.id}/", cust)).json()["messages_count"] == before - 1
    assert (await api.get(f"{ADMIN}/{req.id}/", staff)).json()["messages_count"] == staff_before - 2


async def test_a_banned_customer_can_neither_edit_nor_delete(api, settings, make_user, token_for):
    from core.bans import ban_customer

    admin, customer, req = await _taken(make_user)
    mine = await svc.post_message(customer, req.id, "Question")
    cust = await token_for(customer)
    director = await make_user("director")
    await ban_customer(director, customer.id)
    r = await api.request("PATCH", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust, json={"content": "Spam"})
    assert r.status_code == 403, r.text
    r2 = await api.request("DELETE", f"{CUSTOMER}/{req.id}/messages/{mine.id}/", cust)
    assert r2.status_code == 403
    assert "заблокирован" in r.json()["detail"] and r.json()["detail"] == r2.json()["detail"]
    row = await RequestMessage.get(id=mine.id)
    assert row.content == "Question" and not row.is_deleted


# --- WebSockets ---------------------------------------------------------------------------


async def test_edit_and_delete_frames_on_admin_and_public_sockets_notes_stay_internal(
    api, settings, make_user, token_for
):
    admin, customer, req = await _taken(make_user)
    reply = await svc.post_message(admin, req.id, "Reply v1")
    note = await svc.post_message(admin, req.id, "Note v1", is_internal=True)
    staff = await token_for(admin)
    async with await connect(api.base, "/ws/admin/notifications/", staff) as admin_ws, \
            await connect(api.base, f"/ws/public/requests/{req.access_key}/") as page_ws:
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{note.id}/", staff, json={"content": "Note v2"})
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{reply.id}/", staff, json={"content": "Reply v2"})
        page = [await recv_until(page_ws, lambda f: f.get("type") in ("message_updated", "message_deleted"))]
        # The page's frames are built from the stored message (a message deleted by then is
        # left out), so the deletion follows once the edit has been shown.
        await api.request("DELETE", f"{ADMIN}/{req.id}/messages/{reply.id}/", staff)
        frame = await recv_until(admin_ws, lambda f: f.get("type") == "message_deleted")
        page.append(await recv_until(page_ws, lambda f: f.get("type") in ("message_updated", "message_deleted")))
    assert frame["data"]["id"] == reply.id and frame["data"]["is_deleted"] is True
    assert [(f["type"], f["data"]["id"]) for f in page] == [("message_updated", reply.id), ("message_deleted", reply.id)]
    assert page[0]["data"]["content"] == "Reply v2" and page[0]["data"]["edited_at"]
    assert "Note" not in str(page)
    # The customer-facing serializer: staff by display name only, nothing internal, and a
    # deletion carries no text.
    assert page[0]["data"]["sender_name"] == "Olga Test"
    assert admin.username not in str(page) and admin.email not in str(page)
    assert not {"sender", "is_internal", "is_read"} & set(page[0]["data"])
    assert page[1]["data"] == {"id": reply.id, "request": req.id, "is_deleted": True}
    # The admin socket got the note's edit too, flagged internal (replayed from the log).
    async with await connect(api.base, "/ws/admin/notifications/?last_event_id=0", staff) as again:
        upd = await recv_until(again, lambda f: f.get("type") == "message_updated" and f["data"]["id"] == note.id)
    assert upd["data"]["is_internal"] is True and upd["data"]["content"] == "Note v2"


# --- mirrored to Telegram -----------------------------------------------------------------


async def test_rest_edit_and_delete_reach_every_telegram_copy(
    api, telegram_settings, fake_telegram: FakeTelegram, make_user, token_for
):
    fake = fake_telegram
    async with running_bot(telegram_settings):
        admin, customer, req = await _taken(make_user, fake, telegram_id=CUSTOMER_TG)
        staff = await token_for(admin)
        r = await api.post(f"{ADMIN}/{req.id}/messages/", staff, json={"content": "Try the blue cable"})
        mid = r.json()["id"]
        to_customer = (await fake.wait_for("sendMessage", where=to_chat(CUSTOMER_TG, "blue cable")))[0]
        in_group = (await fake.wait_for("sendMessage", where=to_chat(fake.admin_chat_id, "blue cable")))[0]
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{mid}/", staff, json={"content": "Try the red cable"})
        edits = await fake.wait_for("editMessageText", count=2, where=lambda c: "red cable" in c.params["text"])
        assert {(c.params["chat_id"], c.params["message_id"]) for c in edits} == {
            (CUSTOMER_TG, to_customer.result["message_id"]), (fake.admin_chat_id, in_group.result["message_id"])}
        assert fake.messages[(CUSTOMER_TG, to_customer.result["message_id"])]["text"].endswith("Try the red cable")
        await api.request("DELETE", f"{ADMIN}/{req.id}/messages/{mid}/", staff)
        await fake.wait_for("deleteMessage", count=2)
    assert (CUSTOMER_TG, to_customer.result["message_id"]) in fake.deleted
    assert (fake.admin_chat_id, in_group.result["message_id"]) in fake.deleted


async def test_shortened_edit_of_a_three_part_message_edits_the_first_and_deletes_the_rest(
    api, telegram_settings, fake_telegram: FakeTelegram, make_user, token_for
):
    fake = fake_telegram
    async with running_bot(telegram_settings):
        admin, customer, req = await _taken(make_user, fake, telegram_id=CUSTOMER_TG)
        staff = await token_for(admin)
        long_text = "\n\n".join(f"Step {n}: " + "check the cable and the port " * 17 for n in range(19))
        assert 8300 < len(long_text) < 10000
        r = await api.post(f"{ADMIN}/{req.id}/messages/", staff, json={"content": long_text})
        mid = r.json()["id"]
        parts = await fake.wait_for("sendMessage", count=3, where=to_chat(CUSTOMER_TG, "check the cable"))
        ids = [c.result["message_id"] for c in parts]
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{mid}/", staff, json={"content": "Short: replace the cable."})
        edit = (await fake.wait_for("editMessageText", where=to_chat(CUSTOMER_TG, "Short")))[0]
        await eventually(lambda: asyncio.sleep(0, result=(CUSTOMER_TG, ids[2]) in fake.deleted))
    assert edit.params["message_id"] == ids[0]
    assert (CUSTOMER_TG, ids[1]) in fake.deleted and (CUSTOMER_TG, ids[2]) in fake.deleted
    assert fake.messages[(CUSTOMER_TG, ids[0])]["text"].endswith("Short: replace the cable.")


async def test_edits_during_a_429_storm_wait_and_collapse_into_the_newest(
    api, telegram_settings, fake_telegram: FakeTelegram, make_user, token_for
):
    fake = fake_telegram
    async with running_bot(telegram_settings):
        admin, customer, req = await _taken(make_user, fake, telegram_id=CUSTOMER_TG)
        staff = await token_for(admin)
        mid = (await api.post(f"{ADMIN}/{req.id}/messages/", staff, json={"content": "Version 1"})).json()["id"]
        copy = (await fake.wait_for("sendMessage", where=to_chat(CUSTOMER_TG, "Version 1")))[0]
        fake.fail("editMessageText", status=429, retry_after=2, times=1,
                  where=lambda c: c.params.get("chat_id") == CUSTOMER_TG)
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{mid}/", staff, json={"content": "Version 2"})
        await fake.wait_for("editMessageText", include_failed=True, where=lambda c: c.status == 429)
        for n in (3, 4, 5):
            await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{mid}/", staff, json={"content": f"Version {n}"})
        await fake.wait_for("editMessageText", where=to_chat(CUSTOMER_TG, "Version 5"), timeout=15)
        await asyncio.sleep(1.0)
    to_customer = [c for c in fake.calls_of("editMessageText", include_failed=True) if c.params["chat_id"] == CUSTOMER_TG]
    # One refused by the 429, then one call with the newest text: versions 2-4 cost nothing more.
    assert [(c.status, c.params["text"].rsplit("\n", 1)[-1]) for c in to_customer] == [(429, "Version 2"), (200, "Version 5")]
    assert fake.messages[(CUSTOMER_TG, copy.result["message_id"])]["text"].endswith("Version 5")
    rows = await TelegramOutbox.filter(chat_id=CUSTOMER_TG, dedup_key__startswith="copy:").values_list("status", flat=True)
    assert sorted(rows) == ["merged", "merged", "merged", "sent"]


async def test_an_edit_or_a_deletion_made_while_the_copy_waits_out_a_429_reaches_it_once_sent(
    api, telegram_settings, fake_telegram: FakeTelegram, make_user, token_for
):
    """The relay edits the copies the bot has sent; a copy still queued (here held back by a
    429) was rendered from the old text. Once sent it is brought to the current text, or
    deleted when the message was deleted meanwhile: nothing the staff changed is lost."""
    fake = fake_telegram
    async with running_bot(telegram_settings):
        admin, customer, req = await _taken(make_user, fake, telegram_id=CUSTOMER_TG)
        staff = await token_for(admin)
        fake.fail("sendMessage", status=429, retry_after=2, times=1, where=to_chat(CUSTOMER_TG, "cable"))
        mid = (await api.post(f"{ADMIN}/{req.id}/messages/", staff, json={"content": "Try the blue cable"})).json()["id"]
        await fake.wait_for("sendMessage", include_failed=True, where=lambda c: c.status == 429)
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{mid}/", staff, json={"content": "Try the red cable"})
        sent = (await fake.wait_for("sendMessage", where=to_chat(CUSTOMER_TG, "cable"), timeout=15))[0]
        assert sent.params["text"].endswith("blue cable")  # rendered before the edit
        await fake.wait_for("editMessageText", where=to_chat(CUSTOMER_TG, "red cable"))
        assert fake.messages[(CUSTOMER_TG, sent.result["message_id"])]["text"].endswith("Try the red cable")

        fake.fail("sendMessage", status=429, retry_after=2, times=1, where=to_chat(CUSTOMER_TG, "router"))
        gone = (await api.post(f"{ADMIN}/{req.id}/messages/", staff, json={"content": "Reset the router"})).json()["id"]
        await fake.wait_for("sendMessage", include_failed=True, where=lambda c: c.status == 429 and "router" in c.params["text"])
        await api.request("DELETE", f"{ADMIN}/{req.id}/messages/{gone}/", staff)
        late = (await fake.wait_for("sendMessage", where=to_chat(CUSTOMER_TG, "router"), timeout=15))[0]
        await eventually(lambda: asyncio.sleep(0, result=(CUSTOMER_TG, late.result["message_id"]) in fake.deleted))


async def test_an_internal_note_edited_while_its_group_copy_waits_out_a_429_is_brought_up_to_date(
    api, telegram_settings, fake_telegram: FakeTelegram, make_user, token_for
):
    """The admin group's side of the resync: a note's copy, queued behind a 429 when the
    note was edited, is re-rendered once sent as the relay renders it there (the internal
    note's header, the group's language), and never reaches the customer's chat."""
    fake = fake_telegram
    async with running_bot(telegram_settings):
        admin, customer, req = await _taken(make_user, fake, telegram_id=CUSTOMER_TG)
        staff = await token_for(admin)
        fake.fail("sendMessage", status=429, retry_after=2, times=1, where=to_chat(fake.admin_chat_id, "fuser"))
        mid = (await api.post(f"{ADMIN}/{req.id}/messages/", staff,
                              json={"content": "Check the fuser", "is_internal": True})).json()["id"]
        await fake.wait_for("sendMessage", include_failed=True, where=lambda c: c.status == 429)
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{mid}/", staff,
                          json={"content": "Check the fuser and the rollers"})
        sent = (await fake.wait_for("sendMessage", where=to_chat(fake.admin_chat_id, "fuser"), timeout=15))[0]
        assert sent.params["text"].endswith("Check the fuser")  # rendered before the edit
        edit = (await fake.wait_for("editMessageText", where=to_chat(fake.admin_chat_id, "rollers")))[0]
        assert edit.params["message_id"] == sent.result["message_id"]
        assert edit.params["text"].startswith("🔒 Внутренняя заметка, Olga")
        assert edit.params["text"].endswith("Check the fuser and the rollers")
    assert not [c for c in fake.calls if c.params.get("chat_id") == CUSTOMER_TG and "fuser" in str(c.params)]


async def test_telegram_refusals_close_the_row_without_retries(
    api, telegram_settings, fake_telegram: FakeTelegram, make_user, token_for
):
    fake = fake_telegram
    async with running_bot(telegram_settings):
        admin, customer, req = await _taken(make_user, fake, telegram_id=CUSTOMER_TG)
        staff = await token_for(admin)
        mid = (await api.post(f"{ADMIN}/{req.id}/messages/", staff, json={"content": "Old answer"})).json()["id"]
        copy = (await fake.wait_for("sendMessage", where=to_chat(CUSTOMER_TG, "Old answer")))[0]
        fake.fail("editMessageText", status=400, times=5, description="Bad Request: message can't be edited",
                  where=lambda c: c.params.get("chat_id") == CUSTOMER_TG)
        await api.request("PATCH", f"{ADMIN}/{req.id}/messages/{mid}/", staff, json={"content": "New answer"})
        await eventually(lambda: TelegramOutbox.filter(chat_id=CUSTOMER_TG, dedup_key__endswith=":e",
                                                       status="ignored").exists())
        fake.age_message(CUSTOMER_TG, copy.result["message_id"], 49 * 3600)
        await api.request("DELETE", f"{ADMIN}/{req.id}/messages/{mid}/", staff)
        await eventually(lambda: TelegramOutbox.filter(chat_id=CUSTOMER_TG, dedup_key__endswith=":d",
                                                       status="ignored").exists())
        await asyncio.sleep(1.5)
    tries = [c for c in fake.calls if c.method in ("editMessageText", "deleteMessage")
             and c.params.get("chat_id") == CUSTOMER_TG]
    assert [(c.method, c.status) for c in tries] == [("editMessageText", 400), ("deleteMessage", 400)]
    assert (await RequestMessage.get(id=mid)).is_deleted  # the desk's side is done regardless
    assert not await RequestMessage.filter(request_id=req.id, is_internal=True, content__contains="outbox").exists()
    assert await User.filter(id=customer.id).exists()
