"""Lists at scale (SPEC): `count` is exact, so every page up to ceil(count / 20) exists.

PostgreSQL with a table large enough that a planner estimate would be off (4,000 rows
inserted by one statement): for several filters and searches the count equals COUNT(*),
the last page by that count has the right number of items and the page after it is a 404.
The counters behind it (migration 0014_counts) follow every kind of write, and so do the
completions per quarter hour and the ratings per score behind the stats
(0017_stats_counters).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest
from tortoise import connections

from core import broad_counts, csat, pg_queries, runtime, staff_stats
from core import requests as svc
from core.errors import NotFound
from core.queries import RequestFilters, filtered
from tests.api_helpers import ADMIN

# The large-table count paths are PostgreSQL's (SQLite counts with COUNT(*)): these tests run
# there only (not skipped on SQLite: .ci/run counts every skip as a failure).
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

N = 4000

BULK = """
INSERT INTO customer_requests (title, description, status, priority, category, customer_id,
    assigned_admin_id, created_at, updated_at, tags, messages_count, public_messages_count,
    status_changed_at, source, search_text)
SELECT 'R' || i, 'd',
    (ARRAY['open','in_progress','completed','closed'])[1 + i % 4],
    (ARRAY['low','medium','high','urgent'])[1 + (i / 4) % 4],
    (ARRAY['technical','billing','account','order','general'])[1 + (i / 3) % 5],
    CASE WHEN i % 10 = 0 THEN {c2} ELSE {c1} END,
    CASE WHEN i % 4 = 0 THEN NULL WHEN i % 3 = 0 THEN {a2} ELSE {a1} END,
    now() - i * interval '1 minute', now(), '[]', 0, 0, now(), 'api',
    CASE WHEN i % 7 = 0 THEN 'термопринтер сломан' WHEN i % 97 = 0 THEN 'редкое слово'
         ELSE 'broadword ' || i END
