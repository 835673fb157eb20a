"""The hostile sweep (issue 17): every route of the app, fed what an attacker would send.

The routes come from the OpenAPI document the app serves (`/openapi.json`) plus the few it
does not describe (web pages, static files, docs, the Telegram webhook); a test checks that
the router has no route outside these two lists, so a new route cannot escape the sweep.
For each route, batches of hostile path ids, query values, JSON bodies, tokens and (for the
upload routes) malformed multipart go out as anonymous, customer, admin and director; values
come from fixed lists of known troublemakers plus `hypothesis` strategies (drawn with a fixed
seed, so a failure names its exact input and reproduces). After each batch `/health` must
still answer. Fails on any 5xx, on any ERROR logged by the server, and whenever the
database-refusal net of api.app had to catch something (each route must check its own input).

Cost (it is the suite's longest test, once per backend): every value that can reach the
database goes out on both backends; the bad tokens, which never do (a key is checked against
its pattern and only its SHA-256 digest is looked up), go out on SQLite only, the backend
every run has. The hypothesis draws are made once per session and shared by both runs.
A route's inputs go out eight at a time (about 21,000 requests on SQLite in 145 s, 19,000 on
PostgreSQL in 87 s, on a two-core machine; one at a time they took 166 and 98 s). Its
routes go one after another, in a fixed order, destructive ones last.

WebSockets get the same treatment: bad ids, bad queries and tokens, bad frames; every close
code must be 1008/1009 or in the 4xxx range, never 1011, and a socket still open must still
answer a ping.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus

from core import attachments as files
from core import chats, communications, requests
from db.models import Source
from tests.wsutil import ws_url

SECRET = "sweep-webhook-secret"
# Routes the OpenAPI document does not describe (HTML, files, docs, Telegram, sockets).
EXTRA_ROUTES = [
    ("GET", "/"),
    ("GET", "/r/{key}"),
    ("GET", "/r/{key}/verify/{token}"),
    ("GET", "/static/web/{name}"),
    ("HEAD", "/static/web/{name}"),
    ("GET", "/api/schema/"),
    ("GET", "/openapi.json"),
    ("GET", "/api/docs/"),
    ("GET", "/docs"),
    ("POST", "/telegram/webhook/"),
    # The customer page's edit and delete forms (api.web.edits: form posts, HTML refusals).
    ("POST", "/api/public/requests/{key}/messages/{message_id}/edit"),
    ("PATCH", "/api/public/requests/{key}/messages/{message_id}/edit"),
    ("POST", "/api/public/requests/{key}/messages/{message_id}/delete"),
    ("DELETE", "/api/public/requests/{key}/messages/{message_id}/delete"),
    ("GET", "/metrics"),
    # The staff console (HTML; swept anonymously here: with a session and its CSRF token in
    # tests/test_console.py::test_hostile_console_input_gets_no_server_error).
    ("GET", "/console/"),
    ("GET", "/console/sign-in"),
    ("POST", "/console/sign-in"),
    ("POST", "/console/sign-out"),
    ("GET", "/console/requests/{request_id}/"),
    ("POST", "/console/requests/{request_id}/{action}"),
    ("GET", "/console/attachments/{attachment_id}/"),
    ("GET", "/console/stats/"),
    ("GET", "/static/console/{name}"),
    ("HEAD", "/static/console/{name}"),
]
CONCURRENCY = 8
WS_ROUTES = ["/ws/admin/notifications/", "/ws/chats/{chat_id}/", "/ws/public/requests/{key}/"]

HUGE_INTS = [2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 2**70, -(2**31) - 1, -(2**63) - 1]
PATH_IDS = ["0", "-1", "2147483648", str(2**63), str(2**70), "9" * 400, "abc", "1.5", "1e3",
            "%00", "%ff", "%20", "١٢"]
PATH_KEYS = ["%00", "x" * 3000, "abc", "..%2f..%2fetc%2fpasswd", "%ff", "a%20b", "%2e%2e",
             "A" * 43 + "%00", "😀" * 20]
QUERY_VALUES = ["", "0", "-1", "2147483648", str(2**63), "1" + "0" * 20, "9" * 5000, "abc",
                "\x00", "a\x00b", "x" * 10240, "zzz", "last", "1.5", "1e10", "١٢", "1_000",
                "2024-13-45T99:99", "0001-01-01T00:00:00+01:00", "99999-01-01", "😀" * 50,
                "' OR 1=1 --", "%"]
GENERIC_PARAMS = ["page", "search", "after", "token", "lang", "status", "created"]
BAD_FIELD_VALUES: list[Any] = [
    None, True, 0, -1, 1.5, "", "x" * 10240, "\x00", "a\x00b", "😀" * 300, [], [2**70],
    ["a", None], {}, {"a": {"b": [2**70]}}, "2024-13-45", "9" * 5000,
    *HUGE_INTS,
]
RAW_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b"{"),
    ("application/json", b"[]"),
    ("application/json", b"null"),
    ("application/json", b'"s"'),
    ("application/json", b"\xff\xfe\xfd"),
    ("application/json", b'{"a": 1e400}'),
    ("application/json", b'{"title": "\\ud800", "content": "\\udfff"}'),
    ("application/json", b"[" * 5000 + b"]" * 5000),
    ("application/json", b'{"a":' * 3000 + b"1" + b"}" * 3000),
    ("application/json", b'{"id": 123456789012345678901234567890}'),
    ("application/json", b'{"\\u0000": "\\u0000"}'),
    ("text/plain", b"title=x"),
    ("application/x-www-form-urlencoded", b"title=%00&description=%ff%fe&tags=a&tags=b&content=x"),
    ("application/x-www-form-urlencoded", b"%%%===&&&"),
    ("multipart/form-data", b"garbage"),
    ("multipart/form-data; boundary=abc", b"--abc\r\nContent-Disposition: form-data\r\n\r\nx"),
]
TOKENS: list[Any] = [
    "Token", "Token  " + "a" * 40, "Bearer", "Token " + "a" * 39, "Token " + "a" * 41, "Token " + "b" * 64,
    "Token " + "c" * 65, "Bearer " + "d" * 50, "Token a b c", "Basic dXNlcjpwYXNz",
    "token " + "e" * 40, "Token\t" + "f" * 40, "Token %00", "Token " + "😀" * 10,
    b"Token \xff\xfe\xfd", b"Bearer \x80\x81", b"\xff", b"Token caf\xc3\xa9",
]
QUERY_TOKENS = ["a" * 41, "b" * 64, "\x00", "😀", "x" * 5000]


def multipart(parts: Iterable[tuple[str, str | None, bytes]], boundary: str = "sweepboundary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode("utf-8", "surrogatepass")
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MP = "multipart/form-data; boundary=sweepboundary"
FORM = [("name", None, b"Anna"), ("email", None, b"a@example.com"), ("title", None, b"T"),
        ("description", None, b"D"), ("content", None, b"hello")]
MULTIPART_BODIES: list[tuple[str, bytes]] = [
    ("multipart/form-data", multipart([("file", "a.txt", b"x")])),
    ("multipart/form-data; boundary=", b"--\r\n\r\n"),
    ("multipart/form-data; boundary=" + "b" * 200, b"--" + b"b" * 200 + b"--\r\n"),
    ("multipart/form-data; boundary=other", multipart([("file", "a.txt", b"x")])),
    (MP, multipart([("file", "a.txt", b"x")])[:-20]),
    (MP, b"--sweepboundary\r\nContent-Type: text/plain\r\n\r\nx\r\n--sweepboundary--\r\n"),
    (MP, b"--sweepboundary\r\nno colon here\r\n\r\nx\r\n--sweepboundary--\r\n"),
    (MP, b"--sweepboundary\r\nX-Big: " + b"h" * 20000 + b"\r\n\r\nx\r\n--sweepboundary--\r\n"),
    (MP, b"--sweepboundaryXX\r\n\r\n"),
    (MP, b"z" * 100_000),
    (MP, multipart([("file", "a\x00b.txt", b"x")])),
    (MP, multipart([("file", "../../../etc/passwd", b"x")])),
    (MP, multipart([("file", "n" * 3000 + ".txt", b"x")])),
    (MP, multipart([("file", "\udcff\udcfe.txt", b"x")])),
    (MP, multipart([("file", "a.txt", b"")])),
    (MP, multipart([("file", "a.txt", b"x"), ("file", "b.txt", b"y")])),
    (MP, multipart([("\udcff", None, b"x"), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("message", None, str(2**63).encode()), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("message", None, b"9" * 900), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("message", None, b"-1"), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("message", None, b"abc\x00"), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("message", None, "١٢".encode()), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("is_internal", None, b"perhaps"), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("caption", None, b"c" * 5000), ("file", "a.txt", b"x")])),
    (MP, multipart([*FORM, ("caption", None, b"\xff\xfe\x00"), ("file", "a.txt", b"x")])),
    (MP, multipart([("name", None, b"\x00"), ("email", None, b"\xff@\xfe.x"), ("title", None, b"t" * 5000),
                    ("description", None, b"\x00\x00"), ("category", None, b"zzz"),
                    ("attachments", "a.txt", b"x")])),
    (MP, multipart([(f"f{i}", None, b"v") for i in range(300)])),
    (MP, multipart([("attachments", f"{i}.txt", b"x") for i in range(30)])),
]


# --- hypothesis: bounded, seeded draws --------------------------------------------------------


_DRAWN: dict[tuple[str, int, int], list[Any]] = {}


def draw(strategy: st.SearchStrategy, n: int, salt: int) -> list[Any]:
    """`n` values of `strategy`, the same on every run (seeded by `salt`). The sweep replays
    them against the live server itself: a test body cannot await inside @given. Drawn once
    per session (hypothesis takes ~0.1 s per draw; the second backend's sweep reuses them)."""
    key = (repr(strategy), n, salt)
    if key not in _DRAWN:
        _DRAWN[key] = _draw(strategy, n, salt)
    return list(_DRAWN[key])


def _draw(strategy: st.SearchStrategy, n: int, salt: int) -> list[Any]:
    out: list[Any] = []

    @seed(salt)
    @hsettings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
               suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out[:n]


def salt_of(text: str) -> int:
    return sum(ord(c) * (i + 1) for i, c in enumerate(text)) % 2**31


TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
INTS = st.integers(min_value=-(2**80), max_value=2**80)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTS | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=8,
)


