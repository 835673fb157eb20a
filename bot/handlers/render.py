"""Short text renderings of requests for command answers (cards are the relay's)."""

from __future__ import annotations

from typing import Any

from db.models import CustomerRequest, RequestMessage
from telegram_delivery.texts import category_label, plain, priority_label, status_label, tr

LIST_TITLE_WIDTH = 80  # 20 lines of a list stay far below Telegram's 4,096 characters


def short(text: str, width: int = LIST_TITLE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def request_line(req: CustomerRequest, lang: str) -> str:
    return tr("list_line", lang, id=req.id, priority=priority_label(req.priority, lang), title=short(req.title))


def request_summary(req: CustomerRequest, lang: str) -> str:
    return tr(
        "request_summary", lang,
        id=req.id, title=req.title,
        status=status_label(req.status, lang),
        priority=priority_label(req.priority, lang),
        category=category_label(req.category, lang),
        customer=req.customer.full_name,
        admin=req.assigned_admin.full_name if req.assigned_admin_id else tr("nobody", lang),
    )


def thread_excerpt(messages: list[RequestMessage], lang: str, limit: int = 5, width: int = 300) -> str:
    lines = []
    for m in messages[-limit:]:
        text = m.content if len(m.content) <= width else m.content[: width - 1] + "…"
        prefix = tr("thread_internal", lang) if m.is_internal else ""
        lines.append(prefix + tr("thread_line", lang, who=m.sender.full_name, text=text))
    return "\n".join(lines)


def topic_link(chat_id: int, topic_id: int) -> str | None:
    """t.me link to a forum topic of a supergroup (-100XXXXXXXXXX)."""
    text = str(chat_id)
    if not text.startswith("-100"):
        return None
    return f"https://t.me/c/{text[4:]}/{topic_id}"


def not_linked(lang: str, user: Any, chat: Any = None, *, html: bool = True) -> str:
    """The refusal for someone whose Telegram account is linked to no staff account: it
    shows their Telegram id (and, in a group, the group's id), so a director can link them
    (`/link USERNAME ID`, `helpdesk link-telegram USERNAME ID`)."""
    render = tr if html else plain
    telegram_id = getattr(user, "id", "?")
    text = render("not_linked", lang, telegram_id=telegram_id)
    if chat is not None and getattr(chat, "type", "private") != "private":
        text += " " + render("not_linked_chat", lang, chat_id=chat.id)
    return text
