"""The fake Bot API server answers aiogram like Telegram does (sanity of the test harness)."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from tests.fake_telegram import FakeTelegram


def make_bot(fake: FakeTelegram) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
    return Bot(fake.token, session=session, default=DefaultBotProperties(parse_mode="HTML"))


async def test_fake_answers_aiogram_send_edit_and_files(fake_telegram: FakeTelegram):
    bot = make_bot(fake_telegram)
    try:
        me = await bot.get_me()
        assert me.username == fake_telegram.bot_username
        kb = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Take", callback_data="req:take:1")]])
        msg = await bot.send_message(fake_telegram.admin_chat_id, "<b>card</b>", reply_markup=kb)
        call = (await fake_telegram.wait_for("sendMessage"))[0]
        assert call.params["chat_id"] == fake_telegram.admin_chat_id
        assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "req:take:1"
        assert call.params["parse_mode"] == "HTML"
        edited = await bot.edit_message_text("new", chat_id=msg.chat.id, message_id=msg.message_id)
        assert edited.text == "new"
        with pytest.raises(TelegramBadRequest, match="not modified"):
            await bot.edit_message_text("new", chat_id=msg.chat.id, message_id=msg.message_id)
        photo = await bot.send_photo(42, BufferedInputFile(b"\x89PNG...", "a.png"), caption="pic")
        fid = photo.photo[-1].file_id
        assert fake_telegram.files[fid] == b"\x89PNG..."
        file = await bot.get_file(fid)
        data = await bot.download_file(file.file_path)
        assert data.read() == b"\x89PNG..."
        fake_telegram.fail("sendMessage", status=429, retry_after=3)
        with pytest.raises(TelegramRetryAfter) as exc:
            await bot.send_message(42, "x")
        assert exc.value.retry_after == 3
        with pytest.raises(TelegramBadRequest, match="not a forum"):
            await bot.create_forum_topic(fake_telegram.admin_chat_id, "t")
        fake_telegram.forum = True
        topic = await bot.create_forum_topic(fake_telegram.admin_chat_id, "#1 test")
        m = await bot.send_message(fake_telegram.admin_chat_id, "in topic", message_thread_id=topic.message_thread_id)
        assert m.message_thread_id == topic.message_thread_id
        album = await bot.send_media_group(
            42,
            media=[
                {"type": "photo", "media": BufferedInputFile(b"1", "1.png")},
                {"type": "photo", "media": BufferedInputFile(b"2", "2.png")},
            ],
        )
        assert len(album) == 2 and album[0].media_group_id
    finally:
        await bot.session.close()


async def test_fake_serves_pushed_updates_to_long_polling(fake_telegram: FakeTelegram):
    bot = make_bot(fake_telegram)
    try:
        got = asyncio.create_task(bot.get_updates(offset=0, timeout=5))
        await asyncio.sleep(0.1)
        fake_telegram.message_update(777, fake_telegram.user(777), "/start")
        updates = await asyncio.wait_for(got, 3)
        assert updates[0].message.text == "/start"
        more = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
        assert more == []
    finally:
        await bot.session.close()


async def test_fake_rate_limiter_answers_429_per_group(fake_telegram: FakeTelegram):
    fake_telegram.rate_limit_group_per_min = 3
    fake_telegram.rate_limit_window = 2.0
    bot = make_bot(fake_telegram)
    try:
        for i in range(3):
            await bot.send_message(fake_telegram.admin_chat_id, f"m{i}")
        with pytest.raises(TelegramRetryAfter) as exc:
            await bot.send_message(fake_telegram.admin_chat_id, "too many")
        assert 1 <= exc.value.retry_after <= 2
        await bot.send_message(42, "private chats are not limited by the group limit")
    finally:
        await bot.session.close()