def body_strategy(fields: list[str]) -> st.SearchStrategy:
    keys = st.sampled_from(fields) | TEXT if fields else TEXT
    return st.dictionaries(keys, JSON_VALUES, max_size=6)


def query_strategy(names: list[str]) -> st.SearchStrategy:
    value = TEXT | INTS.map(str) | st.sampled_from(QUERY_VALUES)
    return st.dictionaries(st.sampled_from(names), value, min_size=1, max_size=3)


def update_strategy() -> st.SearchStrategy:
    """Telegram updates as a forger would write them: real shapes, hostile values."""
    user = st.fixed_dictionaries(
        {"id": INTS, "is_bot": st.booleans(), "first_name": TEXT},
        optional={"language_code": TEXT, "username": TEXT},
    )
    chat = st.fixed_dictionaries({"id": INTS, "type": st.sampled_from(["private", "supergroup", "x"])})
    message = st.fixed_dictionaries(
        {"message_id": INTS, "date": INTS, "chat": chat},
        optional={"from": user, "text": TEXT | st.just("/start"), "caption": TEXT,
                  "message_thread_id": INTS, "reply_to_message": JSON_VALUES},
    )
    callback = st.fixed_dictionaries(
        {"id": TEXT, "from": user, "chat_instance": TEXT},
        optional={"data": TEXT | st.sampled_from(["lang:en", "req:1", "take:1", "x" * 64]),
                  "message": message},
    )
    return st.fixed_dictionaries(
        {"update_id": INTS},
        optional={"message": message | JSON_VALUES, "edited_message": message,
                  "callback_query": callback | JSON_VALUES, "my_chat_member": JSON_VALUES},
    )


