"""Outbound webhooks, the domain side: subscriptions, which events they get, the envelope,
the signature, the deliveries log and redelivery. Directors only.

Sending lives in `webhooks/` (the dispatcher turns the event log into deliveries, the
sender posts them); the rules live here so the API, the sender and the tests share them.

Events (the `events` list of a subscription):
- `request.created`: a new request (data: the request's REST JSON)
- `request.updated`: any change of a request, status moves included (data: the request;
  `"deleted": true` when it was deleted)
- `request.status_changed`: a status move (data: `{"id", "previous_status", "status",
  "request"}`)
- `message.created`: a message in a request's thread (data: the message's REST JSON);
  internal notes only to subscriptions that also list `message.internal`
- `message.internal`: opt-in flag: internal notes are delivered too (as `message.created`
  with `"is_internal": true`)
- `request.rated`: a customer rated a completed request (data: core.csat.rated_data:
  `{"id", "title", "status", "rating", "rating_comment", "rated_at", "customer",
  "assigned_admin"}`)

Envelope: `{"id": <delivery guid>, "event", "created_at": <when the event happened>,
"data"}`. Headers: `X-Helpdesk-Event`, `X-Helpdesk-Delivery` (the guid, the same on every
retry and redelivery), `X-Helpdesk-Timestamp` (Unix seconds of this attempt) and
`X-Helpdesk-Signature: sha256=<hex HMAC-SHA256 of "TIMESTAMP.BODY" with the secret>`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise.functions import Max

from core import events, i18n
from core.errors import NotFound, ValidationFailed
from core.permissions import require_director
from core.serializers import dt
from core.targets import TargetRefused, check_target
from core.texts import t
from db.models import Event, User, WebhookDelivery, WebhookSubscription

REQUEST_CREATED = "request.created"
REQUEST_UPDATED = "request.updated"
REQUEST_STATUS_CHANGED = "request.status_changed"
MESSAGE_CREATED = "message.created"
MESSAGE_INTERNAL = "message.internal"
REQUEST_RATED = "request.rated"
EVENT_NAMES = (
    REQUEST_CREATED, REQUEST_UPDATED, REQUEST_STATUS_CHANGED, MESSAGE_CREATED,
    MESSAGE_INTERNAL, REQUEST_RATED,
)
# Domain event type (core.events) -> webhook event name.
_EVENT_OF = {
    events.NEW_REQUEST: REQUEST_CREATED,
    events.REQUEST_UPDATED: REQUEST_UPDATED,
    events.REQUEST_STATUS_CHANGED: REQUEST_STATUS_CHANGED,
    events.NEW_MESSAGE: MESSAGE_CREATED,
    events.REQUEST_RATED: REQUEST_RATED,
}
DOMAIN_TYPES = tuple(_EVENT_OF)

SIGNATURE_PREFIX = "sha256="
DESCRIPTION_MAX = 200  # a subscription's description
DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed")  # WebhookDelivery.status
ATTEMPT_LOG_MAX = 30  # attempts kept per delivery (24 hours of retries are about 30)
PAGE_SIZE = 20


@dataclass(frozen=True)
class RetryPolicy:
    """Delays between attempts grow from `base` by doubling up to `cap` (with +-10%
    jitter); a delivery is retried until `window` after its event, then given up."""

    base: float = 10.0
    cap: float = 3600.0
    window: float = 24 * 3600.0

    @classmethod
    def from_settings(cls, settings: Any) -> RetryPolicy:
        """WEBHOOK_RETRY_HOURS, overridden by `settings.extra["webhook_retry"]` (tests)."""
        values: dict[str, float] = {"window": float(getattr(settings, "webhook_retry_hours", 24)) * 3600}
        extra = (getattr(settings, "extra", None) or {}).get("webhook_retry") or {}
        values.update({k: float(v) for k, v in extra.items() if k in ("base", "cap", "window")})
        return cls(**values)

    def delay(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failed ones."""
        import random

        raw = min(self.cap, self.base * (2 ** min(max(attempts - 1, 0), 30)))
        return raw * random.uniform(0.9, 1.1)


