"""The persistent Telegram delivery queue (db.models.TelegramOutbox).

Every outgoing Bot API call is a row; `telegram_delivery.sender` drains the rows within Telegram's limits.
Enqueueing is idempotent: `dedup_key` is unique, so a relay that re-reads an event (after
a restart, or in its trailing re-scan window) can never queue a message twice.

A row is the Bot API method's parameters plus a typed `contract.Delivery`: what the
sender does around the call (render the card at send time, send into a request's thread,
record the copies, upload a file, draw a chart); see telegram_delivery/contract.py.

Every row has a priority class (`Priority`, the budget order): the sender serves a chat's
lower class first, round robin per customer inside a class.
Public API: `enqueue`, `send_text`, `split_html`, `Priority`, `priority_of`; the
`Delivery` of a row comes from telegram_delivery.contract.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from enum import IntEnum
from typing import Any

from db.models import TelegramOutbox
from telegram_delivery.contract import Delivery, Kind, pack

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
# A message reaches Telegram in at most this many parts; the rest is cut with a note that
# the full text is on the request (one huge message must not hold a chat for an hour).
MAX_PARTS = 3
MEDIA_METHODS = {"sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendAnimation", "sendVoice"}
CAPTIONED_METHODS = MEDIA_METHODS | {"copyMessage"}


class Priority(IntEnum):
    """The budget order of a chat: a lower class goes first (docs/telegram.md)."""

    CONVERSATION = 1  # messages relayed to and from customers, status notices, chat bridge
    NEW_REQUEST = 2  # new-request cards, their topics, burst summaries
    EDIT = 3  # card and summary edits, topic renames, closing and reopening topics, edits and
    # deletions of relayed copies
    BACKGROUND = 4  # reminders, digests, cards that follow a summary


_CLASS_OF_KIND = {
    Kind.THREAD: Priority.CONVERSATION, Kind.CUSTOMER: Priority.CONVERSATION,
    Kind.NOTIFY: Priority.CONVERSATION, Kind.CHAT: Priority.CONVERSATION,
    Kind.CARD: Priority.NEW_REQUEST, Kind.TOPIC: Priority.NEW_REQUEST, Kind.SUMMARY: Priority.NEW_REQUEST,
    Kind.CARD_EDIT: Priority.EDIT, Kind.SUMMARY_EDIT: Priority.EDIT, Kind.TOPIC_EDIT: Priority.EDIT,
    Kind.TOPIC_STATE: Priority.EDIT,
    # Edits and deletions of relayed copies of a thread message (telegram_delivery.relay,
    # message_updated and message_deleted): edits of what is already there, like card edits.
    Kind.COPY_CHANGE: Priority.EDIT,
    Kind.DIGEST_CHART: Priority.BACKGROUND,
}


def priority_of(delivery: Delivery | None) -> Priority:
    """The class of a row by its delivery's kind (NEW_REQUEST when it has none)."""
    kind = delivery.kind if delivery is not None else None
    return _CLASS_OF_KIND.get(kind, Priority.NEW_REQUEST) if kind else Priority.NEW_REQUEST


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
    delivery: Delivery | None = None,
    request_id: int | None = None,
    using_db: Any = None,
    more: str | None = None,
    max_parts: int = MAX_PARTS,
    priority: int | None = None,
) -> bool:
    """Queue one Bot API call (`method` with the parameters `payload`) for `chat_id`, with
    what the sender does around it (`delivery`), in budget class `priority` (default: by
    the delivery's kind, `priority_of`). Returns False when `dedup_key` is already queued
    (whatever its state), True when this call queued it.

    Guarantees: at most one row per dedup_key, safe under concurrent callers on SQLite and
    PostgreSQL and inside the caller's transaction (`using_db`; a conflict never aborts it).
    A `sendMessage` text over 4,096 characters becomes several rows (`<key>#2`, `#3`...),
    `max_parts` at most: the last one then ends with `more` (HTML; default `cut_note`:
    "the full text is on request #N" in the desk's language). A media caption over 1,024
    characters is sent as a text message right after the file, in `max_parts - 1` parts.
    """
    payload = dict(payload)
    payload["chat_id"] = chat_id
    delivery = delivery or Delivery()
    prio = int(priority if priority is not None else priority_of(delivery))
    if method == "sendMessage" and tg_len(str(payload.get("text", ""))) > TEXT_LIMIT:
        note = more if more is not None else cut_note(request_id)
        parts = split_html(str(payload["text"]), TEXT_LIMIT, max_parts=max(1, max_parts), more=note)
        first = True
        created_first = False
        for n, part in enumerate(parts, start=1):
            p = dict(payload, text=part)
            if n < len(parts):
                # Buttons belong under the last part.
                p.pop("reply_markup", None)
            key = dedup_key if n == 1 else f"{dedup_key}#{n}"
            # Each part records its own message link (edits go part by part).
            created = await _insert(chat_id, method, pack(p, delivery.with_link(part=n)), key,
                                    request_id, using_db, prio)
            if first:
                created_first, first = created, False
        return created_first
    if method in CAPTIONED_METHODS and tg_len(str(payload.get("caption") or "")) > CAPTION_LIMIT:
        caption = str(payload.pop("caption"))
        # The file goes without the text; the text follows it.
        created = await _insert(chat_id, method, pack(payload, delivery.with_link(kind="media")),
                                dedup_key, request_id, using_db, prio)
        follow: dict[str, Any] = {"text": caption}
        if "message_thread_id" in payload:
            follow["message_thread_id"] = payload["message_thread_id"]
        follows = Delivery(kind=delivery.kind, request_id=delivery.request_id,
                           thread_of=delivery.thread_of, link=delivery.link).with_link(kind="text")
        await enqueue(chat_id, "sendMessage", follow, dedup_key=f"{dedup_key}:caption",
                      delivery=follows, request_id=request_id, using_db=using_db, more=more,
                      max_parts=max(1, max_parts - 1), priority=prio)
        return created
    return await _insert(chat_id, method, pack(payload, delivery), dedup_key, request_id, using_db, prio)


