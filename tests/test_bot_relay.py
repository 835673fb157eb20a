"""The relay and the sender over the wire: events become Telegram messages on the fake Bot API."""

from __future__ import annotations

import contextlib
import re

from bot.runtime import start_bot
from core import requests as svc
from db.models import TelegramMessageLink, TelegramOutbox, TelegramThread
from tests.fake_telegram import Call, FakeTelegram


@contextlib.asynccontextmanager
async def running_bot(settings):
    rt = await start_bot(settings)
    try:
        yield rt
    finally:
        await rt.stop()


def callbacks(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b.get("callback_data") for row in markup.get("inline_keyboard", []) for b in row]


def is_card_of(request_id: int):
    return lambda c: f"req:open:{request_id}" in callbacks(c) and c.method == "sendMessage"


async def test_request_created_over_rest_is_posted_as_card_with_buttons(
    telegram_settings, fake_telegram: FakeTelegram, api, make_user, token_for
):
    admin = await make_user("admin")
    customer = await make_user("customer", first_name="Иван")
    async with running_bot(telegram_settings):
        r = await api.post(
            "/api/admin/customer-requests/", await token_for(admin),
            json={"title": "Не работает <b>оплата</b> & всё", "description": "Ошибка <script>",
                  "customer_id": customer.id, "priority": "high", "category": "billing"},
        )
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        card = (await fake_telegram.wait_for("sendMessage", where=is_card_of(rid)))[0]
    assert card.params["chat_id"] == fake_telegram.admin_chat_id
    assert callbacks(card) == [f"req:take:{rid}", f"req:open:{rid}"]
    text = card.params["text"]
    assert f"#{rid}" in text and "&lt;b&gt;оплата&lt;/b&gt; &amp; всё" in text
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "Иван" in text and "Высокий" in text or "high" in text
    thread = await TelegramThread.get(request_id=rid)
    assert thread.card_message_id == card.result["message_id"]
    assert await TelegramMessageLink.filter(message_id=thread.card_message_id, request_id=rid).exists()


