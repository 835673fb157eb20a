"""The mail sender: drains db.models.MailOutbox over SMTP (SMTP_URL), like the Telegram
sender drains its queue.

- Claimed before sending: a conditional UPDATE (`pending -> sending`, matching the
  attempts it read) with a lease in `not_before`; only the winner sends. A row left
  `sending` by a process that died is taken again after the lease (at-least-once; the
  Message-ID is the same on every attempt, so mail clients show one message).
- A 4xx answer, a timeout or a connection error is retried after 30 s, 1 min, 2 min ...
  up to an hour, `max_attempts` times (about a day); a 5xx answer (the address does not
  exist, the message is refused) fails the row at once. Failed rows keep their error.
- Outages (database away) back off through `core.backoff.LoopHealth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote, urlsplit

from tortoise.expressions import Q

from core import metrics
from core.backoff import LoopHealth, LoopWorker
from db.models import MailOutbox
from mail.notifier import thread_id

log = logging.getLogger("helpdesk.mail.sender")


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None  # None: when the server offers it

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=tls,
            start_tls=True if parts.scheme == "smtp+starttls" else (False if tls else None),
        )


def build_message(row: MailOutbox, sender: str, domain: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.to_address
    msg["Subject"] = row.subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = row.message_id
    if row.reply_to:
        msg["Reply-To"] = row.reply_to
    if row.request_id is not None and row.kind != "confirm":
        root = thread_id(row.request_id, domain)
        msg["In-Reply-To"] = root
        msg["References"] = root
    # Mail written by a machine: auto-responders must not answer it (no mail loops).
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row.body)
    return msg


class MailSender(LoopWorker):
    task_name = "mail-sender"

    def __init__(self, settings: Any, *, poll_interval: float = 1.0, lease_seconds: float = 120.0,
                 max_attempts: int = 12, backoff_base: float = 30.0, backoff_cap: float = 3600.0,
                 timeout: float = 30.0) -> None:
        extra = settings.extra or {}
        self.settings = settings
        self.target = SmtpTarget.from_url(settings.smtp_url)
        self.poll_interval = float(extra.get("mail_poll", poll_interval))
        self.lease_seconds = lease_seconds
        self.max_attempts = int(extra.get("mail_max_attempts", max_attempts))
        self.backoff_base = float(extra.get("mail_backoff", backoff_base))
        self.backoff_cap = backoff_cap
        self.timeout = float(extra.get("mail_timeout", timeout))
        self.health = LoopHealth("mail sender", log)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.sent = 0

    async def _end_loop(self, task: asyncio.Task[None]) -> None:
        # A message being handed to the SMTP server may finish (bounded by the timeout).
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(task), timeout=self.timeout + 1)
        await super()._end_loop(task)

    async def _pass(self) -> float:
        return 0.0 if await self.drain_once() else self.poll_interval

    async def drain_once(self) -> int:
        """Send what is due (up to 20 rows); returns how many were tried."""
        now = datetime.now(UTC)
        rows = await MailOutbox.filter(
            Q(status="pending", not_before__isnull=True) | Q(status="pending", not_before__lte=now)
            | Q(status="sending", not_before__lt=now)
        ).order_by("id").limit(20)
        tried = 0
        for row in rows:
            if self._stopping:
                break
            if await self._claim(row):
                tried += 1
                await self._send(row)
        return tried

    async def _claim(self, row: MailOutbox) -> bool:
        won = await MailOutbox.filter(id=row.id, status=row.status, attempts=row.attempts).update(
            status="sending", attempts=row.attempts + 1,
            not_before=datetime.now(UTC) + timedelta(seconds=self.lease_seconds),
        )
        if won:
            row.attempts += 1
        return bool(won)

    async def _send(self, row: MailOutbox) -> None:
        import aiosmtplib

        message = build_message(row, self.settings.mail_from, self.settings.reply_domain)
        t = self.target
        error: str | None = None
        permanent = False
        try:
            await aiosmtplib.send(
                message, hostname=t.host, port=t.port, username=t.username, password=t.password,
                use_tls=t.use_tls, start_tls=t.start_tls, timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            permanent = all(500 <= c < 600 for c in codes)
            error = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)[:1000]
        except aiosmtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.code < 600
            error = f"{exc.code} {exc.message}"[:1000]
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
        if error is None:
            await MailOutbox.filter(id=row.id).update(status="sent", sent_at=datetime.now(UTC),
                                                      last_error=None, not_before=None)
            self.sent += 1
            metrics.email("out", "sent")
            return
        if permanent or row.attempts >= self.max_attempts:
            await MailOutbox.filter(id=row.id).update(status="failed", last_error=error,
                                                      not_before=None)
            metrics.email("out", "failed")
            log.warning("mail %s to %s failed for good: %s", row.id, row.to_address, error)
            return
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (row.attempts - 1))
        await MailOutbox.filter(id=row.id).update(
            status="pending", last_error=error,
            not_before=datetime.now(UTC) + timedelta(seconds=delay),
        )
        metrics.email("out", "retry")
        log.info("mail %s to %s: %s; retry %d in %.0fs", row.id, row.to_address, error,
                 row.attempts, delay)
