"""Tortoise models: the seed's entities plus the tables that make delivery reliable.

Field names and enum values are the seed's (they are the API's JSON). Extra tables:
`Event` (transactional outbox and event log), `TelegramOutbox` (persistent Telegram
delivery queue), `TelegramThread`/`TelegramMessageLink` (where a request lives in
Telegram), `ProcessedUpdate` (inbound idempotency), `JobLease`/`ReminderLog` (scheduler),
`WebhookSubscription`/`WebhookDelivery` (outbound webhooks), `MailOutbox`/`InboundMail`
(e-mail both ways).

The delivery tables are defined in db.delivery_models and re-exported here, so the one
Tortoise app (db.setup.MODELS = ["db.models"]), the migrations, tests/test_foundation.py and
every caller still see every model in this one module.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

# The delivery tables (db.delivery_models) are part of this app: every caller imports them from here.
from db.delivery_models import *  # noqa: F403


class Role(StrEnum):
    customer = "customer"
    admin = "admin"
    director = "director"


class Status(StrEnum):
    open = "open"
    in_progress = "in_progress"
    completed = "completed"
    closed = "closed"


class Priority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    urgent = "urgent"


class Category(StrEnum):
    technical = "technical"
    billing = "billing"
    account = "account"
    order = "order"
    general = "general"


class SenderType(StrEnum):
    customer = "customer"
    admin = "admin"


class MessageType(StrEnum):
    text = "text"
    image = "image"
    file = "file"
    system = "system"


class ChatType(StrEnum):
    general = "general"
    department = "department"
    private = "private"


class CommPriority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class CommStatus(StrEnum):
    pending = "pending"
    read = "read"
    replied = "replied"


class Source(StrEnum):
    api = "api"
    web = "web"
    telegram = "telegram"
    email = "email"  # a reply received by e-mail (mail/inbound.py)


class User(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=150, unique=True)
    first_name = fields.CharField(max_length=150, default="")
    last_name = fields.CharField(max_length=150, default="")
    email = fields.CharField(max_length=254, default="", db_index=True)
    role = fields.CharEnumField(Role, max_length=20, default=Role.customer, db_index=True)
    is_active = fields.BooleanField(default=True)
    password = fields.CharField(max_length=256, default="")  # "" = cannot log in
    telegram_id = fields.BigIntField(null=True, unique=True)
    telegram_username = fields.CharField(max_length=64, null=True)
    language = fields.CharField(max_length=2, default="ru")
    date_joined = fields.DatetimeField(auto_now_add=True)
    # The request a Telegram customer's plain messages continue.
    active_request_id = fields.IntField(null=True)
    # A web form's contact: an address someone typed, not an account. It holds the requests
    # of one submission; it has no password or Telegram link, and never gets requests from
    # anywhere else (core.users.web_contact_for_email).
    is_web_contact = fields.BooleanField(default=False, db_default=False)
    # Whether the e-mail address is known to belong to this user (typed in by an operator);
    # a web contact's address is unverified.
    email_verified = fields.BooleanField(default=False, db_default=False)
    # A web contact's pending verification link (core.users.issue_email_verification): the
    # SHA-256 of the token mailed with the confirmation, and when it stops working. Cleared
    # when the link is used: a token works once.
    email_verify_hash = fields.CharField(max_length=64, default="", db_default="")
    email_verify_expires = fields.DatetimeField(null=True)
    # A director banned this customer: new requests and messages are refused on every
    # channel (core.bans); nothing already stored changes.
    banned_at = fields.DatetimeField(null=True)
    banned_by_id = fields.IntField(null=True)

    class Meta:
        table = "users"

    @property
    def full_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.username

    def __str__(self) -> str:
        return self.username


class AuthToken(Model):
    # An API token, stored as the SHA-256 of the key the client holds (the key itself is
    # shown once, when it is issued). One row per login or CLI issue: one per device.

    id = fields.IntField(primary_key=True)
    digest = fields.CharField(max_length=64, unique=True)  # hex SHA-256 of the key
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="auth_tokens", on_delete=fields.CASCADE
    )
    created = fields.DatetimeField(auto_now_add=True)
    # How it was issued: "login", "cli" or "migrated" (a plaintext token from before 0009).
    origin = fields.CharField(max_length=16, default="login")

    class Meta:
        table = "auth_tokens"


class CustomerRequest(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=200)
    description = fields.TextField()
    status = fields.CharEnumField(Status, max_length=20, default=Status.open)
    priority = fields.CharEnumField(Priority, max_length=20, default=Priority.medium)
    category = fields.CharEnumField(Category, max_length=20, default=Category.general)
    customer: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="customer_requests", on_delete=fields.CASCADE
    )
    assigned_admin: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="assigned_requests", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)
    last_message_at = fields.DatetimeField(null=True)
    estimated_resolution_time = fields.DatetimeField(null=True)
    tags = fields.JSONField(default=list)
    # Denormalized so a list page never counts messages per row.
    messages_count = fields.IntField(default=0)
    # The same, without internal notes: what the customer's side shows.
    public_messages_count = fields.IntField(default=0, db_default=0)
    # When the status last changed; "completed today" and auto-close read it.
    status_changed_at = fields.DatetimeField(null=True)
    source = fields.CharEnumField(Source, max_length=20, default=Source.api)
    # Key of the customer's private web page (unguessable); null for other channels.
    access_key = fields.CharField(max_length=64, null=True, unique=True)
    # Lower-cased title, description and customer name/email: one column for search,
    # indexed with pg_trgm on PostgreSQL (see migration 0002).
    search_text = fields.TextField(default="")
    # Customer satisfaction (core.csat): 1-5, set while completed, frozen once closed.
    rating = fields.SmallIntField(null=True)
    rating_comment = fields.TextField(null=True)
    rated_at = fields.DatetimeField(null=True)
    # Staff stats (core.staff_stats): when it last moved to completed, and the first
    # non-internal staff reply (when and by whom), kept so stats never scan messages.
    completed_at = fields.DatetimeField(null=True)
    first_response_at = fields.DatetimeField(null=True)
    first_response_by_id = fields.IntField(null=True)

    class Meta:
        table = "customer_requests"
        ordering = ["-created_at"]
        indexes = (
            ("status", "created_at"),
            ("priority", "created_at"),
            ("category", "created_at"),
            ("customer_id", "created_at"),
            ("assigned_admin_id", "status"),
            ("status", "status_changed_at"),
            ("assigned_admin_id", "completed_at"),
            ("first_response_at",),
            ("rating",),
        )

    def __str__(self) -> str:
        return f"#{self.id}: {self.title}"


class RequestMessage(Model):
    id = fields.IntField(primary_key=True)
    request: fields.ForeignKeyRelation[CustomerRequest] = fields.ForeignKeyField(
        "models.CustomerRequest", related_name="messages", on_delete=fields.CASCADE
    )
    sender: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="request_messages", on_delete=fields.CASCADE
    )
    sender_type = fields.CharEnumField(SenderType, max_length=20)
    content = fields.TextField()
    # A system message's text as core.i18n key and params ({"key", "params"}), so each
    # reader sees it in their language; `content` keeps the Russian text (older readers).
    content_i18n = fields.JSONField(null=True)
    message_type = fields.CharEnumField(MessageType, max_length=20, default=MessageType.text)
    is_read = fields.BooleanField(default=False)
    is_internal = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    source = fields.CharEnumField(Source, max_length=20, default=Source.api)
    # Edits and deletions (core.message_edits): when the text last changed; a deleted message
    # keeps its row (and its text, also in the request's history) but is shown nowhere.
    edited_at = fields.DatetimeField(null=True)
    is_deleted = fields.BooleanField(default=False, db_default=False)
    # Where the newest Telegram edit applied stands (bot.handlers.message_edits.edit_order_key:
    # its edit_date, then its update id): an older edit that another replica handles later
    # is dropped, in whatever order they commit.
    telegram_edit_order = fields.BigIntField(null=True)

    class Meta:
        table = "request_messages"
        ordering = ["created_at", "id"]
        indexes = (("request_id", "created_at"),)


class RequestAttachment(Model):
    id = fields.IntField(primary_key=True)
    request: fields.ForeignKeyRelation[CustomerRequest] = fields.ForeignKeyField(
        "models.CustomerRequest", related_name="attachments", on_delete=fields.CASCADE
    )
    message: fields.ForeignKeyNullableRelation[RequestMessage] = fields.ForeignKeyField(
        "models.RequestMessage", related_name="attachments", null=True, on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=255)
    file = fields.CharField(max_length=500)  # path relative to MEDIA_ROOT
    size = fields.IntField()
    content_type = fields.CharField(max_length=100)
    uploaded_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="uploads", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "request_attachments"
        indexes = (("request_id", "created_at"),)


class AdminChat(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    chat_type = fields.CharEnumField(ChatType, max_length=20, default=ChatType.general)
    participants: fields.ManyToManyRelation[User] = fields.ManyToManyField(
        "models.User", related_name="admin_chats", through="admin_chat_participants"
    )
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="created_chats", on_delete=fields.CASCADE
    )
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # A Telegram group this chat is bound to (messages flow both ways).
    telegram_chat_id = fields.BigIntField(null=True, unique=True)

    class Meta:
        table = "admin_chats"
        ordering = ["-created_at"]


class ChatMessage(Model):
    id = fields.IntField(primary_key=True)
    chat: fields.ForeignKeyRelation[AdminChat] = fields.ForeignKeyField(
        "models.AdminChat", related_name="chat_messages", on_delete=fields.CASCADE
    )
    sender: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="chat_messages", on_delete=fields.CASCADE
    )
    content = fields.TextField()
    message_type = fields.CharEnumField(MessageType, max_length=20, default=MessageType.text)
    reply_to: fields.ForeignKeyNullableRelation[ChatMessage] = fields.ForeignKeyField(
        "models.ChatMessage", related_name="replies", null=True, on_delete=fields.SET_NULL
    )
    is_read = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    source = fields.CharEnumField(Source, max_length=20, default=Source.api)

    class Meta:
        table = "chat_messages"
        ordering = ["created_at", "id"]
        indexes = (("chat_id", "created_at"),)


class InternalCommunication(Model):
    id = fields.IntField(primary_key=True)
    request: fields.ForeignKeyNullableRelation[CustomerRequest] = fields.ForeignKeyField(
        "models.CustomerRequest",
        related_name="internal_communications",
        null=True,
        on_delete=fields.CASCADE,
    )
    from_department = fields.CharField(max_length=50)
    to_department = fields.CharField(max_length=50)
    subject = fields.CharField(max_length=200)
    content = fields.TextField()
    priority = fields.CharEnumField(CommPriority, max_length=20, default=CommPriority.medium)
    status = fields.CharEnumField(CommStatus, max_length=20, default=CommStatus.pending)
    sender: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sent_communications", on_delete=fields.CASCADE
    )
    participants: fields.ManyToManyRelation[User] = fields.ManyToManyField(
        "models.User",
        related_name="internal_communications",
        through="internal_communication_participants",
    )
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "internal_communications"
        ordering = ["-created_at"]


class LoginAttempt(Model):
    # Login attempts that did not succeed, per key ("user:<name>" or "addr:<address>") and
    # fixed window (core.login_throttle). An attempt is counted before its password is
    # checked and given back when it succeeds, so concurrent attempts cannot overtake the
    # limit. Rows whose window has passed are pruned.

    key = fields.CharField(max_length=200, primary_key=True)
    failures = fields.IntField(default=0)
    window_start = fields.FloatField()  # epoch seconds
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "login_attempts"


class HistoryChannel(StrEnum):
    rest = "rest"
    telegram = "telegram"
    web = "web"
    scheduler = "scheduler"
    cli = "cli"


class RequestHistory(Model):
    # One change to one field of a request (core.history), written in the transaction of
    # the change. `request_id` is not a foreign key: a deleted request's history (and its
    # deletion) stays readable in the audit trail until AUDIT_RETENTION_DAYS.

    id = fields.BigIntField(primary_key=True)
    request_id = fields.IntField()
    field = fields.CharField(max_length=40)
    # JSON text (core.history encodes and decodes): a JSON column cannot hold a bare string.
    old_value = fields.TextField(null=True)
    new_value = fields.TextField(null=True)
    actor_id = fields.IntField(null=True)
    actor_name = fields.CharField(max_length=301, default="")
    channel = fields.CharEnumField(HistoryChannel, max_length=20)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "request_history"
        indexes = (("request_id", "id"),)


class AuditEntry(Model):
    # A security- or settings-level action (core.audit): logins, tokens, account links,
    # bans, deletions. Kept AUDIT_RETENTION_DAYS, apart from the event log's pruning.

    id = fields.BigIntField(primary_key=True)
    action = fields.CharField(max_length=40)
    actor_id = fields.IntField(null=True)
    actor_name = fields.CharField(max_length=301, default="")
    channel = fields.CharEnumField(HistoryChannel, max_length=20)
    client_address = fields.CharField(max_length=64, default="")
    target_type = fields.CharField(max_length=40, default="")
    target_id = fields.CharField(max_length=64, default="")
    details = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "audit_log"
        indexes = (("action", "id"), ("actor_id", "id"))


class CannedResponse(Model):
    # A saved reply (core.canned). Shared ones are visible to all staff, personal ones to
    # their author. `scope_owner` is 0 for shared and the author's id for personal ones, so
    # a shortcut is unique per language within its scope, enforced by the database.

    id = fields.IntField(primary_key=True)
    shortcut = fields.CharField(max_length=32)
    title = fields.CharField(max_length=200)
    content = fields.TextField()
    language = fields.CharField(max_length=2, default="ru")
    is_shared = fields.BooleanField(default=False)
    created_by: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="canned_responses", on_delete=fields.CASCADE
    )
    scope_owner = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "canned_responses"
        unique_together = (("scope_owner", "shortcut", "language"),)


class ConsoleSession(Model):
    # A signed-in staff console browser (core.console_sessions). The cookie holds a random
    # id; only its SHA-256 digest is stored, so a copy of this table signs nobody in.

    digest = fields.CharField(max_length=64, primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="console_sessions", on_delete=fields.CASCADE
    )
    csrf_token = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField(db_index=True)
    client_address = fields.CharField(max_length=64, default="")
    # One notice for the next page (the outcome of a form post, PRG), as JSON text.
    flash = fields.TextField(null=True)

    class Meta:
        table = "console_sessions"
