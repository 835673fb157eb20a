"""The request lifecycle table (core.lifecycle) on every channel that can try a move, and
the thread's one writer (core.thread) keeping the web form's writes atomic."""

from __future__ import annotations

import httpx
import pytest

from core import lifecycle
from core import requests as svc
from db.models import CustomerRequest, Event, RequestAttachment, RequestMessage, Status, User

ADMIN = "/api/admin/customer-requests/"


@pytest.fixture
async def desk(make_user, token_for):
    people = {
        "admin": await make_user("admin", first_name="Ivan"),
        "director": await make_user("director", first_name="Olga"),
        "customer": await make_user("customer"),
    }
    tokens = {k: await token_for(u) for k, u in people.items()}
    return people, tokens


async def in_status(people, status: str, *, assigned: bool = True) -> int:
    """A request brought to `status` through the legal moves."""
    req = await svc.create_request(people["customer"], title="t", description="d")
    if status == "open":
        return req.id
    await svc.take_request(people["admin"], req.id)
    if status != "in_progress":
        await svc.complete_request(people["admin"], req.id)
    if status == "closed":
        await svc.close_request(people["director"], req.id)
    if not assigned:  # data from before the table (an old direct PATCH), kept as it is
        await CustomerRequest.filter(id=req.id).update(assigned_admin_id=None)
    return req.id


async def snapshot(rid: int) -> tuple:
    req = await CustomerRequest.get(id=rid)
    return (req.status, req.assigned_admin_id, req.completed_at, req.status_changed_at,
            await RequestMessage.filter(request_id=rid).count(), await Event.all().count())


ILLEGAL_PATCHES = [
    ("open", "in_progress"),  # no assignee: take or reassign instead
    ("open", "completed"),
    ("open", "closed"),
    ("in_progress", "closed"),
    ("completed", "open"),  # assigned: reopen goes to in_progress
    ("closed", "completed"),
    ("closed", "open"),
]


@pytest.mark.parametrize("current,target", ILLEGAL_PATCHES)
async def test_directors_patch_refuses_moves_outside_the_table(api, desk, current, target):
    people, tok = desk
    rid = await in_status(people, current)
    before = await snapshot(rid)
    r = await api.request("PATCH", f"{ADMIN}{rid}/", tok["director"], json={"status": target})
    assert r.status_code == 400, r.text
    message = r.json()["status"][0]
    assert "Отсюда можно" in message
    req = await CustomerRequest.get(id=rid)
    for allowed in lifecycle.direct_targets(req):
        assert f"({allowed.value})" in message  # the allowed moves are named
    assert await snapshot(rid) == before


async def test_patch_refusal_speaks_the_callers_language(api, desk):
    people, tok = desk
    await User.filter(id=people["director"].id).update(language="en")
    rid = await in_status(people, "completed")
    r = await api.request("PATCH", f"{ADMIN}{rid}/", tok["director"], json={"status": "open"})
    assert r.status_code == 400
    assert r.json()["status"] == [
        'A request cannot move from "Completed" to "Open". Allowed from here: '
        '«Closed» (closed), «In progress» (in_progress)'
    ]


async def test_in_progress_without_assignee_is_never_reachable(api, desk):
    people, tok = desk
    rid = await in_status(people, "completed", assigned=False)
    r = await api.request("PATCH", f"{ADMIN}{rid}/", tok["director"], json={"status": "in_progress"})
    assert r.status_code == 400 and "(open)" in r.json()["status"][0]
    # reopen (REST action) takes the request back to open, not to in_progress
    r = await api.post(f"{ADMIN}{rid}/reopen/", tok["director"])
    assert r.status_code == 200 and r.json()["status"] == "open"
    assert (await CustomerRequest.get(id=rid)).assigned_admin_id is None


