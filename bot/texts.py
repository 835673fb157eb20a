"""Bot texts from the locale files (bot/locales/<lang>.json), Russian by default.

Every text is returned HTML-safe: the template and every argument are escaped, so a
customer's title or name can never inject markup into a message the bot sends.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from typing import Any

from core.texts import CATEGORY_LABELS, PRIORITY_LABELS, STATUS_LABELS

LOCALES_DIR = Path(__file__).parent / "locales"
LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"


@cache
def _catalog(lang: str) -> dict[str, str]:
    """bot/locales/<lang>.json (handlers) and delivery.<lang>.json (cards, relay)."""
    merged: dict[str, str] = {}
    for name in (f"{lang}.json", f"delivery.{lang}.json"):
        merged.update(json.loads((LOCALES_DIR / name).read_text(encoding="utf-8")))
    return merged


def lang_of(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def tr(key: str, lang: str | None = None, **kwargs: Any) -> str:
    """The text `key` in `lang` (falling back to Russian), as escaped HTML."""
    template = _catalog(lang_of(lang)).get(key) or _catalog(DEFAULT_LANGUAGE)[key]
    safe = {k: html.escape(str(v), quote=False) for k, v in kwargs.items()}
    return html.escape(template, quote=False).format(**safe)


def plain(key: str, lang: str | None = None, **kwargs: Any) -> str:
    """The text `key` unescaped: for places Telegram shows as plain text (alerts, buttons)."""
    template = _catalog(lang_of(lang)).get(key) or _catalog(DEFAULT_LANGUAGE)[key]
    return template.format(**kwargs)


def status_label(status: str, lang: str | None) -> str:
    return STATUS_LABELS[lang_of(lang)].get(str(status), str(status))


def priority_label(priority: str, lang: str | None) -> str:
    return PRIORITY_LABELS[lang_of(lang)].get(str(priority), str(priority))


def category_label(category: str, lang: str | None) -> str:
    return CATEGORY_LABELS[lang_of(lang)].get(str(category), str(category))
