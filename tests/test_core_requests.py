"""Domain rules for requests, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from core import requests as svc
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from db.models import CustomerRequest, Event, RequestMessage


async def test_create_take_complete_records_system_messages(settings, make_user):
    customer = await make_user("customer")
    admin = await make_user("admin", first_name="Ivan", last_name="Petrov")
    req = await svc.create_request(customer, title="Printer", description="It is on fire")
    assert req.status == "open"
    taken = await svc.take_request(admin, req.id)
    assert taken.status == "in_progress" and taken.assigned_admin_id == admin.id
    done = await svc.complete_request(admin, req.id)
    assert done.status == "completed"
    texts = [m.content for m in await RequestMessage.filter(request_id=req.id).order_by("id")]
    assert texts == [
        "Запрос взят в работу администратором Ivan Petrov",
        "Запрос завершен администратором Ivan Petrov",
    ]
    assert done.messages_count == 2
    types = [e.type for e in await Event.all().order_by("id")]
    assert types == [
        "new_request",
        "new_message", "request_updated", "request_status_changed",
        "new_message", "request_updated", "request_status_changed",
    ]
    moves = [e.payload for e in await Event.filter(type="request_status_changed").order_by("id")]
    assert [(m["previous_status"], m["status"]) for m in moves] == [
        ("open", "in_progress"), ("in_progress", "completed"),
    ]


async def test_second_admin_cannot_take_taken_request(settings, make_user):
    customer = await make_user("customer")
    a1, a2 = await make_user("admin"), await make_user("admin")
    req = await svc.create_request(customer, title="t", description="d")
    await svc.take_request(a1, req.id)
    with pytest.raises(Conflict):
        await svc.take_request(a2, req.id)
    assert (await CustomerRequest.get(id=req.id)).assigned_admin_id == a1.id


async def test_concurrent_takes_have_exactly_one_winner(settings, make_user, backend):
    customer = await make_user("customer")
    admins = [await make_user("admin") for _ in range(20)]
    req = await svc.create_request(customer, title="race", description="d")
    results = await asyncio.gather(
        *(svc.take_request(a, req.id) for a in admins), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 19
    assert await RequestMessage.filter(request_id=req.id, message_type="system").count() == 1


async def test_only_assignee_or_director_completes(settings, make_user):
    customer = await make_user("customer")
    a1, a2, boss = await make_user("admin"), await make_user("admin"), await make_user("director")
    req = await svc.create_request(customer, title="t", description="d")
    await svc.take_request(a1, req.id)
    with pytest.raises(PermissionDenied):
        await svc.complete_request(a2, req.id)
    done = await svc.complete_request(boss, req.id)
    assert done.status == "completed"


async def test_customer_cannot_see_other_customers_request(settings, make_user):
    c1, c2 = await make_user("customer"), await make_user("customer")
    req = await svc.create_request(c1, title="mine", description="d")
    with pytest.raises(NotFound):
        await svc.get_request(c2, req.id)
    with pytest.raises(NotFound):
        await svc.post_message(c2, req.id, "hi")
    total, rows = await svc.list_requests(c2, svc.RequestFilters())
    assert total == 0 and rows == []


async def test_internal_notes_hidden_from_customer(settings, make_user):
    customer = await make_user("customer")
    admin = await make_user("admin")
    req = await svc.create_request(customer, title="t", description="d")
    await svc.post_message(admin, req.id, "secret", is_internal=True)
    await svc.post_message(admin, req.id, "hello")
    assert [m.content for m in await svc.list_messages(customer, req.id)] == ["hello"]
    assert len(await svc.list_messages(admin, req.id)) == 2


async def test_title_over_200_chars_is_rejected(settings, make_user):
    customer = await make_user("customer")
    with pytest.raises(ValidationFailed) as err:
        await svc.create_request(customer, title="x" * 201, description="d")
    assert "title" in err.value.errors
    assert await CustomerRequest.all().count() == 0


async def test_stats_counts(settings, make_user):
    customer = await make_user("customer")
    admin = await make_user("admin")
    reqs = [await svc.create_request(customer, title=f"r{i}", description="d") for i in range(4)]
    await svc.take_request(admin, reqs[0].id)
    await svc.take_request(admin, reqs[1].id)
    await svc.complete_request(admin, reqs[1].id)
    assert await svc.stats() == {
        "total_requests": 4,
        "open_requests": 2,
        "in_progress_requests": 1,
        "completed_today": 1,
        "completion_rate": 25.0,

        "csat_average": None,
        "csat_responses": 0,
    }


async def test_search_matches_customer_name_and_is_case_insensitive(settings, make_user):
    anna = await make_user("customer", first_name="Анна", last_name="Смирнова")
    bob = await make_user("customer", first_name="Bob")
    admin = await make_user("admin")
    await svc.create_request(anna, title="Оплата", description="Не проходит платеж")
    await svc.create_request(bob, title="Login", description="Cannot LOGIN")
    total, rows = await svc.list_requests(admin, svc.RequestFilters(search="смирнова"))
    assert total == 1 and rows[0].customer.first_name == "Анна"
    total, _ = await svc.list_requests(admin, svc.RequestFilters(search="login"))
    assert total == 1


async def test_director_status_change_is_recorded_in_the_thread(settings, make_user):
    customer = await make_user("customer")
    boss = await make_user("director", first_name="Olga", last_name="K")
    req = await svc.create_request(customer, title="t", description="d")
    await svc.reassign_request(boss, req.id, boss.id)
    await svc.update_request(boss, req.id, {"status": "completed"})
    texts = [m.content for m in await RequestMessage.filter(request_id=req.id, message_type="system")
             .order_by("id")]
    assert texts[1:] == ["Статус запроса изменен на «Выполнен» пользователем Olga K"]
    assert (await CustomerRequest.get(id=req.id)).completed_at is not None


async def test_admin_cannot_set_status_directly(settings, make_user):
    customer = await make_user("customer")
    admin = await make_user("admin")
    req = await svc.create_request(customer, title="t", description="d")
    with pytest.raises(ValidationFailed):
        await svc.update_request(admin, req.id, {"status": "completed"})
    assert (await CustomerRequest.get(id=req.id)).status == "open"


async def test_one_statement_writes_record_the_rows_json_counters_and_first_reply(
    settings, make_user
):
    """A new request and a new message (one statement each on PostgreSQL, core.pg_writes):
    each event carries exactly the saved row's JSON with its real id, the thread counters
    move, and of concurrent staff replies one is the first response."""
    from core.serializers import message_data, request_data
    from db.models import RequestHistory

    customer = await make_user("customer")
    admin = await make_user("admin")
    req = await svc.create_request(customer, title="Printer", description="d", tags=["a"])
    saved = await CustomerRequest.get(id=req.id).prefetch_related("customer", "assigned_admin")
    event = await Event.filter(type="new_request").order_by("-id").first()
    assert event.payload == request_data(saved)
    assert await RequestHistory.filter(request_id=req.id, field="created").count() == 1
    await svc.take_request(admin, req.id)
    msgs = await asyncio.gather(*(svc.post_message(admin, req.id, f"r{i}") for i in range(6)))
    fresh = await CustomerRequest.get(id=req.id)
    system = await RequestMessage.filter(request_id=req.id, message_type="system").count()
    assert fresh.messages_count == 6 + system and fresh.public_messages_count == 6 + system
    first = min(msgs, key=lambda m: (m.created_at, m.id))
    assert (fresh.first_response_at, fresh.first_response_by_id) == (first.created_at, admin.id)
    last = await RequestMessage.get(id=msgs[-1].id).prefetch_related("sender")
    events = [e for e in await Event.filter(type="new_message") if e.payload["id"] == last.id]
    assert [e.payload for e in events] == [message_data(last)]
