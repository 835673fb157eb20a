"""The typed contract between who queues Telegram calls and the sender (telegram_delivery.
contract): a `Delivery` goes into a row and comes back out the same; rows stored in the
older untyped shape are still read; a caller cannot slip an untyped `_meta` past it."""

from __future__ import annotations

import pytest

from db.models import TelegramOutbox
from telegram_delivery.contract import (
    Chart,
    CopyTarget,
    Delivery,
    Kind,
    MessageLink,
    Upload,
    delivery_of,
    pack,
    unpack,
)
from telegram_delivery.outbox import Priority, enqueue, priority_of


def test_a_delivery_round_trips_through_the_stored_payload():
    delivery = Delivery(
        kind=Kind.THREAD, request_id=7, thread_of=7, render_card=True, mergeable=True,
        link=MessageLink(request_id=7, request_message_id=9, kind="caption", part=2),
        target=CopyTarget(100, 200), upload=Upload("photo", "/tmp/x.png", "x.png"),
        requests=(1, 2, 3), summary=55, chart=Chart([{"day": "2026-01-01"}], "en"),
    )
    params, back = unpack(pack({"text": "hi"}, delivery))
    assert params == {"text": "hi"}
    assert back == delivery


def test_an_empty_delivery_stores_nothing_and_reads_back_empty():
    assert pack({"text": "hi"}, Delivery()) == {"text": "hi"}
    assert unpack({"text": "hi"}) == ({"text": "hi"}, Delivery())


def test_rows_queued_in_the_older_untyped_shape_are_read():
    old = {"text": "x", "_meta": {"kind": "card", "render_card": True, "request_id": 5,
                                  "thread_of": 5, "link": {"request_id": 5}, "future": 1}}
    got = delivery_of(old)
    assert got.kind is Kind.CARD and got.render_card and got.request_id == 5 and got.thread_of == 5
    assert got.link == MessageLink(request_id=5)
    assert delivery_of({"_meta": {"kind": "no-such-kind"}}).kind is None


def test_budget_class_follows_the_kind():
    assert priority_of(Delivery(kind=Kind.NOTIFY)) is Priority.CONVERSATION
    assert priority_of(Delivery(kind=Kind.TOPIC_STATE)) is Priority.EDIT
    assert priority_of(Delivery(kind=Kind.DIGEST_CHART)) is Priority.BACKGROUND
    assert priority_of(Delivery()) is Priority.NEW_REQUEST


async def test_enqueue_takes_a_delivery_and_refuses_an_untyped_meta(db_url):
    with pytest.raises(ValueError):
        await enqueue(1, "sendMessage", {"text": "x", "_meta": {"kind": "notify"}}, dedup_key="m:1")
    assert await enqueue(1, "sendMessage", {"text": "x"}, dedup_key="m:2",
                         delivery=Delivery(kind=Kind.NOTIFY, link=MessageLink(request_id=3)))
    row = await TelegramOutbox.get(dedup_key="m:2")
    assert row.priority == Priority.CONVERSATION
    assert delivery_of(row.payload) == Delivery(kind=Kind.NOTIFY, link=MessageLink(request_id=3))
