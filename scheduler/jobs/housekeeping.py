"""The housekeeping job: old fire-slot leases, events, delivered Telegram rows, finished
webhook deliveries and mail, login counters and console sessions are deleted; the audit log
after AUDIT_RETENTION_DAYS."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.clock import as_utc
from core.settings import Settings
from scheduler import lease
from scheduler.jobs.common import (
    LEASE_RETENTION,
    LOG_RETENTION,
)


async def run_housekeeping(settings: Settings, now: datetime, slot: datetime | None = None) -> int:
    """Delete fire-slot leases older than a week (they only guard their own slot), keep the
    event log and the Telegram queue from growing forever (30 days), and drop login attempt
    counters whose window has passed and expired staff console sessions. The audit log has
    its own, longer retention (AUDIT_RETENTION_DAYS, a year by default)."""
    from core import audit, login_throttle
    from core.console_sessions import prune_sessions
    from core.events import prune_events
    from core.log_consumer import MAIL_CURSOR, WEBHOOKS_CURSOR
    from core.log_consumer import TELEGRAM_RELAY_CURSOR as RELAY_CURSOR
    from db.models import InboundMail, MailOutbox, WebhookDelivery
    from telegram_delivery.outbox import prune_delivered

    cutoff = as_utc(now) - LOG_RETENTION
    removed = await lease.prune(as_utc(now) - LEASE_RETENTION)
    # A consumer that no longer runs must not keep the log forever: the e-mail notifier's
    # cursor counts only while e-mail is on.
    consumers = [RELAY_CURSOR, WEBHOOKS_CURSOR] + ([MAIL_CURSOR] if settings.mail_enabled else [])
    removed += await prune_events(cutoff, consumers)
    removed += await prune_delivered(cutoff)
    removed += await login_throttle.prune(
        float(settings.login_window_seconds), as_utc(now).timestamp()
    )
    # Finished webhook deliveries and mail, and the record of replies received by mail.
    removed += await WebhookDelivery.filter(
        status__in=("delivered", "failed"), created_at__lt=cutoff
    ).delete()
    removed += await MailOutbox.filter(status__in=("sent", "failed"), created_at__lt=cutoff).delete()
    removed += await InboundMail.filter(created_at__lt=cutoff).delete()
    removed += await audit.prune(as_utc(now) - timedelta(days=settings.audit_retention_days))
    removed += await prune_sessions(as_utc(now))
    return removed
