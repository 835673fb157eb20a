"""The one translation system of every channel: gettext catalogs read through Babel.

One catalog per language, core/locales/<lang>.po, holds the texts of every channel; a key's
first dotted part names its group (core., bot., web., console., digest., mail., status.,
priority., category.). The .po files are read at import (babel.messages.pofile.read_po):
there is no compiled .mo that could go stale. Templates use Python's `{name}` placeholders.

Plurals follow CLDR through Babel: Russian has one/few/many/other (1 запрос, 2 запроса,
5 запросов, 1,5 запроса), English one/other. A plural entry's forms are stored in CLDR tag
order (the .po's Plural-Forms header says the same; tests/test_i18n.py checks it), and
`tn(locale, key, n)` picks the form with `Locale.plural_form(n)`.

Messages that must be shown in the *reader's* language later (REST errors, system messages
stored in a thread) are `Text` objects: a `str` holding the Russian rendering (what older
code and tests read) that also keeps its key and parameters, so `render(text, locale)`
produces it again in any language; `to_json`/`from_json` store them in a column.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.pofile import read_po

LANGUAGES = ("ru", "en")
# The field of a system message's event payload that carries its to_json() form (the
# WebSocket relay renders it per reader and drops it; webhooks drop it).
EVENT_FIELD = "content_i18n"
DEFAULT_LANGUAGE = "ru"
LOCALES_DIR = Path(__file__).parent / "locales"

# CLDR plural tags in the order Babel's gettext export uses (babel.plural.to_gettext).
_TAG_ORDER = ("zero", "one", "two", "few", "many", "other")


def lang_of(language: str | None) -> str:
    """A supported language code: `language` itself, else Russian."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


@cache
def plural_tags(lang: str) -> tuple[str, ...]:
    """The CLDR plural categories of `lang`, in the order of its catalog's plural forms."""
    tags = set(_locale(lang).plural_form.tags) | {"other"}
    return tuple(tag for tag in _TAG_ORDER if tag in tags)


def plural_index(lang: str, n: float) -> int:
    """Which plural form of a `lang` entry fits the number `n`."""
    return plural_tags(lang_of(lang)).index(_locale(lang_of(lang)).plural_form(abs(n)))


@cache
def catalog(lang: str) -> dict[str, str | tuple[str, ...]]:
    """core/locales/<lang>.po as {key: text} (a plural entry: {key: (form, ...)})."""
    with (LOCALES_DIR / f"{lang}.po").open("rb") as fh:
        po = read_po(fh, locale=lang)
    table: dict[str, str | tuple[str, ...]] = {}
    for message in po:
        if not message.id:
            continue  # the header
        if isinstance(message.id, tuple | list):
            table[message.id[0]] = tuple(message.string)
        else:
            table[message.id] = message.string
    return table


def _entry(lang: str, key: str) -> str | tuple[str, ...]:
    entry = catalog(lang_of(lang)).get(key)
    if not entry:  # missing or untranslated: the Russian text (the default language)
        entry = catalog(DEFAULT_LANGUAGE)[key]
    return entry


def is_plural(key: str) -> bool:
    return isinstance(catalog(DEFAULT_LANGUAGE).get(key), tuple)


def t(locale: str | None, key: str, **params: Any) -> str:
    """The text `key` in `locale` (Russian when missing), formatted with `params`.

    A plural entry needs `n` among the params (it is then tn(locale, key, n, ...)).
    Parameters that are `Text` are rendered in `locale` too (a status label, say).
    """
    lang = lang_of(locale)
    entry = _entry(lang, key)
    if isinstance(entry, tuple):
        if "n" not in params:
            raise KeyError(f"{key} is a plural text: use tn() or pass n=")
        entry = entry[min(plural_index(lang, params["n"]), len(entry) - 1)]
    if not params:
        return entry
    return entry.format(**{k: render(v, lang) for k, v in params.items()})


def tn(locale: str | None, key: str, n: float, **params: Any) -> str:
    """The plural text `key` for the number `n` (available to the template as `{n}`)."""
    return t(locale, key, n=n, **params)


