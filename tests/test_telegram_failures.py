"""A delivery that finally fails is visible: an internal note on the request, a counter for
metrics, the `helpdesk parked` listing, and a command that sends it again."""

from __future__ import annotations

from bootstrap.commands import parked_command
from core import requests as svc
from db.models import MessageType, RequestMessage, TelegramOutbox
from telegram_delivery.sender import STATS, queue_depth, stats_snapshot
from tests.bot_handlers_support import eventually, running_bot
from tests.fake_telegram import FakeTelegram

CUSTOMER_TG = 5551


async def test_a_reply_the_customer_never_got_is_noted_counted_listed_and_retried(
    telegram_settings, fake_telegram: FakeTelegram, make_user, capsys
):
    fake = fake_telegram
    admin = await make_user("admin")
    customer = await make_user("customer", telegram_id=CUSTOMER_TG)
    req = await svc.create_request(customer, title="Blocked", description="d")
    fake.fail("sendMessage", status=403, times=1, where=lambda c: c.chat_id == CUSTOMER_TG)
    failed_before = STATS.failed
    async with running_bot(telegram_settings):
        await svc.post_message(admin, req.id, "We fixed it")
        row = await eventually(lambda: TelegramOutbox.filter(chat_id=CUSTOMER_TG, status="failed").first())
        note = await eventually(lambda: RequestMessage.filter(
            request_id=req.id, message_type=MessageType.system, is_internal=True).first())
    assert f"outbox:{row.id}" in note.content and "Forbidden" in row.last_error
    assert STATS.failed == failed_before + 1 and stats_snapshot()["failed"] == STATS.failed
    assert (await queue_depth())["failed"] == 1

    assert await parked_command() == 0
    listing = capsys.readouterr().out
    assert f"outbox:{row.id}\tsendMessage to {CUSTOMER_TG}\t#{req.id}\t" in listing

    assert await parked_command("outbox:failed") == 0
    assert "1 failed outbox row(s) queued again" in capsys.readouterr().out
    async with running_bot(telegram_settings):
        await fake.wait_for("sendMessage", where=lambda c: c.chat_id == CUSTOMER_TG
                            and "We fixed it" in c.params["text"])
        await eventually(lambda: TelegramOutbox.filter(id=row.id, status="sent").exists())
    assert (await queue_depth())["failed"] == 0


async def test_housekeeping_keeps_failed_and_queued_rows_and_drops_finished_ones(telegram_settings):
    """Old rows that need nothing more (sent, merged, an edit Telegram refused for good:
    `ignored`) are pruned; failed rows stay for `helpdesk parked`, queued ones for sending."""
    from datetime import UTC, datetime, timedelta

    from telegram_delivery.outbox import prune_delivered

    for status in ("sent", "merged", "ignored", "failed", "pending"):
        await TelegramOutbox.create(dedup_key=f"prune:{status}", chat_id=1, method="sendMessage",
                                    payload={"text": "x"}, status=status)
    assert await prune_delivered(datetime.now(UTC) + timedelta(seconds=1)) >= 3
    left = await TelegramOutbox.filter(dedup_key__startswith="prune:").values_list("status", flat=True)
    assert sorted(left) == ["failed", "pending"]
