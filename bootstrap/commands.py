"""The administrative commands of `helpdesk`: users, tokens, parked Telegram work, the
Telegram setup check and links, demo data."""

from __future__ import annotations

import argparse
import random
import sys
from typing import Any

from bootstrap.common import with_db
from core.settings import Settings


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

    return with_db(settings, go)


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

    return with_db(settings, go)


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

    return with_db(settings, go)


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
