"""The bot's Dispatcher: routers per concern, middlewares, FSM storage, shared objects.

`build_dispatcher(settings)` is called by bot.runtime (polling) and bot.webhook; every
call builds fresh routers, so several Dispatchers can live in one process (tests).
"""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage

from bot.handlers import admin_buttons, admin_commands, admin_thread, chat_bridge, customer
from bot.handlers.lookup import OncePerUser
from bot.handlers.media import AlbumBuffer
from bot.middlewares import ActorMiddleware, CallbackGuard, MessageGuard, ProcessedUpdateMiddleware
from core.settings import Settings

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


def build_dispatcher(settings: Settings) -> Dispatcher:
    """A Dispatcher with every router and middleware of the bot.

    Handlers receive `settings`, `actor` (the linked account or None), `lang`, `albums`
    and `hints` as arguments. The caller closes `dp.storage` on shutdown.
    """
    dp = Dispatcher(
        storage=build_storage(settings),
        settings=settings,
        albums=AlbumBuffer(quiet=ALBUM_QUIET_SECONDS),
        hints=OncePerUser(),
    )
    dp.update.outer_middleware(ProcessedUpdateMiddleware())
    dp.update.outer_middleware(ActorMiddleware())
    dp.callback_query.outer_middleware(CallbackGuard())
    dp.message.outer_middleware(MessageGuard())
    dp.include_routers(
        admin_buttons.get_router(),
        customer.get_router(),
        admin_commands.get_router(),
        admin_thread.get_router(settings),
        chat_bridge.get_router(),
    )
    return dp
