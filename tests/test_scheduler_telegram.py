"""End to end over the wire: what the scheduler queues reaches the (fake) Telegram Bot API
through the bot's delivery (bot.runtime's sender)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import requests as svc
from db.models import CustomerRequest
from scheduler.clock import FixedClock
from scheduler.runtime import SchedulerRuntime


async def test_digest_and_reminders_arrive_in_telegram(telegram_settings, fake_telegram, make_user):
    from bot.runtime import start_bot

    customer = await make_user("customer")
    director = await make_user("director", telegram_id=424242)
    req = await svc.create_request(
        customer, title="VPN is down", description="d", priority="urgent"
    )
    now = datetime.now(UTC)
    await CustomerRequest.filter(id=req.id).update(
        created_at=now - timedelta(hours=1), status_changed_at=now - timedelta(hours=1)
    )
    slot = now.replace(second=0, microsecond=0)
    scheduler = SchedulerRuntime(telegram_settings, clock=FixedClock(now))
    bot = await start_bot(telegram_settings, updates=False)
    try:
        assert await scheduler.fire("digest", slot)
        assert await scheduler.fire("reminders", slot)
        admin_chat = fake_telegram.admin_chat_id
        await fake_telegram.wait_for(
            "sendMessage",
            where=lambda c: int(c.params["chat_id"]) == admin_chat and "Сводка" in c.params["text"],
        )
        reminder = await fake_telegram.wait_for(
            "sendMessage",
            where=lambda c: (
                int(c.params["chat_id"]) == admin_chat
                and f"Запрос #{req.id} ждёт" in c.params["text"]
            ),
        )
        call = reminder[-1]
        assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == (
            f"req:take:{req.id}"
        )
        await fake_telegram.wait_for(
            "sendMessage",
            where=lambda c: (
                int(c.params["chat_id"]) == director.telegram_id and "Эскалация" in c.params["text"]
            ),
        )
    finally:
        await bot.stop()