async def test_card_is_edited_in_place_when_an_admin_takes_the_request(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    admin = await make_user("admin", first_name="Пётр", last_name="Админов")
    customer = await make_user("customer")
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Printer", description="jammed")
        card = (await fake_telegram.wait_for("sendMessage", where=is_card_of(req.id)))[0]
        await svc.take_request(admin, req.id)
        edit = (await fake_telegram.wait_for("editMessageText"))[0]
    assert edit.params["message_id"] == card.result["message_id"]
    assert edit.params["chat_id"] == fake_telegram.admin_chat_id
    assert "Пётр Админов" in edit.params["text"]
    assert callbacks(edit) == [f"req:done:{req.id}", f"req:open:{req.id}"]


async def test_several_quick_changes_collapse_into_one_truthful_edit(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    director = await make_user("director")
    customer = await make_user("customer")
    fake_telegram.fail("sendMessage", status=502, times=1)  # the card needs a retry
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="T1", description="d")
        for n in range(2, 7):
            await svc.update_request(director, req.id, {"title": f"T{n}"})
        await fake_telegram.wait_for("sendMessage", where=is_card_of(req.id), timeout=15)
        import asyncio

        await asyncio.sleep(1.0)
    cards = [c for c in fake_telegram.calls_of("sendMessage") if is_card_of(req.id)(c)]
    edits = fake_telegram.calls_of("editMessageText")
    assert len(cards) == 1
    final = (edits[-1].params["text"] if edits else cards[0].params["text"])
    assert "T6" in final
    assert len(edits) <= 2, edits


async def test_forum_group_gets_a_topic_per_request_with_the_card_inside(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake_telegram.forum = True
    customer = await make_user("customer")
    async with running_bot(telegram_settings):
        r1 = await svc.create_request(customer, title="First", description="d")
        r2 = await svc.create_request(customer, title="Second", description="d")
        await fake_telegram.wait_for("sendMessage", where=is_card_of(r2.id))
        await fake_telegram.wait_for("sendMessage", where=is_card_of(r1.id))
    topics = fake_telegram.calls_of("createForumTopic")
    assert [t.params["name"] for t in topics] == [f"#{r1.id} First", f"#{r2.id} Second"]
    for req, topic in ((r1, topics[0]), (r2, topics[1])):
        card = (await fake_telegram.wait_for("sendMessage", where=is_card_of(req.id)))[0]
        assert card.params["message_thread_id"] == topic.result["message_thread_id"]
        thread = await TelegramThread.get(request_id=req.id)
        assert thread.topic_id == topic.result["message_thread_id"]
        assert thread.card_message_id == card.result["message_id"]


async def test_customer_hears_take_and_reply_but_never_an_internal_note(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    admin = await make_user("admin", first_name="Anna")
    customer = await make_user("customer", telegram_id=5550001, language="en")
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="VPN", description="down")
        await fake_telegram.wait_for("sendMessage", where=is_card_of(req.id))
        await svc.take_request(admin, req.id)
        await svc.post_message(admin, req.id, "SECRET: customer is a VIP", is_internal=True)
        await svc.post_message(admin, req.id, "Please restart the <router>")
        await fake_telegram.wait_for(
            "sendMessage", count=2, where=lambda c: c.params["chat_id"] == 5550001
        )
        # The web reply also lands in the request's thread in the group.
        await fake_telegram.wait_for(
            "sendMessage", where=lambda c: c.params["chat_id"] < 0 and "restart" in c.params["text"]
        )
        await svc.complete_request(admin, req.id)
        await fake_telegram.wait_for(
            "sendMessage", count=3, where=lambda c: c.params["chat_id"] == 5550001
        )
    texts = [c.params["text"] for c in fake_telegram.calls_of("sendMessage") if c.params["chat_id"] == 5550001]
    assert f"#{req.id}" in texts[0] and "taken into work" in texts[0]
    assert "Please restart the &lt;router&gt;" in texts[1]
    assert "completed" in texts[2]
    assert not any("SECRET" in t for t in texts)
    reply = next(c for c in fake_telegram.calls_of("sendMessage") if "Please restart" in c.params["text"] and c.params["chat_id"] == 5550001)
    assert await TelegramMessageLink.filter(chat_id=5550001, message_id=reply.result["message_id"], request_id=req.id).exists()


async def test_long_text_is_split_into_parts_under_the_limit(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    admin = await make_user("admin")
    customer = await make_user("customer", telegram_id=5550002)
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Long", description="d")
        await svc.take_request(admin, req.id)
        body = ("строка текста & <тег> " * 30 + "\n") * 10
        msg = await svc.post_message(admin, req.id, body)
        await fake_telegram.wait_for("sendMessage", where=lambda c: c.params["chat_id"] == 5550002 and "строка" in c.params["text"])
        rows = await TelegramOutbox.filter(chat_id=5550002, dedup_key__contains=":customer").count()
        assert rows >= 3
        parts = await fake_telegram.wait_for(
            "sendMessage", count=rows, timeout=15,
            where=lambda c: c.params["chat_id"] == 5550002 and "строка" in c.params["text"],
        )
    assert all(len(p.params["text"]) <= 4096 for p in parts)
    joined = "".join(re.sub(r"\s+", "", p.params["text"]) for p in parts)
    assert joined.count("строкатекста") == 300
    assert msg.id


async def test_admin_chat_bound_to_a_group_receives_web_chat_messages(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    from core.chats import create_chat, post_chat_message
    from db.models import AdminChat

    director = await make_user("director", first_name="Dir")
    chat = await create_chat(director, name="Ops", chat_type="general", participant_ids=[]) \
        if "participant_ids" in create_chat.__code__.co_varnames else await create_chat(director, name="Ops")
    await AdminChat.filter(id=chat.id).update(telegram_chat_id=-100777)
    async with running_bot(telegram_settings):
        await post_chat_message(director, chat.id, "Hello <team>")
        call = (await fake_telegram.wait_for("sendMessage", where=lambda c: c.params["chat_id"] == -100777))[0]
    assert "Hello &lt;team&gt;" in call.params["text"] and "Dir" in call.params["text"]
    assert await TelegramOutbox.filter(chat_id=-100777, status="sent").count() == 1