FROM generate_series(1, {n}) i
"""


async def _recount() -> dict[tuple, int]:
    db = connections.get("default")
    _, counters = await db.execute_query(
        "SELECT status, priority, category, assignee_id, n FROM request_counts WHERE n <> 0"
    )
    _, truth = await db.execute_query(
        "SELECT status, priority, category, COALESCE(assigned_admin_id, 0), COUNT(*) "
        "FROM customer_requests GROUP BY 1, 2, 3, 4"
    )
    got = {tuple(r[:4]): int(r[4]) for r in counters}
    want = {tuple(r[:4]): int(r[4]) for r in truth}
    assert got == want
    return got


@pytest.fixture
async def bulk(backend, settings, make_user):
    c1, c2 = await make_user("customer"), await make_user("customer")
    a1, a2 = await make_user("admin"), await make_user("admin")
    db = connections.get("default")
    await db.execute_script(BULK.format(c1=c1.id, c2=c2.id, a1=a1.id, a2=a2.id, n=N))
    await db.execute_script("ANALYZE customer_requests")
    return c1, c2, a1, a2


async def test_counts_exact_and_last_page_exists(bulk, make_user):
    c1, c2, a1, a2 = bulk
    director = await make_user("director")
    cases = [
        (director, RequestFilters()),
        (director, RequestFilters(status="open")),
        (director, RequestFilters(status="closed", priority="high")),
        (director, RequestFilters(category="billing", status="in_progress")),
        (director, RequestFilters(unassigned=True)),
        (director, RequestFilters(assigned_admin_id=a2.id, category="order")),
        (director, RequestFilters(customer_id=c2.id)),
        (director, RequestFilters(search="broadword")),  # broad: more than 1,000 matches
        (director, RequestFilters(search="термопринтер", status="open")),
        (director, RequestFilters(search="редкое")),
        (director, RequestFilters(unassigned_first=True, priority="low")),
        (c1, RequestFilters()),
        (c2, RequestFilters(status="completed")),
    ]
    for actor, f in cases:
        truth = await filtered(actor, f).count()
        total, first = await svc.list_requests(actor, f, 1)
        assert total == truth, f
        assert len(first) == min(20, truth)
        last = max(1, math.ceil(total / 20))
        count_there, rows = await svc.list_requests(actor, f, last)
        assert count_there == truth
        assert len(rows) == truth - (last - 1) * 20, f
        with pytest.raises(NotFound):
            await svc.list_requests(actor, f, last + 1)
    assert (await svc.list_requests(director, RequestFilters(search="broadword"), 1))[0] > 1000


async def test_rest_pages_to_the_last_page_by_count(bulk, api, make_user, token_for):
    tok = await token_for(await make_user("director"))
    for query in ("?status=closed", "?search=broadword&priority=urgent", "?category=account"):
        first = (await api.get(ADMIN + query, tok)).json()
        last = math.ceil(first["count"] / 20)
        page = await api.get(ADMIN + f"{query}&page={last}", tok)
        assert page.status_code == 200, query
        assert page.json()["next"] is None
        assert len(page.json()["results"]) == first["count"] - (last - 1) * 20
        assert (await api.get(ADMIN + f"{query}&page={last + 1}", tok)).status_code == 404


async def test_counters_follow_every_write(bulk, make_user):
    c1, c2, a1, a2 = bulk
    director = await make_user("director")
    await _recount()
    req = await svc.create_request(c1, title="новый", description="описание")
    await svc.take_request(a1, req.id)
    await svc.complete_request(a1, req.id)
    await svc.reassign_request(director, (await svc.create_request(c2, title="t", description="d")).id, a2.id)
    await svc.update_request(director, req.id, {"priority": "urgent", "category": "billing"})
    await svc.delete_request(director, req.id)
    await _recount()
    # referential actions: a deleted admin's requests lose their assignee (SET NULL), a
    # deleted customer's requests go with them (CASCADE)
    await a2.delete()
    await c2.delete()
    counted = await _recount()
    total, _ = await svc.list_requests(director, RequestFilters())
    assert total == sum(counted.values()) == await filtered(director, RequestFilters()).count()
    await connections.get("default").execute_script("TRUNCATE customer_requests CASCADE")
    assert await _recount() == {}


async def test_broad_search_count_follows_changes(bulk, make_user):
    """A broad search's count is reused only while nothing that changes matches changed."""
    c1, c2, a1, a2 = bulk
    director = await make_user("director")
    broad = RequestFilters(search="broadword")

    async def both() -> tuple[int, int]:
        return (await svc.list_requests(director, broad))[0], await filtered(director, broad).count()

    total, truth = await both()
    assert total == truth > 1000
    assert (await both())[0] == truth  # the kept count
    _, rows = await svc.list_requests(director, broad)
    await svc.update_request(director, rows[0].id, {"title": "другое"})  # no longer matches
    total, truth2 = await both()
    assert total == truth2 == truth - 1
    await svc.delete_request(director, rows[1].id)
    total, truth3 = await both()
    assert total == truth3 == truth - 2
    db = connections.get("default")
    await db.execute_script(
        f"UPDATE customer_requests SET search_text = 'broadword x' WHERE id = {rows[0].id}"
    )
    assert (await both())[0] == truth - 1


async def _completions() -> dict[datetime, int]:
    """The completions' counters, asserted equal to a recount from the table."""
    db = connections.get("default")
    _, counters = await db.execute_query(
        "SELECT bucket, n FROM request_completions WHERE n <> 0"
    )
    _, truth = await db.execute_query(
        "SELECT request_completion_bucket(COALESCE(status_changed_at, '-infinity')), COUNT(*) "
        "FROM customer_requests WHERE status = 'completed' GROUP BY 1"
    )
    got = {r[0]: int(r[1]) for r in counters}
    assert got == {r[0]: int(r[1]) for r in truth}
    return got


async def _completed_since_truth(start: datetime) -> int:
    _, rows = await connections.get("default").execute_query(
        "SELECT COUNT(*) FROM customer_requests WHERE status = 'completed' "
        "AND status_changed_at >= $1", [start]
    )
    return int(rows[0][0])


