"""The OpenAPI document against the running app (issue 9, deliverable 5).

- Every HTTP route of the router has an operation in the document (and every operation a
  route), except the pages, files and sockets listed in NOT_JSON_API.
- Every operation, called with a valid example built from its documented request schema,
  answers its documented success status, and the JSON it returns validates against the
  documented response model (the same pydantic model the document was generated from;
  response models forbid fields they do not list, so an undocumented field fails too).
- Bodies the request models refuse get DRF's `{"field": ["message"]}` 400.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from api.routes.docs import OPERATIONS, Many, Op, models, openapi_document
from core import requests as svc
from db.models import WebhookDelivery

# Routes that are not part of the JSON API: HTML pages and forms, static files, the docs
# themselves, metrics, the Telegram webhook and WebSockets.
NOT_JSON_API = re.compile(
    r"^/($|r/|static/|console($|/)|metrics$|docs$|api/docs$|api/schema$|openapi\.json$|"
    r"telegram/|ws/|api/public/requests/\{key\}/messages/\{message_id\}/(edit|delete)$)"
)


def shape(path: str) -> str:
    """Sanic's `a/<id:int>` and the document's `/a/{id}/` both as `/a/{id}`."""
    return "/" + re.sub(r"<(\w+)(:[^>]+)?>", r"{\1}", path).strip("/")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_route_has_an_operation_and_every_operation_a_route(settings):
    from bootstrap.app import create_app

    app = create_app(settings.with_overrides(
        telegram_mode="webhook", telegram_bot_token="1:x", telegram_webhook_secret="s"))
    app.router.finalize()
    served = {
        (method.lower(), shape(route.path))
        for route in app.router.routes
        for method in route.methods
        if method not in ("HEAD", "OPTIONS")
    }
    doc = openapi_document()
    documented = {(m, shape(p)) for p, ops in doc["paths"].items() for m in ops}
    missing = {(m, p) for m, p in served - documented if not NOT_JSON_API.match(p)}
    assert not missing, f"routes without an operation in the OpenAPI document: {sorted(missing)}"
    assert documented - served == set(), "documented operations no route serves"
    # every $ref resolves, and every body schema is a model's
    schemas = doc["components"]["schemas"]
    for ref in set(re.findall(r"#/components/schemas/(\w+)", str(doc))):
        assert ref in schemas, ref
    for op in OPERATIONS:
        for model in (op.body, op.form):
            if model is not None:
                assert schemas[model.__name__]["properties"].keys() == model.model_fields.keys()


# --- calling every operation ----------------------------------------------------------------


@pytest.fixture
def settings(settings):
    """Webhook targets on loopback allowed (the contract test subscribes one)."""
    from core import runtime

    s = settings.with_overrides(webhook_allow_private=True)
    runtime.configure(s)
    return s


def example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """A value for `schema` from the document alone: its example, else one built from its
    required properties."""
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "example" in schema:
        return schema["example"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example_of(next(s for s in schema["anyOf"] if s.get("type") != "null"), schemas)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example_of(props[k], schemas) for k in schema.get("required", [])}
    if kind == "array":
        return []
    return {"string": "Пример", "integer": 1, "number": 1.5, "boolean": False}.get(kind)


def response_type(op: Op) -> TypeAdapter | None:
    out = op.out
    if isinstance(out, Many):
        return TypeAdapter(list[out.model])
    if isinstance(out, type) and issubclass(out, BaseModel):
        return TypeAdapter(out)
    return None


async def wait_for_delivery(subscription_id: int) -> int:
    for _ in range(100):
        row = await WebhookDelivery.filter(subscription_id=subscription_id).order_by("id").first()
        if row is not None:
            return row.id
        await asyncio.sleep(0.1)
    raise AssertionError("no webhook delivery was recorded")


async def scenario(api, make_user, token_for) -> dict[str, Any]:
    """The rows every operation's path needs, made through the API where it is cheap."""
    director = await make_user("director", password="director-pass-1")
    admin = await make_user("admin")
    customer = await make_user("customer")
    spare_admin = await make_user("admin")
    d, c = await token_for(director), await token_for(customer)
    ctx: dict[str, Any] = {"director": director, "admin": admin, "customer": customer, "d": d,
                           "c": c, "spare_admin": spare_admin}

    r = await api.post("/api/admin/webhooks/", d, json={
        "url": "http://127.0.0.1:9/hook", "events": ["request.created"]})
    assert r.status_code == 201, r.text
    ctx["subscription"] = r.json()["id"]
    r = await api.post("/api/admin/webhooks/", d, json={
        "url": "http://127.0.0.1:9/spare", "events": ["request.created"]})
    ctx["spare_subscription"] = r.json()["id"]

    main = (await api.post("/api/customer/requests/", c, json={
        "title": "Основной", "description": "d"})).json()
    ctx["request"] = main["id"]
    ctx["delivery"] = await wait_for_delivery(ctx["subscription"])
    ctx["spare_request"] = (await svc.create_request(director, title="spare", description="d",
                                                     customer_id=customer.id)).id
    rated = await svc.create_request(customer, title="Оценка", description="d")
    await svc.take_request(director, rated.id)
    await svc.complete_request(director, rated.id)
    ctx["rated_request"] = rated.id

    async def say(path: str, token: str, text: str) -> int:
        r = await api.post(path, token, json={"content": text})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    one = f"/api/admin/customer-requests/{main['id']}/messages/"
    mine = f"/api/customer/requests/{main['id']}/messages/"
    ctx["staff_message"] = await say(one, d, "staff")
    ctx["staff_spare_message"] = await say(one, d, "staff spare")
    ctx["customer_message"] = await say(mine, c, "mine")
    ctx["customer_spare_message"] = await say(mine, c, "mine spare")
    r = await api.post(f"/api/admin/customer-requests/{main['id']}/attachments/", d,
                       files={"file": ("a.txt", b"hello", "text/plain")})
    assert r.status_code == 201, r.text
    ctx["attachment"] = r.json()["id"]

    r = await api.post("/api/public/requests/", data={
        "name": "Веб", "email": "web@example.com", "title": "С формы", "description": "d"},
        headers={"Accept": "application/json"})
    assert r.status_code == 201, r.text
    web = r.json()
    ctx["key"] = web["access_key"]
    key_path = f"/api/public/requests/{web['access_key']}/messages/"
    r = await api.post(key_path, data={"content": "с файлом"},
                       files={"attachments": ("b.txt", b"x", "text/plain")},
                       headers={"Accept": "application/json"})
    assert r.status_code == 201, r.text
    messages = r.json()["messages"]
    ctx["web_message"] = messages[0]["id"]
    ctx["web_attachment"] = next(a["id"] for m in messages for a in m.get("attachments", []))
    ctx["web_spare_messages"] = []
    for text in ("spare 1", "spare 2"):
        r = await api.post(key_path, json={"content": text}, headers={"Accept": "application/json"})
        ctx["web_spare_messages"].append(r.json()["messages"][-1]["id"])
    await svc.take_request(director, web["request"]["id"])
    await svc.complete_request(director, web["request"]["id"])

    chat = (await api.post("/api/admin/chats/", d, json={
        "name": "Общий", "participant_ids": [admin.id]})).json()
    ctx["chat"] = chat["id"]
    comm = (await api.post("/api/admin/internal-communications/", d, json={
        "from_department": "A", "to_department": "B", "subject": "S", "content": "C"})).json()
    ctx["comm"] = comm["id"]
    canned = (await api.post("/api/admin/canned-responses/", d, json={
        "shortcut": "hello", "title": "T", "content": "C"})).json()
    ctx["canned"] = canned["id"]
    ctx["spare_token"] = (await api.post("/api/auth/token/", json={
        "username": director.username, "password": "director-pass-1"})).json()["token"]
    return ctx


