"""Delivery under pressure: bursts, Telegram's 429s, a bot process killed mid-burst.

Time is shrunk, not faked: the fake's rate-limit window and the sender's group window are
a second or two instead of a minute, so Telegram's behaviour plays out in seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.runtime import start_bot
from core import requests as svc
from db.models import TelegramOutbox
from tests.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"^<b>📥 ")


def announced(fake: FakeTelegram) -> Counter[int]:
    """How many messages posted in the admin group carried a Take button for each request:
    its own card, or its line in a burst summary."""
    seen: Counter[int] = Counter()
    for call in fake.calls_of("sendMessage"):
        if call.params.get("chat_id") != fake.admin_chat_id:
            continue
        markup = call.params.get("reply_markup") or {}
        buttons = [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]
        seen.update(int(b.split(":")[2]) for b in buttons if b.startswith("req:take:"))
    return seen


async def wait_announced(fake: FakeTelegram, ids: list[int], timeout: float) -> Counter[int]:
    deadline = time.monotonic() + timeout
    while True:
        seen = announced(fake)
        if set(ids) <= set(seen):
            return seen
        if time.monotonic() > deadline:
            missing = sorted(set(ids) - set(seen))
            raise AssertionError(f"{len(missing)} requests never announced, e.g. {missing[:10]}")
        await asyncio.sleep(0.05)


@pytest.mark.heavy(seconds=13)
async def test_burst_of_200_requests_is_announced_once_each_through_429s(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    # The group takes one message per 5 s; the sender believes 40 per 2 s. A message holds
    # at most cards.SUMMARY_MAX_BUTTONS = 100 Take buttons, so announcing all 200 takes at
    # least two messages, sent back to back: Telegram answers 429 however fast this
    # machine is.
    fake_telegram.rate_limit_group_per_min = 1
    fake_telegram.rate_limit_window = 5.0
    settings = telegram_settings.with_overrides(
        telegram_group_rate=(40, 2.0), telegram_summary_after=10,
    )
    customer = await make_user("customer")
    # The burst is waiting when the bot starts (a morning after an outage), so the sender
    # meets all of it at once, whatever the speed of this machine: it must overrun the
    # fake's real limit and go through its 429s.
    ids = [
        (await svc.create_request(customer, title=f"Burst {n}", description="d")).id
        for n in range(200)
    ]
    rt = await start_bot(settings)
    try:
        seen = await wait_announced(fake_telegram, ids, timeout=40)
        await asyncio.sleep(0.5)
        seen = announced(fake_telegram)
    finally:
        await rt.stop()
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1, [i for i, n in seen.items() if n > 1]
    rejected = [c for c in fake_telegram.calls_of("sendMessage", include_failed=True) if c.status == 429]
    assert rejected, "the fake never answered 429: the test did not exercise retry_after"
    summaries = [c for c in fake_telegram.calls_of("sendMessage") if SUMMARY.match(c.params["text"])]
    assert summaries, "a burst of 200 must fold into summaries"
    # Nothing is left behind or failed.
    assert not await TelegramOutbox.filter(status__in=("pending", "sending", "failed")).exists()


async def test_server_errors_and_timeouts_are_retried_with_backoff(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake_telegram.fail("sendMessage", status=500, times=2)
    fake_telegram.fail("sendMessage", status=502, times=1, delay=1.5)  # the client times out
    customer = await make_user("customer")
    rt = await start_bot(telegram_settings, sender_overrides={"request_timeout": 1, "backoff_base": 0.1})
    try:
        req = await svc.create_request(customer, title="Flaky", description="d")
        seen = await wait_announced(fake_telegram, [req.id], timeout=15)
    finally:
        await rt.stop()
    assert seen[req.id] == 1
    row = await TelegramOutbox.get(dedup_key=f"new:{req.id}:card")
    assert row.status == "sent" and row.attempts == 4


async def test_a_message_for_a_summarised_request_brings_its_card_lazily(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    settings = telegram_settings.with_overrides(
        telegram_group_rate=(3, 1.0), telegram_summary_after=2,
    )
    customer = await make_user("customer")
    ids = [(await svc.create_request(customer, title=f"R{n}", description="d")).id for n in range(8)]
    rt = await start_bot(settings)
    try:
        seen = await wait_announced(fake_telegram, ids, timeout=15)
        folded = [i for i in ids if not any(
            f"req:open:{i}" in json.dumps(c.params.get("reply_markup")) for c in fake_telegram.calls_of("sendMessage")
        )]
        assert folded, seen
        await svc.post_message(customer, folded[-1], "Any news?")
        card = await fake_telegram.wait_for(
            "sendMessage", timeout=10,
            where=lambda c: f"req:open:{folded[-1]}" in json.dumps(c.params.get("reply_markup")),
        )
        relayed = await fake_telegram.wait_for(
            "sendMessage", timeout=10, where=lambda c: "Any news?" in c.params["text"]
        )
    finally:
        await rt.stop()
    assert relayed[0].params["reply_parameters"]["message_id"] == card[0].result["message_id"]


BOT_SCRIPT = """
import asyncio, json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from core.settings import Settings
from bot.runtime import run_bot
cfg = json.loads(sys.argv[1])
sender = cfg.pop("sender_overrides")
for name in ("telegram_group_rate", "telegram_private_rate", "telegram_global_rate"):
    cfg[name] = tuple(cfg[name])