def cut_note(request_id: int | None, lang: str | None = None) -> str:
    """The note that ends a message cut at `MAX_PARTS` (HTML): where the full text is."""
    from core import runtime
    from telegram_delivery.texts import tr

    lang = lang or runtime.settings().language
    if request_id is None:
        return f"<i>{tr('text_cut', lang)}</i>"
    return f"<i>{tr('relay_cut', lang, id=request_id)}</i>"


async def _insert(
    chat_id: int, method: str, payload: dict[str, Any], dedup_key: str,
    request_id: int | None, using_db: Any, priority: int = Priority.NEW_REQUEST,
) -> bool:
    if len(dedup_key) > 128:
        raise ValueError(f"dedup_key longer than 128 characters: {dedup_key[:40]}...")
    if await TelegramOutbox.filter(dedup_key=dedup_key).using_db(using_db).exists():
        return False
    nonce = uuid.uuid4().hex
    row = TelegramOutbox(
        dedup_key=dedup_key, chat_id=chat_id, method=method, payload=payload,
        request_id=request_id, status="pending", last_error=f"nonce:{nonce}",
        priority=int(priority),
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
    priority: int | None = None,
) -> bool:
    """Queue an HTML text message (the caller escapes user content with html.escape).
    Idempotent by `dedup_key`; long texts are split (see `enqueue`)."""
    payload: dict[str, Any] = {"text": text}
    if thread_id is not None:
        payload["message_thread_id"] = thread_id
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    return await enqueue(chat_id, "sendMessage", payload, dedup_key=dedup_key, request_id=request_id,
                         priority=priority)


# --- splitting HTML -------------------------------------------------------------------------
# A tag is `<` up to the next `>` with no `<` between (so a run of `<` costs one step each,
# never a rescan); an entity is bounded. User text reaches here escaped (html.escape).
_MARKUP = re.compile(r"<[^<>]*>|&#?[a-zA-Z0-9]{1,16};")
_TAG = re.compile(r"<\s*(/)?\s*([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/)?\s*>")
MIN_SPLIT_LIMIT = 64


