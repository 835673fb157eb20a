"""Edits and deletions stay in sync with Telegram (core.message_edits, telegram_delivery.relay,
bot.handlers.message_edits), over the wire against the fake Bot API."""

from __future__ import annotations

import asyncio
import copy

from core import requests as svc
from core.history import entry_data, list_history
from db.models import RequestMessage, TelegramMessageLink, User
from tests.bot_handlers_support import card_for, eventually, running_bot
from tests.fake_telegram import FakeTelegram

CUSTOMER_TG = 7302
ADMIN_TG = 7301


async def _desk(make_user, fake: FakeTelegram):
    admin = await make_user("admin", telegram_id=ADMIN_TG, first_name="Olga")
    customer = await make_user("customer", telegram_id=CUSTOMER_TG, first_name="Kim")
    req = await svc.create_request(customer, title="Printer", description="jammed")
    await User.filter(id=customer.id).update(active_request_id=req.id)
    return admin, customer, req


def to_chat(chat_id: int, needle: str):
    return lambda c: c.params.get("chat_id") == chat_id and needle in str(c.params.get("text") or c.params.get("caption"))


async def test_customer_edit_in_telegram_edits_the_stored_message_and_the_admin_copy(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    async with running_bot(telegram_settings):
        await card_for(fake, req.id)
        sent = fake.message_update(CUSTOMER_TG, fake.user(CUSTOMER_TG, "Kim"), "Order 1234")
        original_id = sent["message"]["message_id"]
        copy = (await fake.wait_for("sendMessage", where=to_chat(fake.admin_chat_id, "Order 1234")))[0]
        fake.edited_message_update(CUSTOMER_TG, original_id, text="Order 1243 <sorry>")
        edit = (await fake.wait_for("editMessageText", where=to_chat(fake.admin_chat_id, "Order 1243")))[0]
    assert edit.params["message_id"] == copy.result["message_id"]
    assert "Order 1243 &lt;sorry&gt;" in edit.params["text"] and "Kim" in edit.params["text"]
    assert "Order 1243" in fake.messages[(fake.admin_chat_id, copy.result["message_id"])]["text"]
    stored = await RequestMessage.get(request_id=req.id, sender_id=customer.id)
    assert stored.content == "Order 1243 <sorry>" and stored.edited_at is not None
    entries = [entry_data(row) for row in (await list_history(admin, req.id))[1]]
    edited = [e for e in entries if e["field"] == "message_edited"]
    assert edited and edited[0]["old"]["content"] == "Order 1234"
    assert edited[0]["new"]["content"] == "Order 1243 <sorry>" and edited[0]["channel"] == "telegram"


async def test_an_edit_that_arrives_before_its_message_is_stored_is_not_lost(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """A customer fixes a typo at once: the edit comes in the same batch of updates as the
    message, and the bot handles both at the same time. The edit waits for the message to be
    stored instead of being dropped as "not ours"; of two such edits the newer one wins."""
    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    async with running_bot(telegram_settings):
        await card_for(fake, req.id)
        kim = fake.user(CUSTOMER_TG, "Kim")
        # Snapshots: the fake keeps one dict per message and edits change it in place.
        sent = copy.deepcopy(fake.message_update(CUSTOMER_TG, kim, "Order 1234", push=False))
        original_id = sent["message"]["message_id"]
        first = fake.edited_message_update(CUSTOMER_TG, original_id, text="Order 1243", push=False)
        second = fake.edited_message_update(CUSTOMER_TG, original_id, text="Order 1342", push=False)
        for update in (sent, first, second):
            fake.push_update(update)
        await eventually(lambda: RequestMessage.filter(
            request_id=req.id, sender_id=customer.id, content="Order 1342").exists())
        card_copy = (await fake.wait_for("sendMessage", where=to_chat(fake.admin_chat_id, "Order 1")))[0]
        await fake.wait_for("editMessageText", where=to_chat(fake.admin_chat_id, "Order 1342"))
        await asyncio.sleep(0.5)  # nothing older comes after it
    shown = fake.messages[(fake.admin_chat_id, card_copy.result["message_id"])]["text"]
    assert "Order 1342" in shown
    stored = await RequestMessage.get(request_id=req.id, sender_id=customer.id)
    assert stored.content == "Order 1342"


async def test_a_banned_customer_edit_in_telegram_is_refused_politely(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    from core.bans import ban_customer

    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    async with running_bot(telegram_settings):
        await card_for(fake, req.id)
        sent = fake.message_update(CUSTOMER_TG, fake.user(CUSTOMER_TG, "Kim"), "Order 1234")
        await fake.wait_for("sendMessage", where=to_chat(fake.admin_chat_id, "Order 1234"))
        await ban_customer(await make_user("director"), customer.id)
        fake.edited_message_update(CUSTOMER_TG, sent["message"]["message_id"], text="Order 9999")
        await fake.wait_for("sendMessage", where=to_chat(CUSTOMER_TG, "заблокирован"))
        await asyncio.sleep(0.3)
    assert not fake.calls_of("editMessageText")
    stored = await RequestMessage.get(request_id=req.id, sender_id=customer.id)
    assert stored.content == "Order 1234" and stored.edited_at is None


async def test_admin_edit_of_a_group_reply_edits_the_customer_copy(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    async with running_bot(telegram_settings):
        card = await card_for(fake, req.id)
        await svc.take_request(admin, req.id)
        sent = fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Olga"), "Restart it, plaese",
                                   reply_to_message_id=card.result["message_id"])
        copy = (await fake.wait_for("sendMessage", where=to_chat(CUSTOMER_TG, "plaese")))[0]
        fake.edited_message_update(fake.admin_chat_id, sent["message"]["message_id"], text="Restart it, please")
        edit = (await fake.wait_for("editMessageText", where=to_chat(CUSTOMER_TG, "please")))[0]
        await asyncio.sleep(0.3)
    assert edit.params["message_id"] == copy.result["message_id"]
    assert (await RequestMessage.get(request_id=req.id, sender_id=admin.id, message_type="text")).content == "Restart it, please"
    # The admin's own message in the group is theirs: nothing is edited there.
    assert not [c for c in fake.calls_of("editMessageText") if c.params["chat_id"] == fake.admin_chat_id
                and c.params["message_id"] == sent["message"]["message_id"]]


async def test_edited_media_caption_edits_the_copy_caption(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    async with running_bot(telegram_settings):
        await card_for(fake, req.id)
        sent = fake.message_update(CUSTOMER_TG, fake.user(CUSTOMER_TG, "Kim"),
                                   photo=fake.photo("ph-9", b"\x89PNG-bytes"), caption="Broken screen")
        copy = (await fake.wait_for("copyMessage", where=lambda c: c.params["chat_id"] == fake.admin_chat_id))[0]
        await eventually(lambda: TelegramMessageLink.filter(message_id=copy.result["message_id"],
                                                            kind="caption").exists())
        fake.edited_message_update(CUSTOMER_TG, sent["message"]["message_id"], caption="Broken screen, see the crack")
        edit = (await fake.wait_for("editMessageCaption", where=to_chat(fake.admin_chat_id, "crack")))[0]
    assert edit.params["message_id"] == copy.result["message_id"]
    assert "Kim" in edit.params["caption"]
    stored = await RequestMessage.get(request_id=req.id, sender_id=customer.id)
    assert stored.content == "Broken screen, see the crack"


async def test_edited_internal_note_stays_in_the_group(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    async with running_bot(telegram_settings):
        card = await card_for(fake, req.id)
        await svc.take_request(admin, req.id)
        sent = fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Olga"), "/note customer is rude",
                                   reply_to_message_id=card.result["message_id"])
        note = await eventually(lambda: RequestMessage.filter(request_id=req.id, is_internal=True,
                                                              message_type="text").first())
        fake.edited_message_update(fake.admin_chat_id, sent["message"]["message_id"],
                                   text="/note customer is impatient")
        await eventually(lambda: RequestMessage.filter(id=note.id, content="customer is impatient").exists())
        await asyncio.sleep(0.5)
    assert not [c for c in fake.calls if c.params.get("chat_id") == CUSTOMER_TG
                and ("rude" in str(c.params) or "impatient" in str(c.params))]


async def test_customer_cannot_edit_someone_elses_message_by_link(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """An edited_message from a customer whose link points at staff's message changes nothing."""
    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    reply = await svc.post_message(admin, req.id, "We are on it")
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, fake.user(CUSTOMER_TG, "Kim"), "hello", push=False)
        mid = max(k[1] for k in fake.messages if k[0] == CUSTOMER_TG)
        await TelegramMessageLink.create(chat_id=CUSTOMER_TG, message_id=mid, request_id=req.id,
                                         request_message_id=reply.id, kind="origin")
        fake.edited_message_update(CUSTOMER_TG, mid, text="hacked")
        await asyncio.sleep(1.0)
    assert (await RequestMessage.get(id=reply.id)).content == "We are on it"


WEBHOOK_SECRET = "s3cr3t-token"


def _webhook_mode(settings):
    return settings.with_overrides(
        telegram_mode="webhook", telegram_webhook_secret=WEBHOOK_SECRET,
        telegram_webhook_url="https://desk.example.com/telegram/webhook/",
    )


def _message_and_edits(fake: FakeTelegram, text: str, *edits: str, update_ids: tuple[int, ...]):
    """Kim's message and its edits as Telegram would send them, with these update ids.
    Snapshots: the fake keeps one dict per message and edits change it in place."""
    sent = copy.deepcopy(fake.message_update(CUSTOMER_TG, fake.user(CUSTOMER_TG, "Kim"), text, push=False))
    mid = sent["message"]["message_id"]
    updates = [sent] + [copy.deepcopy(fake.edited_message_update(CUSTOMER_TG, mid, text=edit, push=False))
                        for edit in edits]
    for update, update_id in zip(updates, update_ids, strict=True):
        update["update_id"] = update_id
    return updates


async def _deliver(fake: FakeTelegram, base: str, update: dict) -> None:
    assert await fake.post_webhook(f"{base}/telegram/webhook/", update, secret=WEBHOOK_SECRET) == 200


async def _edited_texts(admin: User, request_id: int) -> list[str]:
    entries = [entry_data(row) for row in (await list_history(admin, request_id))[1]]
    return [e["new"]["content"] for e in entries if e["field"] == "message_edited"]


async def test_two_replicas_keep_the_newer_of_two_edits_whatever_order_they_handle_them(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """Webhook mode with two replicas: Telegram can hand the newer edit of a message to one
    replica and the older edit to another, which gets to it later. Each replica's EditOrder
    knows only the updates it saw; the stored message keeps the newer text all the same, and
    the older edit leaves no trace in the history."""
    from bootstrap.app import create_app
    from tests.live import serve

    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    settings = _webhook_mode(telegram_settings)
    sent, older, newer = _message_and_edits(fake, "Order 1234", "Order 1243", "Order 1342",
                                            update_ids=(7001, 7002, 7003))
    async with (
        serve(create_app(settings, name="replica_a")) as a,
        serve(create_app(settings, name="replica_b")) as b,
    ):
        await _deliver(fake, a, sent)
        stored = await RequestMessage.get(request_id=req.id, sender_id=customer.id)
        assert stored.content == "Order 1234"
        await _deliver(fake, a, newer)
        assert (await RequestMessage.get(id=stored.id)).content == "Order 1342"
        await _deliver(fake, b, older)
        # (read before the servers stop: stopping closes the database connections)
        assert (await RequestMessage.get(id=stored.id)).content == "Order 1342"
        assert await _edited_texts(admin, req.id) == ["Order 1342"]


async def test_a_newer_edit_back_to_the_stored_text_still_outranks_an_older_one(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """Kim changes a word and changes it back. The newer edit, back to the stored text, is
    handled first and changes nothing to store; it must still count as the newest, or the
    older edit, handled later by another replica, would put the changed word back."""
    from bootstrap.app import create_app
    from tests.live import serve

    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    settings = _webhook_mode(telegram_settings)
    sent, older, newer = _message_and_edits(fake, "Order 1234", "Order 1243", "Order 1234",
                                            update_ids=(7101, 7102, 7103))
    async with (
        serve(create_app(settings, name="replica_a")) as a,
        serve(create_app(settings, name="replica_b")) as b,
    ):
        await _deliver(fake, a, sent)
        await _deliver(fake, a, newer)
        await _deliver(fake, b, older)
        stored = await RequestMessage.get(request_id=req.id, sender_id=customer.id)
        assert stored.content == "Order 1234"
        assert await _edited_texts(admin, req.id) == []


async def test_a_later_edit_applies_though_telegram_restarted_its_update_ids_lower(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """After a week without updates Telegram starts update ids again from a random value, so
    a later edit can carry a smaller id than the edit before it. Edits are ordered by their
    edit_date first: the later text is kept, not dropped as "older"."""
    from bootstrap.app import create_app
    from tests.live import serve

    fake = fake_telegram
    admin, customer, req = await _desk(make_user, fake)
    settings = _webhook_mode(telegram_settings)
    sent, first, later = _message_and_edits(fake, "Order 1234", "Order 1243", "Order 1342",
                                            update_ids=(880_000_001, 880_000_002, 4_711))
    later["edited_message"]["edit_date"] = first["edited_message"]["edit_date"] + 2
    async with serve(create_app(settings, name="replica_a")) as a:
        for update in (sent, first, later):
            await _deliver(fake, a, update)
        stored = await RequestMessage.get(request_id=req.id, sender_id=customer.id)
        assert stored.content == "Order 1342"
        assert await _edited_texts(admin, req.id) == ["Order 1243", "Order 1342"]
