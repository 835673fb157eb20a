"""Telegram's limits as settings, shared by every process through Redis; the budget order
(conversations, new requests, edits, reminders) and edits collapsing into the newest.

Time is shrunk, not faked: the rates are per second instead of per minute, and the fake Bot
API refuses more than them with 429.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bot.runtime import make_bot
from core import requests as svc
from core.settings import SettingsError, load_settings
from db.models import CustomerRequest, TelegramOutbox
from scheduler.jobs import send_text as scheduler_send_text
from telegram_delivery.budget import Rate, Rates, build_budget
from telegram_delivery.outbox import send_text
from telegram_delivery.relay import Relay
from tests.bot_handlers_support import answer_for, buttons_of, card_for, running_bot
from tests.conftest import REDIS_TEST_URL, RUN_ID, need_service, redis_available
from tests.fake_telegram import Call, FakeTelegram

# --- settings -------------------------------------------------------------------------------


def test_telegram_rates_are_settings_with_telegrams_defaults():
    s = load_settings({}, dotenv=False)
    assert (s.telegram_group_rate, s.telegram_private_rate, s.telegram_global_rate) == (
        (20, 60.0), (1, 1.0), (30, 1.0))
    assert Rates.from_settings(s) == Rates(Rate(20, 60.0), Rate(1, 1.0), Rate(30, 1.0))
    s = load_settings({"TELEGRAM_GROUP_RATE": "20/0.6", "TELEGRAM_PRIVATE_RATE": " 2/1 ",
                       "TELEGRAM_GLOBAL_RATE": "25/1", "TELEGRAM_SUMMARY_AFTER": "5",
                       "TELEGRAM_CARDS_AFTER_SUMMARY": "true"}, dotenv=False)
    assert (s.telegram_group_rate, s.telegram_private_rate, s.telegram_global_rate) == (
        (20, 0.6), (2, 1.0), (25, 1.0))
    assert s.telegram_summary_after == 5 and s.telegram_cards_after_summary


@pytest.mark.parametrize("value", ["20", "20/", "/60", "0/60", "20/0", "x/60", "20/minute", "-1/60"])
def test_a_bad_rate_names_the_variable(value):
    with pytest.raises(SettingsError, match="TELEGRAM_GROUP_RATE"):
        load_settings({"TELEGRAM_GROUP_RATE": value}, dotenv=False)


# --- shared through Redis ------------------------------------------------------------------


def windows_max(calls: list[Call], window: float) -> int:
    """The most calls that arrived within any `window` seconds."""
    times = sorted(c.at for c in calls)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.heavy(seconds=11)
async def test_two_senders_on_separate_connections_stay_inside_the_shared_limits(
    telegram_settings, fake_telegram: FakeTelegram
):
    """Two senders (two processes' worth: each its own Redis connection, Bot session and
    budget object) drain one queue: together they keep the group to 5 a second and the
    whole bot to 8 a second. Budgets per process would let 10 and 16 through.

    The fake refuses from one over the budget: a send the budget allowed at 0.0 s can
    reach the fake 0.3 s late on a loaded machine and share a second with the next ones
    (real Telegram's limits are not that exact either). Per-process budgets would still
    run into it; and 70 sends at 8 a second, 30 to the group at 5, cannot take less than
    (70 - 8) / 8 and (30 - 5) / 5 seconds from first to last, against half that with a
    budget per process."""
    from telegram_delivery.sender import Sender, SenderLimits

    need_service("Redis", redis_available())
    fake = fake_telegram
    fake.rate_limit_group_per_min, fake.rate_limit_window = 6, 1.0
    fake.rate_limit_global_per_sec = 9
    settings = telegram_settings.with_overrides(
        redis_url=REDIS_TEST_URL, telegram_group_rate=(5, 1.0), telegram_private_rate=(50, 1.0),
        telegram_global_rate=(8, 1.0),
        extra={"ratelimit_prefix": f"test-tg-{RUN_ID}-{uuid.uuid4().hex[:6]}:"},
    )
    group = fake.admin_chat_id
    for n in range(30):
        await send_text(group, f"g{n}", dedup_key=f"t:g:{n}")
    for chat in range(300, 320):
        for k in range(2):
            await send_text(chat, f"p{chat}-{k}", dedup_key=f"t:p:{chat}:{k}")
    budgets = [build_budget(settings), build_budget(settings)]
    assert budgets[0].redis is not budgets[1].redis
    bots = [make_bot(settings), make_bot(settings)]
    senders = [Sender(b, SenderLimits.from_settings(settings), budget=budget)
               for b, budget in zip(bots, budgets, strict=True)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for s in senders:
        s.start()
    try:
        await fake.wait_for("sendMessage", count=70, timeout=30)
        elapsed = loop.time() - started
    finally:
        for s, b, budget in zip(senders, bots, budgets, strict=True):
            await s.stop()
            await b.session.close()
            await budget.redis.aclose()
    sends = fake.calls_of("sendMessage", include_failed=True)
    assert not [c for c in sends if c.status == 429], "Telegram had to refuse: the limits were not shared"
    to_group = [c.at for c in sends if c.chat_id == group]
    assert max(to_group) - min(to_group) >= 0.9 * (30 - 5) / 5, "the group's limit was not shared"
    assert max(c.at for c in sends) - min(c.at for c in sends) >= 0.9 * (70 - 8) / 8
    assert all(s.stats.sent > 0 for s in senders), "both senders should have taken part"
    texts = [c.params["text"] for c in fake.calls_of("sendMessage")]
    assert len(texts) == len(set(texts)) == 70
    # 70 calls at 8 a second: the shared budget was used, not left idle.
    assert elapsed < 70 / 8 * 1.6, elapsed  # slack for a loaded CI machine
    print(f"\n70 calls by two senders in {elapsed:.2f}s (bound {70 / 8 - 1:.2f}s at 8/s); "
          f"group max {windows_max([c for c in sends if c.chat_id == group], 1.0)}/s")


# --- the budget order ----------------------------------------------------------------------


def class_of(call: Call) -> str:
    text = str(call.params.get("text", ""))
    if call.method == "editMessageText":
        return "edit"
    if text.startswith("⏰") or "reminder" in text:
        return "reminder"
    if any(b.startswith("req:open:") for b in buttons_of(call)):
        return "new"
    return "conversation"


async def test_conversations_go_first_then_new_requests_then_edits_then_reminders(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    director = await make_user("director")
    customers = [await make_user("customer") for _ in range(6)]
    old = [await svc.create_request(customers[n], title=f"Old {n}", description="d") for n in range(3)]
    settings = telegram_settings.with_overrides(telegram_group_rate=(20, 1.0))
    async with running_bot(settings):  # the cards of the old requests are out
        for req in old:
            await card_for(fake, req.id)
    fake.calls.clear()
    # Everything below is queued while no sender runs, oldest first: reminders, edits,
    # new requests, then conversation.
    group = fake.admin_chat_id
    for n in range(3):
        await scheduler_send_text(group, f"⏰ reminder {n}", dedup_key=f"t:remind:{n}")
    for req in old:
        await svc.update_request(director, req.id, {"priority": "urgent"})
    new = [await svc.create_request(customers[3 + n], title=f"New {n}", description="d") for n in range(3)]
    for n, req in enumerate(old):
        await svc.post_message(customers[n], req.id, f"hello {req.id}")
    relay = Relay(settings)
    while await relay.process_once():
        pass
    queued = await TelegramOutbox.filter(status="pending", chat_id=group).count()
    assert queued == 3 + 3 + 3 + 3
    settings = telegram_settings.with_overrides(telegram_group_rate=(4, 1.0))
    async with running_bot(settings) as rt:
        rt.sender.limits.edit_delay = 0.0
        # A button pressed during the backlog is answered at once, not queued behind it.
        admin = await make_user("admin", telegram_id=7301)
        press = fake.callback_update(fake.user(7301, "Ann"), group, 1, f"req:take:{new[0].id}")
        answer = await answer_for(fake, press, timeout=2)
        assert not answer.params.get("show_alert"), answer.params
        await fake.wait_for("sendMessage", count=3, timeout=15,
                            where=lambda c: c.params.get("text", "").startswith("⏰"))
    order = [class_of(c) for c in fake.calls
             if c.ok and c.method in ("sendMessage", "editMessageText") and c.chat_id == group]
    # Collapse runs: the classes come out in budget order.
    runs = [k for n, k in enumerate(order) if n == 0 or order[n - 1] != k]
    assert runs == ["conversation", "new", "edit", "reminder"], order
    assert (await CustomerRequest.get(id=new[0].id)).assigned_admin_id == admin.id


async def test_four_quick_changes_cost_fewer_than_four_edits_and_end_right(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    director = await make_user("director")
    customer = await make_user("customer")
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Changes", description="d")
        card = await card_for(fake, req.id)
        for priority in ("low", "high", "medium", "urgent"):
            await svc.update_request(director, req.id, {"priority": priority})
            await asyncio.sleep(0.1)
        await fake.wait_for("editMessageText", timeout=10)
        await asyncio.sleep(1.5)  # anything else would have gone by now
    edits = [c for c in fake.calls_of("editMessageText")
             if c.params.get("message_id") == card.result["message_id"]]
    assert 1 <= len(edits) < 4, edits
    assert "Срочный" in edits[-1].params["text"], edits[-1].params["text"]
    skipped = await TelegramOutbox.filter(request_id=req.id, status="merged",
                                          dedup_key__endswith=":edit").count()
    assert skipped == 4 - len(edits)



async def test_edits_of_relayed_copies_wait_behind_new_messages_and_new_requests(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    """Edits of a message's Telegram copies (message_updated) are in the edits class: a
    customer gets a new reply before the correction of an older one, and the group gets a
    new request's card before the correction of a customer's message."""
    from core.message_edits import edit_message

    fake = fake_telegram
    group = fake.admin_chat_id
    admin = await make_user("admin", first_name="Olga")
    customer = await make_user("customer", telegram_id=7402, first_name="Kim")
    other = await make_user("customer")
    req = await svc.create_request(customer, title="Printer", description="d")
    await svc.take_request(admin, req.id)
    reply = await svc.post_message(admin, req.id, "Version 1")
    said = await svc.post_message(customer, req.id, "Order 1234")
    async with running_bot(telegram_settings):
        copy = (await fake.wait_for("sendMessage", where=lambda c: c.params.get("chat_id") == 7402
                                    and "Version 1" in c.params.get("text", "")))[0]
        await fake.wait_for("sendMessage", where=lambda c: c.params.get("chat_id") == group
                            and "Order 1234" in c.params.get("text", ""))
    fake.calls.clear()
    # Queued while no sender runs, the corrections first.
    await edit_message(admin, req.id, reply.id, "Version 2")
    await edit_message(customer, req.id, said.id, "Order 1243")
    await svc.post_message(admin, req.id, "Next step: restart it")
    new = await svc.create_request(other, title="Scanner", description="d")
    relay = Relay(telegram_settings)
    while await relay.process_once():
        pass
    async with running_bot(telegram_settings) as rt:
        rt.sender.limits.edit_delay = 0.0
        for chat_id, text in ((7402, "Version 2"), (group, "Order 1243")):
            await fake.wait_for("editMessageText", timeout=10, where=lambda c, chat_id=chat_id, text=text:
                                c.params.get("chat_id") == chat_id and text in c.params.get("text", ""))
    to_customer = [(c.method, c.params.get("text", "")) for c in fake.calls
                   if c.ok and c.params.get("chat_id") == 7402]
    assert [m for m, _ in to_customer] == ["sendMessage", "editMessageText"], to_customer
    assert "Next step" in to_customer[0][1] and to_customer[1][1].endswith("Version 2")
    assert fake.messages[(7402, copy.result["message_id"])]["text"].endswith("Version 2")
    in_group = [c for c in fake.calls if c.ok and c.params.get("chat_id") == group
                and c.method in ("sendMessage", "editMessageText")]
    card = next(n for n, c in enumerate(in_group) if f"#{new.id}" in c.params.get("text", ""))
    edit = next(n for n, c in enumerate(in_group) if "Order 1243" in c.params.get("text", ""))
    assert card < edit, [(c.method, c.params.get("text", "")[:40]) for c in in_group]
