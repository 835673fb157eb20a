"""Tortoise models of the delivery machinery: the event outbox and its consumers' cursors,
the Telegram delivery queue and where a request lives in Telegram, inbound update
idempotency, the scheduler's leases and reminder log, outbound webhooks and e-mail both
ways. Part of the one Tortoise app: db.models re-exports every class here, so migrations,
the foundation test and callers see one module (`from db.models import TelegramOutbox`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from db.models import CustomerRequest, User

__all__ = [
    "Cursor",
    "Event",
    "InboundMail",
    "JobLease",
    "MailOutbox",
    "ParkedEvent",
    "ProcessedUpdate",
    "ReminderLog",
    "TelegramMessageLink",
    "TelegramOutbox",
    "TelegramThread",
    "WebhookDelivery",
    "WebhookSubscription",
]

class Event(Model):
    # Transactional outbox and event log.
    #
    # Written in the same transaction as the change it describes; published after commit.
    # Its id is the event id clients use to catch up after a reconnect.

    id = fields.BigIntField(primary_key=True)
    type = fields.CharField(max_length=40)
    # Routing: "admin" (admin notifications), "chat:<id>", "customer:<id>"
    topic = fields.CharField(max_length=40, default="admin")
    payload = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    published = fields.BooleanField(default=False)
    # Set while a relay holds the claim (published=True) and has not yet confirmed the
    # publish; a claim left behind by a crashed process expires and is taken again.
    claimed_until = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "events"
        indexes = (("published", "id"), ("topic", "id"))


class Cursor(Model):
    # Where a durable consumer of the event log (the bot's relay, for one) has got to.

    name = fields.CharField(max_length=64, primary_key=True)
    position = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "cursors"


class TelegramOutbox(Model):
    # Persistent queue of Bot API calls. `dedup_key` makes enqueueing idempotent.

    id = fields.BigIntField(primary_key=True)
    dedup_key = fields.CharField(max_length=128, unique=True)
    chat_id = fields.BigIntField()
    method = fields.CharField(max_length=40)
    payload = fields.JSONField()
    status = fields.CharField(max_length=12, default="pending")  # pending|sending|sent|failed|merged|ignored
    attempts = fields.IntField(default=0)
    not_before = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    result = fields.JSONField(null=True)
    request_id = fields.IntField(null=True)
    # Budget order (telegram_delivery.outbox.Priority): 1 conversation, 2 new requests, 3 edits, 4 reminders
    # and digests; lower goes first.
    priority = fields.SmallIntField(default=2, db_default=2)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "telegram_outbox"
        indexes = (("status", "id"), ("chat_id", "status"))


class ParkedEvent(Model):
    # An event a durable consumer (the Telegram relay) failed to handle: while `failing` it
    # is retried with backoff; once `parked` the consumer's cursor has moved past it and a
    # restart does not replay it; `retry` asks the consumer to try it once more
    # (`helpdesk parked --retry event:ID`).

    id = fields.BigIntField(primary_key=True)
    consumer = fields.CharField(max_length=64)
    event_id = fields.BigIntField()
    event_type = fields.CharField(max_length=40)
    request_id = fields.IntField(null=True)
    status = fields.CharField(max_length=12, default="failing")  # failing|parked|retry
    attempts = fields.IntField(default=0)
    error = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "parked_events"
        unique_together = (("consumer", "event_id"),)
        indexes = (("consumer", "status"),)


class TelegramThread(Model):
    # Where a request lives in the admin group: its card and its forum topic.

    id = fields.IntField(primary_key=True)
    request: fields.OneToOneRelation[CustomerRequest] = fields.OneToOneField(
        "models.CustomerRequest", related_name="telegram_thread", on_delete=fields.CASCADE
    )
    chat_id = fields.BigIntField()
    card_message_id = fields.BigIntField(null=True)
    topic_id = fields.BigIntField(null=True)
    # The burst summary that lists the request with a Take button (edited as it changes).
    summary_message_id = fields.BigIntField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "telegram_threads"


class TelegramMessageLink(Model):
    # Maps a Telegram message to the request (and message) it belongs to. Every Telegram
    # copy of a stored message has one row, so an edit or a deletion reaches each of them:
    # `kind` "origin" = the person's own message the bot received (not ours to edit);
    # "text" = a copy we sent as text (part `part` of a split message); "caption" = a copy
    # we sent as a file or copied media whose caption carries the text; "media" = a copy
    # without the text (an album's later files); "" = written before 0010 (left alone).

    id = fields.BigIntField(primary_key=True)
    chat_id = fields.BigIntField()
    message_id = fields.BigIntField()
    request_id = fields.IntField(null=True)
    request_message_id = fields.IntField(null=True)
    chat_message_id = fields.IntField(null=True)
    kind = fields.CharField(max_length=8, default="", db_default="")
    part = fields.SmallIntField(default=1, db_default=1)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "telegram_message_links"
        unique_together = (("chat_id", "message_id"),)
        indexes = (("request_message_id",),)


class ProcessedUpdate(Model):
    # Inbound Telegram update ids already handled (webhook retries are idempotent).

    update_id = fields.BigIntField(primary_key=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "telegram_processed_updates"


class JobLease(Model):
    # A scheduler job's fire slot or lease; the unique key makes each slot run once.

    key = fields.CharField(max_length=128, primary_key=True)
    holder = fields.CharField(max_length=128)
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "job_leases"


class ReminderLog(Model):
    # One row per (request, reminder kind, threshold): no reminder is sent twice.

    id = fields.IntField(primary_key=True)
    request_id = fields.IntField()
    kind = fields.CharField(max_length=40)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "reminder_log"
        unique_together = (("request_id", "kind"),)


class WebhookSubscription(Model):
    # An integration's endpoint (directors manage them at /api/admin/webhooks/). `secret`
    # signs every delivery (shown once, at creation). `after_event_id`: the newest event in
    # the log when the subscription was made; only later events are delivered.
    # `lease_holder`/`lease_until`: the one sender (of any process) that currently sends this
    # subscription's deliveries, which is what keeps them in order.

    id = fields.IntField(primary_key=True)
    url = fields.CharField(max_length=2000)
    events = fields.JSONField(default=list)
    secret = fields.CharField(max_length=128)
    description = fields.CharField(max_length=200, default="")
    is_active = fields.BooleanField(default=True)
    created_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="webhook_subscriptions", null=True, on_delete=fields.SET_NULL
    )
    after_event_id = fields.BigIntField(default=0)
    lease_holder = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "webhook_subscriptions"
        ordering = ["id"]


class WebhookDelivery(Model):
    # One event for one subscription. `body` is the exact JSON sent (and signed) on every
    # attempt; `guid` is X-Helpdesk-Delivery (stable across retries and redeliveries);
    # `dedup_key` makes creating it from the event log idempotent.
    # status: pending -> sending -> delivered | pending (retry at next_attempt_at) | failed.

    id = fields.BigIntField(primary_key=True)
    subscription: fields.ForeignKeyRelation[WebhookSubscription] = fields.ForeignKeyField(
        "models.WebhookSubscription", related_name="deliveries", on_delete=fields.CASCADE
    )
    dedup_key = fields.CharField(max_length=128, unique=True)
    guid = fields.CharField(max_length=36)
    event = fields.CharField(max_length=40)
    event_id = fields.BigIntField(null=True)
    body = fields.TextField()
    status = fields.CharField(max_length=12, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    give_up_at = fields.DatetimeField()
    last_status_code = fields.IntField(null=True)
    last_error = fields.TextField(null=True)
    attempt_log = fields.JSONField(default=list)
    redelivery_of = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_deliveries"
        indexes = (("subscription_id", "status", "id"), ("status", "subscription_id"))


class MailOutbox(Model):
    # Persistent queue of outgoing e-mail (SMTP_URL). `dedup_key` makes enqueueing
    # idempotent; `message_id` is the Message-ID header, the same on every attempt.

    id = fields.BigIntField(primary_key=True)
    dedup_key = fields.CharField(max_length=128, unique=True)
    request_id = fields.IntField(null=True)
    kind = fields.CharField(max_length=20)
    to_address = fields.CharField(max_length=254)
    subject = fields.CharField(max_length=300)
    body = fields.TextField()
    reply_to = fields.CharField(max_length=254, null=True)
    message_id = fields.CharField(max_length=200)
    status = fields.CharField(max_length=12, default="pending")  # pending|sending|sent|failed
    attempts = fields.IntField(default=0)
    not_before = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "mail_outbox"
        indexes = (("status", "id"),)


class InboundMail(Model):
    # Replies received by e-mail, by Message-ID: a sender that retries after we accepted
    # (the connection dropped before our 250) does not post the reply twice.

    message_id = fields.CharField(max_length=200, primary_key=True)
    request_id = fields.IntField()
    request_message_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "mail_inbound"
