"""Start and stop the webhooks' dispatcher and sender inside a running process.

The API starts them with the server (`install(app)`, every worker: the leases keep the
work from being done twice); `start_webhooks(settings)` is for any other process.
`settings.extra["webhooks"] = False` keeps them off (tests of other features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.shutdown import guarded
from webhooks.dispatcher import Dispatcher
from webhooks.sender import WebhookSender


@dataclass
class WebhooksRuntime:
    dispatcher: Dispatcher
    sender: WebhookSender

    async def stop(self) -> None:
        await self.dispatcher.stop()
        await self.sender.stop()


async def start_webhooks(settings: Any, **sender_options: Any) -> WebhooksRuntime:
    sender = WebhookSender(settings, **sender_options)
    dispatcher = Dispatcher(settings, on_created=sender.wake)
    sender.start()
    dispatcher.start()
    return WebhooksRuntime(dispatcher, sender)


def enabled(settings: Any) -> bool:
    return bool((settings.extra or {}).get("webhooks", True))


def install(app: Any) -> None:
    """Run the dispatcher and the sender for as long as the server runs."""

    @app.before_server_start
    async def start(app: Any) -> None:
        if enabled(app.ctx.settings):
            app.ctx.webhooks_runtime = await start_webhooks(app.ctx.settings)

    @app.after_server_stop
    @guarded
    async def stop(app: Any) -> None:
        runtime = getattr(app.ctx, "webhooks_runtime", None)
        if runtime is not None:
            app.ctx.webhooks_runtime = None
            await runtime.stop()
