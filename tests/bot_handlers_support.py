"""Helpers for the bot handler tests: run the real bot against the fake Bot API."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from core.settings import Settings
from tests.fake_telegram import Call, FakeTelegram


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[Any]:
    """The bot process's runtime (long polling against the fake), stopped afterwards."""
    from bot.runtime import start_bot

    runtime = await start_bot(settings)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns a truthy value (or fail after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


def buttons_of(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]


def sent_to(chat_id: int) -> Callable[[Call], bool]:
    return lambda c: c.params.get("chat_id") == chat_id


async def card_for(fake: FakeTelegram, request_id: int, timeout: float = 10.0) -> Call:
    """The relay's card for a request: a message in the admin group with its Take button."""
    calls = await fake.wait_for(
        "sendMessage", timeout=timeout,
        where=lambda c: c.params.get("chat_id") == fake.admin_chat_id
        and f"req:take:{request_id}" in buttons_of(c),
    )
    # The sender records the card (TelegramThread) right after Telegram accepted it; an
    # admin replies only after seeing the card, so wait for that record as well.
    from db.models import TelegramThread

    message_id = calls[0].result["message_id"]
    await eventually(
        lambda: TelegramThread.filter(request_id=request_id, card_message_id=message_id).exists(),
        timeout=timeout,
    )
    return calls[0]


async def answer_for(fake: FakeTelegram, update: dict[str, Any], timeout: float = 10.0) -> Call:
    """The answerCallbackQuery the bot made for a pushed callback_query update."""
    qid = update["callback_query"]["id"]
    calls = await fake.wait_for(
        "answerCallbackQuery", timeout=timeout, where=lambda c: str(c.params.get("callback_query_id")) == qid
    )
    return calls[0]


def texts_to(fake: FakeTelegram, chat_id: int) -> list[str]:
    return [str(c.params.get("text", "")) for c in fake.calls_of("sendMessage") if c.params.get("chat_id") == chat_id]


async def reply_containing(fake: FakeTelegram, chat_id: int, fragment: str, timeout: float = 10.0) -> Call:
    calls = await fake.wait_for(
        "sendMessage", timeout=timeout,
        where=lambda c: c.params.get("chat_id") == chat_id and fragment in str(c.params.get("text", "")),
    )
    return calls[0]



MEDIA_METHODS = ("sendPhoto", "sendDocument", "copyMessage", "sendMediaGroup", "forwardMessage")


async def media_relayed(fake: FakeTelegram, chat_id: int, timeout: float = 10.0) -> Call:
    """Wait until the bot delivered a file to `chat_id` (sent, copied or forwarded)."""
    deadline = time.monotonic() + timeout
    while True:
        for call in fake.calls:
            if call.ok and call.method in MEDIA_METHODS and call.params.get("chat_id") == chat_id:
                return call
        if time.monotonic() > deadline:
            raise AssertionError(f"no file delivered to {chat_id}; calls: {fake.calls[-10:]}")
        await asyncio.sleep(0.05)
