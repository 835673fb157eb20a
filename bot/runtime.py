"""The bot process: aiogram Bot + Dispatcher (polling or webhook) plus the delivery side
(the relay from the event log to the outbox, and the sender draining the outbox).

`start_bot(settings)` starts everything inside the running loop (the API embeds it in the
single-process default); `run_bot(settings)` is the `helpdesk bot` entry point and runs until
cancelled or SIGTERM/SIGINT. The database must be reachable; `run_bot` opens it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from core.settings import Settings

log = logging.getLogger("helpdesk.bot")

FORUM_REFRESH_SECONDS = 300.0

_current: BotRuntime | None = None


def current_runtime() -> BotRuntime | None:
    """The runtime started in this process (the webhook route reuses its Bot/Dispatcher)."""
    return _current


# Direct answers to a user (command replies, prompts, alerts) wait out a 429 this long at
# most; everything else goes through the outbox and its sender, which has its own limits.
REPLY_RETRY_MAX_WAIT = 30.0
REPLY_RETRY_ATTEMPTS = 3


def make_bot(settings: Settings, *, wait_out_429: bool = False, budget: Any = None) -> Any:
    """An aiogram Bot talking to TELEGRAM_API_SERVER, HTML parse mode by default.

    `wait_out_429`: the bot that answers updates retries a call refused with 429 after
    `retry_after` (bounded), so a reply is not lost when the chat is over its limit.
    `budget` (telegram_delivery.budget): every call that writes into a chat is counted in it, so the
    outbox's sender leaves the room direct answers used."""
    from aiogram import Bot
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    if not settings.telegram_bot_token:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_server))
    if budget is not None:
        from telegram_delivery.budget import counting_middleware

        session.middleware(counting_middleware(budget))
    if wait_out_429:
        session.middleware(_wait_out_retry_after)
    return Bot(settings.telegram_bot_token, session=session,
               default=DefaultBotProperties(parse_mode="HTML"))


async def _wait_out_retry_after(make_request: Any, bot: Any, method: Any) -> Any:
    """aiogram request middleware: on TelegramRetryAfter wait and send again."""
    from aiogram.exceptions import TelegramRetryAfter

    for attempt in range(1, REPLY_RETRY_ATTEMPTS + 1):
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as exc:
            if attempt == REPLY_RETRY_ATTEMPTS or exc.retry_after > REPLY_RETRY_MAX_WAIT:
                raise
            log.info("telegram asked to wait %ss before %s; waiting", exc.retry_after,
                     type(method).__name__)
            await asyncio.sleep(exc.retry_after)
    raise AssertionError("unreachable")


def make_dispatcher(settings: Settings) -> Any:
    """`bot.dispatcher.build_dispatcher(settings)` with `settings` in the workflow data."""
    from bot.dispatcher import build_dispatcher

    dp = build_dispatcher(settings)
    dp["settings"] = settings
    return dp


async def detect_forums(bot: Any, settings: Settings, forum_chats: set[int]) -> None:
    """Ask Telegram whether the admin group is a forum (topic per request) or not."""
    chat_id = settings.telegram_admin_chat_id
    if not chat_id:
        return
    try:
        chat = await bot.get_chat(chat_id)
    except Exception as exc:  # unreachable API or bot not in the group yet: try again later
        log.warning("getChat(%s) failed: %s; assuming the admin group is not a forum", chat_id, exc)
        return
    if getattr(chat, "is_forum", False):
        forum_chats.add(chat_id)
    else:
        forum_chats.discard(chat_id)


@dataclass
class BotRuntime:
    settings: Settings
    bot: Any
    dp: Any
    sender: Any
    relay: Any
    forum_chats: set[int]
    delivery_bot: Any = None
    budget: Any = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    polling: asyncio.Task[Any] | None = None
    stopped: bool = False

    async def stop(self) -> None:
        """Stop polling, the relay and the sender (in-flight sends finish and are recorded),
        close the HTTP session and the FSM storage."""
        global _current
        if self.stopped:
            return
        self.stopped = True
        if self.polling is not None:
            with contextlib.suppress(Exception):
                await self.dp.stop_polling()
            self.polling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.polling
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.relay.stop()
        await self.sender.stop()
        with contextlib.suppress(Exception):
            await self.dp.storage.close()
        for bot in (self.bot, self.delivery_bot):
            if bot is not None:
                with contextlib.suppress(Exception):
                    await bot.session.close()
        redis = getattr(self.budget, "redis", None)
        if redis is not None:
            with contextlib.suppress(Exception):
                await redis.aclose()
        if _current is self:
            _current = None


