"""Serving: the API app with the bot, the scheduler and the mail listener embedded (one
worker) or as processes managed by Sanic (WORKERS > 1), and the single-component processes."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from bootstrap.common import setup_process_logging
from core.settings import Settings, load_settings
from core.shutdown import guarded

log = logging.getLogger("helpdesk")


def build_api(settings: Settings, *, embedded_components: bool) -> Any:
    """The API app; with `embedded_components` the bot and the scheduler run inside it."""
    from api.app import create_app

    app = create_app(settings, name="helpdesk")
    if embedded_components:
        _embed_components(app, settings)
    return app


def _embed_components(app: Any, settings: Settings) -> None:
    started: list[Any] = []

    @app.before_server_start
    async def start_components(app: Any) -> None:
        if settings.telegram_bot_token and settings.telegram_mode != "off":
            from bot.runtime import start_bot

            started.append(await start_bot(settings))
            log.info("telegram bot started (%s mode)", settings.telegram_mode)
        if settings.scheduler_enabled:
            from scheduler.runtime import start_scheduler

            started.append(await start_scheduler(settings))
        if settings.mail_inbound_port:
            from mail.runtime import start_mail_inbound

            started.append(await start_mail_inbound(settings))

    @app.after_server_stop
    @guarded
    async def stop_components(app: Any) -> None:
        for component in reversed(started):
            await component.stop()
        started.clear()


def _api_factory() -> Any:
    settings = load_settings()
    setup_process_logging(settings)
    embedded = os.environ.get("HELPDESK_EMBED_COMPONENTS") == "1"
    return build_api(settings, embedded_components=embedded)


def bot_process(**_: Any) -> None:
    settings = load_settings()
    setup_process_logging(settings)
    from bot.runtime import run_bot

    asyncio.run(run_bot(settings))


def scheduler_process(**_: Any) -> None:
    settings = load_settings()
    setup_process_logging(settings)
    from scheduler.runtime import run_scheduler

    asyncio.run(run_scheduler(settings))


def mail_process(**_: Any) -> None:
    settings = load_settings()
    setup_process_logging(settings)
    from mail.runtime import run_mail

    asyncio.run(run_mail(settings))


def serve(settings: Settings, *, components: bool) -> None:
    """Serve the API. With `components`, also the bot (if configured) and the scheduler:
    inside the single worker (embedded default), or as managed processes with WORKERS > 1."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    single = settings.workers == 1
    if not single or settings.prometheus_multiproc_dir:
        # Several processes: their metrics meet in one directory (core/metrics.py), set up
        # before any worker is spawned so every worker and managed process inherits it.
        from core.metrics_dir import prepare_multiprocess

        path = prepare_multiprocess(settings.prometheus_multiproc_dir)
        log.info("metrics: multiprocess mode, values in %s", path)
    if components and single:
        os.environ["HELPDESK_EMBED_COMPONENTS"] = "1"
    else:
        os.environ.pop("HELPDESK_EMBED_COMPONENTS", None)
    if components:
        if not settings.telegram_bot_token or settings.telegram_mode == "off":
            log.warning(
                "Telegram bot is not started: TELEGRAM_BOT_TOKEN is not set "
                "(set it and TELEGRAM_ADMIN_CHAT_ID to run the bot)"
            )
        elif not settings.telegram_admin_chat_id:
            log.warning("TELEGRAM_ADMIN_CHAT_ID is not set: request cards have nowhere to go")
    loader = AppLoader(factory=_api_factory)
    app = loader.load()
    if components and not single:

        @app.main_process_ready
        async def spawn_components(app: Any) -> None:
            if settings.telegram_bot_token and settings.telegram_mode != "off":
                # Polling, or webhook delivery (the API workers feed the updates).
                app.manager.manage("HelpdeskBot", bot_process, {})
            if settings.scheduler_enabled:
                app.manager.manage("HelpdeskScheduler", scheduler_process, {})
            if settings.mail_inbound_port:
                app.manager.manage("HelpdeskMail", mail_process, {})

    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.log_level == "DEBUG",
        single_process=single,
        motd=False,
    )
    log.info("serving on http://%s:%s (workers=%s)", settings.host, settings.port, settings.workers)
    if single:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)
