"""What the desk writes by e-mail (group `mail.` of the one catalog), in the customer's
language."""

from __future__ import annotations

from typing import Any

from core import i18n


def text(key: str, language: str | None, **kwargs: Any) -> str:
    """Mail text `mail.<key>` in the customer's language (plural texts take `n`)."""
    if "status" in kwargs:
        kwargs["status"] = i18n.label(language, "status", kwargs["status"])
    return i18n.t(language, f"mail.{key}", **kwargs)
