"""The desk's HTTP process: the API channel (api.app.create_app) plus the parts it serves
beside it, wired here so that no channel imports another (docs/architecture.md).

- outbound webhooks (the dispatcher and the sender) and e-mail out, started with the server;
- the Telegram webhook route, in webhook mode with a token (aiogram stays out otherwise);
- the scheduler's jobs overview behind `GET /api/admin/scheduler/jobs/`.
"""

from __future__ import annotations

from types import SimpleNamespace

from sanic import Sanic

from api.app import create_app as create_http_app
from core.settings import Settings


def create_app(settings: Settings, *, name: str | None = None) -> Sanic:
    """The HTTP app every desk process (and every test of the whole desk) serves."""
    from mail import runtime as mail_runtime
    from scheduler.runtime import job_overview, running_here
    from webhooks import runtime as webhooks_runtime

    app = create_http_app(settings, name=name)
    app.ctx.job_overview = SimpleNamespace(jobs=job_overview, running_here=running_here)
    if settings.telegram_mode == "webhook" and settings.telegram_bot_token:
        from bot.webhook import get_blueprint as telegram_webhook_blueprint

        app.blueprint(telegram_webhook_blueprint(settings))
    webhooks_runtime.install(app)
    mail_runtime.install(app)  # only does something when SMTP_URL is set
    return app