def plan(op: Op, ctx: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]]:
    """The concrete path, the token and body overrides for one operation. Operations that
    destroy or lock out take spare rows, so the others still have theirs."""
    spare = op.method == "delete" or op.path.endswith("/delete/")
    web_spare = iter(ctx["web_spare_messages"])
    ids = {
        "request_id": ctx["rated_request"] if op.path.endswith("/rating/")
        else ctx["spare_request"] if spare and op.path.endswith("{request_id}/") else ctx["request"],
        "user_id": ctx["spare_admin"].id,
        "customer_id": ctx["customer"].id,
        "chat_id": ctx["chat"],
        "comm_id": ctx["comm"],
        "attachment_id": ctx["web_attachment"] if op.path.startswith("/api/public/")
        else ctx["attachment"],
        "subscription_id": ctx["spare_subscription"] if spare else ctx["subscription"],
        "delivery_id": ctx["delivery"],
        "canned_id": ctx["canned"],
        "key": ctx["key"],
    }
    if op.path.startswith("/api/public/"):
        ids["message_id"] = (ctx["web_spare_messages"][op.method == "delete"] if spare
                             else ctx["web_message"])
    elif op.path.startswith("/api/customer/"):
        ids["message_id"] = ctx["customer_spare_message"] if spare else ctx["customer_message"]
    else:
        ids["message_id"] = ctx["staff_spare_message"] if spare else ctx["staff_message"]
    del web_spare
    path = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), op.path)
    if op.public:
        token = None
    elif op.path.startswith("/api/customer/"):
        token = ctx["c"]
    elif op.path == "/api/auth/token/" and op.method == "delete":
        token = ctx["spare_token"]
    else:
        token = ctx["d"]
    overrides: dict[str, Any] = {
        "TokenRequest": {"username": ctx["director"].username, "password": "director-pass-1"},
        "Reassign": {"admin_id": ctx["admin"].id},
        "RemoveParticipant": {"user_id": ctx["admin"].id},
        "WebhookSubscriptionWrite": {"url": "http://127.0.0.1:9/hook"},
        # PUT keeps the row's own shortcut (the example's is taken by the POST).
        "CannedResponseWrite": {"shortcut": "hello"} if op.method == "put" else {},
    }.get(op.body.__name__ if op.body else "", {})
    return path, token, overrides


