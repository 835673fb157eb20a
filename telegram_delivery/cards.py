"""What the delivery side posts: request cards (text + inline keyboard JSON), burst summaries,
customer notifications and relayed messages. Pure functions; no aiogram import.

Callback data agreed with the handlers: `req:take:<id>`, `req:done:<id>`, `req:open:<id>`
(telegram_delivery.callbacks.request_callback).
Texts are the `bot.` group of the one catalog, core/locales/<lang>.po (Russian default, English).
"""

from __future__ import annotations

import html
from typing import Any

from core.texts import CATEGORY_LABELS, PRIORITY_LABELS, STATUS_LABELS
from telegram_delivery.callbacks import RateRequest, request_callback
from telegram_delivery.texts import lang_of, plain
from telegram_delivery.texts import tr as text

DESCRIPTION_LIMIT = 3000  # the card is one message: keep the description within 4,096


def _label(table: dict[str, dict[str, str]], value: Any, lang: str) -> str:
    return table.get(lang, {}).get(str(value), str(value))


def _person(user: dict[str, Any] | None) -> str:
    if not user:
        return "—"
    name = f"{user.get('first_name', '')} {user.get('last_name', '')}".strip() or user.get("username") or "?"
    tg = user.get("telegram_username")
    return f"{name} (@{tg})" if tg else name


def card_text(req: dict[str, Any], lang: str = "ru") -> str:
    """The card of a request (`request_data` shape) as HTML."""
    lang = lang_of(lang)
    description = html.escape(str(req.get("description") or ""), quote=False)
    if len(description) > DESCRIPTION_LIMIT:
        cut = description[:DESCRIPTION_LIMIT]
        if cut.rfind("&") > cut.rfind(";"):
            cut = cut[: cut.rfind("&")]
        description = cut + "…"
    rows = [
        f"<b>{text('card_title', lang, id=req['id'], title=req.get('title', ''))}</b>",
        f"{text('card_status', lang)}: <b>{html.escape(_label(STATUS_LABELS, req.get('status'), lang))}</b>",
        f"{text('card_priority', lang)}: {html.escape(_label(PRIORITY_LABELS, req.get('priority'), lang))}",
        f"{text('card_category', lang)}: {html.escape(_label(CATEGORY_LABELS, req.get('category'), lang))}",
        f"{text('card_customer', lang)}: {html.escape(_person(req.get('customer')))}",
    ]
    if req.get("assigned_admin"):
        rows.append(f"{text('card_assignee', lang)}: {html.escape(_person(req['assigned_admin']))}")
    rows.append("")
    rows.append(description)
    return "\n".join(rows)


def card_keyboard(req: dict[str, Any], lang: str = "ru") -> dict[str, Any]:
    """Inline keyboard JSON: Take while open and unassigned, Complete while in progress,
    Thread always."""
    rid = req["id"]
    row: list[dict[str, str]] = []
    status = str(req.get("status"))
    if status == "open" and not req.get("assigned_admin"):
        row.append({"text": plain("card_btn_take", lang), "callback_data": request_callback("take", rid)})
    if status == "in_progress":
        row.append({"text": plain("card_btn_done", lang), "callback_data": request_callback("done", rid)})
    row.append({"text": plain("card_btn_thread", lang), "callback_data": request_callback("open", rid)})
    return {"inline_keyboard": [row]}


def deleted_card_text(request_id: int, lang: str = "ru") -> str:
    return f"<s>{text('card_deleted', lang, id=request_id)}</s>"


def topic_name(req: dict[str, Any], lang: str = "ru") -> str:
    """The forum topic's name: "#12 title", with the status in front once the request is
    completed or closed ("[Выполнен] #12 title"). At most 128 characters (Telegram's limit)."""
    name = plain("topic_name", lang_of(lang), id=req["id"], title=str(req.get("title", "")))
    status = str(req.get("status"))
    if status in ("completed", "closed"):
        name = plain("topic_name_status", lang_of(lang), status=_label(STATUS_LABELS, status, lang_of(lang)),
                     name=name)
    return name[:128]


# --- burst summaries ----------------------------------------------------------------------
# One summary is one message: at most 4,096 characters of text and, by Telegram's limit on
# inline keyboards, 100 buttons. Lines are packed by their open rendering ("#12 title", the
# title cut to SUMMARY_TITLE_CHARS); an edited summary whose struck-through lines with names
# would not fit shows the handled requests by number only ("<s>#12</s>"), which is shorter
# than their open lines, so every summary always fits.
SUMMARY_TEXT_LIMIT = 4096
SUMMARY_MAX_BUTTONS = 100
SUMMARY_TITLE_CHARS = 80
SUMMARY_NAME_CHARS = 40
SUMMARY_BUTTONS_PER_ROW = 4


