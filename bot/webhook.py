"""Webhook mode: `POST /telegram/webhook/` on the API (any number of replicas).

Telegram sends every update with the `X-Telegram-Bot-Api-Secret-Token` header set to the
secret given to setWebhook (TELEGRAM_WEBHOOK_SECRET); anything else gets 403. Telegram
retries an update until it gets a 2xx, and several replicas may receive the same one:
the Dispatcher's ProcessedUpdateMiddleware records each update_id once (db.models.
ProcessedUpdate), and this route answers an already recorded update with 200 right away.
aiogram is imported only when the first update arrives (it is slow to import).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import orjson
from sanic import Blueprint, Request
from sanic.response import json as json_response

from core.settings import Settings
from db.models import ProcessedUpdate

log = logging.getLogger("helpdesk.bot.webhook")


# Every integer of the Bot API fits in 64 bits (ids have at most 52 significant bits) and
# no text holds a NUL character: an update with either cannot come from Telegram, and the
# database could not store it (a handler would fail on it, answering 500 for ever).
MAX_INT64 = 2**63 - 1
MAX_DEPTH = 32


def _storable(value: Any, depth: int = 0) -> bool:
    """True when every integer inside `value` fits in a signed 64-bit column and no text
    (key or value) contains NUL."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -MAX_INT64 - 1 <= value <= MAX_INT64
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_storable(k, depth + 1) and _storable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v, depth + 1) for v in value)
    return True


def parse_update(bot: Any, update: dict[str, Any]) -> Any:
    """The aiogram Update, or None when the JSON is not one (a 400, not a handler crash)."""
    from aiogram.types import Update
    from pydantic import ValidationError

    try:
        return Update.model_validate(update, context={"bot": bot})
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None


def get_blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint(f"telegram_webhook_{id(settings)}", url_prefix="/telegram")
    state: dict[str, Any] = {}

    async def bot_and_dispatcher() -> tuple[Any, Any]:
        from bot.runtime import current_runtime, make_bot, make_dispatcher

        runtime = current_runtime()
        if runtime is not None and runtime.settings.telegram_bot_token == settings.telegram_bot_token:
            return runtime.bot, runtime.dp
        if "bot" not in state:
            budget = None
            if settings.redis_url:
                # Replies sent from this replica count in the budget every process shares.
                from telegram_delivery.budget import build_budget

                budget = state["budget"] = build_budget(settings)
            state["bot"] = make_bot(settings, wait_out_429=True, budget=budget)
            state["dp"] = make_dispatcher(settings)
        return state["bot"], state["dp"]

    # A named error format spares Sanic parsing the handler's source (api/blueprint.py).
    @bp.post("/webhook/", error_format="json")
    async def webhook(request: Request):
        expected = settings.telegram_webhook_secret or ""
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return json_response({"detail": "Forbidden."}, status=403)
        try:
            # orjson: strict UTF-8, no lone surrogates, nesting bounded.
            update = orjson.loads(request.body or b"")
        except orjson.JSONDecodeError:
            update = None
        if (
            not isinstance(update, dict)
            or not isinstance(update.get("update_id"), int)
            or isinstance(update["update_id"], bool)
            or not 0 <= update["update_id"] <= MAX_INT64
            or not _storable(update)
        ):
            return json_response({"detail": "Expected a Telegram Update object."}, status=400)
        if await ProcessedUpdate.filter(update_id=update["update_id"]).exists():
            return json_response({"ok": True, "duplicate": True})
        bot, dp = await bot_and_dispatcher()
        parsed = parse_update(bot, update)
        if parsed is None:
            return json_response({"detail": "Expected a Telegram Update object."}, status=400)
        try:
            result = await dp.feed_webhook_update(bot, parsed)
        except Exception:
            log.exception("telegram update %s failed", update.get("update_id"))
            return json_response({"ok": False}, status=500)
        if result is not None:
            try:
                await bot(result)
            except Exception:
                log.exception("answering telegram update %s failed", update.get("update_id"))
        return json_response({"ok": True})

    @bp.after_server_stop
    async def close(app: Any) -> None:
        bot = state.pop("bot", None)
        dp = state.pop("dp", None)
        if dp is not None:
            try:
                await dp.storage.close()
            except Exception:
                pass
        if bot is not None:
            await bot.session.close()
        budget = state.pop("budget", None)
        if budget is not None and getattr(budget, "redis", None) is not None:
            await budget.redis.aclose()

    return bp
