"""The staff REST reads mapped straight from records to JSON (core.pg_queries on
PostgreSQL) give exactly what the model path gives (core.serializers on model instances):
detail, list pages (plain, filtered, searched, unassigned first) and threads (internal
notes, deleted messages, system messages in the reader's language)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import queries
from core import requests as svc
from core.serializers import message_data, request_data
from db.models import CustomerRequest, RequestMessage


@pytest.fixture
async def desk(backend, settings, make_user):
    admin = await make_user("admin")
    director = await make_user("director")
    plain = await make_user("customer", first_name="", last_name="", email="")
    fancy = await make_user("customer")
    fancy.email_verified = True
    await fancy.save()
    banned = await make_user("customer")
    banned.banned_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await banned.save()
    made = []
    for i, customer in enumerate([plain, fancy, banned] * 3):
        req = await svc.create_request(
            admin, title=f"Принтер {i}", description=f"text {i} \\ ' %", customer_id=customer.id,
            priority=["low", "high", "urgent"][i % 3], tags=["a", "б"] if i % 2 else None,
            estimated_resolution_time=datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
            if i % 4 == 0 else None,
        )
        made.append(req)
    await svc.take_request(admin, made[1].id)
    await svc.take_request(director, made[2].id)
    await CustomerRequest.filter(id=made[3].id).update(rating=4, rating_comment="ok")
    await svc.post_message(admin, made[0].id, "hello")
    await svc.post_message(admin, made[0].id, "note", is_internal=True)
    gone = await svc.post_message(admin, made[0].id, "gone")
    await RequestMessage.filter(id=gone.id).update(is_deleted=True)
    await svc.post_message(director, made[0].id, "from the director")
    return admin, director, made


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # on SQLite both sides are the model path
async def test_detail_json_equals_model_path(desk):
    admin, _, made = desk
    for req in made:
        assert await queries.request_json(admin, req.id) == request_data(
            await svc.get_request(admin, req.id)
        )


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # on SQLite both sides are the model path
async def test_list_json_equals_model_path(desk):
    admin, _, made = desk
    cases = [
        queries.RequestFilters(),
        queries.RequestFilters(priority="high"),
        queries.RequestFilters(status="in_progress"),
        queries.RequestFilters(unassigned_first=True),
        queries.RequestFilters(search="принтер"),
        queries.RequestFilters(search="принтер 1", unassigned_first=True),
        queries.RequestFilters(customer_id=made[0].customer_id),
    ]
    for filters in cases:
        for size in (4, 20):
            for page in (1, 2):
                try:
                    total, rows = await svc.list_requests(admin, filters, page, size)
                except Exception as exc:  # noqa: BLE001 - the same error either way
                    with pytest.raises(type(exc)):
                        await queries.list_requests_json(admin, filters, page, size)
                    continue
                assert await queries.list_requests_json(admin, filters, page, size) == (
                    total, [request_data(r) for r in rows]
                ), (filters, size, page)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # on SQLite both sides are the model path
async def test_thread_json_equals_model_path(desk, make_user):
    admin, director, made = desk
    req = await svc.get_request(admin, made[0].id)
    from tortoise.transactions import in_transaction

    from core.thread import add_system_message

    async with in_transaction() as conn:
        await add_system_message(conn, req, admin, "system text")
    await RequestMessage.filter(request_id=req.id, content="system text").update(
        content_i18n={"key": "err_not_found", "params": {}}
    )
    for reader in (admin, director):
        for lang in (None, "ru", "en"):
            for rid in (made[0].id, made[1].id):
                want = [message_data(m, lang=lang) for m in await svc.list_messages(reader, rid)]
                assert await queries.thread_json(reader, rid, lang) == want
    assert any(m["is_internal"] for m in await queries.thread_json(admin, made[0].id, "en"))
    assert all(m["content"] != "gone" for m in await queries.thread_json(admin, made[0].id, None))


async def test_missing_request_is_not_found(desk):
    from core.errors import NotFound

    admin, _, _ = desk
    with pytest.raises(NotFound):
        await queries.request_json(admin, 999999)
    with pytest.raises(NotFound):
        await queries.thread_json(admin, 999999, "ru")


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_reads_riding_on_the_token_statement(desk, token_for, monkeypatch):
    """PostgreSQL: detail, thread and a list page read in the token's statement give the
    model path's JSON; a bad token gives no owner and no value; an inactive user none."""
    from core import pg_json
    from core.users import token_owner_with

    admin, director, made = desk
    key = await token_for(admin)
    for req in made:
        owner, row = await token_owner_with(key, pg_json.DETAIL_RIDER, [req.id])
        assert owner.user.id == admin.id
        assert queries.detail_from_rider(admin, row) == request_data(
            await svc.get_request(admin, req.id)
        )
        _, rows = await token_owner_with(key, pg_json.THREAD_RIDER, [req.id])
        assert queries.thread_from_rider(admin, rows, "en") == [
            message_data(m, lang="en") for m in await svc.list_messages(admin, req.id)
        ]
    _, missing = await token_owner_with(key, pg_json.THREAD_RIDER, [999999])
    assert missing is None
    from core import pg_queries

    F = queries.RequestFilters
    cases = [F(), F(priority="high"), F(unassigned_first=True), F(search="принтер"),
             F(search="принтер 1", priority="high"), F(search="xt", unassigned_first=True),
             F(search="нет такого")]
    for bound in (pg_queries.WORD_POSTINGS, 3):  # 3: past it, the trigram way
        monkeypatch.setattr(pg_queries, "WORD_POSTINGS", bound)
        riders = [queries.list_rider(f, 1, 4) for f in cases]
        # every search of two letters or more rides (the trigram way: two statements)
        assert [sql is not None for sql in riders] == [True] * 5 + [False, True]
        await _same_pages_through_riders(admin, key, cases)
    assert await token_owner_with(key + "x", pg_json.DETAIL_RIDER, [made[0].id]) == (None, None)
    admin.is_active = False
    await admin.save()
    assert await token_owner_with(key, pg_json.DETAIL_RIDER, [made[0].id]) == (None, None)


async def _same_pages_through_riders(admin, key, cases) -> None:
    from core.users import token_owner_with

    for filters in cases:
        for page in (1, 2, 3):
            sql = queries.list_rider(filters, page, 4)
            if sql is None:
                continue
            try:
                want = await queries.list_requests_json(admin, filters, page, 4)
            except Exception as exc:  # noqa: BLE001 - the same error either way
                _, rows = await token_owner_with(key, sql, [])
                with pytest.raises(type(exc)):
                    await queries.list_from_rider(admin, filters, page, rows, 4)
                continue
            _, rows = await token_owner_with(key, sql, [])
            assert await queries.list_from_rider(admin, filters, page, rows, 4) == want
