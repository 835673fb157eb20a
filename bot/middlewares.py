"""Middlewares: inbound idempotency, who is acting, errors turned into replies, and the
customers' abuse limits.

Order in the Dispatcher (see bot.dispatcher): ProcessedUpdateMiddleware and
ActorMiddleware wrap every update; CallbackGuard and MessageGuard wrap callback queries
and messages, so every callback query is answered and no domain error escapes a handler.
CustomerRateLimit wraps the customer router's handlers (bot.handlers.customer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, Update
from aiogram.types import User as TgUser
from tortoise.exceptions import IntegrityError

from core import i18n
from core.errors import DomainError, ValidationFailed
from core.ratelimit import DEFAULT_PREFIX, RateLimiter, build_rate_limiter
from core.users import customer_for_telegram
from db.models import ProcessedUpdate, User
from telegram_delivery.texts import lang_of, plain, tr

log = logging.getLogger("helpdesk.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

# Processed update ids older than this are pruned now and then (Telegram keeps undelivered
# updates for 24 hours, so a retry can never be older).
PROCESSED_UPDATES_KEEP = timedelta(days=2)
PRUNE_EVERY = 500


class ProcessedUpdateMiddleware(BaseMiddleware):
    """Handle each update_id once, whichever process or retry delivers it.

    The id is recorded (a primary-key insert) before the handlers run; a second delivery of
    the same update (webhook retry, two replicas, a restart replaying getUpdates) finds it
    and is skipped.
    """

    def __init__(self) -> None:
        self._seen = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        try:
            await ProcessedUpdate.create(update_id=event.update_id)
        except IntegrityError:
            log.info("telegram update %s already handled, skipped", event.update_id)
            return UNHANDLED
        self._seen += 1
        if self._seen % PRUNE_EVERY == 0:
            cutoff = datetime.now(UTC) - PROCESSED_UPDATES_KEEP
            await ProcessedUpdate.filter(created_at__lt=cutoff).delete()
        return await handler(event, data)


def _telegram_language(user: TgUser) -> str | None:
    code = (user.language_code or "").lower()
    return "en" if code.startswith("en") else None


class ActorMiddleware(BaseMiddleware):
    """Injects `actor` (the account behind the Telegram user, or None) and `lang`.

    In a private chat the account is created on first contact (a customer); in groups only
    an already linked account is looked up, so strangers stay `None`. Inactive accounts are
    treated as unknown.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        actor: User | None = None
        if tg_user is not None and not tg_user.is_bot:
            if chat is not None and chat.type == "private":
                actor, _ = await customer_for_telegram(
                    tg_user.id,
                    first_name=tg_user.first_name or "",
                    last_name=tg_user.last_name or "",
                    telegram_username=tg_user.username,
                    language=_telegram_language(tg_user),
                )
            else:
                actor = await User.filter(telegram_id=tg_user.id).first()
            if actor is not None and not actor.is_active:
                actor = None
        data["actor"] = actor
        settings = data.get("settings")
        fallback = settings.language if settings is not None else None
        if actor is not None:
            data["lang"] = lang_of(actor.language)
        else:
            data["lang"] = lang_of((_telegram_language(tg_user) if tg_user else None) or fallback)
        return await handler(event, data)


def describe_error(exc: DomainError, lang: str | None = None) -> str:
    """A domain error as one line for a person (field errors joined), in `lang` (the
    user's language) when its texts are catalog texts (core.i18n.Text)."""
    if isinstance(exc, ValidationFailed):
        return "; ".join(" ".join(i18n.render(v, lang)) for v in exc.errors.values())
    return i18n.render(exc.message, lang)


@dataclass
class CallbackReply:
    """What the callback query will be answered with (set by the handler)."""

    text: str | None = None
    show_alert: bool = False

    def alert(self, text: str) -> None:
        self.text = text[:200]
        self.show_alert = True

    def toast(self, text: str) -> None:
        self.text = text[:200]
        self.show_alert = False