# --- the desk under attack --------------------------------------------------------------------


@dataclass
class Desk:
    client: httpx.AsyncClient
    base: str
    tokens: dict[str, str | None]
    ids: dict[str, str]
    app: Any
    # Inputs that never reach the database (bad tokens) go out on one backend only: SQLite.
    db_independent: bool = True
    failures: list[str] = field(default_factory=list)
    sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    queued: list[tuple[tuple, dict]] = field(default_factory=list)

    def fill(self, template: str, **override: str) -> str:
        values = {**self.ids, **override}
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)

    async def send(self, label: str, method: str, url: str, *, actor: str | None = None,
                   token_header: Any = None, headers: dict[str, Any] | None = None,
                   **kw: Any) -> httpx.Response | None:
        hdrs: list[tuple[bytes, bytes]] = []
        for k, v in (headers or {}).items():
            hdrs.append((k.encode(), v if isinstance(v, bytes) else v.encode()))
        if token_header is not None:
            raw = token_header if isinstance(token_header, bytes) else token_header.encode()
            hdrs.append((b"Authorization", raw))
        elif actor and self.tokens.get(actor):
            hdrs.append((b"Authorization", f"Token {self.tokens[actor]}".encode()))
        self.sent += 1
        try:
            r = await self.client.request(method, url, headers=hdrs, **kw)
        except httpx.HTTPError as exc:
            self.failures.append(f"{label}: {method} {url[:120]} -> connection error {exc!r}")
            return None
        if r.status_code >= 500:
            self.failures.append(
                f"{label}: {method} {url[:160]} as {actor} -> {r.status_code} {r.text[:160]}"
            )
        return r

    def later(self, *args: Any, **kw: Any) -> None:
        """Queue a `send` for the next `flush`."""
        self.queued.append((args, kw))

    async def flush(self) -> None:
        """Send what was queued, `CONCURRENCY` at a time (a route's inputs are independent;
        in flight together they keep the server busy while others wait on the database)."""
        queued, self.queued = self.queued, []
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(args: tuple, kw: dict) -> None:
            async with gate:
                await self.send(*args, **kw)

        await asyncio.gather(*(one(a, k) for a, k in queued))

    async def healthy(self, after: str) -> None:
        try:
            r = await self.client.get("/health", timeout=5)
            ok = r.status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            self.failures.append(f"/health did not answer after {after}")


