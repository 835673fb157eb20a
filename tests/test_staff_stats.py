"""Per-admin figures: stats/admins/, the same numbers in the digest and in /stats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import requests as svc
from core import staff_stats
from core.csat import rate_request
from db.models import CustomerRequest, Status
from tests.api_helpers import ADMIN, count_queries

URL = f"{ADMIN}stats/admins/"


async def _request(customer, admin, *, status=Status.in_progress, created=None, completed=None,
                   first_response=None, responder=None, rating=None):
    req = await svc.create_request(customer, title="t", description="d")
    now = datetime.now(UTC)
    await CustomerRequest.filter(id=req.id).update(
        status=status, assigned_admin_id=admin.id if admin else None,
        created_at=created or now - timedelta(days=1), completed_at=completed,
        first_response_at=first_response, first_response_by_id=(responder or admin).id if first_response else None,
        rating=rating,
    )
    return req


async def test_first_staff_reply_is_remembered_once_and_notes_do_not_count(settings, make_user):
    customer = await make_user("customer")
    anna, boris = await make_user("admin"), await make_user("admin")
    req = await svc.create_request(customer, title="t", description="d")
    await svc.post_message(customer, req.id, "hello?")
    await svc.post_message(boris, req.id, "internal", is_internal=True)
    await svc.take_request(anna, req.id)  # the system message is no reply either
    assert (await CustomerRequest.get(id=req.id)).first_response_at is None
    first = await svc.post_message(anna, req.id, "On it")
    await svc.post_message(anna, req.id, "Still on it")
    fresh = await CustomerRequest.get(id=req.id)
    assert fresh.first_response_at == first.created_at and fresh.first_response_by_id == anna.id
    await svc.complete_request(anna, req.id)
    assert (await CustomerRequest.get(id=req.id)).completed_at is not None


async def test_stats_admins_gives_each_admins_figures(api, make_user, token_for):
    customer = await make_user("customer")
    anna = await make_user("admin", first_name="Anna", last_name="A")
    boris = await make_user("admin", first_name="Boris", last_name="B")
    await make_user("director", first_name="Idle", last_name="Boss")
    now = datetime.now(UTC)
    for _ in range(2):
        await _request(customer, anna)
    # completed just now (today), 3 days ago and since closed, 10 days ago (outside 7 days)
    await _request(customer, anna, status=Status.completed, completed=now - timedelta(minutes=1), rating=5)
    await _request(customer, anna, status=Status.closed, completed=now - timedelta(days=3), rating=4)
    await _request(customer, anna, status=Status.closed, completed=now - timedelta(days=10), rating=1)
    # reopened since its completion: not counted as completed
    await _request(customer, anna, status=Status.in_progress, completed=now - timedelta(days=1))
    # first responses in the window: 10, 30 and 50 minutes (median 30); one too old
    for minutes in (10, 30, 50):
        created = now - timedelta(days=2)
        await _request(customer, boris, created=created, first_response=created + timedelta(minutes=minutes))
    old = now - timedelta(days=20)
    await _request(customer, boris, created=old, first_response=old + timedelta(minutes=500))
    # Anna answered Boris's request first: her reply counts for her
    created = now - timedelta(hours=5)
    await _request(customer, boris, created=created, first_response=created + timedelta(minutes=7),
                   responder=anna)

    r = await api.get(URL, await token_for(anna))
    assert r.status_code == 200, r.text
    rows = {a["name"]: a for a in r.json()}
    assert set(rows) == {"Anna A", "Boris B", "Idle Boss"}
    a, b, i = rows["Anna A"], rows["Boris B"], rows["Idle Boss"]
    assert (a["in_progress"], a["completed_today"], a["completed_7d"]) == (3, 1, 2)
    assert a["csat_average"] == 3.33 and a["csat_responses"] == 3
    assert a["median_first_response_minutes"] == 7.0
    assert (b["in_progress"], b["completed_today"], b["completed_7d"]) == (5, 0, 0)
    assert b["median_first_response_minutes"] == 30.0 and b["csat_average"] is None
    assert i == {**i, "in_progress": 0, "completed_today": 0, "completed_7d": 0,
                 "median_first_response_minutes": None, "csat_average": None, "csat_responses": 0}
    assert [x["name"] for x in r.json()][0] == "Boris B"  # busiest first
    assert set(a) >= {"id", "in_progress", "completed_today", "completed_7d",
                      "median_first_response_minutes", "csat_average"}
    customer_token = await token_for(customer)
    assert (await api.get(URL, customer_token)).status_code == 403


async def test_stats_admins_costs_the_same_queries_at_any_table_size(api, make_user, token_for):
    customer = await make_user("customer")
    admins = [await make_user("admin") for _ in range(3)]
    token = await token_for(admins[0])
    now = datetime.now(UTC)

    async def add(n: int) -> None:
        for k in range(n):
            admin = admins[k % 3]
            created = now - timedelta(days=k % 9)
            await _request(customer, admin, status=(Status.in_progress, Status.completed, Status.closed)[k % 3],
                           created=created, completed=now - timedelta(days=k % 8),
                           first_response=created + timedelta(minutes=k), rating=1 + k % 5)

    await add(6)
    with count_queries() as small:
        assert (await api.get(URL, token)).status_code == 200
    await add(60)
    with count_queries() as large:
        assert (await api.get(URL, token)).status_code == 200
    assert small.count == large.count <= 4  # the token, then counts, medians and names


async def test_digest_and_telegram_stats_show_the_same_staff_figures(
    telegram_settings, fake_telegram, make_user
):
    from core.digest import build_digest
    from tests.bot_handlers_support import reply_containing, running_bot

    customer = await make_user("customer")
    anna = await make_user("admin", first_name="Anna", last_name="A", telegram_id=7201)
    now = datetime.now(UTC)
    created = now - timedelta(hours=3)
    await _request(customer, anna, status=Status.completed, completed=now - timedelta(minutes=5),
                   created=created, first_response=created + timedelta(minutes=95))
    req = await _request(customer, anna, status=Status.completed, completed=now - timedelta(days=2))
    await rate_request(customer, req.id, 4)
    digest = await build_digest(now)
    assert digest["admins"] == await staff_stats.admin_stats(now)
    async with running_bot(telegram_settings):
        fake_telegram.message_update(fake_telegram.admin_chat_id, fake_telegram.user(7201, "Anna"), "/stats")
        # "Anna A:" is the /stats line; a card of her requests names her too ("Исполнитель: Anna A").
        reply = await reply_containing(fake_telegram, fake_telegram.admin_chat_id, "Anna A: ")
    text = reply.params["text"]
    assert "Anna A: 0 / 1 · за 7 дн.: 2 · первый ответ: 1 ч 35 мин · ⭐ 4.0" in text
    assert "Оценка клиентов: <b>4.00</b> из 5 (1 оценка)" in text
