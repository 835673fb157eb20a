"""OpenAPI 3 document (`/api/schema/`, `/openapi.json`) and an offline docs page (`/api/docs/`).

The document is written by hand from the routes (one table below), so it says exactly what
the API does, DRF error shapes included. The docs page is one self-contained HTML file
(no CDN): it reads the schema, lists the operations and lets you try them with a token.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from sanic import Blueprint, Request
from sanic.response import html, redirect

from api.http import json
from core.limits import TITLE_MAX

STATIC = Path(__file__).with_name("docs_page.html")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


DT = {"type": "string", "format": "date-time"}
DT_NULL = {"type": "string", "format": "date-time", "nullable": True}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}

STATUS = _enum("open", "in_progress", "completed", "closed")
PRIORITY = _enum("low", "medium", "high", "urgent")
CATEGORY = _enum("technical", "billing", "account", "order", "general")
MESSAGE_TYPE = _enum("text", "image", "file", "system")
WEBHOOK_EVENT = _enum(
    "request.created", "request.updated", "request.status_changed", "message.created",
    "message.internal", "request.rated",
)


def _obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if required:
        out["required"] = required
    return out


def _paginated(item: str) -> dict[str, Any]:
    return _obj(
        {
            "count": INT,
            "next": {"type": "string", "format": "uri", "nullable": True},
            "previous": {"type": "string", "format": "uri", "nullable": True},
            "results": _list(_ref(item)),
        },
        ["count", "next", "previous", "results"],
    )


SCHEMAS: dict[str, Any] = {
    "User": _obj(
        {
            "id": INT,
            "username": STR,
            "first_name": STR,
            "last_name": STR,
            "email": STR,
            "avatar": {"type": "string", "nullable": True},
        }
    ),
    "CustomerRequest": _obj(
        {
            "id": INT,
            "title": {"type": "string", "maxLength": TITLE_MAX},
            "description": STR,
            "status": STATUS,
            "priority": PRIORITY,
            "category": CATEGORY,
            "customer": _ref("User"),
            "assigned_admin": {**_ref("User"), "nullable": True},
            "created_at": DT,
            "updated_at": DT,
            "last_message_at": DT_NULL,
            "messages_count": INT,
            "estimated_resolution_time": DT_NULL,
            "tags": _list(STR),
            "customer_email_verified": {
                **BOOL,
                "description": "False for a web form's address (anyone can type any address) until the link in its confirmation mail is opened.",
            },
            "customer_banned": BOOL,
        }
    ),
    "OwnRequest": _obj(
        {
            "id": INT,
            "title": {"type": "string", "maxLength": TITLE_MAX},
            "description": STR,
            "status": STATUS,
            "priority": PRIORITY,
            "category": CATEGORY,
            "assigned_admin": _obj(
                {"name": STR, "avatar": {"type": "string", "nullable": True}}, nullable=True,
                description="Staff appear by display name only.",
            ),
            "created_at": DT,
            "updated_at": DT,
            "last_message_at": DT_NULL,
            "messages_count": {**INT, "description": "Messages the customer can see."},
            "estimated_resolution_time": DT_NULL,
        },
        description="A request as its customer sees it (customer REST, web page, its socket).",
    ),
    "OwnMessage": _obj(
        {
            "id": INT,
            "request": INT,
            "sender_type": _enum("customer", "admin"),
            "sender_name": {**STR, "description": "First and last name; empty when none."},
            "sender_avatar": {"type": "string", "nullable": True},
            "content": STR,
            "message_type": MESSAGE_TYPE,
            "created_at": DT,
            "edited_at": {**DT_NULL, "description": "The last edit (docs/edits.md), or null."},
        },
        description="A thread message as the customer sees it (never internal notes).",
    ),
    "AccessChange": _obj(
        {"is_active": BOOL, "role": _enum("customer", "admin", "director")},
        example={"is_active": False},
    ),
    "UserAccess": _obj(
        {
            "id": INT,
            "username": STR,
            "first_name": STR,
            "last_name": STR,
            "email": STR,
            "avatar": {"type": "string", "nullable": True},
            "role": _enum("customer", "admin", "director"),
            "is_active": BOOL,
            "banned": BOOL,
            "banned_at": DT_NULL,
        }
    ),
    "CustomerRequestCreate": _obj(
        {
            "title": {"type": "string", "maxLength": TITLE_MAX},
            "description": STR,
            "priority": PRIORITY,
            "category": CATEGORY,
            "tags": _list(STR),
            "estimated_resolution_time": DT_NULL,
            "customer_id": {
                "type": "integer",
                "description": "Staff only: create on behalf of this customer.",
            },
        },
        ["title", "description"],
        example={
            "title": "Не работает оплата",
            "description": "Ошибка при оплате картой",
            "priority": "high",
            "category": "billing",
        },
    ),
    "CustomerRequestUpdate": _obj(
        {
            "title": {"type": "string", "maxLength": TITLE_MAX},
            "description": STR,
            "priority": PRIORITY,
            "category": CATEGORY,
            "tags": _list(STR),
            "estimated_resolution_time": DT_NULL,
            "status": {**STATUS, "description": "Directors only, along the moves of the lifecycle table (in_progress -> completed or open, completed -> closed or in_progress, closed -> in_progress; an unassigned request reopens to open); others use take/complete. A move outside the table is a 400 on `status` naming the allowed statuses."},
        },
        example={"priority": "urgent"},
    ),
    "CustomerRequestCreateOwn": _obj(
        {
            "title": {"type": "string", "maxLength": TITLE_MAX},
            "description": STR,
            "priority": PRIORITY,
            "category": CATEGORY,
            "tags": _list(STR),
        },
        ["title", "description"],
        example={"title": "Не приходит письмо", "description": "Письмо с подтверждением не пришло"},
    ),
    "RequestMessage": _obj(
        {
            "id": INT,
            "request": INT,
            "sender": INT,
            "sender_type": _enum("customer", "admin"),
            "sender_name": STR,
            "sender_avatar": {"type": "string", "nullable": True},
            "content": STR,
            "message_type": MESSAGE_TYPE,
            "is_read": BOOL,
            "is_internal": BOOL,
            "created_at": DT,
            "edited_at": {"type": "string", "format": "date-time", "nullable": True},
        }
    ),
    "MessageEdit": _obj({"content": STR}, ["content"], example={"content": "Исправленный текст"}),
    "RequestMessageCreate": _obj(
        {
            "content": STR,
            "message_type": _enum("text", "image", "file"),
            "is_internal": {
                "type": "boolean",
                "default": False,
                "description": "Staff only: an internal note, never shown to the customer.",
            },
        },
        ["content"],
        example={"content": "Здравствуйте! Проверяем."},
    ),
    "CustomerMessageCreate": _obj(
        {"content": STR, "message_type": _enum("text", "image", "file")},
        ["content"],
        example={"content": "Спасибо, жду."},
    ),
    "Attachment": _obj(
        {
            "id": INT,
            "request": INT,
            "message": {"type": "integer", "nullable": True},
            "name": STR,
            "file": {"type": "string", "format": "uri", "description": "Download URL"},
            "size": INT,
            "content_type": STR,
            "created_at": DT,
        }
    ),
    "AttachmentUpload": _obj(
        {
            "file": {"type": "string", "format": "binary"},
            "message": {
                "type": "integer",
                "description": "Attach to this existing message instead of a new one.",
            },
            "caption": {
                "type": "string",
                "description": 'Text of the new message (default: "Вложение: <name>").',
            },
            "is_internal": {"type": "boolean", "description": "Staff only: internal file."},
        },
        ["file"],
    ),
    "Stats": _obj(
        {
            "total_requests": INT,
            "open_requests": INT,
            "in_progress_requests": INT,
            "completed_today": INT,
            "completion_rate": {"type": "number", "description": "Percent, 2 decimals"},
        }
    ),
    "AdminChat": _obj(
        {
            "id": INT,
            "name": STR,
            "chat_type": _enum("general", "department", "private"),
            "participants": _list(_ref("User")),
            "last_message": _obj(
                {"content": STR, "sender_name": STR, "created_at": DT}, nullable=True
            ),
            "unread_count": INT,
            "is_active": BOOL,
            "created_at": DT,
        }
    ),
    "AdminChatCreate": _obj(
        {
            "name": {"type": "string", "maxLength": 100},
            "chat_type": _enum("general", "department", "private"),
            "participant_ids": _list(INT),
        },
        ["name"],
        example={"name": "Поддержка L2", "chat_type": "department"},
    ),
    "AdminChatUpdate": _obj(
        {
            "name": {"type": "string", "maxLength": 100},
            "chat_type": _enum("general", "department", "private"),
            "is_active": BOOL,
        },
        example={"name": "Поддержка L2 (новое)"},
    ),
    "ChatMessage": _obj(
        {
            "id": INT,
            "chat": INT,
            "sender": INT,
            "sender_name": STR,
            "sender_avatar": {"type": "string", "nullable": True},
            "content": STR,
            "message_type": MESSAGE_TYPE,
            "reply_to": {"type": "integer", "nullable": True},
            "is_read": BOOL,
            "created_at": DT,
        }
    ),
    "ChatMessageCreate": _obj(
        {
            "content": STR,
            "message_type": _enum("text", "image", "file"),
            "reply_to": {"type": "integer", "nullable": True},
        },
        ["content"],
        example={"content": "Коллеги, кто возьмёт #42?"},
    ),
    "InternalCommunication": _obj(
        {
            "id": INT,
            "request": {"type": "integer", "nullable": True},
            "from_department": STR,
            "to_department": STR,
            "subject": STR,
            "content": STR,
            "priority": _enum("low", "medium", "high"),
            "status": _enum("pending", "read", "replied"),
            "sender": INT,
            "participants": _list(INT),
            "created_at": DT,
        }
    ),
    "InternalCommunicationWrite": _obj(
        {
            "request": {"type": "integer", "nullable": True},
            "from_department": {"type": "string", "maxLength": 50},
            "to_department": {"type": "string", "maxLength": 50},
            "subject": {"type": "string", "maxLength": 200},
            "content": STR,
            "priority": _enum("low", "medium", "high"),
            "status": _enum("pending", "read", "replied"),
            "participants": _list(INT),
        },
        ["from_department", "to_department", "subject", "content"],
        example={
            "from_department": "Поддержка",
            "to_department": "Биллинг",
            "subject": "Двойное списание",
            "content": "Проверьте, пожалуйста, платёж",
        },
    ),
    "TokenRequest": _obj(
        {"username": STR, "password": STR},
        ["username", "password"],
        example={"username": "admin", "password": "secret"},
    ),
    "Token": _obj({"token": STR}),
    "WebhookSubscription": _obj(
        {
            "id": INT,
            "url": {"type": "string", "format": "uri"},
            "events": _list(WEBHOOK_EVENT),
            "description": STR,
            "is_active": BOOL,
            "created_by": {"type": "integer", "nullable": True},
            "created_at": DT,
            "updated_at": DT,
        }
    ),
    "WebhookSubscriptionCreated": _obj(
        {
            "id": INT,
            "url": {"type": "string", "format": "uri"},
            "events": _list(WEBHOOK_EVENT),
            "description": STR,
            "is_active": BOOL,
            "secret": {"type": "string", "description": "Signs every delivery; shown only now."},
            "created_at": DT,
        }
    ),
    "WebhookSubscriptionWrite": _obj(
        {
            "url": {"type": "string", "format": "uri",
                    "description": "http(s); loopback/private targets refused unless WEBHOOK_ALLOW_PRIVATE=1"},
            "events": _list(WEBHOOK_EVENT),
            "description": {"type": "string", "maxLength": 200},
            "is_active": BOOL,
        },
        ["url", "events"],
        example={"url": "https://example.com/hooks/helpdesk",
                 "events": ["request.created", "request.status_changed", "message.created"]},
    ),
    "WebhookDelivery": _obj(
        {
            "id": INT,
            "subscription": INT,
            "delivery_id": {"type": "string", "description": "X-Helpdesk-Delivery (stable across retries)"},
            "event": WEBHOOK_EVENT,
            "event_id": {"type": "integer", "nullable": True},
            "status": _enum("pending", "sending", "delivered", "failed"),
            "attempts": INT,
            "last_status_code": {"type": "integer", "nullable": True},
            "last_error": {"type": "string", "nullable": True},
            "next_attempt_at": DT_NULL,
            "give_up_at": DT,
            "created_at": DT,
            "delivered_at": DT_NULL,
            "redelivery_of": {"type": "integer", "nullable": True},
            "attempt_log": _list(_obj({"at": DT, "status_code": {"type": "integer", "nullable": True},
                                       "error": {"type": "string", "nullable": True}, "ms": {"type": "number"}})),
            "payload": _obj({"id": STR, "event": WEBHOOK_EVENT, "created_at": DT, "data": {"type": "object"}}),
        }
    ),
    "Detail": _obj({"detail": STR}, ["detail"]),
    "ActionError": _obj({"error": STR}, ["error"]),
    "ValidationErrors": {
        "type": "object",
        "additionalProperties": _list(STR),
        "description": "DRF shape: field name -> list of messages.",
        "example": {"title": ["Убедитесь, что это значение содержит не более 200 символов."]},
    },
    "ChatStatus": _obj({"status": _enum("joined", "left")}),
    "PublicRequestForm": _obj(
        {
            "name": STR,
            "email": {"type": "string", "format": "email"},
            "title": {"type": "string", "maxLength": TITLE_MAX},
            "description": STR,
            "category": CATEGORY,
            "attachments": _list({"type": "string", "format": "binary"}),
        },
        ["name", "email", "title", "description"],
    ),
    "PublicReplyForm": _obj(
        {"content": STR, "attachments": _list({"type": "string", "format": "binary"})}
    ),
    "PublicCreated": _obj(
        {
            "access_key": STR,
            "url": STR,
            "request": {"type": "object"},
            "failed_attachments": _list(STR),
        }
    ),
    "PublicThread": _obj({"request": {"type": "object"}, "messages": _list({"type": "object"})}),
    "PaginatedCustomerRequests": _paginated("CustomerRequest"),
    "PaginatedOwnRequests": _paginated("OwnRequest"),
    "PaginatedInternalCommunications": _paginated("InternalCommunication"),
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


ERRORS = {
    "400": {
        "description": "Bad input (field -> messages)",
        "content": _json_content(_ref("ValidationErrors")),
    },
    "401": {"description": "No or bad token", "content": _json_content(_ref("Detail"))},
    "403": {"description": "Not allowed", "content": _json_content(_ref("Detail"))},
    "404": {"description": "Not found (also: not yours)", "content": _json_content(_ref("Detail"))},
}

ID = {
    "request_id": "Request id",
    "user_id": "User id",
    "customer_id": "Customer (user) id",
    "chat_id": "Chat id",
    "comm_id": "Communication id",
    "attachment_id": "Attachment id",
    "subscription_id": "Webhook subscription id",
    "delivery_id": "Delivery id (the `id` in the deliveries log)",
    "message_id": "Message id (of the request's thread)",
}

PAGE = {
    "name": "page",
    "in": "query",
    "schema": INT,
    "description": "Page number (20 per page); out of range -> 404",
}
REQUEST_FILTERS = [
    PAGE,
    {"name": "status", "in": "query", "schema": STATUS},
    {"name": "priority", "in": "query", "schema": PRIORITY},
    {"name": "category", "in": "query", "schema": CATEGORY},
    {
        "name": "search",
        "in": "query",
        "schema": STR,
        "description": "Title, description, customer name or email",
    },
]
ADMIN_FILTERS = REQUEST_FILTERS + [
    {"name": "assigned_admin", "in": "query", "schema": INT},
    {"name": "customer", "in": "query", "schema": INT},
    {"name": "unassigned", "in": "query", "schema": {"type": "string", "enum": ["1", "true"]}},
    {
        "name": "unassigned_first",
        "in": "query",
        "schema": {"type": "string", "enum": ["1", "true"]},
        "description": "Order unassigned requests before assigned ones (each newest first)",
    },
]

# (method, path, tag, summary, request body schema | "multipart" | None,
#  success status, success schema | None, extra query params, extra error codes)
OPERATIONS: list[tuple] = [
    (
        "post",
        "/api/auth/token/",
        "auth",
        "Obtain a new API token (one per device; DRF obtain_auth_token)",
        "TokenRequest",
        "200",
        _ref("Token"),
        [],
        {"429": "Too many failed logins for this username or client address"},
    ),
    (
        "delete",
        "/api/auth/token/",
        "auth",
        "Revoke the token this request is made with (401 with it afterwards)",
        None,
        "204",
        None,
        [],
        {},
    ),
    (
        "patch",
        "/api/admin/users/{user_id}/",
        "users",
        "Deactivate, reactivate or change the role of a user (director)",
        "AccessChange",
        "200",
        _ref("UserAccess"),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/customers/{customer_id}/ban/",
        "users",
        "Ban a customer: new requests and messages refused (director)",
        None,
        "200",
        _ref("UserAccess"),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/customers/{customer_id}/unban/",
        "users",
        "Lift a customer's ban (director)",
        None,
        "200",
        _ref("UserAccess"),
        [],
        {},
    ),
    # admin: customer requests
    (
        "get",
        "/api/admin/customer-requests/",
        "customer-requests",
        "List requests, newest first (staff)",
        None,
        "200",
        _ref("PaginatedCustomerRequests"),
        ADMIN_FILTERS,
        {},
    ),
    (
        "post",
        "/api/admin/customer-requests/",
        "customer-requests",
        "Create a request (customer_id: on behalf of a customer)",
        "CustomerRequestCreate",
        "201",
        _ref("CustomerRequest"),
        [],
        {},
    ),
    (
        "get",
        "/api/admin/customer-requests/stats/",
        "customer-requests",
        "Stats",
        None,
        "200",
        _ref("Stats"),
        [],
        {},
    ),
    (
        "get",
        "/api/admin/customer-requests/{request_id}/",
        "customer-requests",
        "Read a request",
        None,
        "200",
        _ref("CustomerRequest"),
        [],
        {},
    ),
    (
        "put",
        "/api/admin/customer-requests/{request_id}/",
        "customer-requests",
        "Replace a request (CanManageRequest)",
        "CustomerRequestCreate",
        "200",
        _ref("CustomerRequest"),
        [],
        {},
    ),
    (
        "patch",
        "/api/admin/customer-requests/{request_id}/",
        "customer-requests",
        "Update a request (CanManageRequest)",
        "CustomerRequestUpdate",
        "200",
        _ref("CustomerRequest"),
        [],
        {},
    ),
    (
        "delete",
        "/api/admin/customer-requests/{request_id}/",
        "customer-requests",
        "Delete a request and its files (director)",
        None,
        "204",
        None,
        [],
        {},
    ),
    (
        "post",
        "/api/admin/customer-requests/{request_id}/take/",
        "customer-requests",
        'Take: assign to me, status in_progress. Already assigned -> 400 {"error"}',
        None,
        "200",
        _ref("CustomerRequest"),
        [],
        {"action": True},
    ),
    (
        "post",
        "/api/admin/customer-requests/{request_id}/complete/",
        "customer-requests",
        'Complete (assignee or director; otherwise 403 {"error"})',
        None,
        "200",
        _ref("CustomerRequest"),
        [],
        {"action": True},
    ),
    (
        "post",
        "/api/admin/customer-requests/{request_id}/close/",
        "customer-requests",
        "Close a completed request (director)",
        None,
        "200",
        _ref("CustomerRequest"),
        [],
        {"action": True},
    ),
    (
        "post",
        "/api/admin/customer-requests/{request_id}/reopen/",
        "customer-requests",
        "Reopen a completed or closed request (director)",
        None,
        "200",
        _ref("CustomerRequest"),
        [],
        {"action": True},
    ),
    (
        "post",
        "/api/admin/customer-requests/{request_id}/reassign/",
        "customer-requests",
        "Reassign to another admin (director)",
        _obj({"admin_id": INT}, ["admin_id"], example={"admin_id": 2}),
        "200",
        _ref("CustomerRequest"),
        [],
        {"action": True},
    ),
    (
        "get",
        "/api/admin/customer-requests/{request_id}/messages/",
        "customer-requests",
        "Thread, oldest first (internal notes included)",
        None,
        "200",
        _list(_ref("RequestMessage")),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/customer-requests/{request_id}/messages/",
        "customer-requests",
        "Reply (CanManageRequest) or internal note (any staff)",
        "RequestMessageCreate",
        "201",
        _ref("RequestMessage"),
        [],
        {},
    ),
    (
        "patch",
        "/api/admin/customer-requests/{request_id}/messages/{message_id}/",
        "customer-requests",
        "Edit my own message within MESSAGE_EDIT_WINDOW_HOURS (mirrored to Telegram and the web page)",
        "MessageEdit",
        "200",
        _ref("RequestMessage"),
        [],
        {},
    ),
    (
        "delete",
        "/api/admin/customer-requests/{request_id}/messages/{message_id}/",
        "customer-requests",
        "Delete my own message within MESSAGE_EDIT_WINDOW_HOURS (kept in the history)",
        None,
        "204",
        None,
        [],
        {},
    ),
    (
        "get",
        "/api/admin/customer-requests/{request_id}/attachments/",
        "attachments",
        "List a request's attachments",
        None,
        "200",
        _list(_ref("Attachment")),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/customer-requests/{request_id}/attachments/",
        "attachments",
        "Upload a file (multipart, streamed; MAX_UPLOAD_MB, 413 over it)",
        "multipart",
        "201",
        _ref("Attachment"),
        [],
        {"413": "File too large"},
    ),
    (
        "get",
        "/api/attachments/{attachment_id}/download/",
        "attachments",
        "Download (Content-Disposition: attachment; customers: own requests only)",
        None,
        "200",
        "binary",
        [],
        {},
    ),
    # chats
    (
        "get",
        "/api/admin/chats/",
        "chats",
        "My active chats",
        None,
        "200",
        _list(_ref("AdminChat")),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/chats/",
        "chats",
        "Create a chat (the creator joins)",
        "AdminChatCreate",
        "201",
        _ref("AdminChat"),
        [],
        {},
    ),
    (
        "get",
        "/api/admin/chats/{chat_id}/",
        "chats",
        "Read a chat (participants)",
        None,
        "200",
        _ref("AdminChat"),
        [],
        {},
    ),
    (
        "patch",
        "/api/admin/chats/{chat_id}/",
        "chats",
        "Rename / change type / deactivate (participants)",
        "AdminChatUpdate",
        "200",
        _ref("AdminChat"),
        [],
        {},
    ),
    (
        "put",
        "/api/admin/chats/{chat_id}/",
        "chats",
        "Replace name and type (participants)",
        "AdminChatCreate",
        "200",
        _ref("AdminChat"),
        [],
        {},
    ),
    (
        "get",
        "/api/admin/chats/{chat_id}/messages/",
        "chats",
        "Messages, oldest first (participants)",
        None,
        "200",
        _list(_ref("ChatMessage")),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/chats/{chat_id}/messages/",
        "chats",
        "Post a message (participants)",
        "ChatMessageCreate",
        "201",
        _ref("ChatMessage"),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/chats/{chat_id}/join/",
        "chats",
        "Join (private chats: by invitation)",
        None,
        "200",
        _ref("ChatStatus"),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/chats/{chat_id}/leave/",
        "chats",
        "Leave",
        None,
        "200",
        _ref("ChatStatus"),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/chats/{chat_id}/remove_participant/",
        "chats",
        "Remove a participant (the chat's creator or a director)",
        _obj({"user_id": INT}, ["user_id"], example={"user_id": 3}),
        "200",
        _obj({"status": _enum("removed")}),
        [],
        {},
    ),
    (
        "post",
        "/api/admin/chats/{chat_id}/read/",
        "chats",
        "Mark the others' messages read (participants)",
        None,
        "200",
        _obj({"status": _enum("read"), "marked": INT}),
        [],
        {},
    ),
    # internal communications
    (
        "get",
        "/api/admin/internal-communications/",
        "internal-communications",
        "List (directors: all; admins: sent by or addressed to them)",
        None,
        "200",
        _ref("PaginatedInternalCommunications"),
        [PAGE, {"name": "status", "in": "query", "schema": _enum("pending", "read", "replied")}],
        {},
    ),
    (
        "post",
        "/api/admin/internal-communications/",
        "internal-communications",
        "Create",
        "InternalCommunicationWrite",
        "201",
        _ref("InternalCommunication"),
        [],
        {},
    ),
    (
        "get",
        "/api/admin/internal-communications/{comm_id}/",
        "internal-communications",
        "Read",
        None,
        "200",
        _ref("InternalCommunication"),
        [],
        {},
    ),
    (
        "put",
        "/api/admin/internal-communications/{comm_id}/",
        "internal-communications",
        "Replace",
        "InternalCommunicationWrite",
        "200",
        _ref("InternalCommunication"),
        [],
        {},
    ),
    (
        "patch",
        "/api/admin/internal-communications/{comm_id}/",
        "internal-communications",
        "Update",
        "InternalCommunicationWrite",
        "200",
        _ref("InternalCommunication"),
        [],
        {},
    ),
    # customer side
    (
        "get",
        "/api/customer/requests/",
        "customer",
        "My requests, newest first",
        None,
        "200",
        _ref("PaginatedOwnRequests"),
        REQUEST_FILTERS,
        {},
    ),
    (
        "post",
        "/api/customer/requests/",
        "customer",
        "Create a request (I am the customer)",
        "CustomerRequestCreateOwn",
        "201",
        _ref("OwnRequest"),
        [],
        {},
    ),
    (
        "get",
        "/api/customer/requests/{request_id}/",
        "customer",
        "Read my request",
        None,
        "200",
        _ref("OwnRequest"),
        [],
        {},
    ),
    (
        "get",
        "/api/customer/requests/{request_id}/messages/",
        "customer",
        "My thread (no internal notes)",
        None,
        "200",
        _list(_ref("OwnMessage")),
        [],
        {},
    ),
    (
        "post",
        "/api/customer/requests/{request_id}/messages/",
        "customer",
        "Write to my thread",
        "CustomerMessageCreate",
        "201",
        _ref("OwnMessage"),
        [],
        {"action": True},
    ),
    (
        "patch",
        "/api/customer/requests/{request_id}/messages/{message_id}/",
        "customer",
        "Edit my own message within MESSAGE_EDIT_WINDOW_HOURS",
        "MessageEdit",
        "200",
        _ref("OwnMessage"),
        [],
        {},
    ),
    (
        "delete",
        "/api/customer/requests/{request_id}/messages/{message_id}/",
        "customer",
        "Delete my own message within MESSAGE_EDIT_WINDOW_HOURS",
        None,
        "204",
        None,
        [],
        {},
    ),
    (
        "get",
        "/api/customer/requests/{request_id}/attachments/",
        "customer",
        "Files of my request",
        None,
        "200",
        _list(_ref("Attachment")),
        [],
        {},
    ),
    (
        "post",
        "/api/customer/requests/{request_id}/attachments/",
        "customer",
        "Upload a file to my request",
        "multipart",
        "201",
        _ref("Attachment"),
        [],
        {"413": "File too large"},
    ),
    # customer web pages (no account: the access key is the credential)
    (
        "post",
        "/api/public/requests/",
        "public",
        "Create a request from the web form (rate limited)",
        "multipart:PublicRequestForm",
        "201",
        _ref("PublicCreated"),
        [],
        {"public": True, "429": "Too many requests"},
    ),
    (
        "get",
        "/api/public/requests/{key}/",
        "public",
        "The request and its public thread",
        None,
        "200",
        _ref("PublicThread"),
        [
            {
                "name": "after",
                "in": "query",
                "schema": INT,
                "description": "Only messages with a larger id",
            }
        ],
        {"public": True, "404": True},
    ),
    (
        "post",
        "/api/public/requests/{key}/messages/",
        "public",
        "Reply (text and/or files, rate limited)",
        "multipart:PublicReplyForm",
        "201",
        _obj({"messages": _list({"type": "object"}), "failed_attachments": _list(STR)}),
        [],
        {"public": True, "404": True, "429": "Too many requests"},
    ),
    (
        "post",
        "/api/public/requests/{key}/messages/{message_id}/edit/",
        "public",
        "Edit the customer's own message within MESSAGE_EDIT_WINDOW_HOURS (form or JSON)",
        "MessageEdit",
        "200",
        {"type": "object"},
        [],
        {"public": True, "404": True, "429": "Too many requests"},
    ),
    (
        "patch",
        "/api/public/requests/{key}/messages/{message_id}/edit/",
        "public",
        "Edit the customer's own message within MESSAGE_EDIT_WINDOW_HOURS (form or JSON)",
        "MessageEdit",
        "200",
        {"type": "object"},
        [],
        {"public": True, "404": True, "429": "Too many requests"},
    ),
    (
        "post",
        "/api/public/requests/{key}/messages/{message_id}/delete/",
        "public",
        "Delete the customer's own message within MESSAGE_EDIT_WINDOW_HOURS (kept in the history)",
        None,
        "204",
        None,
        [],
        {"public": True, "404": True, "429": "Too many requests"},
    ),
    (
        "delete",
        "/api/public/requests/{key}/messages/{message_id}/delete/",
        "public",
        "Delete the customer's own message within MESSAGE_EDIT_WINDOW_HOURS (kept in the history)",
        None,
        "204",
        None,
        [],
        {"public": True, "404": True, "429": "Too many requests"},
    ),
    (
        "get",
        "/api/public/requests/{key}/attachments/{attachment_id}/",
        "public",
        "Download a file of that request",
        None,
        "200",
        "binary",
        [],
        {"public": True, "404": True},
    ),
    # webhooks (directors)
    (
        "get", "/api/admin/webhooks/", "webhooks", "List webhook subscriptions (directors)",
        None, "200", _list(_ref("WebhookSubscription")), [], {},
    ),
    (
        "post", "/api/admin/webhooks/", "webhooks",
        "Subscribe a URL to events; the answer shows the signing secret once (directors)",
        "WebhookSubscriptionWrite", "201", _ref("WebhookSubscriptionCreated"), [], {},
    ),
    (
        "get", "/api/admin/webhooks/{subscription_id}/", "webhooks", "A subscription (directors)",
        None, "200", _ref("WebhookSubscription"), [], {},
    ),
    (
        "put", "/api/admin/webhooks/{subscription_id}/", "webhooks",
        "Replace url and events (directors)", "WebhookSubscriptionWrite", "200",
        _ref("WebhookSubscription"), [], {},
    ),
    (
        "patch", "/api/admin/webhooks/{subscription_id}/", "webhooks",
        "Change url, events, description or is_active (directors)",
        {"type": "object"}, "200", _ref("WebhookSubscription"), [], {},
    ),
    (
        "delete", "/api/admin/webhooks/{subscription_id}/", "webhooks",
        "Delete a subscription and its deliveries log (directors)", None, "204", None, [], {},
    ),
    (
        "get", "/api/admin/webhooks/{subscription_id}/deliveries/", "webhooks",
        "Deliveries and their attempts, newest first (directors)", None, "200",
        _paginated("WebhookDelivery"),
        [PAGE, {"name": "status", "in": "query",
                "schema": _enum("pending", "sending", "delivered", "failed")}],
        {},
    ),
    (
        "post", "/api/admin/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver/",
        "webhooks", "Send a delivery again (same X-Helpdesk-Delivery; directors)", None, "202",
        _ref("WebhookDelivery"), [], {},
    ),
    # scheduler
    (
        "get",
        "/api/admin/scheduler/jobs/",
        "service",
        "Scheduler jobs: schedule, next and last run (staff)",
        None,
        "200",
        _obj({"enabled": BOOL, "running_in_this_process": BOOL, "jobs": _list({"type": "object"})}),
        [],
        {},
    ),
    # service
    (
        "get",
        "/health",
        "service",
        "Liveness",
        None,
        "200",
        {"type": "object"},
        [],
        {"public": True},
    ),
    (
        "get",
        "/ready",
        "service",
        "Readiness (database reachable)",
        None,
        "200",
        {"type": "object"},
        [],
        {"public": True},
    ),
]


def _operation(method, path, tag, summary, body, ok, ok_schema, params, extra) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "operationId": f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": INT, "description": desc}
        for name, desc in ID.items()
        if "{" + name + "}" in path
    ] + list(params)
    if "{key}" in path:
        parameters.insert(
            0,
            {
                "name": "key",
                "in": "path",
                "required": True,
                "schema": STR,
                "description": "The request's access key (from the web form)",
            },
        )
    if parameters:
        op["parameters"] = parameters
    if isinstance(body, str) and body.startswith("multipart"):
        form = body.partition(":")[2] or "AttachmentUpload"
        op["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": _ref(form)}},
        }
    elif isinstance(body, str):
        op["requestBody"] = {"required": True, "content": _json_content(_ref(body))}
    elif isinstance(body, dict):
        op["requestBody"] = {"required": True, "content": _json_content(body)}
    responses: dict[str, Any] = {}
    if ok_schema is None:
        responses[ok] = {"description": "Done"}
    elif ok_schema == "binary":
        responses[ok] = {
            "description": "The file",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    else:
        responses[ok] = {"description": "OK", "content": _json_content(ok_schema)}
    public = extra.get("public") or path == "/api/auth/token/"
    if not extra.get("public"):
        responses["400"] = ERRORS["400"]
    if not public:
        responses["401"] = ERRORS["401"]
        responses["403"] = ERRORS["403"]
        if "{" in path:
            responses["404"] = ERRORS["404"]
    elif extra.get("404"):
        responses["404"] = ERRORS["404"]
    if extra.get("action"):
        responses["400"] = {
            "description": 'Not allowed in the current state, e.g. already assigned (action errors use "error")',
            "content": _json_content({"oneOf": [_ref("ActionError"), _ref("ValidationErrors")]}),
        }
        responses["403"] = {
            "description": "Not allowed for you",
            "content": _json_content({"oneOf": [_ref("ActionError"), _ref("Detail")]}),
        }
    for code in ("413", "429"):
        if code in extra:
            responses[code] = {"description": extra[code], "content": _json_content(_ref("Detail"))}
    op["responses"] = responses
    if public:
        op["security"] = []
    return op


@cache
def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.0 document (built once)."""
    from api.routes import docs_agent_tools as agent_tools

    paths: dict[str, dict[str, Any]] = {}
    for spec in OPERATIONS + agent_tools.OPERATIONS:
        method, path = spec[0], spec[1]
        paths.setdefault(path, {})[method] = _operation(*spec)
    agent_tools.adjust(paths)
    return {
        "openapi": "3.0.3",
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
        "tags": [
            {"name": "auth"},
            {"name": "customer-requests"},
            {"name": "attachments"},
            {"name": "chats"},
            {"name": "internal-communications"},
            {"name": "users"},
            {"name": "customer"},
            {"name": "public"},
            {"name": "service"},
            *agent_tools.TAGS,
        ],
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **agent_tools.SCHEMAS},
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