asyncio.run(run_bot(Settings(**cfg), sender_overrides=sender))
"""


def spawn_bot(settings, log_path: Path, sender_overrides: dict | None = None) -> subprocess.Popen:
    cfg = {
        "database_url": settings.database_url,
        "telegram_bot_token": settings.telegram_bot_token,
        "telegram_admin_chat_id": settings.telegram_admin_chat_id,
        "telegram_api_server": settings.telegram_api_server,
        "telegram_mode": "polling",
        "telegram_group_rate": settings.telegram_group_rate,
        "telegram_private_rate": settings.telegram_private_rate,
        "telegram_global_rate": settings.telegram_global_rate,
        "telegram_summary_after": settings.telegram_summary_after,
        "redis_url": settings.redis_url,
        "extra": settings.extra,
        "sender_overrides": sender_overrides or {},
    }
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", BOT_SCRIPT, json.dumps(cfg)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log_path, "ab"),
    )


async def wait_quiet(fake: FakeTelegram, at_least: int, at_most: int, quiet: float, timeout: float) -> None:
    """Wait until the fake has seen `at_least` sendMessage calls but at most `at_most` cards,
    the whole burst is queued, nothing is in flight (no row `sending`) and no call came for
    `quiet` seconds: the sender is sitting out the group limit. Killing it there is killing it
    mid-burst without landing in the few-millisecond at-least-once window the sender
    documents. The end of the burst is quiet too: `at_most` keeps that pause out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sends = fake.calls_of("sendMessage", include_failed=True)
        if (
            len(sends) >= at_least
            and time.monotonic() - sends[-1].at >= quiet
            and len(announced(fake)) <= at_most
            and await TelegramOutbox.filter(dedup_key__startswith="new:").count() >= 60
            and not await TelegramOutbox.filter(status="sending").exists()
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"bot did not reach {at_least} sends; got {len(fake.calls_of('sendMessage'))}")


@pytest.mark.heavy(seconds=24)
async def test_bot_killed_mid_burst_and_restarted_loses_and_doubles_nothing(
    telegram_settings, fake_telegram: FakeTelegram, make_user, tmp_path
):
    fake_telegram.rate_limit_group_per_min = 20
    fake_telegram.rate_limit_window = 1.0
    # No summaries here: every request gets its own card, so the burst lasts several windows.
    # Ten sends per window: on a loaded machine (a send took over 37 ms in one CI run) twenty
    # filled the whole window, the sender never sat out a pause and the burst ended unkilled.
    settings = telegram_settings.with_overrides(
        telegram_group_rate=(10, 1.0), telegram_summary_after=10_000,
    )
    customer = await make_user("customer")
    ids = [(await svc.create_request(customer, title=f"K{n}", description="d")).id for n in range(60)]
    log_path = tmp_path / "bot.log"
    first = spawn_bot(settings, log_path, {"lease_seconds": 1.5})
    second = None
    try:
        # Kill while the sender sits out the group limit between two windows.
        # The group takes ten cards a window: pauses come after 10, 20, ... 50 and at the end (60).
        await wait_quiet(fake_telegram, at_least=15, at_most=50, quiet=0.25, timeout=40)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        before = len(announced(fake_telegram))
        assert 0 < before < 60
        more = [(await svc.create_request(customer, title=f"L{n}", description="d")).id for n in range(10)]
        second = spawn_bot(settings, log_path, {"lease_seconds": 1.5})
        seen = await wait_announced(fake_telegram, ids + more, timeout=40)
        await asyncio.sleep(0.5)
        seen = announced(fake_telegram)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert set(seen) == set(ids + more), log_path.read_text()[-3000:]
    doubled = {i: n for i, n in seen.items() if n > 1}
    assert not doubled, (doubled, log_path.read_text()[-3000:])