def route_actor(path: str) -> str | None:
    if path.startswith("/api/admin/"):
        return "director"
    if path.startswith(("/api/customer/", "/api/attachments/")):
        return "customer"
    return None


def webhook_headers(path: str) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": SECRET} if path.startswith("/telegram/") else {}


@asynccontextmanager
async def desk_server(telegram_settings, make_user, token_for):
    from bootstrap.app import create_app
    from tests.live import serve

    s = telegram_settings.with_overrides(
        telegram_mode="webhook", telegram_webhook_secret=SECRET,
        # The sweep tests input handling, not the abuse limits (their own tests cover them).
        web_rate_limit_per_min=1_000_000, login_max_failures=1_000_000,
        login_max_failures_per_address=1_000_000,
        ws_frame_rate=(100_000, 10), ws_resume_rate=(100_000, 60),
        ws_public_sockets_per_client=100_000,
    )
    director, admin, customer = (
        await make_user("director"), await make_user("admin"), await make_user("customer")
    )
    req = await requests.create_request(customer, title="Принтер", description="Не печатает")
    msg = await requests.post_message(customer, req.id, "Есть новости?")
    att = await files.save_attachment(customer, req.id, name="log.txt", content=b"log",
                                      content_type="text/plain", source=Source.api)
    chat = await chats.create_chat(director, name="Ops", participant_ids=[admin.id])
    comm = await communications.create_communication(
        director, {"from_department": "a", "to_department": "b", "subject": "s", "content": "c"}
    )
    web_req = await requests.create_request(customer, title="Веб", description="форма",
                                            source=Source.web, with_access_key=True)
    from datetime import UTC, datetime

    from db.models import WebhookDelivery, WebhookSubscription

    hook = await WebhookSubscription.create(url="https://example.com/hook", secret="s",
                                            events=["request.created"], is_active=False)
    delivery = await WebhookDelivery.create(
        subscription=hook, dedup_key="sweep", guid="sweep", event="request.created",
        body='{"id": "sweep", "event": "request.created", "created_at": null, "data": {}}',
        status="failed", give_up_at=datetime.now(UTC),
    )
    from core import canned

    reply = await canned.create_canned(admin, {"shortcut": "greet", "title": "t", "content": "c",
                                               "is_shared": True})
    app = create_app(s)
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        yield Desk(
            client=client, base=base, app=app,
            db_independent=s.database_url.startswith("sqlite"),
            tokens={"anonymous": None, "customer": await token_for(customer),
                    "admin": await token_for(admin), "director": await token_for(director)},
            ids={"request_id": str(req.id), "chat_id": str(chat.id), "comm_id": str(comm["id"]),
                 "attachment_id": str(att.id), "key": web_req.access_key, "name": "form.js",
                 "user_id": str(customer.id), "customer_id": str(customer.id),
                 "subscription_id": str(hook.id), "delivery_id": str(delivery.id),
                 "canned_id": str(reply.id), "action": "take", "message_id": str(msg.id),
                 "token": "T" * 43},
        )


