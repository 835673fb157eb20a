"""OpenAPI 3.1 document (`/api/schema/`, `/openapi.json`) and an offline docs page (`/api/docs/`).

The document is generated: every body schema is the JSON Schema of the pydantic model in
api/schemas/ that the route validates its body with (or that its answer has; checked by
tests/test_api_contract.py), and the table in api/routes/docs_table.py says which route
takes and gives which model (one entry per operation). The docs page is one self-contained
HTML file (no CDN): it reads the schema, lists the operations and lets you try them with a
token.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sanic import Request
from sanic.response import html, redirect

from api.blueprint import Blueprint
from api.http import json
from api.routes.docs_table import INT, OPERATIONS, PATH_IDS, REF, STR, TAGS, Many, Op, schema_ref
from api.schemas.base import ActionError, Detail

__all__ = ["OPERATIONS", "Many", "Op", "get_blueprint", "models", "openapi_document"]

STATIC = Path(__file__).with_name("docs_page.html")


def models() -> list[type[BaseModel]]:
    """Every model the document names."""
    found: dict[str, type[BaseModel]] = {"Detail": Detail, "ActionError": ActionError}
    for op in OPERATIONS:
        for item in (op.body, op.form, op.out.model if isinstance(op.out, Many) else op.out):
            if isinstance(item, type) and issubclass(item, BaseModel):
                found[item.__name__] = item
    return list(found.values())


def _tidy(node: Any) -> Any:
    """Drop what pydantic adds that says nothing here: `"default": null` on fields that
    cannot be null (absent means unchanged), titles of properties."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v) for k, v in node.items()}
    if out.get("default", 0) is None and not any(
        s.get("type") == "null" for s in out.get("anyOf", ())
    ):
        del out["default"]
    if isinstance(out.get("properties"), dict):
        for prop in out["properties"].values():
            if isinstance(prop, dict):
                prop.pop("title", None)
    return out


def component_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation" if issubclass(m, _bodies()) else "serialization") for m in models()],
        ref_template=REF,
    )
    schemas = _tidy(top.get("$defs", {}))
    schemas["ValidationErrors"] = {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "description": "DRF shape: field name -> list of messages.",
        "example": {"title": ["Убедитесь, что это значение содержит не более 200 символов."]},
    }
    return schemas


def _bodies() -> type:
    from api.schemas.base import Body

    return Body


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def _schema_of(out: Any) -> dict[str, Any]:
    if isinstance(out, Many):
        return {"type": "array", "items": schema_ref(out.model.__name__)}
    return schema_ref(out.__name__)


ERRORS = {
    "400": {"description": "Bad input (field -> messages)",
            "content": _content(schema_ref("ValidationErrors"))},
    "401": {"description": "No or bad token", "content": _content(schema_ref("Detail"))},
    "403": {"description": "Not allowed", "content": _content(schema_ref("Detail"))},
    "404": {"description": "Not found (also: not yours)", "content": _content(schema_ref("Detail"))},
}


def operation_id(op: Op) -> str:
    return f"{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"


def _operation(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"tags": [op.tag], "summary": op.summary, "operationId": operation_id(op)}
    parameters = []
    if "{key}" in op.path:
        parameters.append({"name": "key", "in": "path", "required": True, "schema": STR,
                           "description": "The request's access key (from the web form)"})
    parameters += [
        {"name": name, "in": "path", "required": True, "schema": INT, "description": desc}
        for name, desc in PATH_IDS.items()
        if "{" + name + "}" in op.path
    ]
    parameters += list(op.params)
    if parameters:
        out["parameters"] = parameters
    if op.form is not None:
        out["requestBody"] = {"required": True,
                              "content": _content(schema_ref(op.form.__name__), "multipart/form-data")}
    elif op.body is not None:
        out["requestBody"] = {"required": True, "content": _content(schema_ref(op.body.__name__))}
    responses: dict[str, Any] = {}
    if op.out is None:
        responses[op.ok] = {"description": "Done"}
    elif op.out == "binary":
        responses[op.ok] = {"description": "The file", "content": _content(
            {"type": "string", "format": "binary"}, "application/octet-stream")}
    elif op.out == "csv":
        responses[op.ok] = {"description": "UTF-8 CSV with a header row, one request a row, newest first",
                            "content": _content({"type": "string"}, "text/csv")}
    else:
        responses[op.ok] = {"description": "OK", "content": _content(_schema_of(op.out))}
    anonymous = op.public or op.path == "/api/auth/token/"
    if op.body is not None or op.form is not None or not op.public:
        responses["400"] = ERRORS["400"]
    if not anonymous:
        responses["401"] = ERRORS["401"]
        responses["403"] = ERRORS["403"]
        if "{" in op.path:
            responses["404"] = ERRORS["404"]
    elif op.not_found:
        responses["404"] = ERRORS["404"]
    if op.action:
        responses["400"] = {
            "description": 'Not allowed in the current state, e.g. already assigned (action errors use "error")',
            "content": _content({"oneOf": [schema_ref("ActionError"), schema_ref("ValidationErrors")]}),
        }
        responses["403"] = {
            "description": "Not allowed for you",
            "content": _content({"oneOf": [schema_ref("ActionError"), schema_ref("Detail")]}),
        }
    for code, description in op.extra.items():
        schema = _schema_of(op.out) if code == "503" else schema_ref("Detail")
        responses[code] = {"description": description, "content": _content(schema)}
    out["responses"] = responses
    if op.public:
        out["security"] = []
    return out


@cache
def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (built once)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Support desk API",
            "version": "1.0.0",
            "description": (
                "REST API of the support desk (DRF conventions). Authenticate with "
                "`Authorization: Token <key>` (get a key from POST /api/auth/token/; on REST "
                "the token is accepted only in this header). "
                "Lists are paginated as DRF's PageNumberPagination (20 per page). Errors: "
                "400 {field: [messages]}, 401/403/404 {detail}, take/complete/close/reopen "
                "refusals {error}. Real-time: WebSocket /ws/admin/notifications/ and "
                "/ws/chats/{chat_id}/ (token in ?token=)."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in TAGS],
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "TokenAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "Value: `Token <key>`",
                }
            },
        },
        "security": [{"TokenAuth": []}],
    }


@cache
def docs_page() -> str:
    return STATIC.read_text(encoding="utf-8")


def get_blueprint() -> Blueprint:
    bp = Blueprint("docs")

    @bp.get("/api/schema/")
    async def schema(request: Request):
        return json(openapi_document())

    @bp.get("/openapi.json")
    async def schema_json(request: Request):
        return json(openapi_document())

    @bp.get("/api/docs/")
    async def docs(request: Request):
        return html(docs_page(), headers={"Cache-Control": "no-cache"})

    @bp.get("/docs")
    async def docs_alias(request: Request):
        return redirect("/api/docs/")

    return bp
