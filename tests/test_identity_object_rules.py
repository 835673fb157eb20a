"""Object rules (SPEC "Identity and access"), on REST and, where the action exists there, on
Telegram (fake Bot API). SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from core import chats, communications
from core.requests import create_request, post_message
from db.models import AdminChat, ChatType, CustomerRequest, RequestAttachment, RequestMessage
from tests.api_helpers import ADMIN, CUSTOMER, new_request
from tests.bot_handlers_support import reply_containing, running_bot

CHATS = "/api/admin/chats/"
COMMS = "/api/admin/internal-communications/"


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --- deleting a request ---------------------------------------------------------------------


async def test_only_directors_delete_requests_and_their_files_go_too(
    api, make_user, token_for, settings
):
    customer, admin, director = (await make_user("customer"), await make_user("admin"),
                                 await make_user("director"))
    tc, ta, td = await token_for(customer), await token_for(admin), await token_for(director)
    req = await new_request(api, tc)
    r = await api.post(f"{CUSTOMER}{req['id']}/attachments/", tc,
                       files={"file": ("scan.pdf", b"%PDF-1.4 secret", "application/pdf")})
    assert r.status_code == 201
    folder = settings.media_root / "request_attachments" / str(req["id"])
    assert len(files_under(folder)) == 1
    # an admin may manage the open request, but not delete it
    r = await api.request("DELETE", f"{ADMIN}{req['id']}/", ta)
    assert r.status_code == 403 and "директор" in r.json()["detail"]
    await api.post(f"{ADMIN}{req['id']}/take/", ta)
    assert (await api.request("DELETE", f"{ADMIN}{req['id']}/", ta)).status_code == 403
    assert await CustomerRequest.filter(id=req["id"]).exists()
    assert (await api.request("DELETE", f"{ADMIN}{req['id']}/", td)).status_code == 204
    assert not await CustomerRequest.filter(id=req["id"]).exists()
    assert not await RequestAttachment.filter(request_id=req["id"]).exists()
    assert not folder.exists() and files_under(settings.media_root) == []


# --- admin chats ----------------------------------------------------------------------------


async def test_only_the_creator_or_a_director_renames_retypes_or_closes_a_chat(
    api, make_user, token_for
):
    creator, member, director = (await make_user("admin"), await make_user("admin"),
                                 await make_user("director"))
    chat = await chats.create_chat(creator, name="Private", chat_type="private",
                                   participant_ids=[member.id])
    tm = await token_for(member)
    url = f"{CHATS}{chat.id}/"
    for change in ({"chat_type": "general"}, {"name": "Hijacked"}, {"is_active": False}):
        r = await api.request("PATCH", url, tm, json=change)
        assert r.status_code == 403 and "создатель" in r.json()["detail"], change
    fresh = await AdminChat.get(id=chat.id)
    assert (fresh.name, fresh.chat_type, fresh.is_active) == ("Private", ChatType.private, True)
    # so an outsider still cannot join the private chat and read it
    outsider = await make_user("admin")
    assert (await api.post(f"{url}join/", await token_for(outsider))).status_code == 403
    r = await api.request("PATCH", url, await token_for(creator), json={"name": "Renamed"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    # a director need not take part in it
    r = await api.request("PATCH", url, await token_for(director), json={"chat_type": "department"})
    assert r.status_code == 200 and r.json()["chat_type"] == "department"


# --- internal communications ----------------------------------------------------------------


async def test_only_the_sender_edits_a_communication_and_participants_are_staff(
    api, make_user, token_for
):
    sender, participant, director = (await make_user("admin"), await make_user("admin"),
                                     await make_user("director"))
    customer = await make_user("customer")
    ts, tp, td = await token_for(sender), await token_for(participant), await token_for(director)
    body = {"from_department": "support", "to_department": "billing", "subject": "Refund",
            "content": "Please check", "participants": [participant.id, customer.id]}
    r = await api.post(COMMS, ts, json=body)
    assert r.status_code == 400 and "participants" in r.json()
    r = await api.post(COMMS, ts, json={**body, "participants": [participant.id]})
    assert r.status_code == 201, r.text
    comm = r.json()
    url = f"{COMMS}{comm['id']}/"
    for who in (tp, td):
        for change in ({"subject": "Rewritten"}, {"content": "Rewritten"},
                       {"participants": [participant.id, director.id]}):
            r = await api.request("PATCH", url, who, json=change)
            assert r.status_code == 403 and "отправитель" in r.json()["detail"], change
    after = (await api.get(url, ts)).json()
    assert (after["subject"], after["content"], after["participants"]) == (
        "Refund", "Please check", [participant.id])
    # a participant answers by moving the status
    r = await api.request("PATCH", url, tp, json={"status": "read"})
    assert r.status_code == 200 and r.json()["status"] == "read"
    # the sender edits, but cannot add a customer
    r = await api.request("PATCH", url, ts, json={"participants": [customer.id]})
    assert r.status_code == 400 and "participants" in r.json()
    r = await api.request("PATCH", url, ts, json={"subject": "Refund #2"})
    assert r.status_code == 200 and r.json()["subject"] == "Refund #2"
    # the domain refuses the same for every channel
    assert (await communications.get_communication(sender, comm["id"]))["participants"] == [
        participant.id]


# --- uploads --------------------------------------------------------------------------------


async def test_a_staff_upload_obeys_the_rule_of_a_staff_message(api, make_user, token_for, settings):
    customer, owner, other = (await make_user("customer"), await make_user("admin"),
                              await make_user("admin"))
    tc, to, tx = await token_for(customer), await token_for(owner), await token_for(other)
    req = await new_request(api, tc)
    await api.post(f"{ADMIN}{req['id']}/take/", to)
    public = (await api.post(f"{CUSTOMER}{req['id']}/messages/", tc, json={"content": "hi"})).json()
    note = await post_message(other, req["id"], "internal", is_internal=True)
    url = f"{ADMIN}{req['id']}/attachments/"
    f = {"file": ("leak.txt", b"visible to the customer", "text/plain")}
    # ?is_internal=1 plus a public message: the file would be customer-visible
    r = await api.post(f"{url}?is_internal=1", tx, files=f, data={"message": str(public["id"])})
    assert r.status_code == 403
    r = await api.post(url, tx, files=f, data={"message": str(public["id"]), "is_internal": "true"})
    assert r.status_code == 403
    assert not await RequestAttachment.filter(message_id=public["id"]).exists()
    assert files_under(settings.media_root) == []
    seen = (await api.get(f"{CUSTOMER}{req['id']}/attachments/", tc)).json()
    assert seen == []
    # an internal note takes files from any staff member; the assignee may add to public ones
    r = await api.post(f"{url}?is_internal=1", tx, files=f, data={"message": str(note.id)})
    assert r.status_code == 201
    r = await api.post(url, to, files=f, data={"message": str(public["id"])})
    assert r.status_code == 201


async def test_a_customer_cannot_add_files_to_an_older_message(api, make_user, token_for, settings):
    customer = await make_user("customer")
    tc = await token_for(customer)
    req = await new_request(api, tc)
    old = (await api.post(f"{CUSTOMER}{req['id']}/messages/", tc, json={"content": "old"})).json()
    r = await api.post(f"{CUSTOMER}{req['id']}/attachments/", tc,
                       files={"file": ("late.txt", b"late", "text/plain")},
                       data={"message": str(old["id"])})
    assert r.status_code == 400 and "message" in r.json()
    assert not await RequestAttachment.filter(request_id=req["id"]).exists()
    assert files_under(settings.media_root) == []
    # as a new message it is fine (and announced to staff like any message)
    r = await api.post(f"{CUSTOMER}{req['id']}/attachments/", tc,
                       files={"file": ("late.txt", b"late", "text/plain")})
    assert r.status_code == 201 and r.json()["message"] != old["id"]


# --- Telegram -------------------------------------------------------------------------------

ADMIN_TG, DIRECTOR_TG = 7101, 7102
TEAM_GROUP = -1002000000777


async def test_only_directors_bind_an_admin_chat_to_a_telegram_group(
    telegram_settings, fake_telegram, make_user
):
    fake = fake_telegram
    admin = await make_user("admin", username="anna", first_name="Anna", telegram_id=ADMIN_TG)
    await make_user("director", username="olga", first_name="Olga", telegram_id=DIRECTOR_TG)
    chat = await chats.create_chat(admin, name="Дежурные")
    async with running_bot(telegram_settings):
        fake.message_update(TEAM_GROUP, fake.user(ADMIN_TG, "Anna"), f"/bind {chat.id}")
        await reply_containing(fake, TEAM_GROUP, "директору")
        assert (await AdminChat.get(id=chat.id)).telegram_chat_id is None
        fake.message_update(TEAM_GROUP, fake.user(DIRECTOR_TG, "Olga"), f"/bind {chat.id}")
        await reply_containing(fake, TEAM_GROUP, "Дежурные")
    assert (await AdminChat.get(id=chat.id)).telegram_chat_id == TEAM_GROUP


async def test_telegram_album_is_one_announced_message(telegram_settings, fake_telegram, make_user):
    """The bot's albums no longer add files to an existing message: all files are stored
    as one new message in one call."""
    from core.users import set_active_request
    from db.models import Event
    from tests.bot_handlers_support import eventually

    fake = fake_telegram
    customer = await make_user("customer", telegram_id=5301)
    req = await create_request(customer, title="Скриншоты", description="d")
    await set_active_request(customer, req.id)
    who = fake.user(5301, "Ivan")
    async with running_bot(telegram_settings):
        for n in (1, 2, 3):
            extra = {"caption": "Три файла"} if n == 1 else {}
            fake.message_update(5301, who, photo=fake.photo(f"p{n}", b"\x89PNG " + bytes([n])),
                                media_group_id="album-9", **extra)
        await eventually(lambda: RequestAttachment.filter(request_id=req.id).count(), timeout=15)
        await eventually(
            lambda: _count_is(RequestAttachment.filter(request_id=req.id), 3), timeout=15)
    msgs = await RequestMessage.filter(request_id=req.id, message_type="image")
    assert len(msgs) == 1 and msgs[0].content == "Три файла"
    event = await Event.filter(type="new_message").order_by("-id").first()
    assert event.payload["id"] == msgs[0].id and len(event.payload["attachments"]) == 3


async def _count_is(qs, n: int) -> bool:
    return await qs.count() == n
