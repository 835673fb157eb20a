"""A fake Telegram Bot API server for tests (aiohttp, 127.0.0.1, free port).

Point aiogram at it with `AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))`
(or `TELEGRAM_API_SERVER=fake.base_url`). It answers `/bot{token}/{method}` like Telegram:
JSON, urlencoded and multipart bodies (aiogram sends multipart, with nested objects such as
`reply_markup` as JSON strings; the fake decodes them), `getUpdates` long polling over
updates pushed with `push_update`, files registered with `add_file` served through
`getFile` + `/file/bot{token}/{path}`, forum topics (created, renamed, closed, reopened,
deleted), and Telegram's errors: 429 with `parameters.retry_after` (scripted with
`fail(...)` or produced by the optional per-chat rate limiter), 400 "message is not
modified", "message thread not found", "TOPIC_NOT_MODIFIED", "can't parse entities" (HTML is
parsed like Telegram parses it: `parse_telegram_html`), inline keyboards over 100 buttons or
with callback data over 64 bytes, a group upgraded to a supergroup (its old id answers
`migrate_to_chat_id`), 5xx. For `helpdesk telegram-check`: the bot's membership
(`set_member`), privacy mode (`privacy_mode`), the webhook's last error.

Interface used by the tests:
    fake.base_url, fake.token, fake.admin_chat_id
    fake.calls                      every call, failed ones too (Call.ok / Call.status)
    fake.calls_of(method)           successful calls of one method (include_failed=True: all)
    await fake.wait_for(method, count=1, timeout=10, where=lambda call: ...)
    fake.push_update(update)        served to getUpdates (update_id assigned when missing)
    await fake.post_webhook(url, update, secret)
    fake.fail(method, status=429, retry_after=1, times=1)
    fake.forum = True               every group answers as a forum supergroup
    fake.topic_closed[(chat, topic)] closed topics; fake.topics[chat][topic] their names
    fake.set_member(chat, user_id, status="administrator", can_manage_topics=True, ...)
    fake.privacy_mode = True        getMe says can_read_all_group_messages=False
    fake.migrate_chat(old, new)     getChat(old) answers "upgraded to a supergroup"
    fake.webhook_last_error = "..." getWebhookInfo's last_error_message
    fake.rate_limit_group_per_min = 20   (window: fake.rate_limit_window seconds, 60 default)
    helpers: fake.user(...), fake.message_update(...), fake.callback_update(...),
             fake.edited_message_update(chat, message_id, text=|caption=), fake.age_message(...)
    fake.deleted                    (chat_id, message_id) of successful deleteMessage calls
    deleteMessage of a message older than 48 h: 400 "message can't be deleted"
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmn"
DEFAULT_ADMIN_CHAT_ID = -1001000000001
BOT_USER_ID = 123456789
# Telegram refuses to delete a message older than this (Bot API, deleteMessage).
DELETE_WINDOW = 48 * 3600

# Params that stay strings even when they look like JSON or numbers.
_TEXT_KEYS = {
    "text", "caption", "name", "description", "short_description", "query", "title",
    "secret_token", "url", "callback_query_id", "file_id", "inline_message_id", "emoji",
    "icon_custom_emoji_id", "parse_mode", "allowed_updates_raw",
}
# Methods that put a message into a chat (count towards the per-chat limits).
_CHAT_WRITE_METHODS = {
    "sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "sendVideo", "sendAudio",
    "sendVoice", "sendAnimation", "sendSticker", "copyMessage", "forwardMessage",
    "editMessageText", "editMessageReplyMarkup", "editMessageCaption", "editMessageMedia",
    "createForumTopic", "editForumTopic", "closeForumTopic", "reopenForumTopic",
    "sendLocation", "sendContact", "sendPoll",
}
_TRUE_METHODS = {
    "setMyCommands", "deleteMyCommands", "sendChatAction", "pinChatMessage",
    "unpinChatMessage", "unpinAllChatMessages", "setChatMenuButton", "leaveChat", "logOut", "close",
    "setMyDescription", "setMyShortDescription", "setMyName", "setMessageReaction",
    "banChatMember", "unbanChatMember",
}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    ok: bool = True
    status: int = 200
    result: Any = None
    token: str = ""
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")

    def __repr__(self) -> str:  # short, for assertion messages
        p = {k: v for k, v in self.params.items() if k not in ("reply_markup",)}
        text = json.dumps(p, ensure_ascii=False, default=str)
        return f"Call({self.method}, {text[:160]}, ok={self.ok})"


@dataclass
class _Failure:
    method: str
    status: int
    retry_after: int | None
    times: int
    description: str | None
    where: Callable[[Call], bool] | None
    delay: float


class TelegramError(Exception):
    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad_request(text: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {text}")


# --- Telegram's HTML, parsed as Telegram parses it (tdlib's parse_html) -----------------------
HTML_TAGS = {
    "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji",
    "span", "pre", "code", "blockquote",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|[a-zA-Z][a-zA-Z0-9]{0,31});")
_TAG_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR = re.compile(r"""\s*([a-zA-Z][a-zA-Z0-9_-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")


def parse_telegram_html(text: str) -> str:
    """The visible text of a message in parse_mode HTML, or TelegramError 400 "can't parse
    entities: ..." where Telegram refuses it: an unsupported tag, a tag never closed, an end
    tag that does not close the innermost open one, `<` that starts no tag, a `span` without
    `class="tg-spoiler"`. Offsets are in UTF-8 bytes, as Telegram reports them.

    Stricter than Telegram on one point, on purpose: a `&` must start `&lt;`, `&gt;`, `&amp;`,
    `&quot;` or a numeric reference. Telegram shows anything else literally; everything the
    desk sends is escaped, so a stray `&` can only be a bug (an entity cut in two by a
    splitter) and a test should see it.
    """
    out: list[str] = []
    stack: list[str] = []
    i, n = 0, len(text)

    def offset(at: int) -> int:
        return len(text[:at].encode("utf-8"))

    def refuse(why: str) -> TelegramError:
        return _bad_request(f"can't parse entities: {why}")

    while i < n:
        ch = text[i]
        if ch == "&":
            m = _ENTITY.match(text, i)
            value: str | None = None
            if m is not None:
                body = m.group(1)
                if body.startswith(("#x", "#X")):
                    code = int(body[2:], 16)
                    value = chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else None
                elif body.startswith("#"):
                    code = int(body[1:])
                    value = chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else None
                else:
                    value = _NAMED_ENTITIES.get(body)
            if value is None:
                raise refuse(f"Unsupported HTML entity at byte offset {offset(i)}")
            out.append(value)
            i = m.end()  # type: ignore[union-attr]
            continue
        if ch != "<":
            out.append(ch)
            i += 1
            continue
        at = offset(i)
        if text.startswith("</", i):
            end = text.find(">", i)
            if end < 0:
                raise refuse(f"Unclosed end tag at byte offset {at}")
            name = text[i + 2:end].strip().lower()
            if not stack:
                raise refuse(f"Unexpected end tag at byte offset {at}")
            if name != stack[-1]:
                raise refuse(f'Unmatched end tag at byte offset {at}, expected "</{stack[-1]}>", '
                             f'found "</{name}>"')
            stack.pop()
            i = end + 1
            continue
        m = _TAG_NAME.match(text, i + 1)
        name = m.group().lower() if m else ""
        if name not in HTML_TAGS:
            raise refuse(f'Unsupported start tag "{name}" at byte offset {at}')
        j = m.end()  # type: ignore[union-attr]
        attrs: dict[str, str] = {}
        while True:
            if j >= n:
                raise refuse(f"Unclosed start tag at byte offset {at}")
            if text[j] == ">":
                break
            if text[j].isspace():
                j += 1
                continue
            a = _ATTR.match(text, j)
            if a is None or a.end() == j:
                raise refuse(f'Empty attribute name in the tag "{name}" at byte offset {at}')
            raw = a.group(2) or ""
            attrs[a.group(1).lower()] = raw[1:-1] if raw[:1] in ("'", '"') else raw
            j = a.end()
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise refuse(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
        stack.append(name)
        i = j + 1
    if stack:
        raise refuse(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


MAX_BUTTONS = 100


class FakeTelegram:
    """The fake server. `await start()` / `await stop()`; see the module docstring."""

    def __init__(self, token: str = DEFAULT_TOKEN, admin_chat_id: int = DEFAULT_ADMIN_CHAT_ID):
        self.token = token
        self.admin_chat_id = admin_chat_id
        self.check_token = False  # True: other tokens get 401 Unauthorized
        self.calls: list[Call] = []
        self.forum = False
        # Rate limiter (None = off). Windows in seconds so tests can shrink "a minute".
        self.rate_limit_group_per_min: int | None = None
        self.rate_limit_window: float = 60.0
        self.rate_limit_private_per_sec: int | None = None
        self.rate_limit_global_per_sec: int | None = None
        self.rate_limit_retry_after: int | None = None  # fixed retry_after instead of computed
        self.strict_edits = True  # 400 "message is not modified" on identical edits
        self.deleted: list[tuple[int, int]] = []  # (chat_id, message_id) of deleteMessage calls that worked
        self.bot_username = "helpdesk_test_bot"
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.topics: dict[int, dict[int, str]] = defaultdict(dict)
        self.topic_closed: dict[tuple[int, int], bool] = {}
        self.members: dict[tuple[int, int], dict[str, Any]] = {}
        self.privacy_mode = False
        self.migrated: dict[int, int] = {}
        self.missing_chats: set[int] = set()
        self.webhook_last_error: str | None = None
        self.chats: dict[int, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self._failures: list[_Failure] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._topic_ids = itertools.count(500)
        self._callback_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._hits: dict[Any, deque[float]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._stopping = False

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        self._stopping = True
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scripting ----------------------------------------------------------------------
    def fail(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
        *,
        description: str | None = None,
        where: Callable[[Call], bool] | None = None,
        delay: float = 0.0,
    ) -> None:
        """The next `times` calls of `method` (matching `where`) fail like Telegram would.

        status 429 answers "Too Many Requests: retry after N" with parameters.retry_after;
        5xx answers a gateway error; `delay` sleeps first (to provoke client timeouts).
        `method="*"` matches every method.
        """
        self._failures.append(_Failure(method, status, retry_after, times, description, where, delay))

    def add_file(self, file_id: str, data: bytes) -> None:
        self.files[file_id] = data

    def set_chat(self, chat_id: int, **info: Any) -> None:
        """Override what getChat answers for a chat (title, type, is_forum...)."""
        self.chats[chat_id] = {"id": chat_id, **info}

    def set_member(self, chat_id: int, user_id: int, status: str = "administrator", **rights: Any) -> None:
        """What getChatMember answers for `user_id` in `chat_id` (the bot is an administrator
        with every right unless told otherwise)."""
        self.members[(chat_id, user_id)] = {"status": status, **rights}

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        """Emulate a group upgraded to a supergroup (enabling topics does it): the old id
        answers "group chat was upgraded to a supergroup chat" with the new id."""
        self.migrated[old_id] = new_id

    def delete_topic(self, chat_id: int, topic_id: int) -> None:
        """Emulate an admin deleting a forum topic: sends into it fail afterwards."""
        self.topics[chat_id].pop(topic_id, None)

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates; assigns `update_id` when missing."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        self._updates.append(update)
        self._new_update.set()
        return update

    async def post_webhook(self, url: str, update: dict[str, Any], secret: str | None = None) -> int:
        """POST an update to a webhook like Telegram does; returns the HTTP status."""
        import aiohttp

        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=update, headers=headers) as resp:
                await resp.read()
                return resp.status

    # --- inspection ---------------------------------------------------------------------
    def calls_of(self, method: str, *, include_failed: bool = False) -> list[Call]:
        return [c for c in self.calls if c.method == method and (include_failed or c.ok)]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10,
        where: Callable[[Call], bool] | None = None,
        include_failed: bool = False,
    ) -> list[Call]:
        """Wait until at least `count` successful calls of `method` (matching `where`)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                c for c in self.calls_of(method, include_failed=include_failed)
                if where is None or where(c)
            ]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                recent = "\n  ".join(repr(c) for c in self.calls[-15:])
                raise AssertionError(
                    f"expected {count} {method} call(s) within {timeout}s, got {len(found)}; "
                    f"last calls:\n  {recent}"
                )
            await asyncio.sleep(0.02)

    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._updates)

    # --- update builders ----------------------------------------------------------------
    def user(self, user_id: int, first_name: str = "User", username: str | None = None,
             language_code: str | None = "ru", **extra: Any) -> dict[str, Any]:
        u: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            u["username"] = username
        if language_code:
            u["language_code"] = language_code
        u.update(extra)
        return u

    def chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id in self.chats:
            info = dict(self.chats[chat_id])
            info.setdefault("type", "private" if chat_id > 0 else "supergroup")
            if info["type"] == "supergroup" and self.forum and "is_forum" not in info:
                info["is_forum"] = True
            return info
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        info = {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}
        if self.forum:
            info["is_forum"] = True
        return info

    def message(self, chat_id: int, from_user: dict[str, Any] | None, text: str | None = None,
                **fields_: Any) -> dict[str, Any]:
        """A Message object as Telegram sends it (message_id assigned from the counter)."""
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
        }
        if from_user is not None:
            msg["from"] = from_user
        if text is not None:
            msg["text"] = text
            if text.startswith("/"):
                cmd = text.split()[0]
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(cmd)}]
        thread = fields_.pop("message_thread_id", None)
        if thread is not None:
            msg["message_thread_id"] = thread
            msg["is_topic_message"] = True
        reply_to = fields_.pop("reply_to_message_id", None)
        if reply_to is not None:
            original = self.messages.get((chat_id, reply_to)) or {
                "message_id": reply_to, "date": int(time.time()), "chat": self.chat(chat_id),
            }
            msg["reply_to_message"] = original
        msg.update(fields_)
        self.messages[(chat_id, msg["message_id"])] = msg
        return msg

    def edited_message_update(self, chat_id: int, message_id: int, *, text: str | None = None,
                              caption: str | None = None, push: bool = True) -> dict[str, Any]:
        """A person edits a message they sent earlier (`message_update`): Telegram sends an
        `edited_message` update with the whole message, new text or caption, `edit_date`."""
        msg = self.messages[(chat_id, message_id)]
        if text is not None:
            msg["text"] = text
        if caption is not None:
            msg["caption"] = caption
        msg["edit_date"] = int(time.time())
        update = {"edited_message": dict(msg)}
        return self.push_update(update) if push else update

    def age_message(self, chat_id: int, message_id: int, seconds: float) -> None:
        """Make a stored message `seconds` older (deleting it after 48 h is refused)."""
        self.messages[(chat_id, message_id)]["date"] -= int(seconds)

    def message_update(self, chat_id: int, from_user: dict[str, Any], text: str | None = None,
                       *, push: bool = True, **fields_: Any) -> dict[str, Any]:
        """Build (and by default push) an update with a message from a user.

        Media: pass `photo=[{"file_id": ..., "file_unique_id": ..., "width": .., "height": ..,
        "file_size": ..}]` or `document={...}` plus `caption=`; register bytes with add_file.
        """
        update = {"message": self.message(chat_id, from_user, text, **fields_)}
        return self.push_update(update) if push else update

    def photo(self, file_id: str, data: bytes, width: int = 640, height: int = 480) -> list[dict[str, Any]]:
        self.add_file(file_id, data)
        return [{"file_id": file_id, "file_unique_id": f"u-{file_id}", "width": width,
                 "height": height, "file_size": len(data)}]

    def document(self, file_id: str, data: bytes, file_name: str = "file.txt",
                 mime_type: str = "text/plain") -> dict[str, Any]:
        self.add_file(file_id, data)
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_name": file_name,
                "mime_type": mime_type, "file_size": len(data)}

    def callback_update(self, from_user: dict[str, Any], chat_id: int, message_id: int,
                        data: str, *, push: bool = True) -> dict[str, Any]:
        """Build (and push) a callback_query update for a button on a message the bot sent."""
        message = self.messages.get((chat_id, message_id)) or {
            "message_id": message_id, "date": int(time.time()), "chat": self.chat(chat_id),
            "text": "",
        }
        update = {
            "callback_query": {
                "id": str(next(self._callback_ids)),
                "from": from_user,
                "chat_instance": str(chat_id),
                "message": message,
                "data": data,
            }
        }
        return self.push_update(update) if push else update

    # --- HTTP ---------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, bytes] = {}
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        files[key] = value.file.read()
                    else:
                        raw[key] = value
        params = {k: _decode(k, v) for k, v in raw.items()}
        return params, files

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        try:
            params, files = await self._params(request)
        except Exception as exc:  # malformed body
            return _error(TelegramError(400, f"Bad Request: can't parse body: {exc}"))
        # Not ok until answered: a call still in flight (or delayed by `fail`) is not a success.
        call = Call(method=method, params=params, at=time.monotonic(), token=token, files=files,
                    ok=False, status=0)
        self.calls.append(call)
        if self.check_token and token != self.token:
            call.ok, call.status = False, 401
            return _error(TelegramError(401, "Unauthorized"))
        failure = self._take_failure(call)
        if failure is not None:
            if failure.delay:
                await asyncio.sleep(failure.delay)
            call.ok, call.status = False, failure.status
            return _error(_failure_error(failure))
        limited = self._rate_limited(call)
        if limited is not None:
            call.ok, call.status = False, 429
            return _error(limited)
        try:
            handler = getattr(self, f"_m_{method}", None)
            if handler is not None:
                result = await handler(params, files) if method == "getUpdates" else handler(params, files)
            elif method in _TRUE_METHODS:
                result = True
            else:
                raise TelegramError(404, "Not Found")
        except TelegramError as exc:
            call.ok, call.status = False, exc.status
            return _error(exc)
        call.result = result
        call.ok, call.status = True, 200
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        file_id = path.rsplit("/", 1)[-1]
        data = self.files.get(file_id)
        if data is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    def _take_failure(self, call: Call) -> _Failure | None:
        for failure in self._failures:
            if failure.method not in (call.method, "*"):
                continue
            if failure.where is not None and not failure.where(call):
                continue
            failure.times -= 1
            if failure.times <= 0:
                self._failures.remove(failure)
            return failure
        return None

    def _rate_limited(self, call: Call) -> TelegramError | None:
        if call.method not in _CHAT_WRITE_METHODS:
            return None
        chat_id = call.params.get("chat_id")
        if not isinstance(chat_id, int):
            return None
        now = time.monotonic()
        checks: list[tuple[Any, int, float]] = []
        if self.rate_limit_global_per_sec:
            checks.append(("*", self.rate_limit_global_per_sec, 1.0))
        if chat_id < 0 and self.rate_limit_group_per_min:
            checks.append((chat_id, self.rate_limit_group_per_min, self.rate_limit_window))
        if chat_id > 0 and self.rate_limit_private_per_sec:
            checks.append((chat_id, self.rate_limit_private_per_sec, 1.0))
        for key, limit, window in checks:
            hits = self._hits[key]
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) >= limit:
                wait = self.rate_limit_retry_after or max(1, math.ceil(hits[0] + window - now))
                return TelegramError(
                    429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
                )
        for key, _, _ in checks:
            self._hits[key].append(now)
        return None

    # --- methods ------------------------------------------------------------------------
    def _bot_user(self) -> dict[str, Any]:
        return {"id": BOT_USER_ID, "is_bot": True, "first_name": "Helpdesk",
                "username": self.bot_username}

    def _m_getMe(self, p: dict, f: dict) -> dict:
        return {**self._bot_user(), "can_join_groups": True,
                "can_read_all_group_messages": not self.privacy_mode, "supports_inline_queries": False}

    def _chat_id(self, p: dict) -> int:
        chat_id = p.get("chat_id")
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            return -1009999999999
        if not isinstance(chat_id, int):
            raise _bad_request("chat not found")
        return chat_id

    def _check_thread(self, chat_id: int, p: dict) -> int | None:
        thread = p.get("message_thread_id")
        if thread is None:
            return None
        if chat_id > 0 or not self.forum or thread not in self.topics[chat_id]:
            raise _bad_request("message thread not found")
        return thread

    def _new_message(self, p: dict, **content: Any) -> dict:
        chat_id = self._chat_id(p)
        thread = self._check_thread(chat_id, p)
        msg: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": self._bot_user(),
            "date": int(time.time()),
            "chat": self.chat(chat_id),
        }
        if thread is not None:
            msg["message_thread_id"] = thread
            msg["is_topic_message"] = True
        reply_to = p.get("reply_to_message_id")
        reply_params = p.get("reply_parameters")
        if isinstance(reply_params, dict):
            reply_to = reply_params.get("message_id")
        if reply_to is not None:
            original = self.messages.get((chat_id, reply_to))
            if original is None and not (isinstance(reply_params, dict)
                                         and reply_params.get("allow_sending_without_reply")):
                raise _bad_request("message to be replied not found")
            if original is not None:
                msg["reply_to_message"] = original
        msg.update({k: v for k, v in content.items() if v is not None})
        if isinstance(p.get("reply_markup"), dict) and "inline_keyboard" in p["reply_markup"]:
            msg["reply_markup"] = p["reply_markup"]
        self.messages[(chat_id, msg["message_id"])] = msg
        return msg

    def _visible(self, p: dict, key: str) -> str:
        """The text Telegram would show: HTML parsed when parse_mode is HTML."""
        raw = str(p.get(key) or "")
        if str(p.get("parse_mode") or "").lower() == "html":
            return parse_telegram_html(raw)
        return raw

    def _check_markup(self, p: dict) -> None:
        markup = p.get("reply_markup")
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return
        buttons = [b for row in markup["inline_keyboard"] for b in row]
        if len(buttons) > MAX_BUTTONS:
            raise _bad_request("REPLY_MARKUP_TOO_LONG")
        for b in buttons:
            data = b.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                raise _bad_request("BUTTON_DATA_INVALID")

    def _check_text(self, p: dict) -> str:
        visible = self._visible(p, "text")
        if not visible.strip():
            raise _bad_request("message text is empty")
        if _utf16_len(visible) > 4096:
            raise _bad_request("message is too long")
        self._check_markup(p)
        return str(p.get("text"))

    def _m_sendMessage(self, p: dict, f: dict) -> dict:
        return self._new_message(p, text=self._check_text(p))

    def _file_from(self, value: Any, files: dict[str, bytes], kind: str) -> tuple[str, int]:
        if isinstance(value, str) and value.startswith("attach://"):
            value = value[len("attach://"):]
        if isinstance(value, str) and value in files:
            data = files[value]
            file_id = f"{kind}-{next(self._message_ids)}"
            self.files[file_id] = data
            return file_id, len(data)
        if isinstance(value, str) and value:
            return value, len(self.files.get(value, b""))
        raise _bad_request(f"there is no {kind} in the request")

    def _caption(self, p: dict) -> str | None:
        caption = p.get("caption")
        if caption is not None and _utf16_len(self._visible(p, "caption")) > 1024:
            raise _bad_request("message caption is too long")
        return caption

    def _m_sendPhoto(self, p: dict, f: dict) -> dict:
        file_id, size = self._file_from(p.get("photo"), f, "photo")
        photo = [{"file_id": file_id, "file_unique_id": f"u-{file_id}", "width": 640,
                  "height": 480, "file_size": size}]
        return self._new_message(p, photo=photo, caption=self._caption(p))

    def _m_sendDocument(self, p: dict, f: dict) -> dict:
        file_id, size = self._file_from(p.get("document"), f, "document")
        doc = {"file_id": file_id, "file_unique_id": f"u-{file_id}", "file_size": size,
               "file_name": "document"}
        return self._new_message(p, document=doc, caption=self._caption(p))

    def _m_sendMediaGroup(self, p: dict, f: dict) -> list:
        media = p.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise _bad_request("wrong number of media in the album")
        group_id = str(next(self._message_ids))
        out = []
        for item in media:
            kind = item.get("type", "photo")
            file_id, size = self._file_from(item.get("media"), f, kind)
            content: dict[str, Any] = {"media_group_id": group_id, "caption": item.get("caption")}
            if kind == "photo":
                content["photo"] = [{"file_id": file_id, "file_unique_id": f"u-{file_id}",
                                     "width": 640, "height": 480, "file_size": size}]
            else:
                content[kind] = {"file_id": file_id, "file_unique_id": f"u-{file_id}",
                                 "file_size": size}
            out.append(self._new_message(p, **content))
        return out

    def _m_copyMessage(self, p: dict, f: dict) -> dict:
        from_chat = p.get("from_chat_id")
        original = self.messages.get((from_chat, p.get("message_id")))  # type: ignore[arg-type]
        if original is None:
            raise _bad_request("message to copy not found")
        content = {k: original[k] for k in ("text", "photo", "document", "caption") if k in original}
        if "caption" in p:
            content["caption"] = p["caption"]
        msg = self._new_message(p, **content)
        return {"message_id": msg["message_id"]}

    def _m_forwardMessage(self, p: dict, f: dict) -> dict:
        original = self.messages.get((p.get("from_chat_id"), p.get("message_id")))  # type: ignore[arg-type]
        if original is None:
            raise _bad_request("message to forward not found")
        content = {k: original[k] for k in ("text", "photo", "document", "caption") if k in original}
        return self._new_message(p, **content)

    def _edit_target(self, p: dict) -> dict:
        chat_id = self._chat_id(p)
        msg = self.messages.get((chat_id, p.get("message_id")))  # type: ignore[arg-type]
        if msg is None:
            raise _bad_request("message to edit not found")
        return msg

    def _m_editMessageText(self, p: dict, f: dict) -> dict:
        msg = self._edit_target(p)
        text = self._check_text(p)
        markup = p.get("reply_markup")
        if self.strict_edits and msg.get("text") == text and msg.get("reply_markup") == markup:
            raise _bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        msg["text"] = str(text)
        if markup is not None:
            msg["reply_markup"] = markup
        else:
            msg.pop("reply_markup", None)
        msg["edit_date"] = int(time.time())
        return msg

    def _m_editMessageReplyMarkup(self, p: dict, f: dict) -> dict:
        msg = self._edit_target(p)
        markup = p.get("reply_markup")
        if self.strict_edits and msg.get("reply_markup") == markup:
            raise _bad_request("message is not modified")
        if markup is None:
            msg.pop("reply_markup", None)
        else:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        return msg

    def _m_editMessageCaption(self, p: dict, f: dict) -> dict:
        msg = self._edit_target(p)
        caption = self._caption(p)
        if "caption" not in msg and "photo" not in msg and "document" not in msg:
            raise _bad_request("there is no caption in the message to edit")
        if self.strict_edits and msg.get("caption") == caption:
            raise _bad_request("message is not modified")
        msg["caption"] = caption
        msg["edit_date"] = int(time.time())
        return msg

    def _m_deleteMessage(self, p: dict, f: dict) -> bool:
        chat_id = self._chat_id(p)
        key = (chat_id, p.get("message_id"))
        msg = self.messages.get(key)  # type: ignore[arg-type]
        if msg is None:
            raise _bad_request("message to delete not found")
        if time.time() - msg.get("date", time.time()) > DELETE_WINDOW:
            raise _bad_request("message can't be deleted")
        self.messages.pop(key)  # type: ignore[arg-type]
        self.deleted.append(key)  # type: ignore[arg-type]
        return True

    def _m_answerCallbackQuery(self, p: dict, f: dict) -> bool:
        if not p.get("callback_query_id"):
            raise _bad_request("query is too old and response timeout expired or query ID is invalid")
        return True

    def _m_createForumTopic(self, p: dict, f: dict) -> dict:
        chat_id = self._chat_id(p)
        if chat_id > 0 or not (self.forum or self.chats.get(chat_id, {}).get("is_forum")):
            raise _bad_request("the chat is not a forum")
        name = str(p.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise _bad_request("TOPIC_NAME_INVALID")
        topic_id = next(self._topic_ids)
        self.topics[chat_id][topic_id] = name
        return {"message_thread_id": topic_id, "name": name, "icon_color": 7322096}

    def _m_deleteForumTopic(self, p: dict, f: dict) -> bool:
        self.topics[self._chat_id(p)].pop(p.get("message_thread_id"), None)  # type: ignore[arg-type]
        return True

    def _topic(self, p: dict) -> tuple[int, int]:
        chat_id = self._chat_id(p)
        topic = p.get("message_thread_id")
        if not isinstance(topic, int) or topic not in self.topics[chat_id]:
            raise _bad_request("TOPIC_ID_INVALID")
        return chat_id, topic

    def _m_editForumTopic(self, p: dict, f: dict) -> bool:
        chat_id, topic = self._topic(p)
        name = p.get("name")
        if name is not None:
            name = str(name)
            if not 1 <= len(name) <= 128:
                raise _bad_request("TOPIC_NAME_INVALID")
            if self.topics[chat_id][topic] == name:
                raise _bad_request("TOPIC_NOT_MODIFIED")
            self.topics[chat_id][topic] = name
        return True

    def _m_closeForumTopic(self, p: dict, f: dict) -> bool:
        chat_id, topic = self._topic(p)
        if self.topic_closed.get((chat_id, topic)):
            raise _bad_request("TOPIC_NOT_MODIFIED")
        self.topic_closed[(chat_id, topic)] = True
        return True

    def _m_reopenForumTopic(self, p: dict, f: dict) -> bool:
        chat_id, topic = self._topic(p)
        if not self.topic_closed.get((chat_id, topic)):
            raise _bad_request("TOPIC_NOT_MODIFIED")
        self.topic_closed[(chat_id, topic)] = False
        return True

    def _m_getChat(self, p: dict, f: dict) -> dict:
        chat_id = self._chat_id(p)
        if chat_id in self.migrated:
            raise TelegramError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                                {"migrate_to_chat_id": self.migrated[chat_id]})
        if chat_id in self.missing_chats:
            raise _bad_request("chat not found")
        # ChatFullInfo: the fields Telegram always sends.
        return {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                "premium_subscription": False, "gifts_from_channels": False,
            },
            **self.chat(self._chat_id(p)),
        }

    def _m_getChatMember(self, p: dict, f: dict) -> dict:
        chat_id = self._chat_id(p)
        if chat_id in self.missing_chats:
            raise _bad_request("chat not found")
        user_id = p.get("user_id")
        user = (self._bot_user() if user_id == BOT_USER_ID
                else {"id": user_id, "is_bot": False, "first_name": "User"})
        member = self.members.get((chat_id, user_id))  # type: ignore[arg-type]
        if member is None and user_id == BOT_USER_ID:
            member = {"status": "administrator"}
        member = dict(member or {"status": "member"})
        if member["status"] == "administrator":
            rights = {
                "can_be_edited": False, "is_anonymous": False, "can_manage_chat": True,
                "can_delete_messages": True, "can_manage_video_chats": True,
                "can_restrict_members": True, "can_promote_members": False, "can_change_info": True,
                "can_invite_users": True, "can_post_stories": False, "can_edit_stories": False,
                "can_delete_stories": False, "can_send_welcome_messages": False,
                "can_pin_messages": True, "can_manage_topics": True,
            }
            member = {**rights, **member}
        return {**member, "user": user}

    def _m_getFile(self, p: dict, f: dict) -> dict:
        file_id = p.get("file_id")
        if file_id not in self.files:
            raise _bad_request("invalid file_id")
        return {"file_id": file_id, "file_unique_id": f"u-{file_id}",
                "file_size": len(self.files[file_id]), "file_path": f"files/{file_id}"}

    def _m_setWebhook(self, p: dict, f: dict) -> bool:
        self.webhook_url = p.get("url") or None
        self.webhook_secret = p.get("secret_token")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_deleteWebhook(self, p: dict, f: dict) -> bool:
        self.webhook_url = None
        self.webhook_secret = None
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_getWebhookInfo(self, p: dict, f: dict) -> dict:
        info: dict[str, Any] = {"url": self.webhook_url or "", "has_custom_certificate": False,
                                "pending_update_count": len(self._updates)}
        if self.webhook_last_error:
            info["last_error_date"] = int(time.time()) - 30
            info["last_error_message"] = self.webhook_last_error
        return info

    async def _m_getUpdates(self, p: dict, f: dict) -> list:
        if self.webhook_url:
            raise TelegramError(
                409, "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first"
            )
        offset = p.get("offset")
        if isinstance(offset, int) and offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = p.get("limit") if isinstance(p.get("limit"), int) else 100
        timeout = p.get("timeout") if isinstance(p.get("timeout"), int | float) else 0
        deadline = time.monotonic() + min(float(timeout), 30.0)
        while not self._updates and time.monotonic() < deadline and not self._stopping:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        return self._updates[:limit]


def _decode(key: str, value: Any) -> Any:
    """Form values arrive as strings: decode JSON objects/arrays, ints and booleans."""
    if not isinstance(value, str) or key in _TEXT_KEYS:
        return value
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    if stripped in ("true", "false"):
        return stripped == "true"
    return value


def _failure_error(failure: _Failure) -> TelegramError:
    if failure.status == 429:
        wait = failure.retry_after if failure.retry_after is not None else 1
        return TelegramError(
            429, failure.description or f"Too Many Requests: retry after {wait}", {"retry_after": wait}
        )
    descriptions = {
        400: "Bad Request", 401: "Unauthorized", 403: "Forbidden: bot was blocked by the user",
        404: "Not Found", 409: "Conflict", 500: "Internal Server Error", 502: "Bad Gateway",
        503: "Service Unavailable", 504: "Gateway Timeout",
    }
    return TelegramError(failure.status, failure.description or descriptions.get(failure.status, "Error"))


def _error(exc: TelegramError) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.status)
