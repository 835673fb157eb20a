"""Bot texts (group `bot.` of core/locales/<lang>.po through core.i18n), Russian by default.

Every text is returned HTML-safe: the template and every argument are escaped, so a
customer's title or name can never inject markup into a message the bot sends.
"""

from __future__ import annotations

import html
from typing import Any

from core import i18n
from core.i18n import DEFAULT_LANGUAGE, LANGUAGES, lang_of

__all__ = [
    "DEFAULT_LANGUAGE", "LANGUAGES", "category_label", "lang_of", "plain", "priority_label",
    "status_label", "tr",
]


def tr(key: str, lang: str | None = None, **kwargs: Any) -> str:
    """The text `key` in `lang` (falling back to Russian), as escaped HTML. A plural text
    takes its number as `n`."""
    # Escaping the formatted text escapes the template and every argument alike.
    return html.escape(plain(key, lang, **kwargs), quote=False)


def plain(key: str, lang: str | None = None, **kwargs: Any) -> str:
    """The text `key` unescaped: for places Telegram shows as plain text (alerts, buttons)."""
    return i18n.t(lang, f"bot.{key}", **kwargs)


def status_label(status: str, lang: str | None) -> str:
    return i18n.label(lang, "status", status)


def priority_label(priority: str, lang: str | None) -> str:
    return i18n.label(lang, "priority", priority)


def category_label(category: str, lang: str | None) -> str:
    return i18n.label(lang, "category", category)
