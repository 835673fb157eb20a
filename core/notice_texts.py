"""Texts the scheduler posts to Telegram (HTML): group `digest.` of the one catalog.

Short lines, one fact per line: a digest or a reminder is read at a glance on a phone.
Values that come from users (titles, names) are escaped by the caller with html.escape.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core import i18n


def st(key: str, lang: str | None, **kw: Any) -> str:
    """Scheduler text `digest.<key>` in `lang` (Russian by default; plural texts take `n`)."""
    return i18n.t(lang, f"digest.{key}", **kw)


def format_age(age: timedelta, lang: str | None) -> str:
    """A duration in at most two units: "2 д 3 ч", "3 ч 15 мин", "45 мин"."""
    minutes = max(0, int(age.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        parts = [st("d", lang, n=days)] + ([st("h", lang, n=hours)] if hours else [])
    elif hours:
        parts = [st("h", lang, n=hours)] + ([st("min", lang, n=mins)] if mins else [])
    else:
        parts = [st("min", lang, n=mins)]
    return " ".join(parts)


def short(text: str, limit: int = 60) -> str:
    """Cut a title to fit one line on a phone."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
