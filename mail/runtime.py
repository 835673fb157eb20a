"""Start and stop e-mail inside a running process.

- Outgoing (the notifier and the sender) runs in the API process, every worker, when
  SMTP_URL is set (`install(app)`); the outbox's claims keep a mail from going twice.
- Incoming (the SMTP listener) runs in `helpdesk mail`, or inside `helpdesk run` when
  MAIL_INBOUND_PORT is set (`start_mail_inbound`).
Without SMTP_URL nothing starts and nothing is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import Any

from core.shutdown import guarded
from mail.notifier import MailNotifier
from mail.sender import MailSender

log = logging.getLogger("helpdesk.mail")


@dataclass
class MailRuntime:
    notifier: MailNotifier
    sender: MailSender

    async def stop(self) -> None:
        await self.notifier.stop()
        await self.sender.stop()


async def start_mail(settings: Any) -> MailRuntime:
    sender = MailSender(settings)
    notifier = MailNotifier(settings, on_enqueued=sender.wake)
    sender.start()
    notifier.start()
    return MailRuntime(notifier, sender)


def install(app: Any) -> None:
    @app.before_server_start
    async def start(app: Any) -> None:
        settings = app.ctx.settings
        if settings.mail_enabled and (settings.extra or {}).get("mail", True):
            app.ctx.mail_runtime = await start_mail(settings)

    @app.after_server_stop
    @guarded
    async def stop(app: Any) -> None:
        runtime = getattr(app.ctx, "mail_runtime", None)
        if runtime is not None:
            app.ctx.mail_runtime = None
            await runtime.stop()


@dataclass
class InboundRuntime:
    server: Any

    async def stop(self) -> None:
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), timeout=5)


async def start_mail_inbound(settings: Any) -> InboundRuntime:
    from mail.inbound import start_inbound

    return InboundRuntime(await start_inbound(settings))


DEFAULT_INBOUND_PORT = 2525


async def run_mail(settings: Any) -> None:
    """`helpdesk mail`: the inbound listener (MAIL_INBOUND_PORT, 2525 if unset) with the
    database and the events runtime, until SIGTERM/SIGINT."""
    from core import runtime as core_runtime
    from core.bus import start_events
    from db.setup import close_db, init_db

    if not settings.mail_inbound_port:
        settings = settings.with_overrides(mail_inbound_port=DEFAULT_INBOUND_PORT)
    core_runtime.configure(settings)
    await init_db(settings.database_url)
    events_rt = await start_events(settings)
    inbound = await start_mail_inbound(settings)
    from core.metrics import serve_metrics

    metrics_server = await serve_metrics(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        if metrics_server is not None:
            await metrics_server.cleanup()
        await inbound.stop()
        await events_rt.stop()
        await close_db()
