"""The admin group: card buttons, commands, thread replies and notes, the chat bridge.

Over the wire: the real bot runtime (aiogram's HTTP session) polls the fake Bot API; the
tests push updates and assert on the Bot API calls the bot made and on the database.
"""

from __future__ import annotations

import asyncio

from core.chats import create_chat
from core.requests import create_request, get_request, take_request
from core.users import set_active_request
from db.models import (
    ChatMessage,
    CustomerRequest,
    RequestAttachment,
    RequestMessage,
    Source,
    User,
)
from tests.bot_handlers_support import (
    answer_for,
    buttons_of,
    card_for,
    eventually,
    media_relayed,
    reply_containing,
    running_bot,
    texts_to,
)

ADMIN_TG, ADMIN2_TG, DIRECTOR_TG, STRANGER_TG, CUSTOMER_TG = 7001, 7002, 7003, 7999, 5001


async def _people(make_user):
    admin = await make_user("admin", username="anna", first_name="Anna", telegram_id=ADMIN_TG)
    admin2 = await make_user("admin", username="boris", first_name="Boris", telegram_id=ADMIN2_TG)
    customer = await make_user("customer", username="ivan", first_name="Ivan", telegram_id=CUSTOMER_TG)
    return admin, admin2, customer


async def test_linked_admin_takes_request_from_its_card(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed")
        card = await card_for(fake, req.id)
        update = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id,
                                      card.result["message_id"], f"req:take:{req.id}")
        answer = await answer_for(fake, update)
        assert not answer.params.get("show_alert")
        fresh = await CustomerRequest.get(id=req.id)
        assert fresh.status == "in_progress" and fresh.assigned_admin_id == admin.id
        # the relay edits the card in place: no Take button any more, a Complete one instead
        edits = await fake.wait_for(
            "editMessageText",
            where=lambda c: c.params.get("message_id") == card.result["message_id"],
        )
        assert f"req:done:{req.id}" in buttons_of(edits[-1])
        assert f"req:take:{req.id}" not in buttons_of(edits[-1])


