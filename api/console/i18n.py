"""Texts of the staff console (group `console.` of the one catalog, core.i18n).

The language is chosen like the customer pages' (api.web.i18n.choose_language): `?lang=`,
then the `lang` cookie the switcher sets, then Accept-Language, then LANGUAGE. Labels of
statuses, priorities and categories are the catalog's shared groups.
"""

from __future__ import annotations

from typing import Any

from core import i18n


def text(key: str, lang: str, **kwargs: Any) -> str:
    return i18n.t(lang, f"console.{key}", **kwargs)


def labels(lang: str) -> dict[str, Any]:
    """What templates need: the texts and the shared enum labels, in one namespace."""
    return {
        "t": i18n.group(lang, "console"),
        "status_labels": i18n.labels(lang, "status"),
        "priority_labels": i18n.labels(lang, "priority"),
        "category_labels": i18n.labels(lang, "category"),
        "channel_labels": i18n.labels(lang, "channel"),
        "field_labels": i18n.labels(lang, "field"),
    }
