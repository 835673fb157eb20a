"""The persistent Telegram delivery queue (db.models.TelegramOutbox).

Every outgoing Bot API call is a row; `bot.sender` drains the rows within Telegram's limits.
Enqueueing is idempotent: `dedup_key` is unique, so a relay that re-reads an event (after
a restart, or in its trailing re-scan window) can never queue a message twice.

A payload is the Bot API method's parameters plus an optional `_meta` dict the sender
interprets and strips before the call:
    kind           "card" | "card_edit" | "topic" | "thread" | "notify" | "chat" | "summary"
    request_id     the request the row belongs to
    thread_of      put the message into this request's thread at send time (forum topic,
                   or a reply to its card)
    render_card    render the request card from the database at send time (text+keyboard)
    mergeable      a new-request card the burst handling may fold into a summary
    link           TelegramMessageLink fields to store for the sent message(s)
    upload         {"field": "document"|"photo", "path": absolute path, "name": file name}
Public API: `enqueue`, `send_text`, `split_html`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from db.models import TelegramOutbox

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MEDIA_METHODS = {"sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendAnimation", "sendVoice"}


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units); measured on the HTML source,
    which is never shorter than the visible text."""
    return len(text.encode("utf-16-le")) // 2


async def enqueue(
    chat_id: int,
    method: str,
    payload: dict[str, Any],
    *,
    dedup_key: str,
    request_id: int | None = None,
    using_db: Any = None,
) -> bool:
    """Queue one Bot API call for `chat_id`. Returns False when `dedup_key` is already queued
    (whatever its state), True when this call queued it.

    Guarantees: at most one row per dedup_key, safe under concurrent callers on SQLite and
    PostgreSQL and inside the caller's transaction (`using_db`; a conflict never aborts it).
    A `sendMessage` text over 4,096 characters becomes several rows (`<key>#2`, `#3`...);
    a media caption over 1,024 characters is sent as a text message right after the file.
    """
    payload = dict(payload)
    payload["chat_id"] = chat_id
    if method == "sendMessage" and tg_len(str(payload.get("text", ""))) > TEXT_LIMIT:
        parts = split_html(str(payload["text"]), TEXT_LIMIT)
        first = True
        created_first = False
        for n, part in enumerate(parts, start=1):
            p = dict(payload, text=part)
            if n < len(parts):
                # Buttons belong under the last part.
                p.pop("reply_markup", None)
            key = dedup_key if n == 1 else f"{dedup_key}#{n}"
            created = await _insert(chat_id, method, p, key, request_id, using_db)
            if first:
                created_first, first = created, False
        return created_first
    if method in MEDIA_METHODS and tg_len(str(payload.get("caption") or "")) > CAPTION_LIMIT:
        caption = str(payload.pop("caption"))
        created = await _insert(chat_id, method, payload, dedup_key, request_id, using_db)
        meta = payload.get("_meta") or {}
        follow: dict[str, Any] = {"text": caption, "chat_id": chat_id}
        if "message_thread_id" in payload:
            follow["message_thread_id"] = payload["message_thread_id"]
        follow_meta = {k: v for k, v in meta.items() if k in ("kind", "request_id", "thread_of", "link")}
        if follow_meta:
            follow["_meta"] = follow_meta
        await enqueue(chat_id, "sendMessage", follow, dedup_key=f"{dedup_key}:caption",
                      request_id=request_id, using_db=using_db)
        return created
    return await _insert(chat_id, method, payload, dedup_key, request_id, using_db)


async def _insert(
    chat_id: int, method: str, payload: dict[str, Any], dedup_key: str,
    request_id: int | None, using_db: Any,
) -> bool:
    if len(dedup_key) > 128:
        raise ValueError(f"dedup_key longer than 128 characters: {dedup_key[:40]}...")
    if await TelegramOutbox.filter(dedup_key=dedup_key).using_db(using_db).exists():
        return False
    nonce = uuid.uuid4().hex
    row = TelegramOutbox(
        dedup_key=dedup_key, chat_id=chat_id, method=method, payload=payload,
        request_id=request_id, status="pending", last_error=f"nonce:{nonce}",
    )
    # INSERT .. ON CONFLICT DO NOTHING (INSERT OR IGNORE on SQLite): a concurrent duplicate
    # never raises, so the caller's transaction stays usable on PostgreSQL.
    await TelegramOutbox.bulk_create([row], ignore_conflicts=True, using_db=using_db)
    stored = await TelegramOutbox.filter(dedup_key=dedup_key).using_db(using_db).first()
    if stored is None or stored.last_error != f"nonce:{nonce}":
        return False
    await TelegramOutbox.filter(id=stored.id, last_error=f"nonce:{nonce}").using_db(using_db).update(
        last_error=None
    )
    return True