async def test_unlinked_user_gets_alert_and_nothing_changes(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    _, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed")
        card = await card_for(fake, req.id)
        update = fake.callback_update(fake.user(STRANGER_TG, "Mallory"), fake.admin_chat_id,
                                      card.result["message_id"], f"req:take:{req.id}")
        answer = await answer_for(fake, update)
        assert answer.params.get("show_alert") is True
        assert "не привязан" in answer.params.get("text", "")
    fresh = await CustomerRequest.get(id=req.id)
    assert fresh.status == "open" and fresh.assigned_admin_id is None


async def test_customer_pressing_take_gets_alert(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    _, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed")
        card = await card_for(fake, req.id)
        update = fake.callback_update(fake.user(CUSTOMER_TG, "Ivan"), fake.admin_chat_id,
                                      card.result["message_id"], f"req:take:{req.id}")
        answer = await answer_for(fake, update)
        assert answer.params.get("show_alert") is True
    assert (await CustomerRequest.get(id=req.id)).assigned_admin_id is None


async def test_two_admins_take_at_once_one_wins_other_told_who(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, admin2, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed")
        card = await card_for(fake, req.id)
        mid = card.result["message_id"]
        first = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id, mid, f"req:take:{req.id}")
        second = fake.callback_update(fake.user(ADMIN2_TG, "Boris"), fake.admin_chat_id, mid, f"req:take:{req.id}")
        answers = [await answer_for(fake, first), await answer_for(fake, second)]
    fresh = await CustomerRequest.get(id=req.id).prefetch_related("assigned_admin")
    winner = fresh.assigned_admin
    assert winner.id in (admin.id, admin2.id)
    alerts = [a for a in answers if a.params.get("show_alert")]
    assert len(alerts) == 1 and winner.first_name in alerts[0].params["text"]
    assert await RequestMessage.filter(request_id=req.id, message_type="system").count() == 1


async def test_assignee_completes_request_with_button_and_others_are_refused(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed")
        card = await card_for(fake, req.id)
        await take_request(admin, req.id)
        mid = card.result["message_id"]
        denied = fake.callback_update(fake.user(ADMIN2_TG, "Boris"), fake.admin_chat_id, mid, f"req:done:{req.id}")
        assert (await answer_for(fake, denied)).params.get("show_alert") is True
        assert (await CustomerRequest.get(id=req.id)).status == "in_progress"
        done = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id, mid, f"req:done:{req.id}")
        assert not (await answer_for(fake, done)).params.get("show_alert")
    assert (await CustomerRequest.get(id=req.id)).status == "completed"


async def test_unknown_button_is_still_answered(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    await _people(make_user)
    async with running_bot(telegram_settings):
        update = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id, 1, "req:take:999999")
        answer = await answer_for(fake, update)
        assert answer.params.get("show_alert") is True
        other = fake.callback_update(fake.user(ADMIN_TG, "Anna"), fake.admin_chat_id, 1, "garbage")
        await answer_for(fake, other)


async def test_queue_mine_stats_and_help_answer(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, _, customer = await _people(make_user)
    old = await create_request(customer, title="Oldest waiting", description="d")
    await create_request(customer, title="Newer waiting", description="d")
    taken = await create_request(customer, title="Mine in progress", description="d")
    await take_request(admin, taken.id)
    anna = fake.user(ADMIN_TG, "Anna")
    group = fake.admin_chat_id
    async with running_bot(telegram_settings):
        fake.message_update(group, anna, "/queue")
        queue = await reply_containing(fake, group, "Oldest waiting")
        text = queue.params["text"]
        assert text.index("Oldest waiting") < text.index("Newer waiting")
        assert "Mine in progress" not in text
        assert f"req:take:{old.id}" in buttons_of(queue)
        fake.message_update(group, anna, "/mine")
        mine = await reply_containing(fake, group, "Mine in progress")
        assert f"req:done:{taken.id}" in buttons_of(mine)
        fake.message_update(group, anna, "/stats")
        stats = await reply_containing(fake, group, "Всего")
        assert "Anna" in stats.params["text"]  # per-admin load
        fake.message_update(group, anna, "/help")
        await reply_containing(fake, group, "/queue")
        # a stranger gets told how to get linked, not the queue
        fake.message_update(group, fake.user(STRANGER_TG, "Mallory"), "/queue")
        await reply_containing(fake, group, "/link")


async def test_admin_reply_in_thread_is_stored_and_sent_to_customer(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed", source=Source.telegram)
        card = await card_for(fake, req.id)
        await take_request(admin, req.id)
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "Перезагрузите принтер",
                            reply_to_message_id=card.result["message_id"])
        msg = await eventually(lambda: RequestMessage.filter(request_id=req.id, content="Перезагрузите принтер").first())
        assert msg.sender_id == admin.id and msg.sender_type == "admin" and not msg.is_internal
        assert msg.source == Source.telegram
        await reply_containing(fake, CUSTOMER_TG, "Перезагрузите принтер")


async def test_note_is_internal_and_never_reaches_customer(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Printer", description="jammed", source=Source.telegram)
        card = await card_for(fake, req.id)
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "/note клиент VIP, не торопить",
                            reply_to_message_id=card.result["message_id"])
        note = await eventually(lambda: RequestMessage.filter(request_id=req.id, is_internal=True).first())
        assert note.content == "клиент VIP, не торопить" and note.sender_id == admin.id
        await reply_containing(fake, fake.admin_chat_id, f"#{req.id}")
        # a normal reply afterwards does reach the customer; the note never did
        await take_request(admin, req.id)
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "Уже смотрим",
                            reply_to_message_id=card.result["message_id"])
        await reply_containing(fake, CUSTOMER_TG, "Уже смотрим")
        await asyncio.sleep(0.3)
    assert not any("VIP" in t for t in texts_to(fake, CUSTOMER_TG))


async def test_photo_and_document_relay_both_ways(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, _, customer = await _people(make_user)
    ivan = fake.user(CUSTOMER_TG, "Ivan")
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Screen", description="broken", source=Source.telegram)
        await set_active_request(customer, req.id)
        card = await card_for(fake, req.id)
        await take_request(admin, req.id)
        # customer -> admin group: a photo with a caption
        fake.message_update(CUSTOMER_TG, ivan, photo=fake.photo("ph-1", b"\x89PNG customer photo"),
                            caption="Вот так выглядит")
        att = await eventually(lambda: RequestAttachment.filter(request_id=req.id).first())
        assert att.content_type == "image/jpeg" and att.size == len(b"\x89PNG customer photo")
        msg = await RequestMessage.get(id=att.message_id)
        assert msg.message_type == "image" and msg.content == "Вот так выглядит" and msg.sender_id == customer.id
        await media_relayed(fake, fake.admin_chat_id)
        # admin -> customer: a document as a reply to the card
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"),
                            document=fake.document("doc-1", b"%PDF manual", "manual.pdf", "application/pdf"),
                            caption="Инструкция", reply_to_message_id=card.result["message_id"])
        doc = await eventually(lambda: RequestAttachment.filter(request_id=req.id, name="manual.pdf").first())
        assert doc.content_type == "application/pdf" and doc.size == len(b"%PDF manual")
        reply = await RequestMessage.get(id=doc.message_id)
        assert reply.message_type == "file" and reply.sender_id == admin.id and reply.content == "Инструкция"
        await media_relayed(fake, CUSTOMER_TG)


async def test_forum_topic_message_goes_to_its_request(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    fake.forum = True
    # getChat must answer a full ChatFullInfo for the runtime to see the forum
    fake.set_chat(fake.admin_chat_id, type="supergroup", title="Support", is_forum=True,
                  accent_color_id=0, max_reaction_count=11,
                  accepted_gift_types={"unlimited_gifts": False, "limited_gifts": False,
                                       "unique_gifts": False, "premium_subscription": False,
                                       "gifts_from_channels": False})
    admin, _, customer = await _people(make_user)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Topic", description="d", source=Source.telegram)
        topic = await fake.wait_for("createForumTopic")
        topic_id = topic[0].result["message_thread_id"]
        await card_for(fake, req.id)
        await take_request(admin, req.id)
        fake.message_update(fake.admin_chat_id, fake.user(ADMIN_TG, "Anna"), "Ответ в теме",
                            message_thread_id=topic_id)
        await eventually(lambda: RequestMessage.filter(request_id=req.id, content="Ответ в теме").exists())
        await reply_containing(fake, CUSTOMER_TG, "Ответ в теме")


async def test_director_links_telegram_account_of_an_admin(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    director = await make_user("director", username="dora", telegram_id=DIRECTOR_TG)
    await make_user("admin", username="newbie")
    await make_user("admin", username="other")
    dora = fake.user(DIRECTOR_TG, "Dora")
    group = fake.admin_chat_id
    async with running_bot(telegram_settings):
        hello = fake.message_update(group, fake.user(8100, "Newbie", username="newbie_tg"), "Привет всем")
        fake.message_update(group, dora, "/link newbie",
                            reply_to_message_id=hello["message"]["message_id"])
        await reply_containing(fake, group, "8100")
        linked = await User.get(username="newbie")
        assert linked.telegram_id == 8100 and linked.telegram_username == "newbie_tg"
        fake.message_update(group, dora, "/link other 8200")
        await reply_containing(fake, group, "8200")
        assert (await User.get(username="other")).telegram_id == 8200
        # an admin is not allowed to link
        fake.message_update(group, fake.user(8100, "Newbie"), "/link other 8300")
        await fake.wait_for("sendMessage", where=lambda c: c.params.get("chat_id") == group
                            and "директор" in str(c.params.get("text", "")))
    assert (await User.get(username="other")).telegram_id == 8200
    assert director.id


async def test_bound_group_messages_reach_the_admin_chat(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, _, _ = await _people(make_user)
    await make_user("director", username="olga", first_name="Olga", telegram_id=DIRECTOR_TG)
    chat = await create_chat(admin, name="Дежурные")
    team_group = -1002000000002
    anna = fake.user(ADMIN_TG, "Anna")
    async with running_bot(telegram_settings):
        # binding is for directors (tests/test_identity_object_rules.py)
        fake.message_update(team_group, fake.user(DIRECTOR_TG, "Olga"), f"/bind {chat.id}")
        await reply_containing(fake, team_group, "Дежурные")
        fake.message_update(team_group, anna, "Кто сегодня дежурит?")
        msg = await eventually(lambda: ChatMessage.filter(chat_id=chat.id, content="Кто сегодня дежурит?").first())
        assert msg.sender_id == admin.id and msg.source == Source.telegram
        stranger = fake.user(STRANGER_TG, "Mallory")
        fake.message_update(team_group, stranger, "hi")
        fake.message_update(team_group, stranger, "hi again")
        await reply_containing(fake, team_group, "Mallory")
        await asyncio.sleep(0.5)
    assert sum("Mallory" in t for t in texts_to(fake, team_group)) == 1
    assert await ChatMessage.filter(chat_id=chat.id).count() == 1


async def test_customer_new_flow_posts_a_card_in_admin_group(telegram_settings, fake_telegram):
    fake = fake_telegram
    who = fake.user(CUSTOMER_TG, "Ivan")
    async with running_bot(telegram_settings):
        fake.message_update(CUSTOMER_TG, who, "/new")
        await reply_containing(fake, CUSTOMER_TG, "тему")
        fake.message_update(CUSTOMER_TG, who, "Нет доступа")
        await reply_containing(fake, CUSTOMER_TG, "подробнее")
        fake.message_update(CUSTOMER_TG, who, "Пароль не подходит")
        ask = await fake.wait_for("sendMessage", where=lambda c: "cat:account" in buttons_of(c))
        fake.callback_update(who, CUSTOMER_TG, ask[0].result["message_id"], "cat:account")
        req = await eventually(lambda: CustomerRequest.filter(title="Нет доступа").first())
        card = await card_for(fake, req.id)
        assert "Нет доступа" in card.params["text"]
    staff_view = await get_request(await User.get(telegram_id=CUSTOMER_TG), req.id)
    assert staff_view.category == "account"


async def test_director_reassigns_request_with_assign_command(telegram_settings, fake_telegram, make_user):
    fake = fake_telegram
    admin, admin2, customer = await _people(make_user)
    await make_user("director", username="dora", first_name="Dora", telegram_id=DIRECTOR_TG)
    req = await create_request(customer, title="Reassign me", description="d")
    await take_request(admin, req.id)
    group = fake.admin_chat_id
    async with running_bot(telegram_settings):
        fake.message_update(group, fake.user(ADMIN_TG, "Anna"), f"/assign {req.id} boris")
        await reply_containing(fake, group, "директор")
        assert (await CustomerRequest.get(id=req.id)).assigned_admin_id == admin.id
        fake.message_update(group, fake.user(DIRECTOR_TG, "Dora"), f"/assign {req.id} boris")
        await reply_containing(fake, group, "Boris")
    assert (await CustomerRequest.get(id=req.id)).assigned_admin_id == admin2.id


async def test_thread_button_shows_summary_and_latest_messages_in_admins_language(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    await make_user("admin", username="emma", first_name="Emma", telegram_id=ADMIN_TG, language="en")
    customer = await make_user("customer", username="ivan", first_name="Ivan", telegram_id=CUSTOMER_TG)
    async with running_bot(telegram_settings):
        req = await create_request(customer, title="Wi-Fi drops", description="every hour")
        card = await card_for(fake, req.id)
        await set_active_request(customer, req.id)
        fake.message_update(CUSTOMER_TG, fake.user(CUSTOMER_TG, "Ivan"), "Again <b>now</b>")
        await eventually(lambda: RequestMessage.filter(request_id=req.id, sender_id=customer.id).exists())
        update = fake.callback_update(fake.user(ADMIN_TG, "Emma"), fake.admin_chat_id,
                                      card.result["message_id"], f"req:open:{req.id}")
        await answer_for(fake, update)
        summary = await reply_containing(fake, fake.admin_chat_id, "Recent messages")
    text = summary.params["text"]
    assert "Wi-Fi drops" in text and "Status: Open" in text
    assert "Again &lt;b&gt;now&lt;/b&gt;" in text  # customer content is escaped
