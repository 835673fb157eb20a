"""The bot's Dispatcher: routers per concern, middlewares, FSM storage, shared objects.

`build_dispatcher(settings)` is called by bot.runtime (polling) and bot.webhook; every
call builds fresh routers, so several Dispatchers can live in one process (tests).
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat

from bot.handlers import (
    admin_buttons,
    admin_commands,
    admin_thread,
    canned,
    chat_bridge,
    csat,
    customer,
    message_edits,
)
from bot.handlers.lookup import OncePerUser
from bot.handlers.media import AlbumBuffer
from bot.handlers.message_edits import EditOrder
from bot.middlewares import (
    ActorMiddleware,
    CallbackGuard,
    MessageGuard,
    OriginMiddleware,
    ProcessedUpdateMiddleware,
)
from core.settings import Settings
from telegram_delivery.texts import plain

log = logging.getLogger("helpdesk.bot")

CUSTOMER_COMMANDS = ("start", "new", "my", "cancel", "help")
ADMIN_COMMANDS = ("queue", "mine", "stats", "note", "r", "help")

ALBUM_QUIET_SECONDS = 1.0
FSM_KEY_PREFIX = "helpdesk:fsm"
FSM_TTL = 7 * 24 * 3600  # an abandoned /new conversation is forgotten after a week


def build_storage(settings: Settings) -> BaseStorage:
    """FSM storage: Redis when REDIS_URL is set (conversations survive restarts and are
    shared by webhook replicas), memory otherwise."""
    if settings.redis_url:
        from aiogram.fsm.storage.base import DefaultKeyBuilder
        from aiogram.fsm.storage.redis import RedisStorage

        prefix = str(settings.extra.get("fsm_key_prefix") or FSM_KEY_PREFIX)
        return RedisStorage.from_url(
            settings.redis_url, key_builder=DefaultKeyBuilder(prefix=prefix), state_ttl=FSM_TTL,
            data_ttl=FSM_TTL,
        )
    return MemoryStorage()


async def publish_commands(bot: Bot, settings: Settings) -> None:
    """The command menus Telegram shows: customer commands in private chats, admin commands
    in the admin group, in Russian and English. Best effort: a failure is only logged."""
    scopes = [(BotCommandScopeAllPrivateChats(), CUSTOMER_COMMANDS)]
    if settings.telegram_admin_chat_id:
        scopes.append((BotCommandScopeChat(chat_id=settings.telegram_admin_chat_id), ADMIN_COMMANDS))
    try:
        for scope, names in scopes:
            for language_code in (None, "en"):
                lang = language_code or settings.language
                commands = [BotCommand(command=n, description=plain(f"cmd_{n}", lang)) for n in names]
                await bot.set_my_commands(commands, scope=scope, language_code=language_code)
    except Exception as exc:  # the menu is a convenience; the bot works without it
        log.warning("setMyCommands failed: %s", exc)


def build_dispatcher(settings: Settings) -> Dispatcher:
    """A Dispatcher with every router and middleware of the bot.

    Handlers receive `settings`, `actor` (the linked account or None), `lang`, `albums`,
    `hints` and `edit_order` as arguments. The caller closes `dp.storage` on shutdown.
    """
    dp = Dispatcher(
        storage=build_storage(settings),
        settings=settings,
        albums=AlbumBuffer(quiet=ALBUM_QUIET_SECONDS),
        hints=OncePerUser(),
        edit_order=EditOrder(),
    )
    dp.update.outer_middleware(OriginMiddleware())
    dp.update.outer_middleware(ProcessedUpdateMiddleware())
    dp.update.outer_middleware(ActorMiddleware())
    dp.callback_query.outer_middleware(CallbackGuard())
    dp.message.outer_middleware(MessageGuard())
    background: set[asyncio.Task[None]] = set()

    async def on_startup(bot: Bot) -> None:
        # In the background: a slow or unreachable API must not delay receiving updates.
        task = asyncio.create_task(publish_commands(bot, settings), name="telegram-commands")
        background.add(task)
        task.add_done_callback(background.discard)

    dp.startup.register(on_startup)
    dp.include_routers(
        admin_buttons.get_router(),
        csat.get_router(),
        customer.get_router(),
        admin_commands.get_router(),
        canned.get_router(settings),
        admin_thread.get_router(settings),
        chat_bridge.get_router(),
        message_edits.get_router(settings),
    )
    return dp