class CallbackGuard(BaseMiddleware):
    """Every callback query is answered exactly once, even when nothing handles it or the
    handler fails: a DomainError becomes an alert with its message, anything else a
    generic alert (and a log line)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, CallbackQuery)
        reply = data["callback_reply"] = CallbackReply()
        try:
            return await handler(event, data)
        except DomainError as exc:
            reply.alert(describe_error(exc, data.get("lang")))
        except Exception:
            log.exception("callback query %r failed", event.data)
            reply.alert(plain("error_generic", data.get("lang")))
        finally:
            try:
                await event.answer(text=reply.text, show_alert=reply.show_alert)
            except TelegramAPIError as exc:  # too old, or Telegram refused: nothing to redo
                log.warning("answerCallbackQuery failed: %s", exc)
        return None


class MessageGuard(BaseMiddleware):
    """A DomainError from a message handler becomes a reply with its message; any other
    failure is logged and the user gets a generic apology instead of silence."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Message)
        try:
            return await handler(event, data)
        except DomainError as exc:
            await _safe_reply(event, tr("bad_input", data.get("lang"), details=describe_error(exc, data.get("lang")))
                              if isinstance(exc, ValidationFailed)
                              else _escaped(describe_error(exc, data.get("lang"))))
        except Exception:
            log.exception("message handler failed (chat %s)", event.chat.id)
            await _safe_reply(event, tr("error_generic", data.get("lang")))
        return None


def _escaped(text: str) -> str:
    import html

    return html.escape(text, quote=False)


async def _safe_reply(message: Message, text: str) -> None:
    try:
        await message.reply(text, parse_mode="HTML")
    except TelegramAPIError as exc:
        log.warning("could not reply in chat %s: %s", message.chat.id, exc)


# --- abuse limits ------------------------------------------------------------------------------


@dataclass
class CustomerLimits:
    """The per-Telegram-user windows (core.ratelimit): shared through Redis when the FSM
    storage is Redis (REDIS_URL), so every bot process and webhook replica counts together."""

    messages: RateLimiter  # BOT_MESSAGES_PER_MIN, every message and button press
    new_requests: RateLimiter  # BOT_NEW_REQUESTS_PER_HOUR, requests created
    notices: RateLimiter  # one refusal reply per user and kind a minute

    @classmethod
    def build(cls, settings: Any, storage: Any) -> CustomerLimits:
        redis = getattr(storage, "redis", None)  # aiogram's RedisStorage has one
        prefix = str(settings.extra.get("ratelimit_prefix", DEFAULT_PREFIX)) + "bot:"
        return cls(
            messages=build_rate_limiter(settings.bot_messages_per_min, redis, prefix + "msg:", 60.0),
            new_requests=build_rate_limiter(
                settings.bot_new_requests_per_hour, redis, prefix + "new:", 3600.0
            ),
            notices=build_rate_limiter(1, redis, prefix + "notice:", 60.0),
        )

    async def may_notify(self, kind: str, tg_user_id: int) -> bool:
        """True at most once a minute per user and kind: a flooder cannot make the bot
        flood Telegram (and the desk's own sending budget) with refusals."""
        return (await self.notices.hit(f"{kind}:{tg_user_id}")).allowed


class CustomerRateLimit(BaseMiddleware):
    """BOT_MESSAGES_PER_MIN per Telegram user in a private chat. Over it the message is not
    handled (nothing is stored), the user gets one polite reply a minute saying when to send
    it again, and a button press gets an alert. Handlers receive `customer_limits` (for
    BOT_NEW_REQUESTS_PER_HOUR, checked where a request is created)."""

    def __init__(self) -> None:
        self._limits: CustomerLimits | None = None

    def limits(self, data: dict[str, Any]) -> CustomerLimits:
        if self._limits is None:
            self._limits = CustomerLimits.build(data["settings"], data.get("fsm_storage"))
        return self._limits

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        limits = data["customer_limits"] = self.limits(data)
        if tg_user is None:
            return await handler(event, data)
        decision = await limits.messages.hit(str(tg_user.id))
        if decision.allowed:
            return await handler(event, data)
        lang = data.get("lang")
        if isinstance(event, CallbackQuery):
            data["callback_reply"].alert(plain("rate_messages", lang, seconds=decision.retry_after))
            return None
        if await limits.may_notify("messages", tg_user.id):
            log.warning("bot rate limit: telegram user %s over %s messages a minute; refused for %ss",
                        tg_user.id, limits.messages.limit, decision.retry_after)
            if isinstance(event, Message):
                await _safe_reply(event, tr("rate_messages", lang, seconds=decision.retry_after))
        return None


class OriginMiddleware(BaseMiddleware):
    """Everything an update causes is recorded as done through Telegram (core.origin)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        from core.origin import set_origin
        from db.models import HistoryChannel

        set_origin(HistoryChannel.telegram)
        return await handler(event, data)
