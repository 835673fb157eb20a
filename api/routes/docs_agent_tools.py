"""The agent tools' part of the OpenAPI document (api/routes/docs.py merges it in):
canned responses, history, audit log, ratings, staff stats, CSV export."""

from __future__ import annotations

from typing import Any

from api.routes.docs import (
    ADMIN_FILTERS,
    BOOL,
    DT,
    INT,
    PAGE,
    STR,
    _enum,
    _list,
    _obj,
    _paginated,
    _ref,
)
from api.routes.docs import (
    SCHEMAS as BASE_SCHEMAS,
)
from core.audit import ACTIONS
from db.models import HistoryChannel

NUM_NULL = {"type": "number", "nullable": True}
LANGUAGE = _enum("ru", "en")
CHANNEL = _enum(*[c.value for c in HistoryChannel])
CANNED_ID = {"name": "canned_id", "in": "path", "required": True, "schema": INT,
             "description": "Canned response id"}


def _extended(name: str, props: dict[str, Any]) -> dict[str, Any]:
    base = BASE_SCHEMAS[name]
    return {**base, "properties": {**base["properties"], **props}}


SCHEMAS: dict[str, Any] = {
    "CustomerRequest": _extended("CustomerRequest", {
        "rating": {"type": "integer", "minimum": 1, "maximum": 5, "nullable": True,
                   "description": "The customer's satisfaction rating (CSAT)"},
        "rating_comment": STR,
    }),
    "OwnRequest": _extended("OwnRequest", {
        "rating": {"type": "integer", "minimum": 1, "maximum": 5, "nullable": True,
                   "description": "Your satisfaction rating (CSAT)"},
        "rating_comment": STR,
    }),
    "Stats": _extended("Stats", {
        "csat_average": {**NUM_NULL, "description": "Average rating, 2 decimals; null without ratings"},
        "csat_responses": INT,
    }),
    "CannedResponse": _obj({
        "id": INT,
        "shortcut": {"type": "string", "maxLength": 32, "pattern": "^[a-z0-9_-]+$"},
        "title": {"type": "string", "maxLength": 200},
        "content": {"type": "string", "description": "Placeholders: {customer_name}, {request_id}, {admin_name}"},
        "language": LANGUAGE,
        "is_shared": BOOL,
        "created_by": INT,
        "created_by_name": STR,
        "created_at": DT,
        "updated_at": DT,
        "can_edit": BOOL,
    }),
    "CannedResponseWrite": _obj(
        {
            "shortcut": {"type": "string", "maxLength": 32},
            "title": {"type": "string", "maxLength": 200},
            "content": STR,
            "language": LANGUAGE,
            "is_shared": BOOL,
        },
        ["shortcut", "title", "content"],
        example={"shortcut": "greet", "title": "Приветствие", "language": "ru",
                 "content": "Здравствуйте, {customer_name}! Запрос #{request_id} у меня, {admin_name}."},
    ),
    "HistoryEntry": _obj({
        "id": INT,
        "field": {"type": "string", "description": "A request field, or `created` / `deleted`"},
        "old": {"nullable": True, "description": "JSON value before (the assignee as {id, name})"},
        "new": {"nullable": True, "description": "JSON value after"},
        "actor_id": {"type": "integer", "nullable": True, "description": "null: the desk itself"},
        "actor_name": STR,
        "channel": CHANNEL,
        "at": DT,
    }),
    "AuditEntry": _obj({
        "id": INT,
        "action": _enum(*ACTIONS),
        "actor_id": {"type": "integer", "nullable": True},
        "actor_name": STR,
        "channel": CHANNEL,
        "client_address": STR,
        "target_type": STR,
        "target_id": STR,
        "details": {"type": "object"},
        "at": DT,
    }),
    "AdminStats": _obj({
        "id": INT,
        "username": STR,
        "name": STR,
        "role": STR,
        "in_progress": INT,
        "completed_today": INT,
        "completed_7d": INT,
        "median_first_response_minutes": NUM_NULL,
        "csat_average": NUM_NULL,
        "csat_responses": INT,
    }),
    "Rating": _obj(
        {"rating": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": STR},
        ["rating"],
        example={"rating": 5, "comment": "Быстро и вежливо"},
    ),
    "PaginatedCannedResponses": _paginated("CannedResponse"),
    "PaginatedHistory": _paginated("HistoryEntry"),
    "PaginatedAuditEntries": _paginated("AuditEntry"),
}

CANNED_FILTERS = [
    PAGE,
    {"name": "language", "in": "query", "schema": LANGUAGE},
    {"name": "search", "in": "query", "schema": STR, "description": "In shortcut and title"},
    {"name": "is_shared", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
]
AUDIT_FILTERS = [
    PAGE,
    {"name": "actor", "in": "query", "schema": INT, "description": "User id"},
    {"name": "action", "in": "query", "schema": _enum(*ACTIONS)},
    {"name": "since", "in": "query", "schema": DT, "description": "Inclusive"},
    {"name": "until", "in": "query", "schema": DT, "description": "Exclusive"},
]
EXPORT_PARAMS = [p for p in ADMIN_FILTERS if p["name"] != "page"] + [
    {"name": "bom", "in": "query", "schema": {"type": "string", "enum": ["1"]},
     "description": "Start with a UTF-8 byte-order mark (Excel)"},
]

CANNED = "/api/admin/canned-responses/"
CANNED_ONE = CANNED + "{canned_id}/"

# Same tuple shape as docs.OPERATIONS.
OPERATIONS: list[tuple] = [
    ("get", CANNED, "canned-responses", "List canned responses you can see (shared and yours)", None,
     "200", _ref("PaginatedCannedResponses"), CANNED_FILTERS, {}),
    ("post", CANNED, "canned-responses", "Create a canned response", "CannedResponseWrite",
     "201", _ref("CannedResponse"), [], {}),
    ("get", CANNED_ONE, "canned-responses", "Read a canned response", None,
     "200", _ref("CannedResponse"), [CANNED_ID], {"404": True}),
    ("put", CANNED_ONE, "canned-responses", "Replace a canned response (author; director for shared)",
     "CannedResponseWrite", "200", _ref("CannedResponse"), [CANNED_ID], {"404": True}),
    ("patch", CANNED_ONE, "canned-responses", "Update a canned response (author; director for shared)",
     "CannedResponseWrite", "200", _ref("CannedResponse"), [CANNED_ID], {"404": True}),
    ("delete", CANNED_ONE, "canned-responses", "Delete a canned response (author; director for shared)",
     None, "204", None, [CANNED_ID], {"404": True}),
    ("get", "/api/admin/customer-requests/{request_id}/history/", "customer-requests",
     "Every change to the request, oldest first", None, "200", _ref("PaginatedHistory"), [PAGE], {}),
    ("get", "/api/admin/audit-log/", "audit-log",
     "Logins, tokens, links, bans, deletions, settings (directors), newest first", None,
     "200", _ref("PaginatedAuditEntries"), AUDIT_FILTERS, {}),
    ("get", "/api/admin/customer-requests/stats/admins/", "customer-requests",
     "Per-admin figures: load, completions, first response, CSAT", None,
     "200", _list(_ref("AdminStats")), [], {}),
    ("get", "/api/admin/customer-requests/export/", "customer-requests",
     "The requests as CSV (the list's filters), streamed", None, "200", "binary", EXPORT_PARAMS, {}),
    ("post", "/api/customer/requests/{request_id}/rating/", "customer",
     "Rate your completed request 1-5 (changeable until it is closed)", "Rating",
     "200", _ref("OwnRequest"), [], {}),
    ("post", "/api/public/requests/{key}/rating/", "public",
     "Rate the request from its web page (form or JSON)", "Rating",
     "200", _obj({"request": {"type": "object"}}), [],
     {"public": True, "404": True, "429": "Too many requests"}),
]

TAGS = [{"name": "canned-responses"}, {"name": "audit-log"}]


def adjust(paths: dict[str, dict[str, Any]]) -> None:
    """What the shared table cannot say: the export is text/csv."""
    export = paths["/api/admin/customer-requests/export/"]["get"]["responses"]["200"]
    export["description"] = "UTF-8 CSV with a header row, one request a row, newest first"
    export["content"] = {"text/csv": {"schema": {"type": "string"}}}