async def test_completed_today_from_quarter_hours(bulk, make_user, api, token_for, monkeypatch):
    """"Completed today" sums the quarter hours' counters from local midnight on; they follow
    every write, and a start inside a quarter hour still counts exactly."""
    c1, c2, a1, a2 = bulk
    director = await make_user("director")
    db = connections.get("default")
    # Status changes spread over three days, some never recorded (NULL).
    await db.execute_script(
        "UPDATE customer_requests SET status_changed_at = CASE WHEN id % 50 = 0 THEN NULL "
        "ELSE now() - (id % 331) * interval '13 minutes 7 seconds' END"
    )
    assert len(await _completions()) > 96
    req = await svc.create_request(c1, title="новый", description="описание")
    await svc.take_request(a1, req.id)
    await svc.complete_request(a1, req.id)
    await _completions()
    await svc.reopen_request(director, req.id)  # back to in_progress: it has an assignee
    await svc.complete_request(a1, req.id)
    await svc.close_request(director, req.id)
    _, rows = await svc.list_requests(director, RequestFilters(status="completed"))
    await svc.delete_request(director, rows[0].id)
    # a completion moved within the day and to another day, by hand
    await db.execute_script(
        f"UPDATE customer_requests SET status_changed_at = status_changed_at - interval '1 day' "
        f"WHERE id = {rows[1].id}; UPDATE customer_requests SET status_changed_at = "
        f"status_changed_at + interval '1 minute' WHERE id = {rows[2].id}"
    )
    await c2.delete()  # CASCADE
    await _completions()

    now = datetime.now(UTC)
    starts = [staff_stats.today_start(zone) for zone in ("UTC", "Europe/Moscow", "Asia/Kathmandu")]
    starts += [now - timedelta(hours=7, minutes=7, seconds=7.5), now - timedelta(days=2)]
    for start in starts:
        truth = await _completed_since_truth(start)
        assert await pg_queries.completed_since(db, start) == truth, start
    # the unaligned start and two days back are real ranges, not empty or everything
    assert 0 < await _completed_since_truth(starts[3]) < await _completed_since_truth(starts[4])

    tok = await token_for(director)
    for zone in ("UTC", "Asia/Kathmandu"):
        runtime.configure(dataclasses.replace(runtime.settings(), tz=zone))
        truth = await _completed_since_truth(staff_stats.today_start(zone))
        assert (await svc.stats())["completed_today"] == truth
        r = await api.get(ADMIN + "stats/", tok)
        assert r.json()["completed_today"] == truth, zone

    # a "today" that starts inside a quarter hour (no real zone's): the statement's other form
    odd = starts[3]
    monkeypatch.setattr(staff_stats, "today_start", lambda zone, now=None: odd)
    r = await api.get(ADMIN + "stats/", tok)
    assert r.json()["completed_today"] == await _completed_since_truth(odd)

    await db.execute_script("TRUNCATE customer_requests CASCADE")
    assert await _completions() == {}


async def _ratings() -> dict[int, int]:
    """The counters per score, asserted equal to a recount from the table."""
    db = connections.get("default")
    _, counters = await db.execute_query("SELECT rating, n FROM request_ratings WHERE n <> 0")
    _, truth = await db.execute_query(
        "SELECT rating, COUNT(*) FROM customer_requests WHERE rating IS NOT NULL GROUP BY 1"
    )
    got = {int(r[0]): int(r[1]) for r in counters}
    assert got == {int(r[0]): int(r[1]) for r in truth}
    return got


