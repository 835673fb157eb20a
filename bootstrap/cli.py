"""`helpdesk` command line: run, api, bot, scheduler, mail, migrate, createuser, token,
revoke-tokens, seed-demo, parked, telegram-check, link-telegram, jobs.

The process bootstrap lives here, outside the domain (core/ imports none of it): serve.py
wires the API, the bot, the scheduler and mail into processes; commands.py holds the
administrative commands; common.py what they share."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from bootstrap.commands import (
    createuser,
    link_telegram_command,
    parked_command,
    revoke_tokens,
    seed_demo_data,
    telegram_check_command,
    token,
)
from bootstrap.common import migrate, settings_or_exit, setup_process_logging, with_db
from bootstrap.serve import bot_process, mail_process, scheduler_process, serve


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

    settings = settings_or_exit()
    setup_process_logging(settings)
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
        bot_process()
        return 0
    if cmd == "scheduler":
        scheduler_process()
        return 0
    if cmd == "mail":
        if not settings.mail_from and not settings.mail_reply_domain:
            print("helpdesk: set MAIL_REPLY_DOMAIN (or MAIL_FROM) so reply addresses have a domain",
                  file=sys.stderr)
            return 2
        mail_process()
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
        n = with_db(settings, seed_demo_data)
        print(f"Успешно создано {n} тестовых запросов")
        return 0
    if cmd in ("parked", "retry-parked"):
        return with_db(settings, lambda: parked_command(args.retry))
    if cmd == "telegram-check":
        return asyncio.run(telegram_check_command(settings))
    if cmd == "link-telegram":
        migrate(settings)
        return with_db(settings, lambda: link_telegram_command(args.username, args.telegram_id, args.move))
    if cmd == "jobs":
        from scheduler.runtime import describe_jobs

        for line in describe_jobs(settings):
            print(line)
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
