"""Search through the word index (migration 0016_search_words) finds exactly what LIKE finds.

PostgreSQL only (SQLite has no word index). Texts with long words (kept as overlapping
pieces), every kind of ASCII white space, non-breaking spaces, emoji, LIKE wildcards and
quotes; queries cut from them at random places, across the pieces' edges, with spaces,
too short or too long for the index, with filters; then edits, status moves, deletions
and referential actions, after each of which the postings equal a rebuild from scratch.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from tortoise import connections

from core import pg_queries
from core import requests as svc
from core.queries import RequestFilters, conditions
from db.models import CustomerRequest

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

LONG = "".join(random.Random(7).choices("абвгдеёжзaeiou0123", k=700))
TEXTS = [
    ("Термопринтер не печатает", "Добрый день, термопринтер\tмолчит\nс утра."),
    ("Ошибка 100%_x\\", "o'brien\\' OR 1=1 -- и 50% скидка_на_всё"),
    ("Длинный код", f"лог: {LONG} конец"),
    ("Эмодзи", "🙂" * 300 + " 🙃🙂 улыбка"),
    ("Пробелы", "a\u00a0b неразрывный\u00a0пробел\x0bвертикальная\x0cподача\rвозврат"),
    ("Принтер", "принтер Принтеры ПРИНТЕРА термо-принтер"),
    ("Повтор", "повтор повтор повтор повторение"),
    ("Счёт", "двойное списание, счёт №12345"),
]


async def _truth(actor, f: RequestFilters) -> list[int]:
    """The ids LIKE finds, in list order (newest first)."""
    conds = conditions(actor, f)
    rows = await CustomerRequest.all().order_by("-created_at", "-id").values(
        "id", "search_text", "status", "priority", "category", "assigned_admin_id"
    )
    out = []
    for r in rows:
        ok = True
        for column, op, value in conds:
            if op == "contains":
                ok &= value in r[column]
            elif op == "null":
                ok &= r[column] is None
            else:
                ok &= r[column] == value
        if ok:
            out.append(r["id"])
    return out


async def _listed(actor, f: RequestFilters) -> tuple[int, list[int]]:
    total, first = await svc.list_requests(actor, f, 1)
    ids = [r.id for r in first]
    page = 2
    while len(ids) < total:
        _, rows = await svc.list_requests(actor, f, page)
        ids += [r.id for r in rows]
        page += 1
    return total, ids


async def _postings_match_a_rebuild() -> None:
    db = connections.get("default")
    cols = "created_at, status, priority, category, assigned_admin_id"
    _, kept = await db.execute_query(f"SELECT word, request_id, {cols} FROM request_words")
    _, truth = await db.execute_query(
        f"SELECT w, id, {cols} FROM customer_requests, request_words_of(search_text) AS w"
    )
    assert sorted(map(tuple, kept)) == sorted(map(tuple, truth))
    _, missing = await db.execute_query(
        "SELECT word FROM request_words EXCEPT SELECT word FROM request_vocab"
    )
    assert missing == []


def _queries() -> list[str]:
    rnd = random.Random(13)
    out = ["термопринтер", "принтер", "ПРИНТЕР".lower(), "100%_x\\", "%", "_", "\\", "o'brien",
           "1=1 --", "🙂🙂", "🙃🙂", "a\u00a0b", "\u00a0", "молчит\nс", "повтор", "повторение",
           "12345", "№1", "нет такого", "xyzxyz", "ё", "ab", "тер", LONG[100:164],
           LONG[100:165], LONG[:200], "код лог", "утра.", "списание,"]
    for title, description in TEXTS:
        text = f"{title} {description}".lower()
        for _ in range(12):
            a = rnd.randrange(len(text))
            out.append(text[a:a + rnd.choice([1, 3, 5, 9, 20, 63, 64, 65, 90])])
    # across the pieces' edges of the long word (pieces start every 64 characters)
    start = len("длинный код лог: ")
    text = f"длинный код лог: {LONG} конец".lower()
    for edge in (64, 128, 192, 256, 320, 640):
        for back in (1, 30, 63):
            out.append(text[start + edge - back:][:64])
    # the longest a piece is sure to hold is 65 characters: longer ones are rechecked
    for at in (63, 127, 191, 639, 660):
        for length in (65, 66, 70, 100):
            out.append(text[start + at:start + at + length])
    return [q for q in out if q.strip()]


@pytest.fixture
async def desk(backend, settings, make_user):
    customer = await make_user("customer", first_name="Иван", last_name="O'Brien")
    admin = await make_user("admin")
    director = await make_user("director")
    made = []
    for title, description in TEXTS * 2:
        made.append(await svc.create_request(customer, title=title, description=description))
    await svc.take_request(admin, made[0].id)
    await svc.take_request(admin, made[3].id)
    await svc.complete_request(admin, made[3].id)
    return customer, admin, director, made


async def _check_all(actor, admin) -> int:
    word_path = 0
    for query in _queries():
        for f in (RequestFilters(search=query), RequestFilters(search=query, status="open"),
                  RequestFilters(search=query, assigned_admin_id=admin.id),
                  RequestFilters(search=query, unassigned=True, unassigned_first=True)):
            truth = await _truth(actor, f)
            total, ids = await _listed(actor, f)
            assert (total, ids) == (len(truth), truth), f
            conds = conditions(actor, f)
            db = connections.get("default")
            word_path += await pg_queries.word_search(db, conds, 0, 20, False) is not None
    return word_path


@pytest.mark.heavy(seconds=16)
async def test_word_index_finds_what_like_finds_through_every_kind_of_write(desk, make_user):
    customer, admin, director, made = desk
    # most queries are answered by the word index itself (the rest: too short)
    assert await _check_all(director, admin) > len(_queries()) * 3
    await _postings_match_a_rebuild()

    await svc.update_request(director, made[1].id, {"title": "Совсем другое", "description": "x"})
    await svc.update_request(director, made[2].id, {"priority": "urgent", "category": "billing"})
    await svc.reassign_request(director, made[4].id, admin.id)
    await svc.take_request(admin, made[5].id)
    await svc.delete_request(director, made[6].id)
    other = await make_user("admin")
    await svc.take_request(other, made[7].id)
    await other.delete()  # SET NULL of the assignee
    await _postings_match_a_rebuild()
    await _check_all(director, admin)

    gone = await make_user("customer")
    await svc.create_request(gone, title="уйдёт", description="термопринтер")
    await gone.delete()  # CASCADE of the customer's requests
    await _postings_match_a_rebuild()
    await _check_all(director, admin)

    await connections.get("default").execute_script("TRUNCATE customer_requests CASCADE")
    _, rows = await connections.get("default").execute_query(
        "SELECT (SELECT COUNT(*) FROM request_words), (SELECT COUNT(*) FROM request_vocab)"
    )
    assert tuple(rows[0]) == (0, 0)


async def test_past_its_bounds_a_search_takes_the_trigram_way_and_stays_exact(
    desk, monkeypatch
):
    customer, admin, director, made = desk
    for name, value in (("WORD_VOCABULARY", 1), ("WORD_POSTINGS", 2), ("WORD_RECHECK", 1)):
        monkeypatch.setattr(pg_queries, name, value)
    db = connections.get("default")
    # "принтер" is in several words and requests: more than the bounds allow
    assert await pg_queries.word_search(
        db, conditions(director, RequestFilters(search="принтер")), 0, 20, False
    ) is None
    await _check_all(director, admin)


async def test_a_five_thousand_emoji_word_is_indexed_and_found(backend, settings, make_user):
    customer = await make_user("customer")
    director = await make_user("director")
    blob = "".join(random.Random(5).choices("🙂🙃😀😎", k=5000))
    req = await svc.create_request(customer, title="blob", description=blob)
    await svc.create_request(customer, title="other", description="🙂")
    for a in (0, 1000, 2500, 4936, 4990):
        f = RequestFilters(search=blob[a:a + 60])
        assert await _listed(director, f) == (1, [req.id])
        found = await pg_queries.word_search(
            connections.get("default"), conditions(director, f), 0, 20, False
        )
        assert found is not None and found[:2] == (1, [req.id])
    await _postings_match_a_rebuild()


# Test only: every new vocabulary word takes 20 ms, so two statements adding words overlap.
SLOW_VOCABULARY = """
CREATE OR REPLACE FUNCTION test_slow_vocab() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$;
CREATE TRIGGER test_slow_vocab BEFORE INSERT ON request_vocab
    FOR EACH ROW EXECUTE FUNCTION test_slow_vocab();
"""


async def test_requests_adding_the_same_new_words_at_once_do_not_deadlock(
    backend, settings, make_user
):
    """Two requests whose texts hold the same new words in opposite orders, written at the
    same moment: each waits for the other's new words, so unless both add them in one
    order, one of them would fail with a deadlock."""
    customers = [await make_user("customer") for _ in range(4)]
    words = [f"новоеслово{i}" for i in range(8)]
    db = connections.get("default")
    await db.execute_script(SLOW_VOCABULARY)
    try:
        await asyncio.wait_for(asyncio.gather(*(
            svc.create_request(c, title="t", description=" ".join(words[::1 - 2 * (i % 2)]))
            for i, c in enumerate(customers)
        )), 60)
    finally:
        await db.execute_script(
            "DROP TRIGGER test_slow_vocab ON request_vocab; DROP FUNCTION test_slow_vocab();"
        )
    director = await make_user("director")
    for word in words:
        assert (await _listed(director, RequestFilters(search=word)))[0] == 4
    await _postings_match_a_rebuild()