async def send_text(
    chat_id: int,
    text: str,
    *,
    dedup_key: str,
    thread_id: int | None = None,
    reply_markup: dict | None = None,
    request_id: int | None = None,
) -> bool:
    """Queue an HTML text message (the caller escapes user content with html.escape).
    Idempotent by `dedup_key`; long texts are split (see `enqueue`)."""
    payload: dict[str, Any] = {"text": text}
    if thread_id is not None:
        payload["message_thread_id"] = thread_id
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    return await enqueue(chat_id, "sendMessage", payload, dedup_key=dedup_key, request_id=request_id)


# --- splitting HTML -------------------------------------------------------------------------
_TOKEN = re.compile(r"(<[^>]*>|&[#a-zA-Z0-9]+;)")
_TAG = re.compile(r"<\s*(/)?\s*([a-zA-Z0-9-]+)[^>]*?(/)?\s*>")


def split_html(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` characters.

    Prefers paragraph, then line, then word boundaries; never cuts a tag or an entity;
    tags open at a cut are closed at the end of the part and reopened in the next one.
    """
    if tg_len(text) <= limit:
        return [text]
    parts: list[str] = []
    stack: list[tuple[str, str]] = []
    rest = text
    while True:
        prefix = "".join(tag for _, tag in stack)
        if tg_len(prefix + rest) <= limit:
            if (prefix + rest).strip():
                parts.append(prefix + rest)
            return parts
        budget = max(16, limit - tg_len(prefix) - 200)  # room for closing tags
        window = rest[:budget]
        while tg_len(window) > budget:
            window = window[: len(window) - (tg_len(window) - budget)]
        cut = _best_cut(window)
        head = window[:cut]
        end_stack = _open_at_end(head, stack)
        parts.append(prefix + head.rstrip() + "".join(f"</{n}>" for n, _ in reversed(end_stack)))
        stack = end_stack
        rest = rest[cut:].lstrip("\n")


def _best_cut(body: str) -> int:
    """Cut at the last paragraph break, else line break, else space, outside tags."""
    n = len(body)
    floor = n // 3
    for sep in ("\n\n", "\n", " "):
        pos = body.rfind(sep)
        while pos > floor:
            # Not inside a tag or an entity.
            if body.rfind("<", 0, pos) <= body.rfind(">", 0, pos) and body.rfind("&", 0, pos) <= body.rfind(";", 0, pos):
                return pos + len(sep)
            pos = body.rfind(sep, 0, pos)
    cut = n
    lt, gt = body.rfind("<"), body.rfind(">")
    if lt > gt:
        cut = lt
    amp, semi = body.rfind("&", 0, cut), body.rfind(";", 0, cut)
    if amp > semi and cut - amp < 12:
        cut = amp
    return cut if cut > 0 else n


def _open_at_end(html_text: str, start: list[tuple[str, str]]) -> list[tuple[str, str]]:
    stack = list(start)
    for m in _TAG.finditer(html_text):
        if m.group(3):
            continue
        name = m.group(2).lower()
        if m.group(1):
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] == name:
                    del stack[i]
                    break
        else:
            stack.append((name, m.group(0)))
    return stack


async def prune_delivered(before) -> int:
    """Delete queue rows that were sent (or merged into a summary) before `before`, and
    inbound update ids recorded before it (Telegram redelivers updates for 24 h at most)."""
    from db.models import ProcessedUpdate

    sent = await TelegramOutbox.filter(
        status__in=("sent", "merged"), created_at__lt=before
    ).delete()
    seen = await ProcessedUpdate.filter(created_at__lt=before).delete()
    return sent + seen