def server_trouble(caplog) -> list[str]:
    """ERRORs logged by the server, and every catch of api.app's database-refusal net."""
    out = []
    for r in caplog.records:
        if r.name.startswith(("httpx", "hypothesis", "aiogram")):
            continue
        message = r.getMessage()
        if r.levelno >= logging.ERROR or "input refused by the database" in message:
            out.append(f"{r.name} {r.levelname}: {message[:400]}")
    return out


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops = [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]
    ops += [(m, p, {}) for m, p in EXTRA_ROUTES]
    # Destructive calls on the real ids last, so the rest of the sweep still finds them.
    return sorted(ops, key=lambda o: (o[0] == "DELETE", o[1]))


def body_fields(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    content = (op.get("requestBody") or {}).get("content") or {}
    schema = (content.get("application/json") or content.get("multipart/form-data") or {}).get("schema", {})
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return list((schema.get("properties") or {}).keys())


# --- REST and web ----------------------------------------------------------------------------


async def sweep_route(desk: Desk, doc: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> None:
    actor = route_actor(path)
    extra_headers = webhook_headers(path)
    label = f"{method} {path}"
    params = [p for p in op.get("parameters", []) if p.get("in") == "path"]
    query_names = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
    real = desk.fill(path)
    has_body = method in ("POST", "PUT", "PATCH")

    # 1. every actor, plain call on the real ids
    for who in ("anonymous", "customer", "admin", "director"):
        desk.later(label, method, real, actor=who, headers=extra_headers,
                   json={} if has_body else None)

    # 2. hostile path ids and keys (the route's actor and anonymous)
    for p in params:
        values = PATH_KEYS if p["name"] == "key" else PATH_IDS
        values = values + [str(v) for v in draw(INTS, 6, salt_of(label + p["name"]))]
        if p["name"] == "name":
            values = ["", "%00", "a%00b.js", "..%2f..%2fapi%2fhttp.py", "n" * 5000, "%ff", "form.js%00"]
        for value in values:
            url = desk.fill(path, **{p["name"]: value})
            for who in {actor, "anonymous"}:
                desk.later(f"{label} path {p['name']}={value[:30]!r}", method, url, actor=who,
                           headers=extra_headers)

    # 3. hostile query values
    names = list(dict.fromkeys(query_names + GENERIC_PARAMS))
    for name in names:
        values = QUERY_VALUES if name in query_names or name in ("page", "after") else QUERY_VALUES[::4]
        for value in values:
            desk.later(f"{label} ?{name}={value[:30]!r}", method, real, actor=actor,
                       params={name: value}, headers=extra_headers,
                       json={} if has_body else None)
    for qs in ("page=%ff%fe&search=%00%zz", "after=%00", "%ff=%ff", "page=1&page=2&page=x", "&&&==",
               "lang=%00&created=%ff", "token=%00", "a=" + "%41" * 3000):
        desk.later(f"{label} raw ?{qs[:30]}", method, real + "?" + qs, actor=actor,
                   headers=extra_headers)
    for params_ in draw(query_strategy(names), 12, salt_of(label + "query")):
        desk.later(f"{label} query {params_!r:.80}", method, real, actor=actor, params=params_,
                   headers=extra_headers)

    # 4. tokens, in the header and the query (they never reach the database: one backend)
    if desk.db_independent:
        for token in TOKENS:
            desk.later(f"{label} token {token!r:.30}", method, real, token_header=token,
                       headers=extra_headers)
        for token in QUERY_TOKENS:
            desk.later(f"{label} ?token", method, real, params={"token": token},
                       headers=extra_headers)

    # 5. bodies
    if has_body:
        fields = body_fields(doc, op)
        multipart_route = "multipart/form-data" in ((op.get("requestBody") or {}).get("content") or {})
        # Staff routes: every value as the director, a sample as an admin (other rights).
        plan = [(actor, BAD_FIELD_VALUES)]
        if actor == "director":
            plan.append(("admin", BAD_FIELD_VALUES[::5]))
        for who, values in plan:
            for name in fields:
                for value in values:
                    desk.later(f"{label} body {name}={value!r:.40}", method, real, actor=who,
                               headers=extra_headers, json={name: value})
        for ctype, raw in RAW_BODIES:
            desk.later(f"{label} raw body {raw[:30]!r}", method, real, actor=actor,
                       headers={**extra_headers, "Content-Type": ctype}, content=raw)
        for data in draw(body_strategy(fields), 15, salt_of(label + "body")):
            desk.later(f"{label} body {data!r:.80}", method, real, actor=actor,
                       headers=extra_headers, json=data)
        if multipart_route:
            for ctype, raw in MULTIPART_BODIES:
                desk.later(f"{label} multipart {raw[:40]!r}", method, real, actor=actor,
                           headers={"Content-Type": ctype}, content=raw)
    await desk.flush()
    await desk.healthy(label)


async def sweep_webhook(desk: Desk) -> None:
    label = "POST /telegram/webhook/"
    updates = draw(update_strategy(), 40, 17)
    updates += [
        {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                     "text": "/start"}},  # no sender
        {"update_id": 2, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                     "from": {"id": 5, "is_bot": False, "first_name": "x"},
                                     "text": "x" * 20000}},
        {"update_id": 3, "callback_query": {"id": "1", "from": {"id": 5, "is_bot": False,
                                                                 "first_name": "x"},
                                            "chat_instance": "1", "data": "\x00" * 64}},
        {"update_id": 4, "message": {"message_id": 1, "date": 0,
                                     "chat": {"id": 2**62, "type": "private"},
                                     "from": {"id": 2**62, "is_bot": False, "first_name": "\x00"},
                                     "text": "hi"}},
    ]
    for n, update in enumerate(updates):
        await desk.send(f"{label} update {update!r:.120}", "POST", "/telegram/webhook/",
                        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}, json=update)
        if n % 10 == 9:
            await desk.healthy(f"{label} updates")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_route_is_in_the_sweep(settings):
    """The router has no HTTP route that neither the OpenAPI document nor EXTRA_ROUTES lists
    (sockets are swept separately)."""
    from api.routes.docs import openapi_document
    from bootstrap.app import create_app

    def shape(path: str) -> str:  # "/a/{id}/" and Sanic's "a/<id:int>" compare equal
        return re.sub(r"<[^>]*>|\{[^}]*\}", "{}", path).strip("/")

    known = {(m, shape(p)) for m, p, _ in operations(openapi_document())}
    sockets = {shape(p) for p in WS_ROUTES}
    app = create_app(settings.with_overrides(
        telegram_mode="webhook", telegram_bot_token="1:x", telegram_webhook_secret=SECRET))
    missing = [
        (method, route.path)
        for route in app.router.routes
        if shape(route.path) not in sockets
        for method in route.methods
        if (method, shape(route.path)) not in known
    ]
    assert not missing, f"routes the sweep does not cover: {missing}"


