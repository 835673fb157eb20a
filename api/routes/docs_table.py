"""The operations table of the OpenAPI document (api/routes/docs.py): one entry per
operation saying which route takes and gives which api/schemas model, plus the path ids and
tags the document describes. Data only; the document is built from it in api/routes/docs.py
(and checked against the routes by tests/test_api_contract.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from api.schemas import agent_tools as tools
from api.schemas import chats, communications, customer, requests, service, users, webhooks
from core.canned import LANGUAGES

REF = "#/components/schemas/{model}"


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


@dataclass(frozen=True)
class Many:
    """A JSON array of `model`."""

    model: type[BaseModel]


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    tag: str
    summary: str
    body: type[BaseModel] | None = None  # the JSON (or form) body the route validates
    ok: str = "200"
    out: type[BaseModel] | Many | str | None = None  # a model, Many(model), "binary", "csv"
    params: tuple[dict[str, Any], ...] = ()
    form: type[BaseModel] | None = None  # multipart/form-data instead of JSON
    public: bool = False  # no token
    action: bool = False  # take/complete/...: refusals as {"error"}
    not_found: bool = False  # public routes that answer 404
    extra: dict[str, str] = field(default_factory=dict)  # more status codes: description


def _q(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    out = {"name": name, "in": "query", "schema": schema}
    if description:
        out["description"] = description
    return out


INT = {"type": "integer"}
STR = {"type": "string"}
PAGE = _q("page", INT, "Page number (20 per page); out of range -> 404")
FILTERS = (
    _q("status", schema_ref("Status")),
    _q("priority", schema_ref("Priority")),
    _q("category", schema_ref("Category")),
    _q("search", STR, "Title, description, customer name or email"),
)
ADMIN_FILTERS = FILTERS + (
    _q("assigned_admin", INT),
    _q("customer", INT),
    _q("unassigned", {"type": "string", "enum": ["1", "true"]}),
    _q("unassigned_first", {"type": "string", "enum": ["1", "true"]},
       "Order unassigned requests before assigned ones (each newest first)"),
)
TOO_MANY = {"429": "Too many requests"}
TOO_LARGE = {"413": "File too large"}
ADMIN = "/api/admin/customer-requests/"
ONE = ADMIN + "{request_id}/"
CHATS = "/api/admin/chats/"
CHAT = CHATS + "{chat_id}/"
COMMS = "/api/admin/internal-communications/"
MINE = "/api/customer/requests/"
MY = MINE + "{request_id}/"
PUBLIC = "/api/public/requests/"
KEY = PUBLIC + "{key}/"
HOOKS = "/api/admin/webhooks/"
HOOK = HOOKS + "{subscription_id}/"
CANNED = "/api/admin/canned-responses/"
EDIT_WINDOW = "within MESSAGE_EDIT_WINDOW_HOURS"

R = requests
OPERATIONS: tuple[Op, ...] = (
    # auth and users
    Op("post", "/api/auth/token/", "auth",
       "Obtain a new API token (one per device; DRF obtain_auth_token)",
       users.TokenRequest, out=users.Token, public=True,
       extra={"429": "Too many failed logins for this username or client address"}),
    Op("delete", "/api/auth/token/", "auth",
       "Revoke the token this request is made with (401 with it afterwards)", ok="204"),
    Op("patch", "/api/admin/users/{user_id}/", "users",
       "Deactivate, reactivate or change the role of a user (director)",
       users.AccessChange, out=users.UserAccess),
    Op("post", "/api/admin/customers/{customer_id}/ban/", "users",
       "Ban a customer: new requests and messages refused (director)", out=users.UserAccess),
    Op("post", "/api/admin/customers/{customer_id}/unban/", "users",
       "Lift a customer's ban (director)", out=users.UserAccess),
    # staff: customer requests
    Op("get", ADMIN, "customer-requests", "List requests, newest first (staff)",
       out=R.PaginatedCustomerRequests, params=(PAGE, *ADMIN_FILTERS)),
    Op("post", ADMIN, "customer-requests",
       "Create a request (customer_id: on behalf of a customer)",
       R.CustomerRequestCreate, ok="201", out=R.CustomerRequest),
    Op("get", ADMIN + "stats/", "customer-requests", "Stats", out=R.Stats),
    Op("get", ADMIN + "stats/admins/", "customer-requests",
       "Per-admin figures: load, completions, first response, CSAT", out=Many(R.AdminStats)),
    Op("get", ADMIN + "export/", "customer-requests",
       "The requests as CSV (the list's filters), streamed", out="csv",
       params=(*ADMIN_FILTERS, _q("bom", {"type": "string", "enum": ["1"]},
                                  "Start with a UTF-8 byte-order mark (Excel)"))),
    Op("get", ONE, "customer-requests", "Read a request", out=R.CustomerRequest),
    Op("put", ONE, "customer-requests", "Replace a request (CanManageRequest)",
       R.CustomerRequestReplace, out=R.CustomerRequest),
    Op("patch", ONE, "customer-requests", "Update a request (CanManageRequest)",
       R.CustomerRequestUpdate, out=R.CustomerRequest),
    Op("delete", ONE, "customer-requests", "Delete a request and its files (director)", ok="204"),
    Op("post", ONE + "take/", "customer-requests",
       'Take: assign to me, status in_progress. Already assigned -> 400 {"error"}',
       out=R.CustomerRequest, action=True),
    Op("post", ONE + "complete/", "customer-requests",
       'Complete (assignee or director; otherwise 403 {"error"})', out=R.CustomerRequest,
       action=True),
    Op("post", ONE + "close/", "customer-requests", "Close a completed request (director)",
       out=R.CustomerRequest, action=True),
    Op("post", ONE + "reopen/", "customer-requests",
       "Reopen a completed or closed request (director)", out=R.CustomerRequest, action=True),
    Op("post", ONE + "reassign/", "customer-requests", "Reassign to another admin (director)",
       R.Reassign, out=R.CustomerRequest, action=True),
    Op("get", ONE + "messages/", "customer-requests",
       "Thread, oldest first (internal notes included)", out=Many(R.RequestMessage)),
    Op("post", ONE + "messages/", "customer-requests",
       "Reply (CanManageRequest) or internal note (any staff)",
       R.RequestMessageCreate, ok="201", out=R.RequestMessage),
    Op("patch", ONE + "messages/{message_id}/", "customer-requests",
       f"Edit my own message {EDIT_WINDOW} (mirrored to Telegram and the web page)",
       R.MessageEdit, out=R.RequestMessage),
    Op("delete", ONE + "messages/{message_id}/", "customer-requests",
       f"Delete my own message {EDIT_WINDOW} (kept in the history)", ok="204"),
    Op("get", ONE + "history/", "customer-requests", "Every change to the request, oldest first",
       out=R.PaginatedHistory, params=(PAGE,)),
    # attachments
    Op("get", ONE + "attachments/", "attachments", "List a request's attachments",
       out=Many(R.Attachment)),
    Op("post", ONE + "attachments/", "attachments",
       "Upload a file (multipart, streamed; MAX_UPLOAD_MB, 413 over it)",
       form=R.AttachmentUpload, ok="201", out=R.Attachment, extra=TOO_LARGE),
    Op("get", "/api/attachments/{attachment_id}/download/", "attachments",
       "Download (Content-Disposition: attachment; customers: own requests only)", out="binary"),
    # chats
    Op("get", CHATS, "chats", "My active chats", out=Many(chats.AdminChat)),
    Op("post", CHATS, "chats", "Create a chat (the creator joins)",
       chats.AdminChatCreate, ok="201", out=chats.AdminChat),
    Op("get", CHAT, "chats", "Read a chat (participants)", out=chats.AdminChat),
    Op("patch", CHAT, "chats", "Rename / change type / deactivate (participants)",
       chats.AdminChatUpdate, out=chats.AdminChat),
    Op("put", CHAT, "chats", "Replace name and type (participants)",
       chats.AdminChatCreate, out=chats.AdminChat),
    Op("get", CHAT + "messages/", "chats", "Messages, oldest first (participants)",
       out=Many(chats.ChatMessage)),
    Op("post", CHAT + "messages/", "chats", "Post a message (participants)",
       chats.ChatMessageCreate, ok="201", out=chats.ChatMessage),
    Op("post", CHAT + "join/", "chats", "Join (private chats: by invitation)",
       out=chats.ChatStatus),
    Op("post", CHAT + "leave/", "chats", "Leave", out=chats.ChatStatus),
    Op("post", CHAT + "remove_participant/", "chats",
       "Remove a participant (the chat's creator or a director)",
       chats.RemoveParticipant, out=chats.ChatStatus),
    Op("post", CHAT + "read/", "chats", "Mark the others' messages read (participants)",
       out=chats.ChatRead),
    # internal communications
    Op("get", COMMS, "internal-communications",
       "List (directors: all; admins: sent by or addressed to them)",
       out=communications.PaginatedInternalCommunications,
       params=(PAGE, _q("status", schema_ref("CommStatus")))),
    Op("post", COMMS, "internal-communications", "Create",
       communications.InternalCommunicationWrite, ok="201",
       out=communications.InternalCommunication),
    Op("get", COMMS + "{comm_id}/", "internal-communications", "Read",
       out=communications.InternalCommunication),
    Op("put", COMMS + "{comm_id}/", "internal-communications", "Replace",
       communications.InternalCommunicationWrite, out=communications.InternalCommunication),
    Op("patch", COMMS + "{comm_id}/", "internal-communications", "Update",
       communications.InternalCommunicationUpdate, out=communications.InternalCommunication),
    # the customer's side
    Op("get", MINE, "customer", "My requests, newest first",
       out=customer.PaginatedOwnRequests, params=(PAGE, *FILTERS)),
    Op("post", MINE, "customer", "Create a request (I am the customer)",
       customer.CustomerRequestCreateOwn, ok="201", out=customer.OwnRequest),
    Op("get", MY, "customer", "Read my request", out=customer.OwnRequest),
    Op("get", MY + "messages/", "customer", "My thread (no internal notes)",
       out=Many(customer.OwnMessage)),
    Op("post", MY + "messages/", "customer", "Write to my thread",
       customer.CustomerMessageCreate, ok="201", out=customer.OwnMessage, action=True),
    Op("patch", MY + "messages/{message_id}/", "customer",
       f"Edit my own message {EDIT_WINDOW}", R.MessageEdit, out=customer.OwnMessage),
    Op("delete", MY + "messages/{message_id}/", "customer",
       f"Delete my own message {EDIT_WINDOW}", ok="204"),
    Op("get", MY + "attachments/", "customer", "Files of my request", out=Many(R.Attachment)),
    Op("post", MY + "attachments/", "customer", "Upload a file to my request",
       form=R.AttachmentUpload, ok="201", out=R.Attachment, extra=TOO_LARGE),
    Op("post", MY + "rating/", "customer",
       "Rate your completed request 1-5 (changeable until it is closed)",
       customer.Rating, out=customer.OwnRequest),
    # the web page (the access key stands for the customer)
    Op("post", PUBLIC, "public", "Create a request from the web form (rate limited)",
       form=customer.PublicRequestForm, ok="201", out=customer.PublicCreated, public=True,
       extra=TOO_MANY),
    Op("get", KEY, "public", "The request and its public thread", out=customer.PublicThread,
       params=(_q("after", INT, "Only messages with a greater id"),), public=True,
       not_found=True),
    Op("post", KEY + "messages/", "public", "Reply (text and/or files, rate limited)",
       form=customer.PublicReplyForm, ok="201", out=customer.PublicReplied, public=True,
       not_found=True, extra=TOO_MANY),
    *(Op(method, KEY + "messages/{message_id}/edit/", "public",
         f"Edit the customer's own message {EDIT_WINDOW} (form or JSON)", R.MessageEdit,
         out=customer.OwnMessage, public=True, not_found=True, extra=TOO_MANY)
      for method in ("post", "patch")),
    *(Op(method, KEY + "messages/{message_id}/delete/", "public",
         f"Delete the customer's own message {EDIT_WINDOW} (kept in the history)", ok="204",
         public=True, not_found=True, extra=TOO_MANY)
      for method in ("post", "delete")),
    Op("get", KEY + "attachments/{attachment_id}/", "public", "Download a file of that request",
       out="binary", public=True, not_found=True),
    Op("post", KEY + "rating/", "public", "Rate the request from its web page (form or JSON)",
       customer.Rating, out=customer.PublicRated, public=True, not_found=True, extra=TOO_MANY),
    # webhooks
    Op("get", HOOKS, "webhooks", "List webhook subscriptions (directors)",
       out=Many(webhooks.WebhookSubscription)),
    Op("post", HOOKS, "webhooks",
       "Subscribe a URL to events; the answer shows the signing secret once (directors)",
       webhooks.WebhookSubscriptionWrite, ok="201", out=webhooks.WebhookSubscriptionCreated),
    Op("get", HOOK, "webhooks", "A subscription (directors)", out=webhooks.WebhookSubscription),
    Op("put", HOOK, "webhooks", "Replace url and events (directors)",
       webhooks.WebhookSubscriptionWrite, out=webhooks.WebhookSubscription),
    Op("patch", HOOK, "webhooks", "Change url, events, description or is_active (directors)",
       webhooks.WebhookSubscriptionUpdate, out=webhooks.WebhookSubscription),
    Op("delete", HOOK, "webhooks", "Delete a subscription and its deliveries log (directors)",
       ok="204"),
    Op("get", HOOK + "deliveries/", "webhooks",
       "Deliveries and their attempts, newest first (directors)",
       out=webhooks.PaginatedWebhookDeliveries,
       params=(PAGE, _q("status", {"type": "string",
                                   "enum": list(webhooks.DELIVERY_STATUSES)}))),
    Op("post", HOOK + "deliveries/{delivery_id}/redeliver/", "webhooks",
       "Send a delivery again (same X-Helpdesk-Delivery; directors)", ok="202",
       out=webhooks.WebhookDelivery),
    # agent tools
    Op("get", CANNED, "canned-responses", "List canned responses you can see (shared and yours)",
       out=tools.PaginatedCannedResponses,
       params=(PAGE, _q("language", {"type": "string", "enum": list(LANGUAGES)}),
               _q("search", STR, "In shortcut and title"),
               _q("is_shared", {"type": "string", "enum": ["true", "false"]}))),
    Op("post", CANNED, "canned-responses", "Create a canned response",
       tools.CannedResponseWrite, ok="201", out=tools.CannedResponse),
    Op("get", CANNED + "{canned_id}/", "canned-responses", "Read a canned response",
       out=tools.CannedResponse),
    Op("put", CANNED + "{canned_id}/", "canned-responses",
       "Replace a canned response (author; director for shared)",
       tools.CannedResponseWrite, out=tools.CannedResponse),
    Op("patch", CANNED + "{canned_id}/", "canned-responses",
       "Update a canned response (author; director for shared)",
       tools.CannedResponseUpdate, out=tools.CannedResponse),
    Op("delete", CANNED + "{canned_id}/", "canned-responses",
       "Delete a canned response (author; director for shared)", ok="204"),
    Op("get", "/api/admin/audit-log/", "audit-log",
       "Logins, tokens, links, bans, deletions, settings (directors), newest first",
       out=tools.PaginatedAuditEntries,
       params=(PAGE, _q("actor", INT, "User id"), _q("action", schema_ref("AuditAction")),
               _q("since", {"type": "string", "format": "date-time"}, "Inclusive"),
               _q("until", {"type": "string", "format": "date-time"}, "Exclusive"))),
    # service
    Op("get", "/api/admin/scheduler/jobs/", "service",
       "Scheduler jobs: schedule, next and last run (staff)", out=service.SchedulerJobs),
    Op("get", "/health", "service", "Liveness", out=service.Health, public=True),
    Op("get", "/ready", "service", "Readiness (database reachable)", out=service.Ready,
       public=True, extra={"503": "Database unreachable (same body, status unavailable)"}),
)

PATH_IDS = {
    "request_id": "Request id",
    "user_id": "User id",
    "customer_id": "Customer (user) id",
    "chat_id": "Chat id",
    "comm_id": "Communication id",
    "attachment_id": "Attachment id",
    "subscription_id": "Webhook subscription id",
    "delivery_id": "Delivery id (the `id` in the deliveries log)",
    "message_id": "Message id (of the request's thread)",
    "canned_id": "Canned response id",
}
TAGS = ("auth", "customer-requests", "attachments", "chats", "internal-communications", "users",
        "customer", "public", "webhooks", "canned-responses", "audit-log", "service")
