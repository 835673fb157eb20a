"""Agent tools in Telegram, over the fake Bot API: canned responses in a request's thread,
the satisfaction survey, /stats with staff figures, and the history's `telegram` channel."""

from __future__ import annotations

import asyncio

from core import canned
from core.requests import create_request, take_request
from db.models import RequestHistory, RequestMessage, Source
from tests.bot_handlers_support import (
    answer_for,
    buttons_of,
    card_for,
    eventually,
    reply_containing,
    running_bot,
    texts_to,
)

ADMIN_TG, ADMIN2_TG, CUSTOMER_TG = 7101, 7102, 5101


async def _people(make_user):
    anna = await make_user("admin", username="anna", first_name="Anna", last_name="Smirnova",
                           telegram_id=ADMIN_TG)
    boris = await make_user("admin", username="boris", first_name="Boris", telegram_id=ADMIN2_TG)
    customer = await make_user("customer", username="john", first_name="John", last_name="Smith",
                               telegram_id=CUSTOMER_TG, language="en")
    return anna, boris, customer


async def test_r_shortcut_sends_the_filled_response_to_the_customer_as_the_admins_reply(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    anna, _, customer = await _people(make_user)
    await canned.create_canned(anna, {"shortcut": "hello", "title": "ru", "language": "ru",
                                      "content": "Здравствуйте, {customer_name}!"})
    await canned.create_canned(anna, {"shortcut": "hello", "title": "en", "language": "en", "is_shared": True,
                                      "content": "Hello {customer_name}, this is {admin_name} on #{request_id}."})
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed", source=Source.telegram)
        card = await card_for(fake, req.id)
        await take_request(anna, req.id)
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "/r hello",
                            reply_to_message_id=card.result["message_id"])
        expected = f"Hello John Smith, this is Anna Smirnova on #{req.id}."
        # relayed to the customer like any reply, in the customer's language
        await reply_containing(fake, CUSTOMER_TG, expected)
        msg = await RequestMessage.get(request_id=req.id, content=expected)
        assert msg.sender_id == anna.id and msg.sender_type == "admin" and msg.source == Source.telegram
        # the group sees what went out
        await reply_containing(fake, fake.admin_chat_id, expected)
        # an unknown shortcut is refused with a reply, nothing is sent
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "/r nope",
                            reply_to_message_id=card.result["message_id"])
        await reply_containing(fake, fake.admin_chat_id, "nope")
        # outside a request's thread: told where /r works
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "/r hello")
        await reply_containing(fake, fake.admin_chat_id, "карточку")
    assert await RequestMessage.filter(request_id=req.id, sender_type="admin", message_type="text").count() == 1


async def test_r_alone_lists_responses_with_buttons_that_send_on_press(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    anna, boris, customer = await _people(make_user)
    shared = await canned.create_canned(anna, {"shortcut": "wait", "title": "Please wait", "language": "en",
                                               "is_shared": True, "content": "We are on it, {customer_name}."})
    await canned.create_canned(boris, {"shortcut": "secret", "title": "Boris only", "content": "x"})
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed", source=Source.telegram)
        card = await card_for(fake, req.id)
        await take_request(anna, req.id)
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "/r",
                            reply_to_message_id=card.result["message_id"])
        listing = await reply_containing(fake, fake.admin_chat_id, "Please wait")
        assert "Boris only" not in listing.params["text"]  # someone else's personal one
        assert buttons_of(listing) == [f"cr:{shared.id}:{req.id}"]
        update = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id,
                                      listing.result["message_id"], f"cr:{shared.id}:{req.id}")
        answer = await answer_for(fake, update)
        assert not answer.params.get("show_alert")
        await reply_containing(fake, CUSTOMER_TG, "We are on it, John Smith.")
        # Boris cannot send to a request he does not manage (CanManageRequest, as a reply)
        update = fake.callback_update(fake.user(ADMIN2_TG, "Boris"), fake.admin_chat_id,
                                      listing.result["message_id"], f"cr:{shared.id}:{req.id}")
        answer = await answer_for(fake, update)
        assert answer.params.get("show_alert") is True
        await asyncio.sleep(0.3)
    assert sum("We are on it" in t for t in texts_to(fake, CUSTOMER_TG)) == 1


async def test_a_move_made_in_telegram_is_recorded_with_the_telegram_channel(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    anna, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed")
        card = await card_for(fake, req.id)
        update = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id,
                                      card.result["message_id"], f"req:take:{req.id}")
        await answer_for(fake, update)
        row = await eventually(lambda: RequestHistory.filter(request_id=req.id, field="status").first())
    assert row.channel == "telegram" and row.actor_id == anna.id and row.new_value == '"in_progress"'


async def test_completed_notice_asks_for_a_rating_and_the_customer_rates_and_comments(
    telegram_settings, fake_telegram, make_user
):
    from core.requests import close_request, complete_request
    from db.models import CustomerRequest, Event

    fake = fake_telegram
    anna, _, customer = await _people(make_user)
    john = fake.user(CUSTOMER_TG, "John", language_code="en")
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed", source=Source.telegram)
        await card_for(fake, req.id)
        await take_request(anna, req.id)
        await complete_request(anna, req.id)
        survey = await reply_containing(fake, CUSTOMER_TG, "Please rate how we did")
        assert buttons_of(survey) == [f"rate:{req.id}:{n}" for n in range(1, 6)]
        # a press rates; the chosen score is marked on the buttons
        update = fake.callback_update(john, CUSTOMER_TG, survey.result["message_id"], f"rate:{req.id}:4")
        answer = await answer_for(fake, update)
        assert not answer.params.get("show_alert") and "4 of 5" in answer.params["text"]
        assert (await CustomerRequest.get(id=req.id)).rating == 4
        marked = await fake.wait_for("editMessageReplyMarkup")
        assert "★ 4" in str(marked[-1].params["reply_markup"])
        # the next message is the comment (not a message to the request's thread)
        await reply_containing(fake, CUSTOMER_TG, "/skip")
        fake.message_update(CUSTOMER_TG, john, "Fast and friendly")
        await reply_containing(fake, CUSTOMER_TG, "comment on request")
        fresh = await CustomerRequest.get(id=req.id)
        assert fresh.rating == 4 and fresh.rating_comment == "Fast and friendly"
        assert not await RequestMessage.filter(request_id=req.id, content="Fast and friendly").exists()
        # changed while completed; the comment stays
        update = fake.callback_update(john, CUSTOMER_TG, survey.result["message_id"], f"rate:{req.id}:5")
        await answer_for(fake, update)
        fake.message_update(CUSTOMER_TG, john, "/skip")
        await reply_containing(fake, CUSTOMER_TG, "no comment")
        fresh = await CustomerRequest.get(id=req.id)
        assert fresh.rating == 5 and fresh.rating_comment == "Fast and friendly"
        assert await Event.filter(type="request.rated").count() == 3  # 4, the comment, 5
        # once closed, the rating stands: a press gets an alert
        boss = await make_user("director")
        await close_request(boss, req.id)
        update = fake.callback_update(john, CUSTOMER_TG, survey.result["message_id"], f"rate:{req.id}:1")
        answer = await answer_for(fake, update)
        assert answer.params.get("show_alert") is True
    assert (await CustomerRequest.get(id=req.id)).rating == 5
    row = await RequestHistory.filter(request_id=req.id, field="rating").order_by("-id").first()
    assert row.channel == "telegram" and row.actor_id == customer.id