def order(op: Op) -> int:
    """Leaving a chat and removing its participant come after the chat's other operations;
    deletions after everything else."""
    if op.method == "delete" or op.path.endswith("/delete/"):
        return 2
    return 1 if op.path.endswith(("/leave/", "/remove_participant/")) else 0


async def test_every_operation_answers_what_the_document_says(api, make_user, token_for):
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    ctx = await scenario(api, make_user, token_for)
    failures: list[str] = []
    checked = 0
    for op in sorted(OPERATIONS, key=order):
        path, token, overrides = plan(op, ctx)
        spec = doc["paths"][op.path][op.method]
        kw: dict[str, Any] = {"headers": {"Accept": "application/json"}}
        if op.body is not None:
            body = example_of(spec["requestBody"]["content"]["application/json"]["schema"], schemas)
            assert isinstance(body, dict) and body or not op.body.model_fields, op
            kw["json"] = {**body, **overrides}
        elif op.form is not None:
            form = example_of(spec["requestBody"]["content"]["multipart/form-data"]["schema"], schemas)
            if "file" in form:
                kw["files"] = {"file": ("c.txt", b"contract", "text/plain")}
                form.pop("file")
            form = {k: v for k, v in form.items() if k != "attachments"}
            if "email" in form:
                form["email"] = "form@example.com"
            kw["data"] = form
        r = await api.request(op.method.upper(), path, token, **kw)
        label = f"{op.method.upper()} {op.path}"
        if str(r.status_code) != op.ok:
            failures.append(f"{label}: {r.status_code} (documented {op.ok}): {r.text[:300]}")
            continue
        adapter = response_type(op)
        if adapter is not None:
            try:
                adapter.validate_json(r.content, strict=True)
            except Exception as exc:  # noqa: BLE001 (collect all, report together)
                failures.append(f"{label}: the answer does not match {op.out}: {exc}"[:1500])
        elif op.out == "csv":
            assert r.headers["content-type"].startswith("text/csv"), label
        checked += 1
    assert not failures, "\n".join(failures)
    assert checked == len(OPERATIONS)


async def test_bodies_the_models_refuse_get_drf_errors(api, make_user, token_for):
    director = await make_user("director")
    d = await token_for(director)
    url = "/api/admin/customer-requests/"
    for body, field, text in (
        ({"description": "d"}, "title", "Обязательное поле."),
        ({"title": 5, "description": "d"}, "title", "Not a valid string."),
        ({"title": "t", "description": "d", "tags": None}, "tags", "Это поле не может быть null."),
        ({"title": "t", "description": "d", "tags": "a"}, "tags", "Ожидался список строк."),
        ({"title": "t", "description": "d", "priority": "asap"}, "priority",
         "Значения asap нет среди допустимых вариантов."),
        ({"title": "t", "description": "d", "customer_id": "7"}, "customer_id",
         "Некорректный тип. Ожидалось значение первичного ключа."),
        ({"title": "t", "description": "d", "customer_id": 2**40}, "customer_id",
         f'Недопустимый первичный ключ "{2**40}" - объект не существует.'),
        ({"title": "t", "description": "d", "estimated_resolution_time": "soon"},
         "estimated_resolution_time", None),
    ):
        r = await api.post(url, d, json=body)
        assert r.status_code == 400, (body, r.text)
        errors = r.json()
        assert isinstance(errors[field], list) and all(isinstance(m, str) for m in errors[field])
        if text is not None:
            assert errors[field] == [text], (body, errors)
    req = (await api.post(url, d, json={"title": "t", "description": "d"})).json()
    r = await api.post(f"{url}{req['id']}/messages/", d, json={"content": "x", "is_internal": "maybe"})
    assert r.json() == {"is_internal": ["Значение должно быть булевым."]}
    r = await api.post(f"{url}{req['id']}/messages/", d, data={"content": "x", "is_internal": "on"})
    assert r.status_code == 201 and r.json()["is_internal"] is True
    r = await api.post(f"{url}{req['id']}/messages/", d, json={"content": "x", "message_type": "system"})
    assert r.json() == {"message_type": ["Значения system нет среди допустимых вариантов."]}
    r = await api.post(f"{url}{req['id']}/reassign/", d, json={"admin_id": "2"})
    assert r.json() == {"admin_id": ["Обязательное поле (id администратора)."]}
    r = await api.request("PATCH", f"/api/admin/users/{director.id}/", d, json={"is_active": "no"})
    assert r.json() == {"is_active": ["Значение должно быть булевым."]}


def test_every_model_of_the_document_is_in_its_components():
    names = set(openapi_document()["components"]["schemas"])
    assert {m.__name__ for m in models()} <= names
