"""Relay of files both ways, forum topics that disappear, the webhook route, late commits."""

from __future__ import annotations

import asyncio

import httpx

from bot.runtime import start_bot
from core import requests as svc
from db.models import Event, RequestAttachment, TelegramOutbox, TelegramThread, User
from telegram_delivery.relay import Relay
from tests.bot_handlers_support import card_for, running_bot
from tests.fake_telegram import FakeTelegram
from tests.live import serve


async def test_customer_photo_and_admin_document_cross_over_as_copies(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    admin = await make_user("admin", telegram_id=7001, first_name="Olga")
    customer = await make_user("customer", telegram_id=7002, first_name="Kim")
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Screen broken", description="see photo")
        await User.filter(id=customer.id).update(active_request_id=req.id)
        card = await card_for(fake, req.id)
        fake.message_update(7002, fake.user(7002, "Kim"), photo=fake.photo("ph-1", b"\x89PNG-bytes"),
                            caption="Screenshot <1>")
        copy = (await fake.wait_for("copyMessage", where=lambda c: c.params["chat_id"] == fake.admin_chat_id))[0]
        assert copy.params["from_chat_id"] == 7002
        assert "Kim" in copy.params["caption"] and "Screenshot &lt;1&gt;" in copy.params["caption"]
        assert copy.params["reply_parameters"]["message_id"] == card.result["message_id"]
        stored = await RequestAttachment.filter(request_id=req.id).first()
        assert stored is not None and stored.size == len(b"\x89PNG-bytes")

        await svc.take_request(admin, req.id)
        fake.message_update(
            fake.admin_chat_id, fake.user(7001, "Olga"),
            document=fake.document("doc-1", b"%PDF-1.4 invoice", "invoice.pdf", "application/pdf"),
            caption="Your invoice", reply_to_message_id=card.result["message_id"],
        )
        back = (await fake.wait_for("copyMessage", where=lambda c: c.params["chat_id"] == 7002))[0]
        assert back.params["from_chat_id"] == fake.admin_chat_id
        assert "Your invoice" in back.params["caption"]
        await asyncio.sleep(0.3)
    # Nothing was echoed back where it came from.
    assert not [c for c in fake.calls_of("copyMessage") if c.params["chat_id"] == c.params["from_chat_id"]]
    assert len(fake.calls_of("copyMessage")) == 2


async def test_file_uploaded_over_rest_reaches_customer_and_group_as_a_document(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    from core.attachments import save_attachment

    fake = fake_telegram
    admin = await make_user("admin", first_name="Olga")
    customer = await make_user("customer", telegram_id=7102)
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Contract", description="please send")
        await card_for(fake, req.id)
        await svc.take_request(admin, req.id)
        await save_attachment(admin, req.id, name="contract.txt", content=b"terms & conditions",
                              content_type="text/plain", caption="Signed <copy>")
        docs = await fake.wait_for("sendDocument", count=2)
    to_customer = next(c for c in docs if c.params["chat_id"] == 7102)
    to_group = next(c for c in docs if c.params["chat_id"] == fake.admin_chat_id)
    assert list(to_customer.files.values()) == [b"terms & conditions"]
    assert "Signed &lt;copy&gt;" in to_customer.params["caption"]
    assert "Olga" in to_group.params["caption"]


async def test_deleted_forum_topic_is_recreated_and_the_message_resent(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    fake.forum = True
    customer = await make_user("customer", first_name="Kim")
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Topic", description="d")
        card = await card_for(fake, req.id)
        old_topic = card.params["message_thread_id"]
        fake.delete_topic(fake.admin_chat_id, old_topic)
        await svc.post_message(customer, req.id, "Are you there?")
        relayed = (await fake.wait_for("sendMessage", where=lambda c: "Are you there?" in c.params["text"]))[0]
    topics = fake.calls_of("createForumTopic")
    assert len(topics) == 2
    assert relayed.params["message_thread_id"] == topics[1].result["message_thread_id"] != old_topic
    assert (await TelegramThread.get(request_id=req.id)).topic_id == relayed.params["message_thread_id"]


async def test_webhook_rejects_a_wrong_secret_and_handles_a_retried_update_once(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    from api.app import create_app

    fake = fake_telegram
    settings = telegram_settings.with_overrides(
        telegram_mode="webhook", telegram_webhook_secret="s3cr3t-token",
        telegram_webhook_url="https://desk.example.com/telegram/webhook/",
    )
    app = create_app(settings)
    async with serve(app) as base:
        rt = await start_bot(settings)  # registers the webhook; no polling
        try:
            assert fake.webhook_url == settings.telegram_webhook_url
            assert fake.webhook_secret == "s3cr3t-token"
            assert not fake.calls_of("getUpdates")
            url = f"{base}/telegram/webhook/"
            update = fake.message_update(8001, fake.user(8001, "Web"), "/start", push=False)
            update["update_id"] = 424242
            assert await fake.post_webhook(url, update, secret="wrong") == 403
            assert await fake.post_webhook(url, update) == 403
            assert await fake.post_webhook(url, update, secret="s3cr3t-token") == 200
            assert await fake.post_webhook(url, update, secret="s3cr3t-token") == 200
            async with httpx.AsyncClient() as client:
                r = await client.post(url, content=b"not json",
                                      headers={"X-Telegram-Bot-Api-Secret-Token": "s3cr3t-token"})
                assert r.status_code == 400
            await asyncio.sleep(0.3)
        finally:
            await rt.stop()
    answers = [c for c in fake.calls_of("sendMessage") if c.params["chat_id"] == 8001]
    assert answers, "the update was not handled"
    # /start answered once although delivered twice.
    assert len([c for c in answers if "Choose your language" in c.params["text"]]) == 1


async def test_an_event_committed_late_behind_a_higher_id_is_still_relayed(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    customer = await make_user("customer")
    reqs = [await svc.create_request(customer, title=f"R{n}", description="d") for n in range(3)]
    events = await Event.filter(type="new_request").order_by("id")
    late = events[1]
    # Event 2 is not visible yet (its transaction commits after event 3's).
    await Event.filter(id=late.id).delete()
    relay = Relay(telegram_settings)
    assert await relay.process_once() == 2
    assert not await TelegramOutbox.filter(dedup_key=f"new:{reqs[1].id}:card").exists()
    await Event.create(id=late.id, type=late.type, topic=late.topic, payload=late.payload)
    assert await relay.process_once() == 1
    assert await TelegramOutbox.filter(dedup_key=f"new:{reqs[1].id}:card").exists()
    # Re-reading (a restarted relay with an empty memory) queues nothing twice.
    again = Relay(telegram_settings)
    await again.process_once()
    assert await TelegramOutbox.filter(dedup_key__startswith="new:").count() == 3


async def test_first_start_does_not_replay_old_history(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    from datetime import UTC, datetime, timedelta

    customer = await make_user("customer")
    old = await svc.create_request(customer, title="Last year", description="d")
    await Event.all().update(created_at=datetime.now(UTC) - timedelta(days=300))
    recent = await svc.create_request(customer, title="Just now", description="d")
    relay = Relay(telegram_settings)
    await relay.process_once()
    assert await TelegramOutbox.filter(dedup_key=f"new:{recent.id}:card").exists()
    assert not await TelegramOutbox.filter(dedup_key=f"new:{old.id}:card").exists()