# --- signing -----------------------------------------------------------------------------


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `f"{timestamp}.{body}"` keyed with the secret."""
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes | str, signature: str,
           *, tolerance: float | None = 300, now: float | None = None) -> bool:
    """True when `signature` is right for this body and timestamp (and, with `tolerance`,
    the timestamp is within that many seconds of now: replayed old deliveries fail)."""
    if tolerance is not None:
        try:
            age = abs((now if now is not None else datetime.now(UTC).timestamp()) - int(timestamp))
        except (TypeError, ValueError):
            return False
        if age > tolerance:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature or "")


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def headers_for(delivery_guid: str, event: str, secret: str, body: str,
                timestamp: int | None = None) -> dict[str, str]:
    """The four headers of one attempt (a fresh timestamp and signature each time)."""
    ts = int(timestamp if timestamp is not None else datetime.now(UTC).timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": "Helpdesk-Webhooks/1",
        "X-Helpdesk-Event": event,
        "X-Helpdesk-Delivery": delivery_guid,
        "X-Helpdesk-Timestamp": str(ts),
        "X-Helpdesk-Signature": sign(secret, ts, body),
    }


# --- which events go where ---------------------------------------------------------------


def webhook_event(event: Event) -> tuple[str, dict[str, Any], bool] | None:
    """(webhook event name, data, internal) for a domain event, or None if it is not one
    webhooks carry."""
    name = _EVENT_OF.get(event.type)
    if name is None or event.topic != events.ADMIN_TOPIC or not isinstance(event.payload, dict):
        return None
    internal = name == MESSAGE_CREATED and bool(event.payload.get("is_internal"))
    payload = {k: v for k, v in event.payload.items() if k != i18n.EVENT_FIELD}
    return name, payload, internal


def wants(subscription: WebhookSubscription, name: str, internal: bool) -> bool:
    listed = subscription.events or []
    if internal:
        return MESSAGE_INTERNAL in listed
    return name in listed


def envelope(guid: str, name: str, created_at: datetime | None, data: dict[str, Any]) -> str:
    """The JSON body, built once per delivery: every retry sends (and signs) these bytes."""
    return orjson.dumps(
        {"id": guid, "event": name, "created_at": dt(created_at), "data": data}
    ).decode()


def new_delivery(subscription: WebhookSubscription, event: Event, name: str,
                 data: dict[str, Any], policy: RetryPolicy) -> WebhookDelivery:
    """An unsaved delivery of `event` to `subscription` (idempotent through dedup_key)."""
    guid = str(uuid.uuid4())
    created = event.created_at or datetime.now(UTC)
    return WebhookDelivery(
        subscription_id=subscription.id,
        dedup_key=f"{subscription.id}:{event.id}:{name}",
        guid=guid,
        event=name,
        event_id=event.id,
        body=envelope(guid, name, created, data),
        give_up_at=created + timedelta(seconds=policy.window),
    )


# --- subscriptions (directors) -----------------------------------------------------------


def subscription_data(sub: WebhookSubscription, *, secret: bool = False) -> dict[str, Any]:
    out = {
        "id": sub.id,
        "url": sub.url,
        "events": list(sub.events or []),
        "description": sub.description,
        "is_active": sub.is_active,
        "created_by": sub.created_by_id,
        "created_at": dt(sub.created_at),
        "updated_at": dt(sub.updated_at),
    }
    if secret:
        out["secret"] = sub.secret
    return out


def delivery_data(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "subscription": d.subscription_id,
        "delivery_id": d.guid,
        "event": d.event,
        "event_id": d.event_id,
        "status": d.status,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": dt(d.next_attempt_at) if d.status == "pending" else None,
        "give_up_at": dt(d.give_up_at),
        "created_at": dt(d.created_at),
        "delivered_at": dt(d.delivered_at),
        "redelivery_of": d.redelivery_of,
        "attempt_log": list(d.attempt_log or []),
        "payload": orjson.loads(d.body),
    }


def _check_events(errors: dict[str, list[str]], value: Any, lang: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        errors["events"] = [t("err_webhook_events", lang, names=", ".join(EVENT_NAMES))]
        return []
    unknown = [v for v in value if v not in EVENT_NAMES]
    if unknown:
        errors["events"] = [t("err_webhook_unknown_event", lang, name=unknown[0][:60],
                              names=", ".join(EVENT_NAMES))]
        return []
    return list(dict.fromkeys(value))


async def _check_url(errors: dict[str, list[str]], value: Any, lang: str,
                     allow_private: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        errors["url"] = [t("err_required_field", lang)]
        return ""
    url = value.strip()
    try:
        await check_target(url, allow_private=allow_private)
    except TargetRefused as exc:
        key = {"scheme": "err_webhook_scheme", "private": "err_webhook_private",
               "resolve": "err_webhook_resolve"}.get(exc.code, "err_webhook_url")
        errors["url"] = [t(key, lang)]
    return url


async def create_subscription(actor: User, data: dict[str, Any], *, allow_private: bool
                              ) -> WebhookSubscription:
    """Director only. Validates the URL (refused on loopback/private networks unless
    `allow_private`) and the event names; the new subscription gets a fresh secret and
    receives events committed after it. The caller shows the secret once."""
    require_director(actor)
    lang = actor.language
    errors: dict[str, list[str]] = {}
    url = await _check_url(errors, data.get("url"), lang, allow_private)
    names = _check_events(errors, data.get("events"), lang)
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX:
        errors["description"] = [t("err_webhook_description", lang)]
    is_active = data.get("is_active", True)
    if not isinstance(is_active, bool):
        errors["is_active"] = [t("err_bool", lang)]
    if errors:
        raise ValidationFailed(errors)
    newest = await Event.all().annotate(top=Max("id")).first().values("top")
    return await WebhookSubscription.create(
        url=url, events=names, secret=new_secret(), description=description,
        is_active=is_active, created_by=actor, after_event_id=(newest or {}).get("top") or 0,
    )


async def get_subscription(actor: User, subscription_id: int) -> WebhookSubscription:
    require_director(actor)
    sub = await WebhookSubscription.filter(id=subscription_id).first()
    if sub is None:
        raise NotFound(t("err_not_found", actor.language))
    return sub


async def list_subscriptions(actor: User) -> list[WebhookSubscription]:
    require_director(actor)
    return await WebhookSubscription.all().order_by("id")


async def update_subscription(actor: User, subscription_id: int, data: dict[str, Any], *,
                              allow_private: bool) -> WebhookSubscription:
    """PUT/PATCH of url, events, description, is_active (the secret never changes).
    Deliveries already queued keep their body; new events follow the new settings."""
    sub = await get_subscription(actor, subscription_id)
    lang = actor.language
    errors: dict[str, list[str]] = {}
    changes: dict[str, Any] = {}
    if "url" in data:
        changes["url"] = await _check_url(errors, data["url"], lang, allow_private)
    if "events" in data:
        changes["events"] = _check_events(errors, data["events"], lang)
    if "description" in data:
        if not isinstance(data["description"], str) or len(data["description"]) > DESCRIPTION_MAX:
            errors["description"] = [t("err_webhook_description", lang)]
        changes["description"] = data["description"]
    if "is_active" in data:
        if not isinstance(data["is_active"], bool):
            errors["is_active"] = [t("err_bool", lang)]
        changes["is_active"] = data["is_active"]
    if errors:
        raise ValidationFailed(errors)
    if changes:
        changes["updated_at"] = datetime.now(UTC)
        await WebhookSubscription.filter(id=sub.id).update(**changes)
    return await WebhookSubscription.get(id=sub.id)


async def delete_subscription(actor: User, subscription_id: int) -> None:
    """Deletes the subscription and its deliveries log; nothing more is sent to it (a
    delivery in flight at that moment still finishes)."""
    sub = await get_subscription(actor, subscription_id)
    await sub.delete()


async def list_deliveries(actor: User, subscription_id: int, page: int,
                          status: str | None = None) -> tuple[int, list[WebhookDelivery]]:
    """Newest first, PAGE_SIZE a page, optionally one status."""
    sub = await get_subscription(actor, subscription_id)
    qs = WebhookDelivery.filter(subscription_id=sub.id)
    if status:
        qs = qs.filter(status=status)
    total = await qs.count()
    if page > 1 and (page - 1) * PAGE_SIZE >= total:
        raise NotFound(t("err_bad_page"))
    rows = await qs.order_by("-id").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    return total, rows


async def redeliver(actor: User, subscription_id: int, delivery_id: int, policy: RetryPolicy
                    ) -> WebhookDelivery:
    """Queue the same body again as a new delivery (same X-Helpdesk-Delivery guid, so a
    receiver can tell it is the same event; a fresh retry window). It goes out after what
    is already queued for this subscription."""
    sub = await get_subscription(actor, subscription_id)
    original = await WebhookDelivery.filter(id=delivery_id, subscription_id=sub.id).first()
    if original is None:
        raise NotFound(t("err_not_found", actor.language))
    now = datetime.now(UTC)
    return await WebhookDelivery.create(
        subscription_id=sub.id,
        dedup_key=f"{sub.id}:redeliver:{uuid.uuid4().hex}",
        guid=original.guid,
        event=original.event,
        event_id=original.event_id,
        body=original.body,
        give_up_at=now + timedelta(seconds=policy.window),
        redelivery_of=original.redelivery_of or original.id,
    )