@pytest.mark.heavy(seconds=170)
async def test_no_route_answers_5xx_to_hostile_input(telegram_settings, make_user, token_for, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="httpx")  # a line per request, never looked at
    started = time.monotonic()
    async with desk_server(telegram_settings, make_user, token_for) as desk:
        doc = (await desk.client.get("/openapi.json")).json()
        ops = operations(doc)
        assert len(ops) > 50
        for method, path, op in ops:
            if path.startswith("/telegram/"):
                continue
            await sweep_route(desk, doc, method, path, op)
        await sweep_webhook(desk)
        await sweep_route(desk, doc, "POST", "/telegram/webhook/", {})
        await desk.healthy("the whole sweep")
    elapsed = time.monotonic() - started
    trouble = server_trouble(caplog)
    report = "\n".join(desk.failures[:30] + trouble[:30])
    assert not desk.failures and not trouble, (
        f"{len(desk.failures)} server errors and {len(trouble)} logged troubles "
        f"out of {desk.sent} requests:\n{report}"
    )
    print(f"hostile sweep: {desk.sent} requests over {len(ops)} routes in {elapsed:.1f} s")


# --- WebSockets ------------------------------------------------------------------------------

ALLOWED_CLOSE = {1008, 1009} | set(range(4000, 5000))