def check_start(settings: Settings) -> None:
    """Refuse a configuration that would run unsafely: webhook mode without a secret would
    let anyone on the internet post fake updates (settings.load_settings refuses it too;
    this guards a Settings built in code)."""
    if settings.telegram_mode == "webhook" and not settings.telegram_webhook_secret:
        raise RuntimeError("TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET; the bot does not start without it")


async def start_bot(settings: Settings, *, delivery: bool = True, updates: bool = True,
                    sender_overrides: dict[str, Any] | None = None) -> BotRuntime:
    """Start the bot inside the running event loop.

    `updates`: receive updates (long polling, or register the webhook in webhook mode).
    `delivery`: run the relay (event log -> outbox) and the sender (outbox -> Telegram).
    `sender_overrides`: SenderLimits timings (tests shrink leases and backoff); Telegram's
    limits come from the settings.
    """
    global _current
    from telegram_delivery.budget import build_budget
    from telegram_delivery.metrics import metered_stats
    from telegram_delivery.relay import Relay
    from telegram_delivery.sender import Sender, SenderLimits

    check_start(settings)
    # One budget for everything this process sends (shared through Redis with REDIS_URL).
    budget = build_budget(settings)
    # Two sessions: the sender's (its own limits and 429 handling per chat) and the one
    # that answers updates (waits out a 429 so a direct reply is not dropped, and counts
    # in the budget so the sender leaves room for it).
    delivery_bot = make_bot(settings)
    bot = make_bot(settings, wait_out_429=True, budget=budget)
    dp = make_dispatcher(settings)
    forum_chats: set[int] = set()
    await detect_forums(delivery_bot, settings, forum_chats)
    limits = SenderLimits.from_settings(settings, **(sender_overrides or {}))
    sender = Sender(delivery_bot, limits, lang=settings.language, budget=budget,
                    admin_chat=settings.telegram_admin_chat_id)
    sender.stats = metered_stats()  # its counters also feed /metrics
    relay = Relay(settings, forum_chats=forum_chats, on_enqueued=sender.wake)
    runtime = BotRuntime(settings, bot, dp, sender, relay, forum_chats, delivery_bot=delivery_bot,
                         budget=budget)
    if delivery:
        sender.start()
        relay.start()

        async def refresh_forums() -> None:
            while True:
                await asyncio.sleep(FORUM_REFRESH_SECONDS)
                await detect_forums(delivery_bot, settings, forum_chats)

        runtime.tasks.append(asyncio.create_task(refresh_forums()))
    if updates:
        if settings.telegram_mode == "webhook":
            if not settings.telegram_webhook_url:
                log.warning("TELEGRAM_MODE=webhook without TELEGRAM_WEBHOOK_URL: setWebhook skipped")
            else:
                await bot.set_webhook(
                    settings.telegram_webhook_url,
                    secret_token=settings.telegram_webhook_secret,
                    allowed_updates=dp.resolve_used_update_types(),
                )
        elif settings.telegram_mode == "polling":
            # getUpdates and a webhook exclude each other; keep pending updates.
            with contextlib.suppress(Exception):
                await bot.delete_webhook(drop_pending_updates=False)
            runtime.polling = asyncio.create_task(
                dp.start_polling(bot, handle_signals=False, polling_timeout=10,
                                 allowed_updates=dp.resolve_used_update_types()),
                name="telegram-polling",
            )
    _current = runtime
    return runtime


async def run_bot(settings: Settings, *, sender_overrides: dict[str, Any] | None = None) -> None:
    """`helpdesk bot`: open the database, run the bot until cancelled or SIGTERM/SIGINT."""
    from core import runtime as core_runtime
    from db.setup import close_db, init_db

    core_runtime.configure(settings)
    await init_db(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    runtime = await start_bot(settings, sender_overrides=sender_overrides)
    log.info("telegram bot running (%s mode)", settings.telegram_mode)
    from core.metrics import serve_metrics

    metrics_server = await serve_metrics(settings)
    try:
        await stop.wait()
    finally:
        if metrics_server is not None:
            await metrics_server.cleanup()
        await runtime.stop()
        await close_db()
