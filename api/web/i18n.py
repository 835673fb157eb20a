"""Texts of the customer web pages (group `web.` of the one catalog, core.i18n) and the
choice of the page's language."""

from __future__ import annotations

from typing import Any

from sanic import Request

from core import i18n
from core.i18n import LANGUAGES, parse_accept_language

__all__ = ["LANGUAGES", "LANG_COOKIE", "choose_language", "client_texts", "parse_accept_language", "text"]

LANG_COOKIE = "lang"


def choose_language(request: Request, default: str) -> str:
    """`?lang=` wins, then the `lang` cookie (set by the switcher), then Accept-Language,
    then the site default (LANGUAGE, Russian out of the box)."""
    for candidate in (request.args.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGUAGES:
            return candidate
    return parse_accept_language(request.headers.get("accept-language", "")) or (
        default if default in LANGUAGES else "ru"
    )


def text(key: str, lang: str, **kwargs: Any) -> str:
    return i18n.t(lang, f"web.{key}", **kwargs)


def client_texts(lang: str, **kwargs: Any) -> dict[str, Any]:
    """Everything the page scripts need to speak the page's language."""
    table = i18n.group(lang, "web")
    table["status_labels"] = i18n.labels(lang, "status")
    table["category_labels"] = i18n.labels(lang, "category")
    table.update(kwargs)
    return table
