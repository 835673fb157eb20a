"""Abuse limits for bot customers, over the wire against the fake Bot API: messages per
minute and new requests per hour per Telegram user, a polite reply at most once a minute,
nothing stored for a refused message, and the count shared through Redis."""

from __future__ import annotations

import asyncio
import uuid

from core.requests import create_request
from core.users import set_active_request
from db.models import CustomerRequest, RequestMessage, Source
from tests.bot_handlers_support import buttons_of, eventually, reply_containing, running_bot
from tests.fake_telegram import FakeTelegram

CUSTOMER_TG = 5101


def replies_with(fake: FakeTelegram, chat_id: int, fragment: str) -> int:
    return sum(
        1 for c in fake.calls_of("sendMessage")
        if c.params.get("chat_id") == chat_id and fragment in str(c.params.get("text", ""))
    )


async def create_over_the_bot(fake: FakeTelegram, who: dict, title: str, ask: str, done: str) -> None:
    """The /new conversation up to the category button."""
    fake.message_update(CUSTOMER_TG, who, "/new")
    await reply_containing(fake, CUSTOMER_TG, ask)
    fake.message_update(CUSTOMER_TG, who, title)
    await eventually(lambda: _asked_description(fake))
    fake.message_update(CUSTOMER_TG, who, f"{title}: details")
    buttons = await fake.wait_for(
        "sendMessage", where=lambda c: "cat:general" in buttons_of(c) and c.params.get("chat_id") == CUSTOMER_TG,
        count=1,
    )
    fake.callback_update(who, CUSTOMER_TG, buttons[-1].result["message_id"], "cat:general")
    await eventually(lambda: CustomerRequest.filter(title=title).exists())
    await reply_containing(fake, CUSTOMER_TG, done)


async def _asked_description(fake: FakeTelegram) -> bool:
    return replies_with(fake, CUSTOMER_TG, "подробнее") + replies_with(fake, CUSTOMER_TG, "detail") > 0


async def test_a_flooding_customer_is_refused_politely_once_and_nothing_is_stored(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    customer = await make_user("customer", telegram_id=CUSTOMER_TG)
    req = await create_request(customer, title="Оплата", description="d", source=Source.telegram)
    await set_active_request(customer, req.id)
    settings = telegram_settings.with_overrides(bot_messages_per_min=3)
    async with running_bot(settings):
        for n in range(10):
            fake.message_update(CUSTOMER_TG, who, f"flood {n}")
        refusal = await reply_containing(fake, CUSTOMER_TG, "слишком часто")
        await eventually(lambda: _count_is(RequestMessage.filter(request_id=req.id, content__startswith="flood"), 3))
        await asyncio.sleep(1.0)  # every one of the ten updates has been handled by now
        # Three stored (updates are handled concurrently: which three is not fixed), the
        # other seven refused without a trace.
        assert await RequestMessage.filter(request_id=req.id).count() == 3
        # One reply for the seven refused messages, saying when to try again.
        assert replies_with(fake, CUSTOMER_TG, "слишком часто") == 1
        assert "подождите" in refusal.params["text"] and " с " in refusal.params["text"]
        # Button presses count too, and are answered with an alert instead of a message.
        fake.callback_update(who, CUSTOMER_TG, 1, "lang:en")
        answer = await fake.wait_for("answerCallbackQuery")
        assert answer[-1].params.get("show_alert") is True
        assert "слишком часто" in answer[-1].params.get("text", "")
        assert replies_with(fake, CUSTOMER_TG, "слишком часто") == 1


async def _count_is(query, expected: int) -> bool:
    return await query.count() == expected


async def test_new_requests_per_hour_are_limited_with_an_english_reply(telegram_settings, fake_telegram):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "John", language_code="en")
    settings = telegram_settings.with_overrides(bot_new_requests_per_hour=1)
    async with running_bot(settings):
        await create_over_the_bot(fake, who, "First problem", "subject", "created")
        fake.message_update(CUSTOMER_TG, who, "/new")
        refusal = await reply_containing(fake, CUSTOMER_TG, "in the last hour")
        assert "created 1 request in" in refusal.params["text"]  # one/other plural
        assert "min" in refusal.params["text"] and "/my" in refusal.params["text"]
        # Asking again within the minute does not make the bot repeat itself.
        fake.message_update(CUSTOMER_TG, who, "/new")
        fake.message_update(CUSTOMER_TG, who, "/my")
        await reply_containing(fake, CUSTOMER_TG, "First problem")  # /my still answers
        assert replies_with(fake, CUSTOMER_TG, "in the last hour") == 1
        # The conversation was not started: a plain message goes to the active request.
        fake.message_update(CUSTOMER_TG, who, "Second problem")
        await eventually(lambda: RequestMessage.filter(content="Second problem").exists())
        assert await CustomerRequest.all().count() == 1


async def test_the_new_request_limit_is_shared_through_redis_across_bot_processes(
    telegram_settings, fake_telegram
):
    from tests.conftest import REDIS_TEST_URL, RUN_ID, need_service, redis_available

    need_service("Redis", redis_available())
    import redis.asyncio as aioredis

    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    prefix = f"test-ratelimit-{RUN_ID}-{uuid.uuid4().hex}:"
    settings = telegram_settings.with_overrides(
        redis_url=REDIS_TEST_URL,
        bot_new_requests_per_hour=1,
        extra={**telegram_settings.extra, "fsm_key_prefix": f"test-fsm-{uuid.uuid4().hex}",
               "ratelimit_prefix": prefix},
    )
    try:
        async with running_bot(settings):
            await create_over_the_bot(fake, who, "Первый", "тему", "создан")
        async with running_bot(settings):  # another process: it knows the count from Redis
            fake.message_update(CUSTOMER_TG, who, "/new")
            refusal = await reply_containing(fake, CUSTOMER_TG, "За последний час")
            assert "через" in refusal.params["text"] and "мин" in refusal.params["text"]
        assert await CustomerRequest.all().count() == 1
    finally:
        client = aioredis.from_url(REDIS_TEST_URL)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