async def test_two_senders_draining_one_queue_send_every_row_once(
    telegram_settings, fake_telegram: FakeTelegram
):
    from bot.runtime import make_bot
    from telegram_delivery.budget import Rate, Rates
    from telegram_delivery.outbox import send_text
    from telegram_delivery.sender import Sender, SenderLimits

    chats = [100 + n for n in range(40)]
    for chat in chats:
        for k in range(3):
            await send_text(chat, f"m{chat}-{k}", dedup_key=f"t:{chat}:{k}")
    limits = SenderLimits(rates=Rates(private=Rate(50, 1.0)))
    bots = [make_bot(telegram_settings), make_bot(telegram_settings)]
    senders = [Sender(bots[0], limits), Sender(bots[1], limits)]
    for s in senders:
        s.start()
    try:
        await fake_telegram.wait_for("sendMessage", count=120, timeout=20)
        await asyncio.sleep(0.3)
    finally:
        for s, b in zip(senders, bots, strict=True):
            await s.stop()
            await b.session.close()
    texts = Counter(c.params["text"] for c in fake_telegram.calls_of("sendMessage"))
    assert len(texts) == 120 and max(texts.values()) == 1
    assert all(s.stats.sent > 0 for s in senders), "both senders should have taken part"
    # Per chat, the order of enqueueing is kept.
    for chat in chats:
        order = [c.params["text"] for c in fake_telegram.calls_of("sendMessage") if c.params["chat_id"] == chat]
        assert order == [f"m{chat}-{k}" for k in range(3)]


async def test_a_row_left_sending_by_a_dead_sender_is_retried_after_its_lease(
    telegram_settings, fake_telegram: FakeTelegram
):
    from datetime import UTC, datetime, timedelta

    from bot.runtime import make_bot
    from telegram_delivery.outbox import send_text
    from telegram_delivery.sender import Sender

    await send_text(4242, "orphan", dedup_key="orphan")
    await TelegramOutbox.filter(dedup_key="orphan").update(
        status="sending", attempts=1, not_before=datetime.now(UTC) - timedelta(seconds=1)
    )
    await send_text(4242, "after", dedup_key="after")
    bot = make_bot(telegram_settings)
    sender = Sender(bot)
    sender.start()
    try:
        await fake_telegram.wait_for("sendMessage", count=2, timeout=10)
    finally:
        await sender.stop()
        await bot.session.close()
    assert [c.params["text"] for c in fake_telegram.calls_of("sendMessage")] == ["orphan", "after"]
    row = await TelegramOutbox.get(dedup_key="orphan")
    assert row.status == "sent" and row.attempts == 2


async def test_a_restarted_bot_that_reads_an_event_again_does_not_send_a_reply_twice(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """The relay queued an admin's reply, then the bot died before its cursor moved past the
    event: the restarted bot reads the event again. The queue's dedup key is the event's
    (`ev:<event id>:customer`), so nothing is queued twice and the customer reads it once."""
    from db.models import Cursor, Event

    admin = await make_user("admin")
    customer = await make_user("customer", telegram_id=5557001)
    req = await svc.create_request(customer, title="Once", description="d")
    rt = await start_bot(telegram_settings, updates=False)
    try:
        await svc.post_message(admin, req.id, "Your order ships today")
        await fake_telegram.wait_for("sendMessage", where=lambda c: c.chat_id == 5557001)
    finally:
        await rt.stop()
    reply_event = await Event.filter(type="new_message").order_by("-id").first()
    # The cursor as it was before the reply's event: the crash lost its move.
    await Cursor.filter(name="telegram-relay").update(position=reply_event.id - 1)
    rt = await start_bot(telegram_settings, updates=False)
    try:
        deadline = time.monotonic() + 10
        while not await Cursor.filter(name="telegram-relay", position__gte=reply_event.id).exists():
            assert time.monotonic() < deadline, "the restarted relay never read the event again"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # time for a second copy to go out, if one were queued
    finally:
        await rt.stop()
    to_customer = [c for c in fake_telegram.calls_of("sendMessage") if c.chat_id == 5557001]
    assert [c.params["text"].count("Your order ships today") for c in to_customer] == [1], to_customer
    assert await TelegramOutbox.filter(chat_id=5557001).count() == 1
