"""The e-mail notifier: a durable consumer of the event log (core.log_consumer, cursor
"mail") that puts mail for web-form customers into the outbox (db.models.MailOutbox).

What is sent (only for requests made through the web form, which have a private page and
the customer's address; in the customer's language):
- new_request            -> a confirmation with the private link (a lost link is in the mail)
                            and, for an unverified web contact, a single-use link that
                            verifies the address (core.users.verify_email)
- new_message            -> a notice with the text of each staff reply; never an internal
                            note, never a system message (status moves have their own)
- request_status_changed -> a notice of the new status; "completed" adds the satisfaction
                            link (the request's page at its rating block)
Every mail's Reply-To is the request's reply address (mail/addresses.py), so answering it
lands in the thread. Idempotent: one dedup key per event and purpose.
"""

from __future__ import annotations

import logging
import uuid
from email.utils import make_msgid
from typing import Any

from core import events
from core.log_consumer import MAIL_CURSOR, EventLogConsumer
from core.serializers import display_name
from core.users import EMAIL_VERIFY_DAYS, issue_email_verification
from db.models import CustomerRequest, Event, MailOutbox, MessageType, Source, User
from mail.addresses import reply_address
from mail.texts import text

log = logging.getLogger("helpdesk.mail.notifier")

CURSOR_NAME = MAIL_CURSOR


def thread_id(request_id: int, domain: str) -> str:
    """The Message-ID of a request's first mail; later ones refer to it (one thread)."""
    return f"<request-{request_id}@{domain}>"


class MailNotifier(EventLogConsumer):
    cursor_name = CURSOR_NAME
    task_name = "mail-notifier"
    types = (events.NEW_REQUEST, events.NEW_MESSAGE, events.REQUEST_STATUS_CHANGED)

    def __init__(self, settings: Any, *, on_enqueued: Any = None, poll_interval: float = 1.0) -> None:
        super().__init__(poll_interval=float((settings.extra or {}).get("mail_poll", poll_interval)),
                         log=log)
        self.settings = settings
        self.on_enqueued = on_enqueued

    async def handle(self, batch: list[Event]) -> None:
        rows: list[MailOutbox] = []
        for ev in batch:
            if ev.type not in self.types or not isinstance(ev.payload, dict):
                continue
            try:
                row = await self._mail_for(ev, ev.payload)
            except (KeyError, TypeError, ValueError):
                log.exception("event %s: malformed payload; no mail", ev.id)
                continue
            if row is not None:
                rows.append(row)
        if rows:
            await MailOutbox.bulk_create(rows, ignore_conflicts=True)
            if self.on_enqueued:
                self.on_enqueued()

    async def _mail_for(self, ev: Event, data: dict[str, Any]) -> MailOutbox | None:
        if ev.type == events.NEW_MESSAGE:
            if (data.get("sender_type") != "admin" or data.get("is_internal")
                    or data.get("message_type") == MessageType.system):
                return None
            request_id = int(data["request"])
        else:
            request_id = int(data["id"])
        req = await CustomerRequest.filter(id=request_id).select_related("customer").first()
        if req is None or req.source != Source.web or not req.access_key:
            return None
        customer = req.customer
        if not customer.email or "@" not in customer.email:
            return None
        lang = customer.language
        domain = self.settings.reply_domain
        facts = {
            "id": req.id, "title": req.title, "name": customer.full_name,
            "link": f"{self.settings.base_url}/r/{req.access_key}",
        }
        if ev.type == events.NEW_REQUEST:
            kind, key = "confirm", f"mail:{req.id}:confirm"
            if await MailOutbox.filter(dedup_key=key).exists():
                return None  # a replayed batch: the mail (and its token) are out already
            subject = text("confirm_subject", lang, **facts)
            body = text("confirm_body", lang, **facts)
            if customer.is_web_contact and not customer.email_verified:
                token = await issue_email_verification(customer)
                body += text("confirm_verify", lang, n=EMAIL_VERIFY_DAYS,
                             verify_link=f"{facts['link']}/verify/{token}")
            message_id = thread_id(req.id, domain)
        elif ev.type == events.NEW_MESSAGE:
            kind, key = "reply", f"mail:ev{ev.id}:reply"
            subject = text("reply_subject", lang, **facts)
            # Staff appear to customers by display name only (core.serializers.public_name),
            # never by the username the staff JSON falls back to.
            sender = await User.filter(id=data.get("sender")).first() if data.get("sender") else None
            body = text("reply_body", lang, admin=display_name(sender, lang) if sender else "",
                        content=data.get("content") or "", **facts)
            message_id = make_msgid(idstring=uuid.uuid4().hex[:12], domain=domain)
        else:
            kind, key = "status", f"mail:ev{ev.id}:status"
            subject = text("status_subject", lang, status=data["status"], **facts)
            body = text("status_body", lang, status=data["status"], **facts)
            if data["status"] == "completed":
                # The satisfaction link: the request's page opens at its rating block.
                body += text("status_rate", lang, rate_link=f"{facts['link']}#rating-section")
            message_id = make_msgid(idstring=uuid.uuid4().hex[:12], domain=domain)
        return MailOutbox(
            dedup_key=key, request_id=req.id, kind=kind, to_address=customer.email,
            subject=subject[:300], body=body,
            reply_to=reply_address(req.id, req.access_key, domain), message_id=message_id,
        )
