"""Telegram delivery throughput (not a test): the bot's relay and sender against the fake Bot
API with Telegram's limits scaled in time.

Scenario: a desk comes back to a backlog (the bot was down, or a burst arrived at once):
`--requests` new requests from `--chats` customers, each with a private chat, and
`--replies` staff replies to them (written in Telegram, so they go to the customers' private
chats only). Everything is in the database when the bot starts; the bench then measures:

- budget used: calls per window while work is queued, against the limit, for the admin
  group (TELEGRAM_GROUP_RATE) and for the whole bot (TELEGRAM_GLOBAL_RATE), counted over
  the whole windows between the first call and the queue running dry;
- zero loss: every request got a Take button in the group (its card or its summary line),
  every reply reached its customer;
- zero duplicates: no card, summary line or reply sent twice;
- the time until every request had a Take button, from the bot's start;
- the fake's 429s (the sender should never need one).

Time is scaled, not faked: each limit's window is divided by its scale (`--group-rate
20/0.6` is Telegram's 20 a minute a hundred times faster). The fake Bot API enforces the
same limits and answers 429 above them.

    .venv/bin/python -m bench.telegram_bench                    # SQLite, in-process budget
    .venv/bin/python -m bench.telegram_bench --redis redis://127.0.0.1:6379/0 \\
        --database-url postgres://postgres@127.0.0.1:5432/helpdesk_bench_tg
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings, _telegram_rate  # noqa: E402
from telegram_delivery.budget import Rate  # noqa: E402

ADMIN_TG = 900_001
FIRST_CUSTOMER_TG = 10_001


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--replies", type=int, default=1000)
    p.add_argument("--chats", type=int, default=50, help="customers, each with a private chat")
    p.add_argument("--group-rate", default="20/6", help="TELEGRAM_GROUP_RATE (Telegram: 20/60)")
    p.add_argument("--private-rate", default="1/1", help="TELEGRAM_PRIVATE_RATE (Telegram: 1/1)")
    p.add_argument("--global-rate", default="30/1", help="TELEGRAM_GLOBAL_RATE (Telegram: 30/1)")
    p.add_argument("--summary-after", type=int, default=10, help="TELEGRAM_SUMMARY_AFTER")
    p.add_argument("--cards-later", action="store_true", help="TELEGRAM_CARDS_AFTER_SUMMARY=true")
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    p.add_argument("--redis", default=None, help="REDIS_URL: the budget shared through Redis")
    p.add_argument("--timeout", type=float, default=240.0)
    p.add_argument("--json", default=None, help="write the figures to this file")
    return p.parse_args(argv)


def utilisation(times: list[float], rate: Rate, samples: list[tuple[float, bool]]) -> tuple[float, int, int]:
    """Calls in the windows during which work was queued the whole time (every queue-depth
    sample in the window saw pending rows), from the first call on, as a share of what the
    limit allows there: (share, calls, allowed)."""
    if not times or not samples:
        return float("nan"), 0, 0
    start, end = times[0], samples[-1][0]
    calls = allowed = 0
    k = 0
    while start + (k + 1) * rate.window <= end:
        lo, hi = start + k * rate.window, start + (k + 1) * rate.window
        inside = [busy for t, busy in samples if lo <= t < hi]
        if inside and all(inside):
            calls += sum(1 for t in times if lo <= t < hi)
            allowed += rate.limit
        k += 1
    return (calls / allowed if allowed else float("nan")), calls, allowed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.runtime import start_bot
    from core import requests as svc
    from core import runtime
    from db.models import Cursor, Event, Source, TelegramOutbox
    from db.setup import close_db, init_db, migrate_db
    from tests.fake_telegram import FakeTelegram

    group_rate = Rate(*_telegram_rate("--group-rate", args.group_rate))
    private_rate = Rate(*_telegram_rate("--private-rate", args.private_rate))
    global_rate = Rate(*_telegram_rate("--global-rate", args.global_rate))
    tmp = tempfile.TemporaryDirectory(prefix="tg-bench-")
    db_url = args.database_url or f"sqlite://{tmp.name}/bench.sqlite3"
    if args.database_url:
        from tests.conftest import _pg_admin

        name = db_url.rsplit("/", 1)[1]
        if "bench" not in name:
            raise SystemExit("--database-url: the database is dropped and re-created; its name must contain 'bench'")
        admin_url = db_url.rsplit("/", 1)[0] + "/postgres"
        import tests.conftest as tc

        tc.PG_ADMIN_URL = admin_url
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _pg_admin(f'CREATE DATABASE "{name}"')
    await migrate_db(db_url)
    await init_db(db_url)
    fake = FakeTelegram()
    await fake.start()
    fake.rate_limit_group_per_min, fake.rate_limit_window = group_rate.limit, group_rate.window
    # The fake's private and global windows are one second: scale its limits to match.
    fake.rate_limit_private_per_sec = max(1, round(private_rate.limit / private_rate.window))
    fake.rate_limit_global_per_sec = max(1, round(global_rate.limit / global_rate.window))
    settings = Settings(
        database_url=db_url, media_root=Path(tmp.name) / "media", port=0,
        telegram_bot_token=fake.token, telegram_admin_chat_id=fake.admin_chat_id,
        telegram_api_server=fake.base_url, telegram_mode="polling",
        telegram_group_rate=(group_rate.limit, group_rate.window),
        telegram_private_rate=(private_rate.limit, private_rate.window),
        telegram_global_rate=(global_rate.limit, global_rate.window),
        telegram_summary_after=args.summary_after, telegram_cards_after_summary=args.cards_later,
        redis_url=args.redis, extra={"ratelimit_prefix": f"bench-tg-{uuid.uuid4().hex[:8]}:"},
    )
    runtime.configure(settings)
    rt = None
    try:
        from core.users import create_user

        admin = await create_user("bench_admin", role="admin", first_name="Admin", telegram_id=ADMIN_TG)
        customers = [
            await create_user(f"bench_c{n}", role="customer", first_name=f"C{n}",
                              telegram_id=FIRST_CUSTOMER_TG + n)
            for n in range(args.chats)
        ]
        t0 = time.monotonic()
        ids = []
        for n in range(args.requests):
            req = await svc.create_request(customers[n % args.chats], title=f"Bench request {n}",
                                           description="d")
            ids.append(req.id)
        for n in range(args.replies):
            rid = ids[n % len(ids)]
            await svc.post_message(admin, rid, f"reply-{n}", source=Source.telegram)
        prepared = time.monotonic() - t0
        last_event = (await Event.all().order_by("-id").first()).id
        print(f"prepared {args.requests} requests and {args.replies} replies in {prepared:.1f}s; "
              f"starting the bot", flush=True)
        started = time.monotonic()
        started_wall = datetime.now(UTC)
        rt = await start_bot(settings, updates=False)
        take_at: dict[int, float] = {}
        expected_replies = {f"reply-{n}" for n in range(args.replies)}
        deadline = started + args.timeout
        seen_calls = 0
        samples: list[tuple[float, int, int]] = []  # (time, group rows pending, private rows pending)
        while time.monotonic() < deadline:
            group_pending = await TelegramOutbox.filter(status="pending", chat_id=fake.admin_chat_id).count()
            private_pending = await TelegramOutbox.filter(status="pending", chat_id__gt=0).count()
            samples.append((time.monotonic(), group_pending, private_pending))
            for call in fake.calls[seen_calls:]:
                if call.ok and call.method == "sendMessage" and call.chat_id == fake.admin_chat_id:
                    markup = call.params.get("reply_markup") or {}
                    for row in markup.get("inline_keyboard", []):
                        for b in row:
                            data = b.get("callback_data", "")
                            if data.startswith("req:take:"):
                                take_at.setdefault(int(data.split(":")[2]), call.at)
            seen_calls = len(fake.calls)
            busy = await TelegramOutbox.filter(status__in=("pending", "sending")).exists()
            relayed = await Cursor.filter(name="telegram-relay", position__gte=last_event).exists()
            if relayed and not busy and len(take_at) >= len(ids):
                break
            await asyncio.sleep(0.05)
        finished = time.monotonic()
        newest = await TelegramOutbox.all().order_by("-created_at").first()
        relay_done = (newest.created_at - started_wall).total_seconds() if newest else 0.0
        await rt.stop()
        rt = None
        ok = [c for c in fake.calls if c.ok]
        group_calls = [c for c in ok if c.chat_id == fake.admin_chat_id and c.method != "getChat"]
        writes = [c for c in ok if isinstance(c.chat_id, int) and c.method not in ("getChat", "getChatMember")]
        private_calls = [c for c in ok if isinstance(c.chat_id, int) and c.chat_id > 0]
        g_share, g_calls, g_allowed = utilisation(
            [c.at for c in group_calls], group_rate, [(t, g > 0) for t, g, _ in samples])
        # The global limit binds while the private chats have work (50 chats x the private
        # rate is more than the global rate).
        w_share, w_calls, w_allowed = utilisation(
            [c.at for c in writes], global_rate, [(t, p > 0) for t, _, p in samples])
        replies = Counter(c.params.get("text", "").rsplit("\n", 1)[-1] for c in private_calls
                          if "reply-" in str(c.params.get("text", "")))
        cards = Counter(
            int(b["callback_data"].split(":")[2])
            for c in group_calls for row in (c.params.get("reply_markup") or {}).get("inline_keyboard", [])
            for b in row if b.get("callback_data", "").startswith("req:open:")
        )
        summary_lines = Counter(
            int(b["callback_data"].split(":")[2])
            for c in group_calls if str(c.params.get("text", "")).startswith("<b>📥")
            for row in (c.params.get("reply_markup") or {}).get("inline_keyboard", []) for b in row
        )
        missing_take = sorted(set(ids) - set(take_at))
        missing_replies = sorted(expected_replies - set(replies))
        last_take = max(take_at.values(), default=finished) - started
        result = {
            "requests": args.requests, "replies": args.replies, "chats": args.chats,
            "rates": {"group": str(group_rate), "private": str(private_rate), "global": str(global_rate)},
            "redis": bool(args.redis), "database": "postgres" if args.database_url else "sqlite",
            "cards_after_summary": args.cards_later,
            "seconds_to_drain": round(finished - started, 2),
            "seconds_until_the_relay_queued_everything": round(relay_done, 2),
            "seconds_until_every_request_had_a_take_button": round(last_take, 2),
            "group_calls": len(group_calls), "group_budget_used_while_queued": round(g_share, 4),
            "group_calls_in_whole_windows": g_calls, "group_allowed_in_whole_windows": g_allowed,
            "global_budget_used_while_private_queued": round(w_share, 4),
            "global_calls_in_whole_windows": w_calls, "global_allowed_in_whole_windows": w_allowed,
            "cards": sum(cards.values()), "summaries": sum(1 for c in group_calls
                                                          if str(c.params.get("text", "")).startswith("<b>📥")),
            "lost_take_buttons": len(missing_take), "lost_replies": len(missing_replies),
            "duplicate_cards": sum(1 for n in cards.values() if n > 1),
            "duplicate_summary_lines": sum(1 for n in summary_lines.values() if n > 1),
            "duplicate_replies": sum(1 for n in replies.values() if n > 1),
            "http_429": sum(1 for c in fake.calls if c.status == 429),
            "http_429_in_group": sum(1 for c in fake.calls if c.status == 429 and c.chat_id == fake.admin_chat_id),
            "sent_by_class": dict(sorted(rt_stats().items())),
        }
        return result
    finally:
        if rt is not None:
            await rt.stop()
        await fake.stop()
        await close_db()
        with contextlib.suppress(Exception):
            tmp.cleanup()


def rt_stats() -> dict[str, int]:
    from telegram_delivery.sender import stats_snapshot

    return {k: v for k, v in stats_snapshot().items() if k.startswith("sent_class_")}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tortoise").setLevel(logging.WARNING)
    result = asyncio.run(run(args))
    for key, value in result.items():
        print(f"{key:50} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    bad = result["lost_take_buttons"] or result["lost_replies"] or result["duplicate_cards"] \
        or result["duplicate_summary_lines"] or result["duplicate_replies"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
