"""REST: whatever a client sends, the answer is a clear 4xx in DRF's shapes, never a 500."""

from __future__ import annotations

import pytest

from api.routes.docs import openapi_document
from tests.api_helpers import ADMIN, new_request

GARBAGE_VALUES = [None, "x" * 5000, -1, 2**63, [2**40, "a"], {"a": {"b": 1}}, True, "\x00😀"]


async def test_admin_request_routes_reject_bad_input(api, make_user, token_for):
    admin, customer = await make_user("admin"), await make_user("customer")
    ta = await token_for(admin)
    req = await new_request(api, await token_for(customer))
    url = f"{ADMIN}{req['id']}/"
    create_cases = [
        ({"description": "d"}, "title"),
        ({"title": "t"}, "description"),
        ({"title": "x" * 201, "description": "d"}, "title"),
        ({"title": "t", "description": "d", "priority": "asap"}, "priority"),
        ({"title": "t", "description": "d", "category": "misc"}, "category"),
        ({"title": 5, "description": "d"}, "title"),
        ({"title": "t", "description": None}, "description"),
        ({"title": "t", "description": "d", "tags": [1, 2]}, "tags"),
        (
            {"title": "t", "description": "d", "estimated_resolution_time": "завтра"},
            "estimated_resolution_time",
        ),
        ({"title": "t", "description": "d", "customer_id": "5"}, "customer_id"),
        ({"title": "t", "description": "d", "customer_id": 999999}, "customer_id"),
    ]
    for body, field in create_cases:
        r = await api.post(ADMIN, ta, json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)
    assert (
        len("x" * 200) == 200
        and (await api.post(ADMIN, ta, json={"title": "x" * 200, "description": "d"})).status_code
        == 201
    )

    patch_cases = [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"priority": "now"}, "priority"),
        ({"status": "archived"}, "status"),
        ({"tags": "a"}, "tags"),
        ({"category": 1}, "category"),
    ]
    for body, field in patch_cases:
        r = await api.request("PATCH", url, ta, json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)
    r = await api.request("PUT", url, ta, json={"title": "only"})
    assert r.status_code == 400 and "description" in r.json()

    for body, field in (
        ({}, "content"),
        ({"content": ""}, "content"),
        ({"content": 7}, "content"),
        ({"content": "x", "is_internal": "perhaps"}, "is_internal"),
        ({"content": "x", "message_type": "system"}, "message_type"),
    ):
        r = await api.post(f"{url}messages/", ta, json=body)
        assert r.status_code == 400 and field in r.json(), (body, r.text)

    for raw in (b"{", b"[1,2]", b"null", b'"s"', b"\xff\xfe"):
        r = await api.post(ADMIN, ta, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, raw
    # form-encoded bodies are read like DRF's FormParser
    r = await api.post(ADMIN, ta, data={"title": "Форма", "description": "d"})
    assert r.status_code == 201 and r.json()["title"] == "Форма"

    for method, path in (
        ("GET", f"{ADMIN}999999/"),
        ("PATCH", f"{ADMIN}999999/"),
        ("PUT", f"{ADMIN}999999/"),
        ("DELETE", f"{ADMIN}999999/"),
        ("GET", f"{ADMIN}999999/messages/"),
        ("POST", f"{ADMIN}999999/messages/"),
        ("GET", "/api/attachments/999999/download/"),
    ):
        r = await api.request(
            method, path, ta, json={"title": "t", "description": "d", "content": "c"}
        )
        assert r.status_code == 404 and "detail" in r.json(), (method, path)
    r = await api.get("/api/admin/no-such-thing/", ta)
    assert r.status_code == 404
    r = await api.request("DELETE", ADMIN, ta)
    assert r.status_code == 405 and "detail" in r.json()


@pytest.mark.heavy(seconds=12)
async def test_no_route_answers_500_to_garbage(api, make_user, token_for):
    """Every documented operation, called with wrong types in every documented field,
    malformed bodies and odd ids, as a customer and as a director."""
    director, customer = await make_user("director"), await make_user("customer")
    tokens = [await token_for(director), await token_for(customer)]
    req = await new_request(api, tokens[1])
    doc = openapi_document()
    schemas = doc["components"]["schemas"]
    seen = 0
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            concrete = [
                path.replace("{request_id}", str(req["id"]))
                .replace("{chat_id}", "1")
                .replace("{comm_id}", "1")
                .replace("{attachment_id}", "1"),
                path.replace("{request_id}", "0")
                .replace("{chat_id}", "99999999999")
                .replace("{comm_id}", "0")
                .replace("{attachment_id}", "0"),
            ]
            body_schema = (
                ((op.get("requestBody") or {}).get("content") or {})
                .get("application/json", {})
                .get("schema", {})
            )
            if "$ref" in body_schema:
                body_schema = schemas[body_schema["$ref"].split("/")[-1]]
            fields = list((body_schema.get("properties") or {}).keys())
            bodies: list[dict] = [{"content": b"{"}, {"content": b"[]"}, {"json": {}}]
            for name in fields:
                for value in GARBAGE_VALUES:
                    bodies.append({"json": {name: value}})
            # garbage bodies as the director on a real id; a customer and odd ids get the basics
            plan = [
                (concrete[0], tokens[0], bodies),
                (concrete[0], tokens[1], bodies[:3]),
                (concrete[1], tokens[0], bodies[:3]),
            ]
            for target, token, target_bodies in plan:
                if True:
                    for kw in target_bodies if method != "get" else [{}]:
                        headers = {"Content-Type": "application/json"} if "content" in kw else {}
                        r = await api.request(method.upper(), target, token, headers=headers, **kw)
                        seen += 1
                        assert r.status_code < 500, (method, target, kw, r.status_code, r.text)
                    if method != "get":
                        continue
                    for params in (
                        {"page": "99999999999"},
                        {"status": "[]"},
                        {"search": "%\x00"},
                        {"customer": "99999999999"},
                        {"assigned_admin": "-5"},
                    ):
                        r = await api.request(method.upper(), target, token, params=params)
                        assert r.status_code < 500, (method, target, params, r.text)
    assert seen > 200, seen
    print("requests sent:", seen)