async def test_csat_from_counters_per_score(bulk, make_user, api, token_for):
    """csat_responses and csat_average come from counters per score that follow ratings,
    changed ratings, deletions and TRUNCATE."""
    c1, c2, a1, a2 = bulk
    director = await make_user("director")
    db = connections.get("default")
    await db.execute_script(
        "UPDATE customer_requests SET rating = 1 + id % 5, rated_at = now() "
        "WHERE status IN ('completed', 'closed') AND id % 3 = 0"
    )
    await _ratings()
    req = await svc.create_request(c1, title="оценка", description="d")
    await svc.take_request(a1, req.id)
    await svc.complete_request(a1, req.id)
    await csat.rate_request(c1, req.id, 2)
    await csat.rate_request(c1, req.id, 5)  # changed: one counter down, another up
    _, rows = await db.execute_query(
        "SELECT id FROM customer_requests WHERE rating = 4 ORDER BY id LIMIT 1"
    )
    await svc.delete_request(director, rows[0][0])
    await c2.delete()  # CASCADE takes its rated requests
    counted = await _ratings()

    _, truth = await db.execute_query(
        "SELECT COUNT(*), SUM(rating) FROM customer_requests WHERE rating IS NOT NULL"
    )
    n, total = int(truth[0][0]), int(truth[0][1])
    assert sum(counted.values()) == n > 100
    want = {"csat_responses": n, "csat_average": round(total / n, 2)}
    assert {k: (await svc.stats())[k] for k in want} == want
    stats = (await api.get(ADMIN + "stats/", await token_for(director))).json()
    assert {k: stats[k] for k in want} == want

    await db.execute_script("TRUNCATE customer_requests CASCADE")
    assert await _ratings() == {}
    assert (await api.get(ADMIN + "stats/", await token_for(director))).json()["csat_responses"] == 0


async def test_concurrent_broad_searches_share_one_count(bulk, make_user, monkeypatch):
    """After a change, eight broad searches at once cost one COUNT over their matches, and
    each gets the exact count of its own snapshot; the next change counts again."""
    c1, c2, a1, a2 = bulk
    director = await make_user("director")
    broad = RequestFilters(search="broadword")
    runs = []
    count_matches = broad_counts._count_matches

    async def counted(*args):
        runs.append(args[2])
        await asyncio.sleep(0.05)  # the searches arriving meanwhile must wait, not count
        return await count_matches(*args)

    monkeypatch.setattr(broad_counts, "_count_matches", counted)
    # past the word index's bound, as a term in most requests' text is at a real desk's size
    monkeypatch.setattr(pg_queries, "WORD_POSTINGS", 100)
    truth = await filtered(director, broad).count()
    for round_ in range(2):
        totals = await asyncio.gather(*(svc.list_requests(director, broad) for _ in range(8)))
        assert [total for total, _ in totals] == [truth] * 8
        assert len(runs) == round_ + 1
        await svc.create_request(c1, title="broadword новый", description="d")
        truth += 1


async def test_searches_after_a_change_share_the_next_count(bulk, make_user, monkeypatch):
    """Searches of a newer snapshot that find an older snapshot's count running wait for
    it, then share one new count among themselves (the first starts it), not one each; each
    search still gets its own snapshot's exact count."""
    c1, c2, a1, a2 = bulk
    director = await make_user("director")
    broad = RequestFilters(search="broadword")
    runs = []
    read = asyncio.Event()
    count_matches = broad_counts._count_matches

    async def counted(*args):
        runs.append(args[2])
        result = await count_matches(*args)
        if len(runs) == 1:
            read.set()
            await asyncio.sleep(0.3)  # the data changes while this count is still running
        return result

    monkeypatch.setattr(broad_counts, "_count_matches", counted)
    monkeypatch.setattr(pg_queries, "WORD_POSTINGS", 100)
    truth = await filtered(director, broad).count()
    first = asyncio.ensure_future(svc.list_requests(director, broad))
    await asyncio.wait_for(read.wait(), timeout=10)
    await svc.create_request(c1, title="broadword новый", description="d")
    later = await asyncio.gather(*(svc.list_requests(director, broad) for _ in range(7)))
    assert (await first)[0] == truth
    assert [total for total, _ in later] == [truth + 1] * 7
    assert len(runs) == 2