class Text(str):
    """A message that may be shown later in another reader's language.

    The string value is the text in the language it was made for (Russian unless given),
    so code that sends, stores or compares it keeps working; `render(value, locale)`
    formats the same key and params again in the reader's language.
    """

    key: str
    params: dict[str, Any]
    locale: str

    def __new__(cls, key: str, params: dict[str, Any], locale: str | None = None) -> Text:
        obj = super().__new__(cls, t(locale, key, **params))
        obj.key = key
        obj.params = params
        obj.locale = lang_of(locale)
        return obj

    def __reduce__(self):  # pickling (and copying) keeps key and params
        return (Text, (self.key, self.params, self.locale))

    def __deepcopy__(self, memo: dict) -> Text:
        return self

    def in_language(self, locale: str | None) -> str:
        return t(locale, self.key, **self.params)


def lazy(key: str, locale: str | None = None, **params: Any) -> Text:
    """`key` with `params` as a Text in `locale` (Russian by default) that every reader can
    see in their own language (render)."""
    return Text(key, params, locale)


def render(value: Any, locale: str | None) -> Any:
    """`value` for a reader of `locale`: every Text inside (also in dicts and lists) in that
    language; anything else as it is."""
    if isinstance(value, Text):
        return value.in_language(locale)
    if isinstance(value, dict):
        return {k: render(v, locale) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, locale) for v in value]
    return value


def to_json(value: Any) -> dict[str, Any] | None:
    """A Text as {"key", "params"} for a JSON column (nested Texts kept); None for a plain
    string, which has no other language."""
    if not isinstance(value, Text):
        return None
    return {"key": value.key, "params": {k: _param_json(v) for k, v in value.params.items()}}


def _param_json(value: Any) -> Any:
    if isinstance(value, Text):
        return {"$text": to_json(value)}
    return value


def from_json(data: dict[str, Any] | None) -> Text | None:
    """The Text stored by to_json; None when there is none or its key no longer exists."""
    if not data or data.get("key") not in catalog(DEFAULT_LANGUAGE):
        return None
    params = {}
    for name, value in (data.get("params") or {}).items():
        if isinstance(value, dict) and "$text" in value:
            value = from_json(value["$text"])
        params[name] = value
    try:
        return Text(data["key"], params)
    except (KeyError, IndexError, ValueError):
        return None


class PluralText:
    """A plural entry in a template's text table: `.format(n=..., ...)` picks the form."""

    def __init__(self, lang: str, key: str) -> None:
        self.lang, self.key = lang, key

    def format(self, **params: Any) -> str:
        return t(self.lang, self.key, **params)

    def __str__(self) -> str:
        return t(self.lang, self.key, n=0)


def group(locale: str | None, prefix: str) -> dict[str, Any]:
    """Every text of the group `prefix` ("web", "console"...) without the prefix, in
    `locale`: what templates and page scripts read (plural entries as PluralText)."""
    return dict(_group(lang_of(locale), prefix))


@cache
def _group(lang: str, prefix: str) -> dict[str, Any]:
    start = prefix + "."
    table: dict[str, Any] = {}
    for key in catalog(DEFAULT_LANGUAGE):
        if key.startswith(start) and "." not in key[len(start):]:
            table[key[len(start):]] = PluralText(lang, key) if is_plural(key) else t(lang, key)
    return table


def labels(locale: str | None, prefix: str, values: Iterable[str] | None = None) -> dict[str, str]:
    """{value: label} of an enum's group (status, priority, category...)."""
    return {k: v for k, v in group(locale, prefix).items() if values is None or k in values}


def label(locale: str | None, prefix: str, value: Any) -> str:
    """The label of one enum value; the value itself when it has none."""
    key = f"{prefix}.{value}"
    return t(locale, key) if key in catalog(DEFAULT_LANGUAGE) else str(value)


def parse_accept_language(header: str | None) -> str | None:
    """The supported language the client prefers most (`Accept-Language`), if any."""
    best: tuple[float, int, str] | None = None
    for index, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        code = tag.strip().lower()[:2]
        if code not in LANGUAGES:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q <= 0:
            continue
        key = (-q, index, code)
        if best is None or key < best:
            best = key
    return best[2] if best else None
