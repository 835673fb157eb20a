"""What the delivery side posts: request cards (text + inline keyboard JSON), burst summaries,
customer notifications and relayed messages. Pure functions; no aiogram import.

Callback data agreed with the handlers: `req:take:<id>`, `req:done:<id>`, `req:open:<id>`.
Texts come from bot/locales/delivery.<lang>.json (Russian default, English).
"""

from __future__ import annotations

import html
from typing import Any

from bot.texts import lang_of, plain
from bot.texts import tr as text
from core.texts import CATEGORY_LABELS, PRIORITY_LABELS, STATUS_LABELS

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
        row.append({"text": plain("card_btn_take", lang), "callback_data": f"req:take:{rid}"})
    if status == "in_progress":
        row.append({"text": plain("card_btn_done", lang), "callback_data": f"req:done:{rid}"})
    row.append({"text": plain("card_btn_thread", lang), "callback_data": f"req:open:{rid}"})
    return {"inline_keyboard": [row]}


def deleted_card_text(request_id: int, lang: str = "ru") -> str:
    return f"<s>{text('card_deleted', lang, id=request_id)}</s>"


def topic_name(req: dict[str, Any]) -> str:
    name = plain("topic_name", "ru", id=req["id"], title=str(req.get("title", "")))
    return name[:128]


def summary_text(request_ids: list[int], lang: str = "ru", max_chars: int = 3500) -> str:
    """"+N new requests: #a, #b, …" (as many numbers as fit in one message)."""
    shown: list[str] = []
    used = 0
    for rid in request_ids:
        item = f"#{rid}"
        if used + len(item) + 2 > max_chars:
            shown.append("…")
            break
        shown.append(item)
        used += len(item) + 2
    ids = ", ".join(shown)
    return text("summary_new_requests", lang, count=len(request_ids), ids=ids)


def message_text(header_key: str, lang: str, content: str, **kwargs: Any) -> str:
    """A relayed message: an HTML header line, then the escaped content."""
    return f"{text(header_key, lang, **kwargs)}\n{html.escape(content)}"


def notify_text(status: str, lang: str, request_id: int, title: str) -> str | None:
    key = {"in_progress": "notify_taken", "completed": "notify_completed", "closed": "notify_closed"}.get(status)
    if key is None:
        return None
    return text(key, lang, id=request_id, title=title)


SCORES = (1, 2, 3, 4, 5)


def rating_keyboard(request_id: int, chosen: int | None = None) -> dict[str, Any]:
    """The satisfaction survey under a "completed" notice: 1-5, callback `rate:<id>:<n>`
    (bot.keyboards.RateRequest), the chosen score marked."""
    return {
        "inline_keyboard": [[
            {"text": ("★ " if n == chosen else "") + str(n), "callback_data": f"rate:{request_id}:{n}"}
            for n in SCORES
        ]]
    }


def survey_text(notice: str, lang: str) -> str:
    """A "completed" notice with the request to rate it."""
    return f"{notice}\n\n{text('csat_prompt', lang)}"