async def ws_attempt(desk: Desk, path: str, frames: list[str | bytes], token: str | None = None,
                     failures: list[str] | None = None, label: str = "") -> None:
    """Connect, send `frames`, then ping: the socket must answer or close with a 4xxx /
    1008 / 1009 code. A refused handshake must be a 4xx."""
    url = ws_url(desk.base, path)
    if token is not None:
        url += ("&" if "?" in url else "?") + "token=" + token
    failures = desk.failures if failures is None else failures
    label = label or path
    try:
        ws = await websockets.connect(url, open_timeout=10, max_size=None)
    except InvalidStatus as exc:
        desk.outcomes[f"http {exc.response.status_code}"] += 1
        if exc.response.status_code >= 500:
            failures.append(f"ws {label}: handshake answered {exc.response.status_code}")
        return
    except (OSError, websockets.InvalidHandshake) as exc:
        failures.append(f"ws {label}: handshake failed {exc!r}")
        return
    try:
        for frame in frames:
            await ws.send(frame)
        await ws.send('{"type": "ping"}')
        while True:
            reply = await asyncio.wait_for(ws.recv(), 10)
            if reply == '{"type":"pong"}':
                desk.outcomes["pong"] += 1
                break
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        desk.outcomes[f"close {code}"] += 1
        if code not in ALLOWED_CLOSE:
            failures.append(f"ws {label}: closed with {code} ({exc.rcvd.reason if exc.rcvd else ''})")
    except TimeoutError:
        failures.append(f"ws {label}: no pong and no close within 10 s")
    finally:
        await ws.close()


