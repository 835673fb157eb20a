"""Texts the domain writes (system messages, errors) and the enum labels every channel shows.

A thin face of core.i18n for the domain: `t(key, language)` is the text `core.<key>` of the
one catalog (core/locales/<lang>.po) as an i18n.Text, so a channel can show it again in its
reader's language (REST errors in the caller's, system messages in each reader's).
"""

from __future__ import annotations

from typing import Any

from core import i18n
from core.i18n import DEFAULT_LANGUAGE, LANGUAGES, Text, lang_of

__all__ = [
    "CATEGORY_LABELS", "DEFAULT_LANGUAGE", "LANGUAGES", "PRIORITY_LABELS", "STATUS_LABELS",
    "lang_of", "t",
]


def _labels(group: str) -> dict[str, dict[str, str]]:
    """{lang: {value: label}}; each label an i18n.Text, so it follows its reader's language
    when it is a parameter of a stored text (a status change's system message)."""
    values = i18n.labels(DEFAULT_LANGUAGE, group)
    return {lang: {v: i18n.lazy(f"{group}.{v}", lang) for v in values} for lang in LANGUAGES}


STATUS_LABELS = _labels("status")
PRIORITY_LABELS = _labels("priority")
CATEGORY_LABELS = _labels("category")


def t(key: str, language: str | None = None, **kwargs: Any) -> Text:
    """The text `core.<key>` in `language` (falls back to Russian), formatted with kwargs."""
    return i18n.lazy(f"core.{key}", language, **kwargs)