@pytest.mark.parametrize("current,target,assignee", [
    ("in_progress", "completed", "admin"),
    ("in_progress", "open", None),
    ("completed", "closed", "admin"),
    ("completed", "in_progress", "admin"),
    ("closed", "in_progress", "admin"),
])
async def test_directors_legal_patches_still_work(api, desk, current, target, assignee):
    people, tok = desk
    rid = await in_status(people, current)
    r = await api.request("PATCH", f"{ADMIN}{rid}/", tok["director"],
                          json={"status": target, "priority": "urgent"})
    assert r.status_code == 200, r.text
    req = await CustomerRequest.get(id=rid)
    assert req.status == target and req.priority == "urgent"
    assert req.assigned_admin_id == (people[assignee].id if assignee else None)
    if target == "completed":
        assert req.completed_at is not None
    last = await RequestMessage.filter(request_id=rid).order_by("-id").first()
    assert last.message_type == "system" and "Статус запроса изменен" in last.content
    types = await Event.filter(type="request_status_changed").values_list("payload", flat=True)
    assert {"previous_status": current, "status": target} in [
        {k: p[k] for k in ("previous_status", "status")} for p in types if p["id"] == rid
    ]


ILLEGAL_ACTIONS = [
    # (status, action, who, code)
    ("in_progress", "take", "director", 400),
    ("completed", "take", "admin", 400),
    ("open", "complete", "director", 400),
    ("in_progress", "complete", "customer", 403),
    ("closed", "complete", "director", 400),
    ("open", "close", "director", 400),
    ("in_progress", "close", "director", 400),
    ("completed", "close", "admin", 403),
    ("open", "reopen", "director", 400),
    ("in_progress", "reopen", "director", 400),
    ("completed", "reopen", "admin", 403),
    ("completed", "reassign", "director", 400),
    ("closed", "reassign", "director", 400),
    ("open", "reassign", "admin", 403),
]


@pytest.mark.parametrize("current,action,who,code", ILLEGAL_ACTIONS)
async def test_rest_actions_refuse_moves_outside_the_table(api, desk, current, action, who, code):
    people, tok = desk
    rid = await in_status(people, current)
    before = await snapshot(rid)
    body = {"admin_id": people["admin"].id} if action == "reassign" else None
    r = await api.post(f"{ADMIN}{rid}/{action}/", tok[who], json=body)
    assert r.status_code == code, r.text
    assert await snapshot(rid) == before


async def test_the_table_keeps_its_invariants():
    for move in lifecycle.MOVES:
        if move.to == Status.open:
            assert move.assignee == lifecycle.CLEAR or move.assigned is False, move
        if move.to == Status.in_progress:
            assert move.assignee in (lifecycle.ACTOR, lifecycle.GIVEN) or move.assigned, move
        if move.to == Status.completed:
            assert move.completes, move
    assert not any(m.direct and m.to == Status.completed and Status.open in m.sources
                   for m in lifecycle.MOVES)


# --- the web form's writes are one transaction each -------------------------------------------


FORM = {"name": "Анна Петрова", "email": "atomic@example.com", "title": "Атомарно",
        "description": "Всё или ничего", "category": "billing"}


