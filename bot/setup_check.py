"""`helpdesk telegram-check`: ask the Bot API whether the bot is set up to work, and say
what is wrong in words a new user can act on.

Checks, in order (a failure that makes the next checks meaningless stops there):
1. the token is valid (getMe);
2. TELEGRAM_ADMIN_CHAT_ID is set and the group is reachable (getChat); a group upgraded to
   a supergroup (turning topics on does that to a basic group) answers with its new id,
   which is printed;
3. it is a supergroup, ideally with topics (a topic per request);
4. the bot is an administrator there, allowed to manage topics when topics are on
   (getChatMember);
5. privacy mode (getMe's can_read_all_group_messages): an administrator bot sees every
   message anyway, so with admin rights it is only a note;
6. the webhook (getWebhookInfo): in webhook mode TELEGRAM_WEBHOOK_URL must be HTTPS on one
   of the ports Telegram calls (443, 80, 88, 8443), registered, and not failing; in polling
   mode a leftover webhook is reported (the bot deletes it when it starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

WEBHOOK_PORTS = (443, 80, 88, 8443)


@dataclass(frozen=True)
class Finding:
    level: str  # "ok" | "warn" | "fail"
    text: str


async def check_telegram(settings: Any, bot: Any = None) -> list[Finding]:
    """What is right and wrong with the Telegram setup; a "fail" means the bot will not work."""
    from aiogram.exceptions import (
        TelegramAPIError,
        TelegramMigrateToChat,
        TelegramNetworkError,
        TelegramUnauthorizedError,
    )

    out: list[Finding] = []
    if not settings.telegram_bot_token:
        return [Finding("fail", "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather (/newbot) "
                                "and put its token in .env")]
    own_bot = bot is None
    if own_bot:
        from bot.runtime import make_bot

        bot = make_bot(settings)
    try:
        try:
            me = await bot.get_me()
        except TelegramUnauthorizedError:
            return [Finding("fail", "the token is not valid: Telegram answered 401 Unauthorized. Copy "
                                    "it again from @BotFather (/mybots -> API Token) into TELEGRAM_BOT_TOKEN")]
        except (TelegramNetworkError, OSError, TimeoutError) as exc:
            return [Finding("fail", f"cannot reach the Bot API at {settings.telegram_api_server}: {exc}")]
        out.append(Finding("ok", f"token valid: the bot is @{me.username} (id {me.id})"))
        privacy_on = not me.can_read_all_group_messages

        chat_id = settings.telegram_admin_chat_id
        if not chat_id:
            out.append(Finding("fail", "TELEGRAM_ADMIN_CHAT_ID is not set: add the bot to your group, "
                                       "write /queue there and the bot answers with the group's id "
                                       "(README, \"Telegram: from BotFather to a working group\")"))
            return out
        try:
            chat = await bot.get_chat(chat_id)
        except TelegramMigrateToChat as exc:
            out.append(Finding("fail", f"group {chat_id} was upgraded to a supergroup (turning on topics "
                                       f"does that) and has a new id: set TELEGRAM_ADMIN_CHAT_ID="
                                       f"{exc.migrate_to_chat_id}"))
            return out
        except TelegramAPIError as exc:
            out.append(Finding("fail", f"group {chat_id} is not reachable ({exc.message}): the id is wrong "
                                       f"or the bot is not a member; add @{me.username} to the group"))
            return out
        forum = bool(getattr(chat, "is_forum", False))
        title = getattr(chat, "title", None) or chat_id
        if chat.type not in ("supergroup", "group"):
            out.append(Finding("fail", f"TELEGRAM_ADMIN_CHAT_ID {chat_id} is a {chat.type} chat, not a group"))
            return out
        out.append(Finding("ok", f"group reachable: {title!s} ({chat.type}, topics {'on' if forum else 'off'})"))
        if not forum:
            out.append(Finding("warn", "topics are off: the cards and the replies go to the group's one "
                                       "chat as replies to the cards. Turn on Topics in the group's settings "
                                       "for a topic per request (a basic group becomes a supergroup then and "
                                       "gets a new id: run this check again)"))

        try:
            member = await bot.get_chat_member(chat_id, me.id)
        except TelegramAPIError as exc:
            out.append(Finding("fail", f"cannot read the bot's rights in the group: {exc.message}"))
            return out
        admin = member.status in ("administrator", "creator")
        if not admin:
            out.append(Finding("fail", "the bot is not an administrator of the group: make it one (group "
                                       "settings -> Administrators -> Add admin) with the right to manage "
                                       "topics"))
        elif forum and member.status == "administrator" and not getattr(member, "can_manage_topics", False):
            out.append(Finding("fail", "the bot is an administrator but may not manage topics: turn on "
                                       "\"Manage topics\" in its admin rights (it creates, renames, closes "
                                       "and reopens a topic per request)"))
        else:
            out.append(Finding("ok", "the bot is an administrator" + (" and may manage topics" if forum else "")))
        if privacy_on:
            level = "warn" if admin else "fail"
            out.append(Finding(level, "privacy mode is on (@BotFather -> /setprivacy -> Disable turns it off)"
                                      + ("; an administrator bot sees every message anyway" if admin else
                                         ": the bot sees only commands and replies to its own messages, "
                                         "not the admins' replies in a topic")))
        else:
            out.append(Finding("ok", "privacy mode is off: the bot sees the group's messages"))

        out += await _check_webhook(settings, bot)
    finally:
        if own_bot:
            await bot.session.close()
    return out


async def _check_webhook(settings: Any, bot: Any) -> list[Finding]:
    from aiogram.exceptions import TelegramAPIError

    out: list[Finding] = []
    try:
        info = await bot.get_webhook_info()
    except TelegramAPIError as exc:
        return [Finding("fail", f"getWebhookInfo failed: {exc.message}")]
    if settings.telegram_mode != "webhook":
        if info.url:
            out.append(Finding("warn", f"a webhook is registered ({info.url}) while TELEGRAM_MODE="
                                       f"{settings.telegram_mode}: the bot deletes it when it starts polling"))
        else:
            out.append(Finding("ok", f"no webhook: the bot receives updates by {settings.telegram_mode}"))
        return out
    url = settings.telegram_webhook_url or ""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not url:
        out.append(Finding("fail", "TELEGRAM_MODE=webhook without TELEGRAM_WEBHOOK_URL"))
    elif parsed.scheme != "https" or port not in WEBHOOK_PORTS:
        out.append(Finding("fail", f"TELEGRAM_WEBHOOK_URL {url} cannot work: Telegram calls webhooks only "
                                   f"over HTTPS on ports 443, 80, 88 or 8443 (use a reverse proxy in front "
                                   f"of the API, or polling)"))
    if not settings.telegram_webhook_secret:
        out.append(Finding("fail", "TELEGRAM_MODE=webhook without TELEGRAM_WEBHOOK_SECRET: the bot refuses "
                                   "to start"))
    if not info.url:
        out.append(Finding("fail", "no webhook is registered with Telegram: start the bot (it calls "
                                   "setWebhook) and run this check again"))
    elif url and info.url != url:
        out.append(Finding("fail", f"Telegram delivers to {info.url}, but TELEGRAM_WEBHOOK_URL is {url}: "
                                   f"restart the bot to register the new URL"))
    if info.last_error_message:
        out.append(Finding("fail", f"Telegram's last delivery to the webhook failed: "
                                   f"{info.last_error_message} ({info.pending_update_count} updates waiting)"))
    elif info.url and not [f for f in out if f.level == "fail"]:
        out.append(Finding("ok", f"webhook registered at {info.url}, no delivery errors"))
    return out


def render(findings: list[Finding]) -> tuple[str, int]:
    """The report and the exit status (1 when anything failed)."""
    marks = {"ok": "ok  ", "warn": "note", "fail": "FAIL"}
    lines = [f"{marks[f.level]}  {f.text}" for f in findings]
    failed = [f for f in findings if f.level == "fail"]
    lines.append(f"{len(failed)} problem(s) found" if failed else "the bot is ready")
    return "\n".join(lines), 1 if failed else 0
