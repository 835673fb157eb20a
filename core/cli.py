"""`helpdesk` command line: run, api, bot, scheduler, mail, migrate, createuser, token,
revoke-tokens, seed-demo, parked, telegram-check, link-telegram."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from core.settings import Settings, SettingsError, load_settings

log = logging.getLogger("helpdesk")


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"helpdesk: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _setup_logging(settings: Settings) -> None:
    from core.logging import setup_logging

    setup_logging(settings)
    # Tortoise logs every connect/shutdown at INFO: noise for an operator.
    logging.getLogger("tortoise").setLevel(logging.WARNING)


def _with_db(settings: Settings, fn: Callable[[], Awaitable[Any]]) -> Any:
    from core import runtime
    from db.setup import close_db, init_db

    async def main() -> Any:
        runtime.configure(settings)
        await init_db(settings.database_url)
        try:
            return await fn()
        finally:
            await close_db()

    return asyncio.run(main())


def migrate(settings: Settings) -> None:
    from db.setup import migrate_db

    asyncio.run(migrate_db(settings.database_url))
    log.info("database is up to date (%s)", _safe_url(settings.database_url))


def _safe_url(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


# --- serving -------------------------------------------------------------------------------


def build_api(settings: Settings, *, embedded_components: bool) -> Any:
    """The API app; with `embedded_components` the bot and the scheduler run inside it."""
    from api.app import create_app

    app = create_app(settings, name="helpdesk")
    if embedded_components:
        _embed_components(app, settings)
    return app


def _embed_components(app: Any, settings: Settings) -> None:
    started: list[Any] = []

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

    async def stop_components(app: Any) -> None:
        for component in reversed(started):
            await component.stop()
        started.clear()

    app.ctx.startup_hooks = [*getattr(app.ctx, "startup_hooks", []), start_components]
    app.ctx.shutdown_hooks = [stop_components, *getattr(app.ctx, "shutdown_hooks", [])]


def _api_factory() -> Any:
    settings = load_settings()
    _setup_logging(settings)
    embedded = os.environ.get("HELPDESK_EMBED_COMPONENTS") == "1"
    return build_api(settings, embedded_components=embedded)


def _bot_process(**_: Any) -> None:
    settings = load_settings()
    _setup_logging(settings)
    from bot.runtime import run_bot

    asyncio.run(run_bot(settings))


def _scheduler_process(**_: Any) -> None:
    settings = load_settings()
    _setup_logging(settings)
    from scheduler.runtime import run_scheduler

    asyncio.run(run_scheduler(settings))


def _mail_process(**_: Any) -> None:
    settings = load_settings()
    _setup_logging(settings)
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
                app.manager.manage("HelpdeskBot", _bot_process, {})
            if settings.scheduler_enabled:
                app.manager.manage("HelpdeskScheduler", _scheduler_process, {})
            if settings.mail_inbound_port:
                app.manager.manage("HelpdeskMail", _mail_process, {})

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


# --- admin commands --------------------------------------------------------------------------


def createuser(settings: Settings, args: argparse.Namespace) -> int:
    from core.errors import ValidationFailed
    from core.users import create_user

    async def go() -> int:
        if args.telegram_id is not None:
            from core.users import holder_of_telegram_id, is_automatic_customer

            holder = await holder_of_telegram_id(args.telegram_id)
            if holder is not None:
                what = ("the automatic customer account the bot created when this person wrote to it"
                        if is_automatic_customer(holder) else f"the {holder.role} account")
                print(f"helpdesk: Telegram id {args.telegram_id} already belongs to {holder.username!r} "
                      f"({what}). Create the user without --telegram-id, then move the id to it:\n"
                      f"  helpdesk link-telegram {args.username} {args.telegram_id} --move", file=sys.stderr)
                return 1
        try:
            user = await create_user(
                args.username,
                args.password,
                role=args.role,
                email=args.email or "",
                first_name=args.first_name or "",
                last_name=args.last_name or "",
                telegram_id=args.telegram_id,
                language=args.language,
            )
        except ValidationFailed as exc:
            print(f"helpdesk: {exc.message}", file=sys.stderr)
            return 1
        print(f"created {user.role} {user.username} (id {user.id})")
        return 0

    return _with_db(settings, go)


def token(settings: Settings, username: str) -> int:
    """Issue a new API token for `username` and print it (only its digest is stored)."""
    from core.users import issue_token
    from db.models import User

    async def go() -> int:
        user = await User.filter(username=username).first()
        if user is None:
            print(f"helpdesk: no user {username!r}", file=sys.stderr)
            return 1
        print(await issue_token(user, origin="cli"))
        return 0

    return _with_db(settings, go)


def revoke_tokens(settings: Settings, username: str) -> int:
    """Revoke every API token of `username`; their open WebSockets close (4401)."""
    from core.users import revoke_all_tokens
    from db.models import User

    async def go() -> int:
        user = await User.filter(username=username).first()
        if user is None:
            print(f"helpdesk: no user {username!r}", file=sys.stderr)
            return 1
        count = await revoke_all_tokens(user)
        print(f"revoked {count} token(s) of {user.username}")
        return 0

    return _with_db(settings, go)


async def parked_command(retry: str | None = None) -> int:
    """`helpdesk parked`: what the Telegram side set aside (events the relay parked, outbox
    rows that failed), newest last. `--retry event:ID` / `--retry outbox:ID` queues one
    again, `--retry outbox:failed` every failed row (the running bot picks them up on its
    next pass)."""
    from db.models import ParkedEvent, TelegramOutbox

    if retry and retry.strip() == "outbox:failed":
        n = await TelegramOutbox.filter(status="failed").update(
            status="pending", attempts=0, not_before=None, last_error=None
        )
        print(f"{n} failed outbox row(s) queued again")
        return 0
    if retry:
        kind, _, raw = retry.strip().partition(":")
        try:
            ident = int(raw)
        except ValueError:
            ident = -1
        if kind not in ("event", "outbox") or not 0 < ident < 2**63:
            print(f"helpdesk: --retry takes event:ID or outbox:ID (as `helpdesk parked` lists them), "
                  f"got {retry!r}", file=sys.stderr)
            return 2
        if kind == "event":
            n = await ParkedEvent.filter(event_id=ident, status="parked").update(status="retry", attempts=0)
        else:
            n = await TelegramOutbox.filter(id=ident, status="failed").update(
                status="pending", attempts=0, not_before=None, last_error=None
            )
        if not n:
            print(f"helpdesk: nothing parked as {kind}:{ident}", file=sys.stderr)
            return 1
        print(f"{kind}:{ident} queued again")
        return 0
    shown = 500
    events = await ParkedEvent.filter(status__in=("parked", "retry", "failing")).order_by("id").limit(shown + 1)
    rows = await TelegramOutbox.filter(status="failed").order_by("-id").limit(shown + 1)
    if not events and not rows:
        print("nothing parked")
        return 0
    print("ID\tKIND\tREQUEST\tWHEN\tERROR")

    def line(ident: str, kind: str, request_id: int | None, when: Any, error: str | None) -> None:
        first = (error or "").strip().splitlines()[0][:200] if (error or "").strip() else "-"
        req = f"#{request_id}" if request_id else "-"
        at = when.isoformat(timespec="seconds") if when else "-"
        print(f"{ident}\t{kind}\t{req}\t{at}\t{first}")

    for ev in events[:shown]:
        line(f"event:{ev.event_id}", f"{ev.event_type} ({ev.status}, {ev.attempts} tries)",
             ev.request_id, ev.updated_at, ev.error)
    for row in reversed(rows[:shown]):
        line(f"outbox:{row.id}", f"{row.method} to {row.chat_id}", row.request_id, row.created_at,
             row.last_error)
    if len(events) > shown or len(rows) > shown:
        print(f"(only the first {shown} of each kind shown)")
    return 0


async def telegram_check_command(settings: Settings) -> int:
    """`helpdesk telegram-check`: what the Bot API says about the setup (bot/setup_check.py);
    exit status 1 when something would keep the bot from working."""
    from bot.setup_check import check_telegram, render

    report, status = render(await check_telegram(settings))
    print(report)
    return status


async def link_telegram_command(username: str, telegram_id: int, move: bool = False) -> int:
    """`helpdesk link-telegram USERNAME TELEGRAM_ID [--move]`."""
    from core.errors import DomainError
    from core.users import link_telegram_account

    try:
        user, previous = await link_telegram_account(username, telegram_id, move=move)
    except DomainError as exc:
        print(f"helpdesk: {exc.message}", file=sys.stderr)
        return 1
    moved = f" (moved from {previous.username!r})" if previous is not None else ""
    print(f"Telegram id {telegram_id} is now linked to {user.username!r}{moved}")
    return 0


async def seed_demo_data(rng: random.Random | None = None) -> int:
    """The seed's create_test_requests: 5 customers, 20 requests with 1-5 messages each."""
    from core import requests as svc
    from db.models import CustomerRequest, Role, Status, User

    rng = rng or random.Random()
    customers = []
    for i in range(5):
        user, _ = await User.get_or_create(
            username=f"customer{i}",
            defaults={
                "email": f"customer{i}@example.com",
                "first_name": f"Клиент{i}",
                "last_name": f"Тестовый{i}",
                "role": Role.customer,
            },
        )
        customers.append(user)
    categories = ["technical", "billing", "account", "order", "general"]
    priorities = ["low", "medium", "high", "urgent"]
    statuses = [Status.open, Status.in_progress, Status.completed]
    for i in range(20):
        customer = rng.choice(customers)
        req = await svc.create_request(
            customer,
            title=f"Тестовый запрос #{i + 1}",
            description=f"Описание тестового запроса номер {i + 1}. Это подробное описание проблемы клиента.",
            category=rng.choice(categories),
            priority=rng.choice(priorities),
            tags=[f"тег{i}", "тест"],
        )
        status = rng.choice(statuses)
        if status != Status.open:
            await CustomerRequest.filter(id=req.id).update(status=status, status_changed_at=svc.now())
        for j in range(rng.randint(1, 5)):
            await svc.post_message(customer, req.id, f"Сообщение #{j + 1} от клиента в запросе #{i + 1}")
    return 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helpdesk", description="Telegram-first support desk")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="migrate, then serve the API with the bot (if configured) and the scheduler")
    sub.add_parser("api", help="serve the REST/WebSocket API only")
    sub.add_parser("bot", help="run the Telegram bot only")
    sub.add_parser("scheduler", help="run the scheduler only")
    sub.add_parser("mail", help="receive replies by e-mail (SMTP on MAIL_INBOUND_PORT, 2525 if unset)")
    sub.add_parser("migrate", help="apply database migrations")
    cu = sub.add_parser("createuser", help="create a user")
    cu.add_argument("--username", required=True)
    cu.add_argument("--password")
    cu.add_argument("--role", choices=["customer", "admin", "director"], default="customer")
    cu.add_argument("--email")
    cu.add_argument("--first-name")
    cu.add_argument("--last-name")
    cu.add_argument("--telegram-id", type=int)
    cu.add_argument("--language", choices=["ru", "en"])
    tk = sub.add_parser("token", help="issue a new API token for a user and print it")
    tk.add_argument("username")
    rt = sub.add_parser("revoke-tokens", help="revoke every API token of a user")
    rt.add_argument("username")
    sub.add_parser("seed-demo", help="create demo data: 5 customers, 20 requests")
    sub.add_parser("jobs", help="list scheduler jobs and their next run time")
    pk = sub.add_parser("parked", help="list parked Telegram events and failed outbox rows")
    pk.add_argument("--retry", metavar="ID",
                    help="queue again: event:ID, outbox:ID, or outbox:failed (every failed row)")
    rp = sub.add_parser("retry-parked", help="queue a parked event or failed row again")
    rp.add_argument("retry", metavar="ID", help="event:ID, outbox:ID or outbox:failed")
    sub.add_parser("telegram-check", help="check the bot token, the admin group, the bot's rights, "
                                          "privacy mode and the webhook against the Bot API")
    lt = sub.add_parser("link-telegram", help="link a Telegram id to an account (staff: to act in the group)")
    lt.add_argument("username")
    lt.add_argument("telegram_id", type=int)
    lt.add_argument("--move", action="store_true",
                    help="take the id from the account that has it (e.g. the automatic customer account)")
    args = parser.parse_args(argv)

    settings = _settings_or_exit()
    _setup_logging(settings)
    cmd = args.command
    if cmd == "migrate":
        migrate(settings)
        return 0
    if cmd == "run":
        migrate(settings)
        serve(settings, components=True)
        return 0
    if cmd == "api":
        migrate(settings) if os.environ.get("MIGRATE_ON_START", "1") == "1" else None
        serve(settings, components=False)
        return 0
    if cmd == "bot":
        if not settings.telegram_bot_token:
            print("helpdesk: TELEGRAM_BOT_TOKEN is not set; the bot cannot start", file=sys.stderr)
            return 2
        _bot_process()
        return 0
    if cmd == "scheduler":
        _scheduler_process()
        return 0
    if cmd == "mail":
        if not settings.mail_from and not settings.mail_reply_domain:
            print("helpdesk: set MAIL_REPLY_DOMAIN (or MAIL_FROM) so reply addresses have a domain",
                  file=sys.stderr)
            return 2
        _mail_process()
        return 0
    if cmd == "createuser":
        migrate(settings)
        return createuser(settings, args)
    if cmd == "token":
        return token(settings, args.username)
    if cmd == "revoke-tokens":
        return revoke_tokens(settings, args.username)
    if cmd == "seed-demo":
        migrate(settings)
        n = _with_db(settings, seed_demo_data)
        print(f"Успешно создано {n} тестовых запросов")
        return 0
    if cmd in ("parked", "retry-parked"):
        return _with_db(settings, lambda: parked_command(args.retry))
    if cmd == "telegram-check":
        return asyncio.run(telegram_check_command(settings))
    if cmd == "link-telegram":
        migrate(settings)
        return _with_db(settings, lambda: link_telegram_command(args.username, args.telegram_id, args.move))
    if cmd == "jobs":
        from scheduler.runtime import describe_jobs

        for line in describe_jobs(settings):
            print(line)
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