@pytest.fixture
async def web(settings):
    from bootstrap.app import create_app
    from tests.live import serve

    async with serve(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client


def break_files(monkeypatch):
    from core import attachments

    async def broken(*args, **kwargs):
        raise RuntimeError("disk full of surprises")

    monkeypatch.setattr(attachments, "attach_in", broken)


def stored_files(settings) -> list:
    root = settings.media_root / "request_attachments"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_web_create_with_a_file_is_all_or_nothing(web, settings, monkeypatch):
    events_before = await Event.all().count()
    break_files(monkeypatch)
    r = await web.post("/api/public/requests/", data=FORM, files=[("attachments", ("a.txt", b"hi"))],
                       headers={"Accept": "application/json"})
    assert r.status_code == 500
    assert not await CustomerRequest.filter(title="Атомарно").exists()
    assert not await User.filter(email="atomic@example.com").exists()  # the web contact too
    assert await Event.all().count() == events_before
    assert stored_files(settings) == []
    monkeypatch.undo()
    r = await web.post("/api/public/requests/", data=FORM, files=[("attachments", ("a.txt", b"hi"))],
                       headers={"Accept": "application/json"})
    assert r.status_code == 201 and r.json()["failed_attachments"] == []
    req = await CustomerRequest.get(access_key=r.json()["access_key"])
    assert await RequestAttachment.filter(request_id=req.id).count() == 1
    assert (await CustomerRequest.get(id=req.id)).messages_count == 1


async def test_web_reply_with_text_and_file_is_all_or_nothing(web, settings, monkeypatch):
    r = await web.post("/api/public/requests/", data=FORM, headers={"Accept": "application/json"})
    key = r.json()["access_key"]
    req = await CustomerRequest.get(access_key=key)
    before = (await RequestMessage.filter(request_id=req.id).count(), await Event.all().count())
    break_files(monkeypatch)
    r = await web.post(f"/api/public/requests/{key}/messages/", data={"content": "Вот скан"},
                       files=[("attachments", ("scan.png", b"\x89PNG"))],
                       headers={"Accept": "application/json"})
    assert r.status_code == 500
    assert (await RequestMessage.filter(request_id=req.id).count(), await Event.all().count()) == before
    assert (await CustomerRequest.get(id=req.id)).messages_count == 0
    assert stored_files(settings) == []
    monkeypatch.undo()
    r = await web.post(f"/api/public/requests/{key}/messages/", data={"content": "Вот скан"},
                       files=[("attachments", ("scan.png", b"\x89PNG"))],
                       headers={"Accept": "application/json"})
    assert r.status_code == 201, r.text
    assert [m["content"] for m in r.json()["messages"]] == ["Вот скан", "Вложение: scan.png"]
    assert (await CustomerRequest.get(id=req.id)).messages_count == 2


async def test_page_keys_have_the_shape_new_access_key_makes(web):
    from core.security import ACCESS_KEY_LENGTH, is_access_key, new_access_key

    assert ACCESS_KEY_LENGTH == len(new_access_key()) == 43
    assert is_access_key(new_access_key())
    for bad in ("a" * 16, "a" * 42, "a" * 44, "a" * 64, "a" * 43 + "!"):
        assert not is_access_key(bad)
        r = await web.get(f"/api/public/requests/{bad}/")
        assert r.status_code == 404


# --- rule constants defined once ---------------------------------------------------------------


def test_title_limit_is_the_columns_width_and_the_forms_maxlength():
    from pathlib import Path

    from core.limits import CEILINGS, TITLE_MAX, Limits

    assert CustomerRequest._meta.fields_map["title"].max_length == TITLE_MAX
    assert Limits().title == CEILINGS["title"] == TITLE_MAX
    form = (Path(__file__).parent.parent / "api/web/templates/form.html").read_text()
    assert 'maxlength="{{ max_title }}"' in form and 'maxlength="200"' not in form


def test_request_buttons_have_one_callback_spelling():
    from bot.keyboards import RequestAction, request_callback
    from scheduler.jobs import take_buttons
    from telegram_delivery.cards import card_keyboard

    assert request_callback("take", 7) == "req:take:7"
    assert RequestAction.unpack(request_callback("done", 7)) == RequestAction(action="done", id=7)
    card = card_keyboard({"id": 7, "status": "open"})["inline_keyboard"][0]
    assert card[0]["callback_data"] == "req:take:7"
    assert take_buttons([7], "ru")["inline_keyboard"][0][0]["callback_data"] == "req:take:7"


def test_completed_today_has_one_day_boundary():
    from datetime import UTC, datetime

    from core.staff_stats import today_start

    now = datetime(2026, 3, 1, 21, 30, tzinfo=UTC)  # already 2 March in Moscow
    assert today_start("Europe/Moscow", now) == datetime(2026, 3, 1, 21, 0, tzinfo=UTC)
    assert today_start("UTC", now) == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
