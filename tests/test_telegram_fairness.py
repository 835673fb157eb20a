"""Fair Telegram delivery: a message reaches Telegram in at most 3 parts (the rest cut with a
note), and one customer's flood cannot hold the admin group hostage.

Time is shrunk, not faked: the sender's group window is a second instead of a minute.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from bot.runtime import start_bot
from core import requests as svc
from db.models import TelegramOutbox
from telegram_delivery.contract import Delivery, Kind
from telegram_delivery.outbox import TEXT_LIMIT, enqueue, tg_len
from telegram_delivery.relay import Relay
from tests.fake_telegram import Call, FakeTelegram

HUGE = ("😀 <b>&amp;</b> текст " * 700)[:10_000]  # 10,000 characters, ~25,000 UTF-16 units escaped


def group_texts(fake: FakeTelegram) -> list[Call]:
    return [c for c in fake.calls_of("sendMessage") if c.params.get("chat_id") == fake.admin_chat_id]


async def settle(fake: FakeTelegram, quiet: float = 0.6, timeout: float = 30) -> None:
    """Wait until the fake has seen no call for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        if len(fake.calls) == seen:
            return
        seen = len(fake.calls)
        await asyncio.sleep(quiet)
    raise AssertionError("the sender never went quiet")


async def test_a_10000_character_customer_message_reaches_the_group_in_3_parts_with_a_note(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    customer = await make_user("customer", first_name="Флуд")
    req = await svc.create_request(customer, title="Huge", description="d")
    assert len(HUGE) == 10_000
    rt = await start_bot(telegram_settings)
    try:
        await svc.post_message(customer, req.id, HUGE)
        await fake_telegram.wait_for("sendMessage", where=lambda c: "😀" in c.params.get("text", ""))
        await settle(fake_telegram)
    finally:
        await rt.stop()
    parts = [c for c in group_texts(fake_telegram) if "😀" in c.params["text"]]
    assert len(parts) == 3, [len(p.params["text"]) for p in parts]
    assert all(tg_len(p.params["text"]) <= TEXT_LIMIT for p in parts)
    assert f"(запрос #{req.id})" in parts[0].params["text"]  # the header rides on part 1
    assert f"полный текст — в запросе #{req.id}" in parts[-1].params["text"]
    assert not any("полный текст" in p.params["text"] for p in parts[:-1])
    rows = await TelegramOutbox.filter(chat_id=fake_telegram.admin_chat_id, dedup_key__contains=":thread")
    assert len(rows) == 3 and {r.status for r in rows} == {"sent"}


async def test_a_huge_staff_reply_reaches_an_english_customer_with_an_english_note(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    admin = await make_user("admin")
    customer = await make_user("customer", telegram_id=5550777, language="en")
    req = await svc.create_request(customer, title="Huge reply", description="d")
    await svc.take_request(admin, req.id)
    rt = await start_bot(telegram_settings)
    try:
        await svc.post_message(admin, req.id, HUGE)
        # A private chat takes one message a second.
        await fake_telegram.wait_for(
            "sendMessage", count=3, timeout=15,
            where=lambda c: c.params["chat_id"] == 5550777 and "😀" in c.params["text"],
        )
        await settle(fake_telegram, quiet=1.5)
    finally:
        await rt.stop()
    parts = [c for c in fake_telegram.calls_of("sendMessage")
             if c.params["chat_id"] == 5550777 and "😀" in c.params["text"]]
    assert len(parts) == 3
    assert f"the full text is on request #{req.id}" in parts[-1].params["text"]


async def test_a_caption_over_1024_characters_follows_the_same_rule(telegram_settings):
    """A file whose caption is too long: the file, then the caption as text, 3 messages in
    all at most, the last with the note."""
    fake_chat = 4242
    created = await enqueue(
        fake_chat, "sendDocument",
        {"caption": HUGE}, delivery=Delivery(kind=Kind.THREAD, request_id=77),
        dedup_key="t:caption", request_id=77,
    )
    assert created
    rows = await TelegramOutbox.filter(chat_id=fake_chat).order_by("id")
    assert [r.method for r in rows] == ["sendDocument", "sendMessage", "sendMessage"]
    assert "caption" not in rows[0].payload
    assert "запросе #77" in rows[-1].payload["text"]
    assert all(tg_len(r.payload.get("text", "")) <= TEXT_LIMIT for r in rows)


async def _relay_everything(settings) -> None:
    relay = Relay(settings)
    while await relay.process_once():
        pass


async def test_a_flood_from_one_customer_cannot_starve_the_small_messages_of_others(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """One customer queues a 10,000-character message (3 parts) and 30 more; then 10 other
    customers send one short message each. Everything is queued before the first send.

    Round robin per customer: 11 lanes, so every small message goes out within 2 rounds
    (its request's card, then the message): by the 22nd group send. In arrival order it
    would wait behind 11 cards and 33 flood rows (45th to 54th send)."""
    settings = telegram_settings.with_overrides(
        telegram_group_rate=(50, 1.0), telegram_summary_after=1000,
    )
    flooder = await make_user("customer", first_name="Flood")
    others = [await make_user("customer", first_name=f"Small{i}") for i in range(10)]
    flood_req = await svc.create_request(flooder, title="Flood", description="d")
    small_reqs = [await svc.create_request(c, title=f"Small {i}", description="d") for i, c in enumerate(others)]
    await svc.post_message(flooder, flood_req.id, HUGE)
    for n in range(30):
        await svc.post_message(flooder, flood_req.id, f"flood-{n:02d}")
    for i, (c, r) in enumerate(zip(others, small_reqs, strict=True)):
        await svc.post_message(c, r.id, f"small-{i}")
    await _relay_everything(settings)
    queued = await TelegramOutbox.filter(chat_id=fake_telegram.admin_chat_id, status="pending").count()
    assert queued == 11 + 3 + 30 + 10
    rt = await start_bot(settings)
    try:
        await fake_telegram.wait_for("sendMessage", count=queued, timeout=30,
                                     where=lambda c: c.params.get("chat_id") == fake_telegram.admin_chat_id)
        await settle(fake_telegram, quiet=0.3)
    finally:
        await rt.stop()
    sent = [c.params["text"] for c in group_texts(fake_telegram)]
    twice = [t[-60:] for t, n in Counter(sent).items() if n > 1]
    assert len(sent) == queued, f"sent twice: {twice}; the last five: {[t[-60:] for t in sent[-5:]]}"
    position = {f"small-{i}": next(n for n, t in enumerate(sent, 1) if f"small-{i}" in t) for i in range(10)}
    lanes = 1 + len(others)
    assert max(position.values()) <= 2 * lanes, position
    # Per-request order holds for the flood: its parts, then its messages in order.
    flood = [t for t in sent if "😀" in t or "flood-" in t]
    assert "😀" in flood[0] and "😀" in flood[1] and "😀" in flood[2]
    assert [t.rsplit("flood-", 1)[1][:2] for t in flood[3:]] == [f"{n:02d}" for n in range(30)]
    print(f"\nsmall messages delivered at group sends {sorted(position.values())} of {queued}"
          f" (bound {2 * lanes}; arrival order would be 45..54)")


async def test_small_messages_arriving_during_a_flood_wait_at_most_one_round(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """The flood is draining (20 sends a second) when 10 other customers write: each small
    message waits at most one round of the lanes then active (11) plus the send in flight,
    counted in group sends between its row being queued and being sent."""
    settings = telegram_settings.with_overrides(
        telegram_group_rate=(20, 1.0), telegram_summary_after=1000,
    )
    flooder = await make_user("customer", first_name="Flood")
    others = [await make_user("customer", first_name=f"Small{i}") for i in range(10)]
    flood_req = await svc.create_request(flooder, title="Flood", description="d")
    small_reqs = [await svc.create_request(c, title=f"Small {i}", description="d") for i, c in enumerate(others)]
    rt = await start_bot(settings)
    try:
        # Let the 11 cards go first, so only messages compete.
        await fake_telegram.wait_for("sendMessage", count=11, timeout=15)
        await svc.post_message(flooder, flood_req.id, HUGE)
        for n in range(40):
            await svc.post_message(flooder, flood_req.id, f"flood-{n:02d}")
        await fake_telegram.wait_for("sendMessage", where=lambda c: "flood-02" in c.params["text"], timeout=15)
        for i, (c, r) in enumerate(zip(others, small_reqs, strict=True)):
            await svc.post_message(c, r.id, f"small-{i}")
        await fake_telegram.wait_for("sendMessage", where=lambda c: "flood-39" in c.params["text"], timeout=30)
        await settle(fake_telegram, quiet=0.3)
    finally:
        await rt.stop()
    rows = await TelegramOutbox.filter(chat_id=fake_telegram.admin_chat_id, status="sent").order_by("sent_at", "id")
    assert len(rows) == 11 + 3 + 40 + 10
    small_ids = {r.id for r in small_reqs}
    waited = []
    for row in rows:
        if row.request_id in small_ids and row.dedup_key.endswith(":thread"):
            waited.append(sum(1 for o in rows if row.created_at < o.sent_at < row.sent_at))
    assert len(waited) == 10
    lanes = 1 + len(others)
    assert max(waited) <= lanes + 1, waited
    flood_left = sum(1 for r in rows if r.request_id == flood_req.id and r.sent_at > max(
        x.sent_at for x in rows if x.request_id in small_ids))
    assert flood_left > 0, "the flood was over before the small messages came: the test proves nothing"
    print(f"\nsmall messages waited {sorted(waited)} group sends (bound {lanes + 1}); "
          f"{flood_left} flood rows still queued behind them")
