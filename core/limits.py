"""Size limits for everything a client can send (SPEC part 2, "Limits and hostile input").

One definition for every channel: REST, the web form, the bot, WebSockets and the Telegram
relay all call the checks below (through the domain services), so a limit is enforced once
and answered with one message in the caller's language. Each limit is a setting
(`core.settings`, environment variables `LIMIT_*`) with the SPEC's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.texts import t
from db.models import CustomerRequest

# Widths of the columns that bound a limit, read from the models (the column is the one
# definition); a setting may lower a limit, never raise it past these.
TITLE_MAX: int = CustomerRequest._meta.fields_map["title"].max_length


@dataclass(frozen=True)
class Limits:
    title: int = TITLE_MAX  # LIMIT_TITLE: a request's title
    content: int = 10_000  # LIMIT_CONTENT: a request's description, a thread message
    chat_message: int = 4_000  # LIMIT_CHAT_MESSAGE: an admin-chat message
    subject: int = 200  # LIMIT_SUBJECT: an internal communication's subject
    communication: int = 10_000  # LIMIT_COMMUNICATION: an internal communication's content
    name: int = 150  # LIMIT_NAME: user names (first, last, username), web-form name
    tags: int = 20  # LIMIT_TAGS: tags per request
    tag_length: int = 50  # LIMIT_TAG_LENGTH: characters per tag
    json_body_bytes: int = 1_000_000  # LIMIT_JSON_BODY_BYTES: a JSON (or form) body; 413 above
    # Not in the SPEC's list, bounded by their columns:
    chat_name: int = 100
    department: int = 50
    email: int = 254


ENV_NAMES = {
    "title": "LIMIT_TITLE",
    "content": "LIMIT_CONTENT",
    "chat_message": "LIMIT_CHAT_MESSAGE",
    "subject": "LIMIT_SUBJECT",
    "communication": "LIMIT_COMMUNICATION",
    "name": "LIMIT_NAME",
    "tags": "LIMIT_TAGS",
    "tag_length": "LIMIT_TAG_LENGTH",
    "json_body_bytes": "LIMIT_JSON_BODY_BYTES",
}
# A setting may lower a limit; raising past the column's width would fail in the database.
CEILINGS = {"title": TITLE_MAX, "name": 150, "tag_length": 200}


def current() -> Limits:
    from core import runtime

    return runtime.settings().limits


def check_text(
    errors: dict[str, list[str]], name: str, value: Any, limit: int, lang: str | None,
    *, required: bool = True,
) -> None:
    """Record in `errors[name]` why `value` is not an acceptable text of at most `limit`
    characters (blank when required, not a string, too long); nothing when it is."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[name] = [t("err_blank", lang)]
        return
    if not isinstance(value, str):
        errors[name] = [t("err_not_string", lang)]
    elif len(value) > limit:
        errors[name] = [too_long(limit, lang)]


def too_long(limit: int, lang: str | None) -> str:
    """"At most `limit` characters", the noun agreeing with the number (core.i18n plurals)."""
    return t("err_too_long", lang, n=limit)


def check_tags(errors: dict[str, list[str]], value: Any, lang: str | None,
               limits: Limits | None = None) -> list[str] | None:
    """Tags: a list of at most `limits.tags` non-blank strings of at most `limits.tag_length`
    characters. Returns the cleaned list (stripped, duplicates dropped) or None on error."""
    limits = limits or current()
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors["tags"] = [t("err_tags_type", lang)]
        return None
    if len(value) > limits.tags:
        errors["tags"] = [t("err_tags_count", lang, n=limits.tags)]
        return None
    cleaned: list[str] = []
    for tag in value:
        tag = tag.strip()
        if not tag:
            errors["tags"] = [t("err_tag_blank", lang)]
            return None
        if len(tag) > limits.tag_length:
            errors["tags"] = [t("err_tag_long", lang, n=limits.tag_length)]
            return None
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned
