"""One i18n system (core.i18n): one catalog per language, CLDR plurals, REST errors in the
caller's language, system messages in their reader's language."""

from __future__ import annotations

import gettext
import io
import re
import string
import tokenize
from pathlib import Path

import pytest
from babel import Locale

from core import i18n
from db.models import RequestMessage
from tests.api_helpers import ADMIN, CUSTOMER, new_request

ROOT = Path(__file__).resolve().parent.parent
NUMBERS = (1, 2, 5, 21, 22, 25, 11)


# --- plurals -------------------------------------------------------------------------------


def test_russian_plurals_follow_cldr() -> None:
    got = {n: i18n.tn("ru", "digest.remind_many", n) for n in NUMBERS}
    assert got == {
        1: "⏰ <b>1 запрос ждёт</b>, никто не взял:",
        2: "⏰ <b>2 запроса ждут</b>, никто не взял:",
        5: "⏰ <b>5 запросов ждут</b>, никто не взял:",
        21: "⏰ <b>21 запрос ждёт</b>, никто не взял:",
        22: "⏰ <b>22 запроса ждут</b>, никто не взял:",
        25: "⏰ <b>25 запросов ждут</b>, никто не взял:",
        11: "⏰ <b>11 запросов ждут</b>, никто не взял:",
    }
    assert [i18n.tn("ru", "console.csat_of", n, avg="4.50") for n in (1, 2, 5, 21, 22, 25, 11)] == [
        "4.50 из 5 (1 оценка)", "4.50 из 5 (2 оценки)", "4.50 из 5 (5 оценок)",
        "4.50 из 5 (21 оценка)", "4.50 из 5 (22 оценки)", "4.50 из 5 (25 оценок)",
        "4.50 из 5 (11 оценок)",
    ]
    # After "не более" the genitive: 1 символа, 2 символов, 21 символа.
    assert i18n.tn("ru", "core.err_too_long", 21).endswith("не более 21 символа.")
    assert i18n.tn("ru", "core.err_too_long", 22).endswith("не более 22 символов.")
    assert i18n.tn("ru", "core.err_too_long", 11).endswith("не более 11 символов.")


def test_english_plurals_follow_cldr() -> None:
    got = {n: i18n.tn("en", "digest.remind_many", n) for n in NUMBERS}
    assert got[1] == "⏰ <b>1 request is waiting</b>, nobody took it:"
    for n in (2, 5, 21, 22, 25, 11):
        assert got[n] == f"⏰ <b>{n} requests are waiting</b>, nobody took them:"
    assert i18n.tn("en", "console.csat_of", 1, avg="5.00") == "5.00 of 5 (1 rating)"
    assert i18n.tn("en", "console.csat_of", 21, avg="5.00") == "5.00 of 5 (21 ratings)"


def test_plural_text_needs_a_number() -> None:
    with pytest.raises(KeyError):
        i18n.t("ru", "digest.remind_many")
    # t() with n= is tn(); a template's table offers .format(n=...)
    assert i18n.t("ru", "digest.remind_many", n=3) == i18n.tn("ru", "digest.remind_many", 3)
    assert i18n.group("ru", "console")["csat_of"].format(avg="1", n=2) == "1 из 5 (2 оценки)"


# --- the catalogs ----------------------------------------------------------------------------


def _names(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_plural_forms_header_agrees_with_cldr(lang: str) -> None:
    """The .po header (for gettext tools) and Babel's CLDR rules (used at runtime) pick
    the same form for every count."""
    header = (i18n.LOCALES_DIR / f"{lang}.po").read_text(encoding="utf-8")
    match = re.search(r'"Plural-Forms: nplurals=(\d+); plural=(.*?);\\n"', header)
    assert match, "no Plural-Forms header"
    assert int(match.group(1)) == len(i18n.plural_tags(lang))
    expr = gettext.c2py(match.group(2))
    for n in range(0, 1001):
        assert expr(n) == i18n.plural_index(lang, n), (lang, n)
    assert set(i18n.plural_tags(lang)) == set(Locale.parse(lang).plural_form.tags) | {"other"}


def test_every_key_is_in_every_language_with_the_same_placeholders() -> None:
    catalogs = {lang: i18n.catalog(lang) for lang in i18n.LANGUAGES}
    base = catalogs[i18n.DEFAULT_LANGUAGE]
    assert base, "empty catalog"
    for lang, table in catalogs.items():
        assert set(table) == set(base), (lang, set(table) ^ set(base))
    for key, ru in base.items():
        assert re.fullmatch(r"[a-z_]+\.[A-Za-z0-9_.]+", key), key
        for lang, table in catalogs.items():
            entry = table[key]
            assert isinstance(entry, tuple) == isinstance(ru, tuple), (lang, key, "plural?")
            if isinstance(entry, tuple):
                assert len(entry) == len(i18n.plural_tags(lang)), (lang, key)
                assert all(entry), (lang, key, "empty form")
                # every form names the same things; `n` (the count) may be left out
                want = set().union(*(_names(f) for f in ru)) - {"n"}
                for form in entry:
                    assert _names(form) - {"n"} == want, (lang, key, form)
            else:
                assert entry, (lang, key, "untranslated")
                assert _names(entry) == _names(ru), (lang, key)


def test_no_other_catalog_remains() -> None:
    """One catalog: no JSON locale files, no text tables beside core/locales."""
    assert not list((ROOT / "bot").glob("locales/*.json"))
    offenders = []
    for package in ("core", "api", "bot", "scheduler", "webhooks", "mail", "telegram_delivery"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"^TEXTS\s*[:=]", path.read_text(encoding="utf-8"), re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# Strings that are data, not texts for people: seed data of `helpdesk seed-demo` (and its
# report), the reply markers of Russian mail clients, the OpenAPI document's examples (the
# resource schemas; their error texts live in api/schemas/base.py, which is checked).
CYRILLIC_ALLOWED = {
    "bootstrap/commands.py", "bootstrap/cli.py", "mail/quotes.py", "api/routes/docs.py",
    "api/schemas/requests.py", "api/schemas/chats.py", "api/schemas/communications.py",
    "api/schemas/customer.py", "api/schemas/agent_tools.py",
}
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def test_no_hard_coded_russian_texts_outside_the_catalog() -> None:
    """A Russian string literal in code is a text an English user would get in Russian."""
    found = []
    for package in ("core", "api", "bot", "scheduler", "webhooks", "mail", "db",
                    "telegram_delivery", "bootstrap"):
        for path in (ROOT / package).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel in CYRILLIC_ALLOWED or "/migrations/" in rel:
                continue
            source = path.read_text(encoding="utf-8")
            previous = None
            for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                is_docstring = tok.type == tokenize.STRING and previous in (
                    None, tokenize.INDENT, tokenize.NEWLINE, tokenize.DEDENT
                )
                if tok.type == tokenize.STRING and not is_docstring and CYRILLIC.search(tok.string):
                    found.append(f"{rel}:{tok.start[0]}: {tok.string[:60]}")
                if tok.type not in (tokenize.NL, tokenize.COMMENT):
                    previous = tok.type
    assert found == []


# --- REST errors in the caller's language ----------------------------------------------------


async def test_english_user_gets_english_errors(api, make_user, token_for):
    admin = await make_user("admin", language="en")
    customer = await make_user("customer", language="en")
    ta, tc = await token_for(admin), await token_for(customer)

    r = await api.post(ADMIN, ta, json={"title": "t", "description": "d", "priority": "asap"})
    assert r.status_code == 400
    assert r.json()["priority"] == ['"asap" is not a valid choice.']

    r = await api.get(f"{ADMIN}?page=999", ta)
    assert r.status_code == 404 and r.json() == {"detail": "Invalid page."}

    r = await api.post(CUSTOMER, tc, json={"description": "d"})
    assert r.status_code == 400 and r.json() == {"title": ["This field is required."]}

    r = await api.post(CUSTOMER, tc, json={"title": "x" * 201, "description": "d"})
    assert r.json()["title"] == ["Ensure this field has no more than 200 characters."]

    r = await api.get(f"{ADMIN}999999/", ta)
    assert r.status_code == 404 and r.json() == {"detail": "Not found."}

    # The user's setting wins over the header.
    r = await api.get(f"{ADMIN}?page=999", ta, headers={"Accept-Language": "ru"})
    assert r.json() == {"detail": "Invalid page."}


async def test_accept_language_chooses_the_language_without_a_setting(api, make_user, token_for):
    r = await api.get(ADMIN, headers={"Accept-Language": "en-GB,en;q=0.9,ru;q=0.5"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Authentication credentials were not provided."}
    r = await api.get(ADMIN, headers={"Accept-Language": "en", "Authorization": "Token nope"})
    assert r.json() == {"detail": "Invalid token."}
    r = await api.post("/api/auth/token/", json={"username": "ghost", "password": "x"},
                       headers={"Accept-Language": "en"})
    assert r.status_code == 400
    assert r.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    # No header: Russian, as before.
    r = await api.get(ADMIN)
    assert r.json() == {"detail": "Учетные данные не были предоставлены."}
    # A Russian user's setting wins over an English header.
    admin = await make_user("admin")
    r = await api.get(f"{ADMIN}?page=999", await token_for(admin),
                      headers={"Accept-Language": "en"})
    assert r.json() == {"detail": "Неправильная страница"}


# --- system messages in the reader's language -------------------------------------------------


async def test_system_message_is_read_in_the_readers_language(api, make_user, token_for):
    customer = await make_user("customer")
    ru_admin = await make_user("admin", first_name="Иван", last_name="")
    en_director = await make_user("director", language="en")
    req = await new_request(api, await token_for(customer))

    r = await api.post(f"{ADMIN}{req['id']}/take/", await token_for(ru_admin))
    assert r.status_code == 200, r.text
    stored = await RequestMessage.get(request_id=req["id"], message_type="system")
    assert stored.content == "Запрос взят в работу администратором Иван"  # Russian, as before
    assert stored.content_i18n == {"key": "core.request_taken", "params": {"name": "Иван"}}

    r = await api.get(f"{ADMIN}{req['id']}/messages/", await token_for(en_director))
    system = [m for m in r.json() if m["message_type"] == "system"]
    assert [m["content"] for m in system] == ["Request taken by admin Иван"]
    r = await api.get(f"{ADMIN}{req['id']}/messages/", await token_for(ru_admin))
    assert [m["content"] for m in r.json() if m["message_type"] == "system"] == [
        "Запрос взят в работу администратором Иван"
    ]


def test_stored_text_keeps_translated_parameters() -> None:
    """A status change names the status: its label follows the reader too."""
    from core.texts import STATUS_LABELS, t

    text = t("request_status_changed", "en", status=STATUS_LABELS["en"]["completed"], name="Ann")
    assert text == 'Request status changed to "Completed" by Ann'
    stored = i18n.to_json(text)
    again = i18n.from_json(stored)
    assert again is not None
    assert again.in_language("ru") == "Статус запроса изменен на «Выполнен» пользователем Ann"
    assert i18n.render({"detail": [text]}, "ru") == {
        "detail": ["Статус запроса изменен на «Выполнен» пользователем Ann"]
    }
    assert i18n.from_json({"key": "core.no_such_key", "params": {}}) is None


async def test_system_message_frame_is_in_each_sockets_language(api, make_user, token_for):
    """The admin socket renders a system message per reader; the stored event (and so a
    webhook) carries no translation field."""
    from core import requests as svc
    from core.webhooks import webhook_event
    from db.models import Event
    from tests.wsutil import connect, recv_until

    customer = await make_user("customer")
    taker = await make_user("admin", first_name="Иван", last_name="")
    en_admin, ru_admin = await make_user("admin", language="en"), await make_user("admin")
    req = await svc.create_request(customer, title="VPN", description="down")
    notify = "/ws/admin/notifications/"
    async with await connect(api.base, notify, await token_for(en_admin)) as en_ws, \
            await connect(api.base, notify, await token_for(ru_admin)) as ru_ws:
        r = await api.post(f"{ADMIN}{req.id}/take/", await token_for(taker))
        assert r.status_code == 200, r.text

        def system(f):
            return f["type"] == "new_message" and f["data"]["message_type"] == "system"

        en_frame = await recv_until(en_ws, system)
        ru_frame = await recv_until(ru_ws, system)
    assert en_frame["data"]["content"] == "Request taken by admin Иван"
    assert ru_frame["data"]["content"] == "Запрос взят в работу администратором Иван"
    assert i18n.EVENT_FIELD not in en_frame["data"] and i18n.EVENT_FIELD not in ru_frame["data"]
    event = await Event.filter(type="new_message").order_by("-id").first()
    hooked = webhook_event(event)
    assert hooked is not None and i18n.EVENT_FIELD not in hooked[1]
