"""Customers in a private chat with the bot, over the wire against the fake Bot API."""

from __future__ import annotations

from core.requests import create_request
from core.users import set_active_request
from db.models import CustomerRequest, RequestAttachment, RequestMessage, Source, User
from tests.bot_handlers_support import (
    buttons_of,
    eventually,
    reply_containing,
    running_bot,
)

CUSTOMER_TG = 5001


async def _user(tg_id: int) -> User | None:
    return await User.filter(telegram_id=tg_id).first()


async def test_customer_creates_request_with_new_and_it_becomes_active(telegram_settings, fake_telegram):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan", username="ivan")
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, "/new")
        await reply_containing(fake, CUSTOMER_TG, "тему")
        fake.message_update(CUSTOMER_TG, who, "Не работает оплата")
        await reply_containing(fake, CUSTOMER_TG, "подробнее")
        fake.message_update(CUSTOMER_TG, who, "Карта отклоняется при оплате заказа")
        ask = await fake.wait_for("sendMessage", where=lambda c: c.params.get("chat_id") == CUSTOMER_TG
                                  and "cat:billing" in buttons_of(c))
        message_id = ask[0].result["message_id"]
        fake.callback_update(who, CUSTOMER_TG, message_id, "cat:billing")
        await reply_containing(fake, CUSTOMER_TG, "создан")
        req = await eventually(lambda: CustomerRequest.filter(title="Не работает оплата").first())
        assert req.category == "billing" and req.source == Source.telegram
        assert req.description == "Карта отклоняется при оплате заказа"
        customer = await _user(CUSTOMER_TG)
        assert customer.role == "customer" and customer.first_name == "Ivan"
        assert req.customer_id == customer.id and customer.active_request_id == req.id
        # a plain message now continues the new request
        fake.message_update(CUSTOMER_TG, who, "Заказ 12345")
        msg = await eventually(lambda: RequestMessage.filter(request_id=req.id, content="Заказ 12345").first())
        assert msg.sender_type == "customer" and msg.source == Source.telegram


async def test_customer_gets_clear_reply_for_empty_or_too_long_title(telegram_settings, fake_telegram):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, "/new")
        await reply_containing(fake, CUSTOMER_TG, "тему")
        fake.message_update(CUSTOMER_TG, who, "   ")
        await reply_containing(fake, CUSTOMER_TG, "не может быть пустой")
        fake.message_update(CUSTOMER_TG, who, "x" * 201)
        await reply_containing(fake, CUSTOMER_TG, "201")
        fake.message_update(CUSTOMER_TG, who, "/cancel")
        await reply_containing(fake, CUSTOMER_TG, "отменено")
    assert await CustomerRequest.all().count() == 0


async def test_customer_without_active_request_is_told_to_use_new(telegram_settings, fake_telegram):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, "Здравствуйте, у меня вопрос")
        await reply_containing(fake, CUSTOMER_TG, "/new")
    assert await RequestMessage.all().count() == 0


async def test_customer_chooses_english_and_gets_english_texts(telegram_settings, fake_telegram):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "John", language_code="de")
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, "/start")
        prompt = await fake.wait_for("sendMessage", where=lambda c: "lang:en" in buttons_of(c))
        fake.callback_update(who, CUSTOMER_TG, prompt[0].result["message_id"], "lang:en")
        await reply_containing(fake, CUSTOMER_TG, "Language: English")
        assert (await _user(CUSTOMER_TG)).language == "en"
        fake.message_update(CUSTOMER_TG, who, "/new")
        await reply_containing(fake, CUSTOMER_TG, "subject of your request")


async def test_my_lists_requests_and_switches_the_active_one(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    customer = await make_user("customer", telegram_id=CUSTOMER_TG)
    first = await create_request(customer, title="Первый", description="d", source=Source.telegram)
    second = await create_request(customer, title="Второй", description="d", source=Source.telegram)
    await set_active_request(customer, second.id)
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, "/my")
        listing = await reply_containing(fake, CUSTOMER_TG, "Первый")
        assert "Второй" in listing.params["text"] and "Открыт" in listing.params["text"]
        assert f"act:{first.id}" in buttons_of(listing)
        fake.callback_update(who, CUSTOMER_TG, listing.result["message_id"], f"act:{first.id}")
        await reply_containing(fake, CUSTOMER_TG, f"#{first.id}")
        await eventually(lambda: User.filter(id=customer.id, active_request_id=first.id).exists())
        fake.message_update(CUSTOMER_TG, who, "к первому")
        await eventually(lambda: RequestMessage.filter(request_id=first.id, content="к первому").exists())


async def test_customer_album_is_stored_as_one_message_with_all_files(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    customer = await make_user("customer", telegram_id=CUSTOMER_TG)
    req = await create_request(customer, title="Скриншоты", description="d", source=Source.telegram)
    await set_active_request(customer, req.id)
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, photo=fake.photo("p1", b"\x89PNG one"),
                            media_group_id="album-1", caption="Вот ошибка")
        fake.message_update(CUSTOMER_TG, who, photo=fake.photo("p2", b"\x89PNG two"),
                            media_group_id="album-1")
        fake.message_update(CUSTOMER_TG, who,
                            document=fake.document("d1", b"log line", "app.log", "text/plain"),
                            media_group_id="album-1")
        files = await eventually(
            lambda: _count_if(RequestAttachment.filter(request_id=req.id), 3), timeout=10
        )
        assert files
    messages = await RequestMessage.filter(request_id=req.id)
    assert len(messages) == 1 and messages[0].content == "Вот ошибка"
    assert messages[0].message_type == "image"
    atts = await RequestAttachment.filter(request_id=req.id).order_by("id")
    assert [a.message_id for a in atts] == [messages[0].id] * 3
    assert [a.name for a in atts][2] == "app.log"


