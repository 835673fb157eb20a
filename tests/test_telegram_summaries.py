"""Every open request actionable in the admin group: during a burst, summaries with a Take
button per request; pressing one takes exactly that request and the summary follows.

Time is shrunk, not faked: TELEGRAM_GROUP_RATE is 20 a second instead of 20 a minute, and
the fake Bot API refuses more than that with 429.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from core import requests as svc
from db.models import CustomerRequest, TelegramOutbox, TelegramThread
from telegram_delivery.outbox import tg_len
from tests.bot_handlers_support import answer_for, buttons_of, eventually, running_bot
from tests.fake_telegram import Call, FakeTelegram

ADMIN_TG = 7101
GROUP_RATE = (20, 1.0)


def take_buttons(fake: FakeTelegram) -> Counter[int]:
    """How many messages posted in the admin group carried a Take button per request."""
    seen: Counter[int] = Counter()
    for call in fake.calls_of("sendMessage"):
        if call.params.get("chat_id") == fake.admin_chat_id:
            seen.update(int(b.split(":")[2]) for b in buttons_of(call) if b.startswith("req:take:"))
    return seen


def summaries(fake: FakeTelegram) -> list[Call]:
    return [c for c in fake.calls_of("sendMessage")
            if c.params.get("chat_id") == fake.admin_chat_id and c.params["text"].startswith("<b>📥")]


async def wait_all_takeable(fake: FakeTelegram, ids: list[int], timeout: float) -> float:
    start = time.monotonic()
    while not set(ids) <= set(take_buttons(fake)):
        if time.monotonic() - start > timeout:
            missing = sorted(set(ids) - set(take_buttons(fake)))
            raise AssertionError(f"{len(missing)} requests without a Take button, e.g. {missing[:10]}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_a_burst_of_200_requests_gets_a_take_button_each_within_the_budget(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    fake.rate_limit_group_per_min, fake.rate_limit_window = GROUP_RATE
    settings = telegram_settings.with_overrides(telegram_group_rate=GROUP_RATE, telegram_summary_after=10)
    admin = await make_user("admin", username="anna", first_name="Anna", telegram_id=ADMIN_TG)
    customers = [await make_user("customer") for _ in range(20)]
    async with running_bot(settings):
        started = time.monotonic()
        ids = [(await svc.create_request(customers[n % 20], title=f"Burst {n}", description="d")).id
               for n in range(200)]
        created = time.monotonic() - started
        took = await wait_all_takeable(fake, ids, timeout=20)
        # Cards go out while the budget lasts; the backlog beyond 10 becomes summaries of at
        # most 100 buttons, which fit in the next window: two windows, and one more of slack
        # for a loaded machine. A card each would take 200 / 20 = 10 windows.
        assert took <= 3 * GROUP_RATE[1] + 0.5, took
        group_sends = [c for c in fake.calls_of("sendMessage") if c.params["chat_id"] == fake.admin_chat_id]
        sums = summaries(fake)
        assert len(sums) >= 2
        for s in sums:
            assert tg_len(s.params["text"]) <= 4096 and len(buttons_of(s)) <= 100
        assert max(take_buttons(fake).values()) == 1  # nothing announced twice
        assert not [c for c in fake.calls if c.status == 429], "the sender over-spent the budget"

        # Press the Take of one request in the middle of a summary.
        summary = sums[-1]
        listed = [int(b.split(":")[2]) for b in buttons_of(summary)]
        target = listed[len(listed) // 2]
        await eventually(lambda: TelegramThread.filter(
            request_id=target, summary_message_id=summary.result["message_id"]).exists())
        update = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id,
                                      summary.result["message_id"], f"req:take:{target}")
        answer = await answer_for(fake, update)
        assert not answer.params.get("show_alert"), answer.params
        edit = (await fake.wait_for(
            "editMessageText", timeout=10,
            where=lambda c: c.params.get("message_id") == summary.result["message_id"],
        ))[-1]
        # The taker gets the request's own card to work in.
        await fake.wait_for("sendMessage", timeout=10, where=lambda c: f"req:done:{target}" in buttons_of(c))
    taken = await CustomerRequest.filter(assigned_admin_id=admin.id).values_list("id", flat=True)
    assert taken == [target]
    assert await CustomerRequest.filter(status="open").count() == 199
    assert f"req:take:{target}" not in buttons_of(edit)
    assert set(buttons_of(edit)) == {f"req:take:{i}" for i in listed if i != target}
    assert f"<s>#{target} Burst" in edit.params["text"] and "Anna" in edit.params["text"]
    print(f"\n200 requests created in {created:.2f}s: every one had a Take button {took:.2f}s "
          f"after the last ({len(group_sends)} group messages, {len(sums)} summaries)")


async def test_summaries_split_by_text_length_and_cards_can_follow_later(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """Long titles: the summaries split by Telegram's 4,096 characters, not only by buttons.
    With TELEGRAM_CARDS_AFTER_SUMMARY the cards follow, after the summaries."""
    fake = fake_telegram
    settings = telegram_settings.with_overrides(
        telegram_group_rate=(50, 1.0), telegram_summary_after=0, telegram_cards_after_summary=True,
    )
    customer = await make_user("customer")
    title = "Очень длинная тема & <подробности> " * 6
    ids = [(await svc.create_request(customer, title=f"{n} {title}"[:200], description="d")).id
           for n in range(60)]
    async with running_bot(settings):
        await wait_all_takeable(fake, ids, timeout=15)
        await fake.wait_for("sendMessage", count=len(ids), timeout=15,
                            where=lambda c: any(b.startswith("req:open:") for b in buttons_of(c)))
    sums = summaries(fake)
    assert len(sums) >= 2, "60 long titles cannot fit one message"
    assert all(tg_len(s.params["text"]) <= 4096 for s in sums)
    assert sum(len(buttons_of(s)) for s in sums) == 60
    group = [c for c in fake.calls_of("sendMessage") if c.params["chat_id"] == fake.admin_chat_id]
    last_summary = max(group.index(s) for s in sums)
    first_card = min(n for n, c in enumerate(group) if any(b.startswith("req:open:") for b in buttons_of(c)))
    assert last_summary < first_card, "cards that follow a summary wait behind it (class 4)"
    assert not await TelegramOutbox.filter(status__in=("pending", "sending", "failed")).exists()


def test_a_summary_fits_one_message_whatever_happens_to_its_requests():
    """Packed by their open lines, summaries stay within 4,096 characters and 100 buttons
    when every request is later taken by someone with a long name, or deleted."""
    from telegram_delivery.cards import summary_chunks, summary_message
    from tests.fake_telegram import parse_telegram_html

    for title in ("x", "Заказ & <оплата> " * 20, "😀" * 200):
        items = [(1000 + n, title) for n in range(400)]
        chunks = summary_chunks(items)
        assert sum(len(c) for c in chunks) == 400 and all(len(c) <= 100 for c in chunks)
        long_name = {"first_name": "Анна-Мария " * 15, "last_name": "Д" * 150}
        for chunk in chunks:
            for state in ("open", "taken", "deleted"):
                entries = [(rid, None if state == "deleted" else {
                    "id": rid, "title": title, "status": "open" if state == "open" else "in_progress",
                    "assigned_admin": long_name if state == "taken" else None}) for rid in chunk]
                text, keyboard = summary_message(entries)
                assert tg_len(text) <= 4096, (title[:10], state, tg_len(text))
                parse_telegram_html(text)
                buttons = [b for row in (keyboard or {}).get("inline_keyboard", []) for b in row]
                assert len(buttons) == (len(chunk) if state == "open" else 0)