def _is_extender(ch: str) -> bool:
    """True for a code point that belongs to the grapheme before it: a cut before it would
    separate a combining mark, a variation selector, a skin tone, a ZWJ or an emoji tag
    from its base."""
    o = ord(ch)
    return (
        o == 0x200D
        or 0xFE00 <= o <= 0xFE0F
        or 0x1F3FB <= o <= 0x1F3FF
        or 0xE0020 <= o <= 0xE007F
        or 0xE0100 <= o <= 0xE01EF
        or (o >= 0x300 and unicodedata.category(ch) in ("Mn", "Me", "Mc"))
    )


def split_html(
    text: str, limit: int = TEXT_LIMIT, *, max_parts: int | None = None, more: str = ""
) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` UTF-16 units each.

    Guarantees:
    - every part is at most `limit` units (as Telegram counts: astral characters are two);
    - a tag or an entity is never cut; a grapheme (base + combining marks, ZWJ sequences,
      skin tones, flags' tag sequences) is cut only when it alone is longer than a part;
    - tags open at a cut are closed at the end of the part and reopened in the next one;
      a closing tag with no opening one is dropped, so every part is balanced;
    - prefers a paragraph, then a line, then a word boundary in the last two thirds;
    - linear in the input, and with `max_parts` bounded by `max_parts * limit` steps
      whatever the input's size: the last part then ends with `more` (an HTML note, for
      example "the full text is on the request") when text was left out.
    """
    if limit < MIN_SPLIT_LIMIT:
        raise ValueError(f"limit must be at least {MIN_SPLIT_LIMIT}")
    if len(text) <= limit // 2 or tg_len(text) <= limit:
        return [text]
    note = ("\n" + more) if more else ""
    note_units = tg_len(note)
    n = len(text)
    parts: list[str] = []
    stack: tuple[tuple[str, str], ...] = ()
    pos = 0
    while pos < n:
        if max_parts is not None and len(parts) == max_parts:
            # Only what a reader would miss earns the note (bounded: a long rest is text).
            if _rest_is_text(text, pos, limit):
                parts[-1] += note
            break
        if _units(_prefix(stack)) + _closing_units(stack) > limit // 2:
            stack = ()  # pathological nesting: start the part clean rather than loop
        last = max_parts is not None and len(parts) == max_parts - 1
        room = limit
        if last and not _rest_fits(text, pos, stack, limit):
            room = limit - note_units
        cut, stack_at_cut, dropped = _fill(text, pos, stack, room)
        head = (_prefix(stack) + _without(text, pos, cut, dropped)).rstrip()
        if _visible(head):
            parts.append(head + "".join(f"</{name}>" for name, _ in reversed(stack_at_cut)))
        stack = stack_at_cut
        pos = cut
        while pos < n and text[pos] == "\n":
            pos += 1
    return parts


def _fill(
    text: str, pos: int, stack: tuple[tuple[str, str], ...], room: int
) -> tuple[int, tuple[tuple[str, str], ...], list[tuple[int, int]]]:
    """Take tokens from `pos` while the part (reopened tags + text + closing tags) fits in
    `room`; return where to cut, the tags open there and the spans of dropped tags (stray
    closing tags, a tag longer than a part). Always advances past `pos`."""
    n = len(text)
    used = _units(_prefix(stack))
    closing = _closing_units(stack)
    start = pos
    i = pos
    # Best cut so far per kind: paragraph, line, word, any grapheme boundary.
    breaks: list[tuple[int, tuple] | None] = [None, None, None, None]
    dropped: list[tuple[int, int]] = []
    while i < n:
        ch = text[i]
        new_stack = stack
        new_closing = closing
        m = _MARKUP.match(text, i) if ch in "<&" else None
        if m is not None:
            token = m.group()
            j = m.end()
            units = _units(token)
            tag = _TAG.fullmatch(token) if ch == "<" else None
            if tag is not None and not tag.group(3):
                name = tag.group(2).lower()
                if tag.group(1):
                    k = _last_index(stack, name)
                    if k < 0:
                        dropped.append((i, j))  # a closing tag with no opening one
                        i = j
                        continue
                    new_stack = stack[:k] + stack[k + 1:]
                    new_closing = closing - len(name) - 3
                else:
                    new_stack = stack + ((name, token),)
                    new_closing = closing + len(name) + 3
            boundary = True
        else:
            j = i + 1
            units = 2 if ord(ch) > 0xFFFF else 1
            boundary = not _is_extender(ch) and not (i > start and text[i - 1] == "\u200d")
        if boundary and i > start:
            breaks[3] = (i, stack)
        if used + units + new_closing > room:
            if i == start:
                # One token longer than a whole part (a huge tag): drop it.
                return j, stack, dropped + [(i, j)]
            floor = start + (i - start) // 3
            for found in breaks:
                if found is not None and found[0] > floor:
                    return found[0], found[1], dropped
            found = breaks[3] if breaks[3] is not None else (i, stack)
            return found[0], found[1], dropped
        used += units
        closing = new_closing
        stack = new_stack
        i = j
        if ch == "\n":
            kind = 0 if i - 2 >= start and text[i - 2] == "\n" else 1
            breaks[kind] = (i, stack)
        elif ch == " ":
            breaks[2] = (i, stack)
    return n, stack, dropped


def _without(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> str:
    """text[start:end] without the dropped spans that lie before `end`."""
    if not spans:
        return text[start:end]
    pieces, at = [], start
    for a, b in spans:
        if a >= end:
            break
        pieces.append(text[at:a])
        at = b
    pieces.append(text[at:end])
    return "".join(pieces)


def _rest_fits(text: str, pos: int, stack: tuple[tuple[str, str], ...], limit: int) -> bool:
    """Whether the rest makes one last part. Filled for real (at most `limit` steps): adding
    the open tags' closing length to the rest counted them twice when the rest closes them
    itself, and cut a text that fitted with a needless "full text on the request" note.
    What is left after that part counts only if a reader would see it (an empty link at the
    end is markup, and the splitter drops it); the bound on the rest is the one `split_html`
    uses before it adds the note."""
    if len(text) - pos > 4 * limit:
        return False
    cut, _, _ = _fill(text, pos, stack, limit)
    return not _rest_is_text(text, cut, limit)


def _rest_is_text(text: str, pos: int, limit: int) -> bool:
    """Whether a reader would miss what is left from `pos`: anything visible in it (a rest
    longer than four parts counts as text without being scanned, which keeps this bounded)."""
    return len(text) - pos > 4 * limit or _visible(text[pos:])


def _units(s: str) -> int:
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF) if not s.isascii() else len(s)


def _prefix(stack: tuple[tuple[str, str], ...]) -> str:
    return "".join(tag for _, tag in stack)


def _closing_units(stack: tuple[tuple[str, str], ...]) -> int:
    return sum(len(name) + 3 for name, _ in stack)


def _last_index(stack: tuple[tuple[str, str], ...], name: str) -> int:
    for k in range(len(stack) - 1, -1, -1):
        if stack[k][0] == name:
            return k
    return -1


def _visible(html_text: str) -> bool:
    """Whether a part shows anything once its tags are removed."""
    return bool(_MARKUP.sub(lambda m: "x" if m.group().startswith("&") else "", html_text).strip())


async def prune_delivered(before) -> int:
    """Delete queue rows that were sent, merged (into a summary or a newer edit) or ignored
    (an edit or deletion of a copy Telegram refused for good) before `before`, and inbound
    update ids recorded before it (Telegram redelivers updates for 24 h at most)."""
    from db.models import ProcessedUpdate

    sent = await TelegramOutbox.filter(
        status__in=("sent", "merged", "ignored"), created_at__lt=before
    ).delete()
    seen = await ProcessedUpdate.filter(created_at__lt=before).delete()
    return sent + seen