def _short(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _summary_head(count: int, lang: str) -> str:
    return f"<b>{text('summary_head', lang, count=count)}</b>"


def summary_chunks(items: list[tuple[int, str]], lang: str = "ru") -> list[list[int]]:
    """Split (request id, title) pairs into summaries that fit one message each, whatever
    happens to the requests later: oldest first, each within the text and button limits."""
    from telegram_delivery.outbox import tg_len

    lang = lang_of(lang)
    head = tg_len(_summary_head(99_999, lang)) + 2  # the longest count: stable as it grows
    chunks: list[list[int]] = []
    current: list[int] = []
    used = head
    for rid, title in items:
        line = tg_len(f"#{rid} {html.escape(_short(title, SUMMARY_TITLE_CHARS), quote=False)}") + 1
        if current and (used + line > SUMMARY_TEXT_LIMIT or len(current) >= SUMMARY_MAX_BUTTONS):
            chunks.append(current)
            current, used = [], head
        current.append(rid)
        used += line
    if current:
        chunks.append(current)
    return chunks


def summary_line(req: dict[str, Any] | None, request_id: int, lang: str = "ru") -> tuple[str, bool]:
    """One request's line in a summary (HTML) and whether it gets a Take button: while the
    request is open and unassigned; taken, completed or closed ones are struck through with
    who has them or their status; a deleted one says so."""
    lang = lang_of(lang)
    if req is None:
        return f"<s>#{request_id}</s> — {text('summary_deleted', lang)}", False
    title = html.escape(_short(str(req.get("title", "")), SUMMARY_TITLE_CHARS), quote=False)
    line = f"#{request_id} {title}"
    status = str(req.get("status"))
    if status == "open" and not req.get("assigned_admin"):
        return line, True
    if req.get("assigned_admin") and status == "in_progress":
        who = html.escape(_short(_person(req["assigned_admin"]), SUMMARY_NAME_CHARS), quote=False)
    else:
        who = html.escape(_label(STATUS_LABELS, status, lang), quote=False)
    return f"<s>{line}</s> — {who}", False


def summary_message(entries: list[tuple[int, dict[str, Any] | None]], lang: str = "ru") -> tuple[str, dict[str, Any] | None]:
    """A summary's text and keyboard from the requests' current state: a "Take #N" button
    (callback `req:take:<id>`, the card's own) for every request still open and unassigned.
    Always within 4,096 characters for entries packed by `summary_chunks`."""
    from telegram_delivery.outbox import tg_len

    lang = lang_of(lang)
    lines = [_summary_head(len(entries), lang), ""]
    buttons: list[dict[str, str]] = []
    rendered = [(rid, *summary_line(req, rid, lang)) for rid, req in entries]
    full = sum(tg_len(line) + 1 for _, line, _ in rendered) + tg_len(lines[0]) + 80
    for rid, line, takeable in rendered:
        if not takeable and full > SUMMARY_TEXT_LIMIT:
            line = f"<s>#{rid}</s>"  # handled: by number only, so the list still fits
        lines.append(line)
        if takeable:
            buttons.append({"text": f"{plain('card_btn_take', lang)} #{rid}", "callback_data": request_callback("take", rid)})
    if not buttons:
        lines.append("")
        lines.append(text("summary_all_taken", lang))
        return "\n".join(lines), None
    rows = [buttons[i: i + SUMMARY_BUTTONS_PER_ROW] for i in range(0, len(buttons), SUMMARY_BUTTONS_PER_ROW)]
    return "\n".join(lines), {"inline_keyboard": rows}


def notify_text(status: str, lang: str, request_id: int, title: str) -> str | None:
    key = {"in_progress": "notify_taken", "completed": "notify_completed", "closed": "notify_closed"}.get(status)
    if key is None:
        return None
    return text(key, lang, id=request_id, title=title)


SCORES = (1, 2, 3, 4, 5)


def rating_keyboard(request_id: int, chosen: int | None = None) -> dict[str, Any]:
    """The satisfaction survey under a "completed" notice: 1-5, callback `rate:<id>:<n>`
    (telegram_delivery.callbacks.RateRequest), the chosen score marked."""
    return {
        "inline_keyboard": [[
            {"text": ("★ " if n == chosen else "") + str(n), "callback_data": RateRequest(id=request_id, score=n).pack()}
            for n in SCORES
        ]]
    }


def survey_text(notice: str, lang: str) -> str:
    """A "completed" notice with the request to rate it."""
    return f"{notice}\n\n{text('csat_prompt', lang)}"
