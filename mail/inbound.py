"""Replies by e-mail: an SMTP listener (aiosmtpd) that accepts mail for the requests'
reply addresses and adds the new text to the thread as the customer's message.

- RCPT: only `req-<id>-<secret>@MAIL_REPLY_DOMAIN` whose secret matches that request
  (mail/addresses.py) is accepted; anything else (forged secret, unknown request, another
  domain, a relay attempt) is refused with 550 before the message is even sent.
- DATA: the text/plain part (or the HTML one, as text) without the quoted message and the
  signature (mail/quotes.py) is posted through core.requests.post_message with the
  request's customer as the author (source `email`): the same rules as every channel (a
  closed request refuses: 550 with the reason, so the customer's mail server tells them).
- Once: the Message-ID is recorded first (db.models.InboundMail), so a server that sends
  the same message again (our 250 was lost) does not post it twice.
- Auto-replies (Auto-Submitted, Precedence: bulk/junk/list/auto_reply, out-of-office) are
  accepted and dropped: no mail loops with auto-responders.
- The database away: 451 (try again later); the sending server retries.

It runs inside the process's event loop (`start_inbound`), sharing its database
connection: `helpdesk mail`, or `helpdesk run` when MAIL_INBOUND_PORT is set.
"""

from __future__ import annotations

import hashlib
import logging
from email import policy
from email.parser import BytesParser
from typing import Any

from tortoise.exceptions import IntegrityError

from core import metrics
from core.backoff import is_outage
from core.errors import Conflict, DomainError
from core.limits import current as current_limits
from db.models import CustomerRequest, InboundMail, Source
from mail.addresses import parse_reply_address, secret_matches
from mail.quotes import reply_text

log = logging.getLogger("helpdesk.mail.inbound")

DATA_SIZE_LIMIT = 10 * 1024 * 1024  # bigger messages are refused by the SMTP server itself
_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


def is_auto_reply(message: Any) -> bool:
    auto = (message.get("Auto-Submitted") or "no").strip().lower()
    if auto != "no":
        return True
    if (message.get("Precedence") or "").strip().lower() in _AUTO_PRECEDENCE:
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    return False


class ReplyHandler:
    """aiosmtpd handler (its `handle_RCPT` / `handle_DATA` hooks)."""

    def __init__(self, settings: Any) -> None:
        self.domain = settings.reply_domain
        self.accepted = 0

    async def _request_for(self, address: str) -> CustomerRequest | None:
        parsed = parse_reply_address(address, self.domain)
        if parsed is None:
            return None
        request_id, secret = parsed
        if request_id > 2**31 - 1:
            return None
        req = await CustomerRequest.filter(id=request_id).select_related("customer").first()
        if req is None or not secret_matches(req.id, req.access_key, secret):
            return None
        return req

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        try:
            req = await self._request_for(address)
        except Exception as exc:
            if is_outage(exc):
                return "451 4.3.0 Temporary failure, try again later"
            log.exception("inbound mail: checking %r failed", address)
            return "451 4.3.0 Temporary failure, try again later"
        if req is None:
            metrics.email("in", "refused")
            log.info("inbound mail refused for %r (peer %s)", address[:200], session.peer)
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        if is_auto_reply(message):
            log.info("inbound mail: an auto-reply to %s dropped", envelope.rcpt_tos)
            return "250 OK (auto-reply ignored)"
        message_id = (message.get("Message-ID") or "").strip()[:190] or (
            "sha256:" + hashlib.sha256(raw).hexdigest()
        )
        results = []
        for address in envelope.rcpt_tos:
            try:
                results.append(await self._post(address, message, message_id))
            except Exception as exc:
                log.warning("inbound mail for %s not stored: %s", address, exc,
                            exc_info=not is_outage(exc))
                return "451 4.3.0 Temporary failure, try again later"
        refused = [r for r in results if r.startswith("5")]
        return refused[0] if refused and len(refused) == len(results) else "250 OK"

    async def _post(self, address: str, message: Any, message_id: str) -> str:
        from core.requests import post_message

        req = await self._request_for(address)
        if req is None:  # its access key changed since RCPT
            return "550 5.1.1 No such mailbox"
        content = reply_text(message)
        if not content.strip():
            log.info("inbound mail for request #%s had no new text; ignored", req.id)
            return "250 OK (no new text)"
        limit = current_limits().content
        if len(content) > limit:
            content = content[: limit - 1] + "…"
        key = f"{req.id}:{message_id}"[:200]
        try:
            await InboundMail.create(message_id=key, request_id=req.id)
        except IntegrityError:
            log.info("inbound mail %s for request #%s seen before; not posted again",
                     message_id, req.id)
            return "250 OK (duplicate)"
        try:
            msg = await post_message(req.customer, req.id, content, source=Source.email)
        except Conflict as exc:
            await InboundMail.filter(message_id=key).delete()
            metrics.email("in", "refused")
            return f"550 5.7.1 {exc.message}"[:500]
        except DomainError as exc:
            await InboundMail.filter(message_id=key).delete()
            metrics.email("in", "refused")
            return f"550 5.7.1 {exc.message}"[:500]
        except BaseException:
            await InboundMail.filter(message_id=key).delete()
            raise
        await InboundMail.filter(message_id=key).update(request_message_id=msg.id)
        self.accepted += 1
        metrics.email("in", "accepted")
        log.info("reply by e-mail added to request #%s (message %s)", req.id, msg.id)
        return "250 OK"


async def start_inbound(settings: Any, *, port: int | None = None, host: str | None = None) -> Any:
    """Listen for replies in this event loop; returns the asyncio server (close() it)."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    handler = ReplyHandler(settings)
    loop = asyncio.get_running_loop()
    listen_host = host or settings.mail_inbound_host
    listen_port = port if port is not None else settings.mail_inbound_port
    server = await loop.create_server(
        lambda: SMTP(handler, hostname=settings.reply_domain, data_size_limit=DATA_SIZE_LIMIT,
                     enable_SMTPUTF8=True, ident="helpdesk"),
        host=listen_host, port=listen_port,
    )
    sock = server.sockets[0].getsockname()
    log.info("replies by e-mail: SMTP on %s:%s for *@%s", sock[0], sock[1], settings.reply_domain)
    return server