async def _count_if(qs, n: int) -> bool:
    return await qs.count() >= n


async def test_customer_file_over_the_limit_is_refused_with_a_reply(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    settings = telegram_settings.with_overrides(max_upload_mb=1)
    customer = await make_user("customer", telegram_id=CUSTOMER_TG)
    req = await create_request(customer, title="Big", description="d", source=Source.telegram)
    await set_active_request(customer, req.id)
    big = fake.document("big", b"x" * (1024 * 1024 + 1), "dump.bin", "application/octet-stream")
    async with running_bot(settings):
        fake.message_update(CUSTOMER_TG, who, document=big)
        await reply_containing(fake, CUSTOMER_TG, "dump.bin")
    assert await RequestAttachment.all().count() == 0
    assert await RequestMessage.filter(request_id=req.id).count() == 0


async def test_repeated_update_is_handled_once(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    customer = await make_user("customer", telegram_id=CUSTOMER_TG)
    req = await create_request(customer, title="Dup", description="d", source=Source.telegram)
    await set_active_request(customer, req.id)
    update = fake.message_update(CUSTOMER_TG, who, "once", push=False)
    async with running_bot(telegram_settings):
        fake.push_update({**update, "update_id": 777})
        await eventually(lambda: RequestMessage.filter(content="once").exists())
    # Telegram delivers the same update again (a webhook retry, a restart before the offset
    # was confirmed): a new bot process sees it and must not store it twice.
    fake.push_update({**update, "update_id": 777})
    fake.message_update(CUSTOMER_TG, who, "after")
    async with running_bot(telegram_settings):
        await eventually(lambda: RequestMessage.filter(content="after").exists())
    assert await RequestMessage.filter(content="once").count() == 1


async def test_new_request_conversation_survives_bot_restart_with_redis(telegram_settings, fake_telegram):
    from tests.conftest import REDIS_TEST_URL, RUN_ID, need_service, redis_available

    need_service("Redis", redis_available())
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    settings = telegram_settings.with_overrides(
        redis_url=REDIS_TEST_URL,
        extra={**telegram_settings.extra, "fsm_key_prefix": f"test-fsm-{RUN_ID}",
               "events_channel": f"test-events-{RUN_ID}",
               # its own abuse-limit keys: earlier runs' /new must not count against this one
               "ratelimit_prefix": f"test-rl-{RUN_ID}:"},
    )
    async with running_bot(settings):
        fake.message_update(CUSTOMER_TG, who, "/new")
        await reply_containing(fake, CUSTOMER_TG, "тему")
        fake.message_update(CUSTOMER_TG, who, "Пережить перезапуск")
        await reply_containing(fake, CUSTOMER_TG, "подробнее")
    async with running_bot(settings):  # a new process: the conversation continues
        fake.message_update(CUSTOMER_TG, who, "Описание после перезапуска")
        ask = await fake.wait_for("sendMessage", where=lambda c: "cat:order" in buttons_of(c))
        fake.callback_update(who, CUSTOMER_TG, ask[0].result["message_id"], "cat:order")
        req = await eventually(lambda: CustomerRequest.filter(title="Пережить перезапуск").first())
    assert req.description == "Описание после перезапуска" and req.category == "order"


async def test_bot_publishes_command_menus_for_customers_and_admins(telegram_settings, fake_telegram):
    fake = fake_telegram
    async with running_bot(telegram_settings):
        calls = await fake.wait_for("setMyCommands", count=4)
    private = [c for c in calls if c.params["scope"]["type"] == "all_private_chats"]
    group = [c for c in calls if c.params["scope"]["type"] == "chat"]
    assert {cmd["command"] for cmd in private[0].params["commands"]} >= {"new", "my", "start"}
    assert {cmd["command"] for cmd in group[0].params["commands"]} >= {"queue", "mine", "stats"}
    assert group[0].params["scope"]["chat_id"] == fake.admin_chat_id
    english = [c for c in private if c.params.get("language_code") == "en"]
    assert any(cmd["description"] == "New request" for cmd in english[0].params["commands"])


async def test_reply_refused_with_429_is_sent_after_retry_after(telegram_settings, fake_telegram):
    """Telegram says "retry after 1 s" to the bot's answer: the customer still gets it."""
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    fake.fail("sendMessage", status=429, retry_after=1, times=1)
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, "/new")
        await reply_containing(fake, CUSTOMER_TG, "тему")
    refused = [c for c in fake.calls_of("sendMessage", include_failed=True) if not c.ok]
    assert len(refused) == 1 and refused[0].status == 429
    assert len([c for c in fake.calls_of("sendMessage") if c.chat_id == CUSTOMER_TG]) == 1
