"""Forum topics follow their request: renamed with the status and closed when it is completed
or closed, reopened (and renamed back) when it is reopened; a deleted topic is recreated."""

from __future__ import annotations

import asyncio

import pytest

from core import requests as svc
from db.models import TelegramThread
from tests.bot_handlers_support import buttons_of, eventually, running_bot
from tests.fake_telegram import FakeTelegram


async def settle(fake: FakeTelegram, quiet: float = 1.5) -> None:
    """Until no call came for `quiet` seconds (edits wait a second for newer changes)."""
    seen = -1
    while len(fake.calls) != seen:
        seen = len(fake.calls)
        await asyncio.sleep(quiet)


@pytest.mark.heavy(seconds=13)
async def test_topic_is_closed_and_renamed_on_complete_and_close_and_reopened_on_reopen(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    fake.forum = True
    director = await make_user("director", first_name="Olga")
    customer = await make_user("customer")
    group = fake.admin_chat_id
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Printer", description="jammed")
        await fake.wait_for("sendMessage", where=lambda c: f"req:open:{req.id}" in buttons_of(c))
        thread = await eventually(lambda: TelegramThread.filter(request_id=req.id, topic_id__isnull=False).first())
        topic = thread.topic_id
        await svc.take_request(director, req.id)
        await settle(fake)
        assert not fake.topic_closed.get((group, topic))
        assert fake.topics[group][topic] == f"#{req.id} Printer"

        await svc.complete_request(director, req.id)
        await fake.wait_for("closeForumTopic", timeout=10)
        await settle(fake)
        assert fake.topic_closed[(group, topic)] is True
        assert fake.topics[group][topic] == f"[Выполнен] #{req.id} Printer"

        await svc.close_request(director, req.id)
        await fake.wait_for("editForumTopic", count=2, timeout=10)
        await settle(fake)
        assert fake.topic_closed[(group, topic)] is True
        assert fake.topics[group][topic] == f"[Закрыт] #{req.id} Printer"

        await svc.reopen_request(director, req.id)
        await fake.wait_for("reopenForumTopic", timeout=10)
        await settle(fake)
        assert fake.topic_closed[(group, topic)] is False
        assert fake.topics[group][topic] == f"#{req.id} Printer"
    # Every call was needed: none refused as "not modified", one close and one reopen.
    topic_calls = [c for c in fake.calls if c.method.endswith("ForumTopic") and c.method != "createForumTopic"]
    assert all(c.ok for c in topic_calls), topic_calls
    assert [c.method for c in topic_calls if c.method != "editForumTopic"] == [
        "closeForumTopic", "reopenForumTopic"]


async def test_a_deleted_topic_is_not_an_error_and_is_recreated_for_the_next_message(
    telegram_settings, fake_telegram: FakeTelegram, make_user
):
    fake = fake_telegram
    fake.forum = True
    director = await make_user("director")
    customer = await make_user("customer")
    group = fake.admin_chat_id
    async with running_bot(telegram_settings):
        req = await svc.create_request(customer, title="Gone", description="d")
        thread = await eventually(lambda: TelegramThread.filter(request_id=req.id, card_message_id__isnull=False).first())
        fake.delete_topic(group, thread.topic_id)
        await svc.take_request(director, req.id)
        await svc.complete_request(director, req.id)
        await settle(fake)
        await svc.post_message(customer, req.id, "one more thing")
        relayed = (await fake.wait_for("sendMessage", timeout=10,
                                       where=lambda c: "one more thing" in c.params.get("text", "")))[0]
    recreated = fake.calls_of("createForumTopic")[-1]
    assert len(fake.calls_of("createForumTopic")) == 2
    assert relayed.params["message_thread_id"] == recreated.result["message_thread_id"]
    from db.models import TelegramOutbox

    assert not await TelegramOutbox.filter(status="failed").exists()
