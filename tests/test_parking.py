"""Poisoned work is parked, not replayed forever; background loops back off in an outage.

- An event the relay cannot handle is tried POISON_MAX_ATTEMPTS times with backoff, then
  parked (a ParkedEvent row, one WARNING, an internal note on its request); later events
  go on, a restart does not replay it, `helpdesk parked --retry` tries it again.
- An outbox row the sender cannot even build a call from is tried as often, then `failed`
  with its error and a note; the chat's next rows still go out.
- A database outage (ConnectionRefusedError) in a loop's pass: one WARNING line, growing
  delays, one line on recovery; an outage while handling an event never parks it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tortoise.transactions import in_transaction

from bootstrap.commands import parked_command
from bot.runtime import start_bot
from core import events
from core import requests as svc
from db.models import Cursor, Event, MessageType, ParkedEvent, RequestMessage, TelegramOutbox
from telegram_delivery.contract import Delivery, Kind
from telegram_delivery.outbox import enqueue
from telegram_delivery.relay import Relay
from telegram_delivery.sender import Sender, SenderLimits
from tests.fake_telegram import FakeTelegram


async def poisoned_event(request_id: int) -> Event:
    """A new_message event whose message id is not a number: handling it raises every time."""
    async with in_transaction() as conn:
        return await events.record_event(
            events.NEW_MESSAGE, {"id": "not-a-number", "request": request_id}, using_db=conn
        )


async def drive(relay: Relay, until, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await until():
        assert time.monotonic() < deadline, "the relay never got there"
        await relay.process_once()
        await asyncio.sleep(0.02)


async def test_a_poisoned_event_is_parked_and_the_relay_moves_on(
    telegram_settings, make_user, caplog, capsys
):
    customer = await make_user("customer")
    req = await svc.create_request(customer, title="Victim", description="d")
    bad = await poisoned_event(req.id)
    later = await svc.create_request(customer, title="After the poison", description="d")
    relay = Relay(telegram_settings, retry_base=0.05)
    caplog.set_level(logging.INFO, logger="helpdesk.telegram_delivery.relay")

    async def parked() -> bool:
        return await ParkedEvent.filter(event_id=bad.id, status="parked").exists()

    # The next request's card is queued while the poisoned event waits for its retries.
    await relay.process_once()
    assert await TelegramOutbox.filter(dedup_key=f"new:{later.id}:card").exists()
    await drive(relay, parked)
    row = await ParkedEvent.get(event_id=bad.id)
    assert row.attempts == 3 and row.request_id == req.id and row.event_type == events.NEW_MESSAGE
    assert "ValueError" in row.error or "not-a-number" in row.error
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "parked" in r.getMessage()]
    assert len(warnings) == 1 and f"event {bad.id} " in warnings[0].getMessage()
    assert relay.parked == 1
    cursor = await Cursor.get(name=relay.cursor_name)
    assert cursor.position >= later.id and cursor.position >= bad.id
    # Staff see an internal system note on the request; the customer does not.
    note = await RequestMessage.get(request_id=req.id, message_type=MessageType.system)
    assert note.is_internal and f"event:{bad.id}" in note.content
    assert note.id not in {m.id for m in await svc.list_messages(customer, req.id)}

    # A restart (a new relay, the event still in the re-scan window) does not replay it.
    caplog.clear()
    restarted = Relay(telegram_settings, retry_base=0.05)
    for _ in range(3):
        await restarted.process_once()
    assert (await ParkedEvent.get(event_id=bad.id)).attempts == 3
    assert not [r for r in caplog.records if str(bad.id) in r.getMessage()]
    assert await RequestMessage.filter(request_id=req.id, message_type=MessageType.system).count() == 1

    # The CLI lists it; an operator fixes the cause and asks for one more try.
    assert await parked_command() == 0
    listing = capsys.readouterr().out
    assert f"event:{bad.id}\tnew_message (parked, 3 tries)\t#{req.id}\t" in listing
    msg = await svc.post_message(customer, req.id, "the message the event should have carried")
    await Event.filter(id=bad.id).update(payload={**bad.payload, "id": msg.id})
    assert await parked_command(f"event:{bad.id}") == 0
    assert await parked_command(f"event:{bad.id}") == 1  # already queued
    assert await parked_command("event:abc") == 2
    await restarted.process_once()
    assert not await ParkedEvent.filter(event_id=bad.id).exists()
    assert await TelegramOutbox.filter(dedup_key=f"ev:{bad.id}:thread").exists()


async def test_a_relay_restarted_between_failures_keeps_counting(telegram_settings, make_user):
    customer = await make_user("customer")
    req = await svc.create_request(customer, title="Victim", description="d")
    bad = await poisoned_event(req.id)
    first = Relay(telegram_settings, retry_base=0.05)
    await first.process_once()
    assert (await ParkedEvent.get(event_id=bad.id)).status == "failing"
    # Two more failures in a fresh process park it: the count is stored, not in memory.
    second = Relay(telegram_settings, retry_base=0.05)

    async def parked() -> bool:
        return await ParkedEvent.filter(event_id=bad.id, status="parked").exists()

    await drive(second, parked)
    assert (await ParkedEvent.get(event_id=bad.id)).attempts == 3
    assert second.parked == 1


async def test_an_outbox_row_that_keeps_failing_is_parked_with_a_note(
    telegram_settings, fake_telegram: FakeTelegram, make_user, capsys
):
    settings = telegram_settings
    customer = await make_user("customer")
    req = await svc.create_request(customer, title="Poisoned row", description="d")
    chat = fake_telegram.admin_chat_id
    # A payload no Bot API call can be built from (a text that is not a string).
    await enqueue(chat, "sendMessage", {"text": {"not": "a string"}},
                  delivery=Delivery(kind=Kind.NOTIFY), dedup_key="poison:1", request_id=req.id)
    await enqueue(chat, "sendMessage", {"text": "after the poison"}, dedup_key="poison:2",
                  request_id=req.id)
    rt = await start_bot(settings, updates=False, sender_overrides={"backoff_base": 0.05})
    try:
        await fake_telegram.wait_for("sendMessage", where=lambda c: c.params["text"] == "after the poison")
        deadline = time.monotonic() + 10
        while (await TelegramOutbox.get(dedup_key="poison:1")).status != "failed":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        await rt.stop()
    row = await TelegramOutbox.get(dedup_key="poison:1")
    assert row.attempts == 3 and row.last_error.startswith("internal error: ")
    assert not [c for c in fake_telegram.calls if c.params.get("text") == {"not": "a string"}]
    note = await RequestMessage.get(request_id=req.id, message_type=MessageType.system)
    assert note.is_internal and f"outbox:{row.id}" in note.content
    assert await parked_command() == 0
    assert f"outbox:{row.id}\tsendMessage to {chat}\t#{req.id}\t" in capsys.readouterr().out
    assert await parked_command(f"outbox:{row.id}") == 0
    again = await TelegramOutbox.get(id=row.id)
    assert (again.status, again.attempts, again.last_error) == ("pending", 0, None)


async def test_relay_backs_off_in_an_outage_with_one_line_per_state_change(
    telegram_settings, make_user, caplog
):
    customer = await make_user("customer")
    req = await svc.create_request(customer, title="Through the outage", description="d")
    relay = Relay(telegram_settings, backoff_base=0.05, poll_interval=0.05)
    calls: list[float] = []
    real = relay.process_once

    async def flaky() -> int:
        calls.append(time.monotonic())
        if len(calls) <= 5:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return await real()

    relay.process_once = flaky  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="helpdesk.telegram_delivery.relay")
    task = asyncio.create_task(relay.run())
    try:
        deadline = time.monotonic() + 10
        while relay.health.failing or not await TelegramOutbox.filter(dedup_key=f"new:{req.id}:card").exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        relay._stopping = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = [b - a for a, b in zip(calls[:5], calls[1:6], strict=True)]
    assert all(later > earlier for earlier, later in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] > 0.5  # 0.05 * 2**4 = 0.8 s, with jitter
    print(f"\nrelay outage: delays between failed passes {[round(g, 2) for g in gaps]} s")
    lines = [r for r in caplog.records if r.name == "helpdesk.telegram_delivery.relay" and r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[1].strip()[:20] for r in lines] == [
        "cannot reach a servi", "recovered after 5 fa",
    ], [r.getMessage() for r in lines]
    assert not any(r.exc_info for r in lines)
    assert not await ParkedEvent.exists()


async def test_an_outage_while_handling_an_event_never_parks_it(telegram_settings, make_user, caplog):
    customer = await make_user("customer")
    req = await svc.create_request(customer, title="Outage, not poison", description="d")
    relay = Relay(telegram_settings, backoff_base=0.02, poll_interval=0.05)
    real = relay.handle
    failures = {"n": 0}

    async def handle(ev):
        if failures["n"] < 6:  # twice POISON_MAX_ATTEMPTS
            failures["n"] += 1
            raise ConnectionRefusedError(111, "Connect call failed")
        await real(ev)

    relay.handle = handle  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="helpdesk.telegram_delivery.relay")
    task = asyncio.create_task(relay.run())
    try:
        deadline = time.monotonic() + 10
        while relay.health.failing or not await TelegramOutbox.filter(dedup_key=f"new:{req.id}:card").exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        relay._stopping = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert failures["n"] == 6
    assert not await ParkedEvent.exists() and relay.parked == 0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]  # "cannot reach", "recovered"


async def test_sender_backs_off_in_an_outage_with_one_line_per_state_change(
    telegram_settings, fake_telegram: FakeTelegram, caplog
):
    sender = Sender(None, SenderLimits(loop_backoff_base=0.05, poll_interval=0.05))
    calls: list[float] = []

    async def failing() -> float:
        calls.append(time.monotonic())
        if len(calls) <= 5:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return 0.05

    sender.drain_once = failing  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="helpdesk.telegram_delivery.sender")
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 7:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await sender.stop()
    gaps = [b - a for a, b in zip(calls[:5], calls[1:6], strict=True)]
    assert all(later > earlier for earlier, later in zip(gaps, gaps[1:], strict=False)), gaps
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2 and "cannot reach a service" in lines[0] and "recovered" in lines[1], lines