async def test_websockets_close_with_4xxx_on_hostile_input(telegram_settings, make_user, token_for, caplog):
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.WARNING, logger="httpx")
    async with desk_server(telegram_settings, make_user, token_for) as desk:
        td, tc = desk.tokens["director"], desk.tokens["customer"]
        chat = desk.ids["chat_id"]
        key = desk.ids["key"]
        # ids and keys
        for value in PATH_IDS:
            await ws_attempt(desk, f"/ws/chats/{value}/", [], td, label=f"chat id {value[:20]}")
        for value in PATH_KEYS:
            await ws_attempt(desk, f"/ws/public/requests/{value}/", [], label=f"key {value[:20]}")
        # queries and tokens
        for path, token in (("/ws/admin/notifications/", td), (f"/ws/chats/{chat}/", td),
                            (f"/ws/public/requests/{key}/", None)):
            for value in ["-1", "abc", str(2**63), "1" + "0" * 20, "9" * 5000, "%00", "1.5", "١٢"]:
                await ws_attempt(desk, f"{path}?last_event_id={value}", [], token,
                                 label=f"{path} last_event_id={value[:20]}")
            for bad in ["a" * 41, "b" * 64, "%00", "%ff%fe", "x" * 3000, tc]:
                await ws_attempt(desk, path, [], bad, label=f"{path} token {bad[:10]}")
        # frames
        frames: list[str | bytes] = [
            b"\x00\xff", "not json", "[]", "null", '"s"', "1e400", "{}", '{"type": 5}',
            '{"type": "resume"}', '{"type": "resume", "last_event_id": "x"}',
            '{"type": "resume", "last_event_id": -1}', '{"type": "resume", "last_event_id": 1.5}',
            jsonlib.dumps({"type": "resume", "last_event_id": 2**63}),
            jsonlib.dumps({"type": "resume", "last_event_id": 2**70}),
            '{"type": "resume", "last_event_id": "%s"}' % ("9" * 5000),
            '{"type": "resume", "last_event_id": [1]}', '{"type": "resume", "last_event_id": true}',
            '{"message": 5}', '{"message": null}', '{"message": ["a"]}', '{"message": "\\u0000"}',
            '{"message": "%s"}' % ("x" * 5000), '{"message": "\\ud800"}', '{"message": ""}',
            '{"a":' * 2000 + "1" + "}" * 2000,
        ]
        hypothesis_frames = [jsonlib.dumps(v) for v in draw(JSON_VALUES, 20, 4242)]
        for path, token in (("/ws/admin/notifications/", td), (f"/ws/chats/{chat}/", td),
                            (f"/ws/public/requests/{key}/", None)):
            all_frames = frames + hypothesis_frames
            for start in range(0, len(all_frames), 8):
                await ws_attempt(desk, path, all_frames[start:start + 8], token,
                                 label=f"{path} frames {start}")
            # over the frame size limit: 1009 from the websockets library
            await ws_attempt(desk, path, ["x" * (200 * 1024)], token, label=f"{path} huge frame")
        r = await desk.client.get("/health", timeout=5)
        assert r.status_code == 200
    print(f"hostile websocket sweep: {dict(desk.outcomes)}")
    trouble = server_trouble(caplog)
    assert not desk.failures and not trouble, "\n".join(desk.failures[:30] + trouble[:30])


def test_draw_is_bounded_and_reproducible():
    first = draw(JSON_VALUES, 10, 99)
    assert len(first) == 10 and first == draw(JSON_VALUES, 10, 99)
    assert first == _draw(JSON_VALUES, 10, 99)  # the session's cache changes nothing