async def test_a_count_nobody_waits_for_is_cancelled(bulk, make_user, monkeypatch):
    """A broad search's shared count goes on while one of its searches is still waiting,
    and is cancelled (its statement with it) when the last of them is: clients that give up
    on broad searches leave no counts running on the database."""
    director = await make_user("director")
    broad = RequestFilters(search="broadword")
    started, cancelled = asyncio.Event(), []
    count_matches = broad_counts._count_matches

    async def counted(*args):
        started.set()
        try:
            await asyncio.sleep(0.5)  # a long count
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return await count_matches(*args)

    monkeypatch.setattr(broad_counts, "_count_matches", counted)
    monkeypatch.setattr(pg_queries, "WORD_POSTINGS", 100)
    truth = await filtered(director, broad).count()
    one = asyncio.ensure_future(svc.list_requests(director, broad))
    await asyncio.wait_for(started.wait(), timeout=10)
    two = asyncio.ensure_future(svc.list_requests(director, broad))
    await asyncio.sleep(0.1)
    one.cancel()
    assert (await two)[0] == truth  # the other search still got the shared count
    assert not cancelled

    started.clear()
    broad_counts._broad.clear()
    three = asyncio.ensure_future(svc.list_requests(director, broad))
    await asyncio.wait_for(started.wait(), timeout=10)
    three.cancel()
    await asyncio.sleep(0.1)
    assert cancelled == [True]
    assert not broad_counts._broad_runs and not broad_counts._broad_waiting


async def test_completing_and_a_multi_row_delete_do_not_deadlock(db_url, make_user):
    """One transaction completes a request while another deletes two (an open one, then one
    completed in the same quarter hour): both commit and every counter stays exact. The
    counters' deferred triggers take `request_counts_version` before any quarter hour's row
    in both (migration 0018); in the other order each held a row the other waited for, and
    PostgreSQL aborted one of them as a deadlock."""
    import asyncpg

    customer, admin = await make_user("customer"), await make_user("admin")
    db = connections.get("default")
    await db.execute_script(
        BULK.format(c1=customer.id, c2=customer.id, a1=admin.id, a2=admin.id, n=3)
    )
    _, rows = await db.execute_query("SELECT id FROM customer_requests ORDER BY id")
    done_at = datetime.now(UTC).replace(minute=1, second=0, microsecond=0)
    working, open_one, completed = (int(r[0]) for r in rows)
    await db.execute_query(
        "UPDATE customer_requests SET status = CASE id WHEN $1 THEN 'in_progress' "
        "WHEN $2 THEN 'open' ELSE 'completed' END, status_changed_at = $4 "
        "WHERE id IN ($1, $2, $3)", [working, open_one, completed, done_at]
    )
    bucket = done_at.replace(minute=0)
    await _recount()
    assert await _completions() == {bucket: 1}

    url = db_url.replace("postgres://", "postgresql://", 1)
    deleting, completing = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        t2 = deleting.transaction()
        await t2.start()
        await deleting.execute("DELETE FROM customer_requests WHERE id = $1", open_one)
        # The open request's deferred triggers fire now: this transaction holds the version
        # row, as a transaction changing several rows does from its first row on.
        await deleting.execute("SET CONSTRAINTS ALL IMMEDIATE")
        await deleting.execute("SET CONSTRAINTS ALL DEFERRED")
        t1 = completing.transaction()
        await t1.start()
        await completing.execute(
            "UPDATE customer_requests SET status = 'completed', status_changed_at = $2 "
            "WHERE id = $1", working, done_at,
        )
        first = asyncio.ensure_future(t1.commit())  # waits for the version row
        await asyncio.sleep(0.3)
        assert not first.done()
        await deleting.execute("DELETE FROM customer_requests WHERE id = $1", completed)
        await asyncio.wait_for(t2.commit(), timeout=10)
        await asyncio.wait_for(first, timeout=10)
    finally:
        await deleting.close()
        await completing.close()
    await _recount()
    assert await _completions() == {bucket: 1}
