"""CSV export: the list's filters and order, correct quoting, UTF-8, streamed in keyset batches."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from core import export
from core import requests as svc
from core.requests import RequestFilters
from db.models import CustomerRequest
from tests.api_helpers import ADMIN

URL = f"{ADMIN}export/"


def parse(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


async def test_export_streams_utf8_csv_with_header_and_quoting(api, make_user, token_for):
    admin = await make_user("admin", first_name="Анна", last_name="Смирнова")
    customer = await make_user("customer", first_name='Ivan "The" Terrible', last_name="Petrov, Jr.",
                               email="ivan@example.com")
    ta = await token_for(admin)
    tricky = 'Line one, with comma\nline two with "quotes"\r\nand ₽ €'
    first = await svc.create_request(customer, title="Принтер, лоток 2", description=tricky,
                                     priority="high", tags=["hw", "printer"])
    second = await svc.create_request(customer, title="=HYPERLINK(\"http://evil\")", description="d")
    await svc.take_request(admin, first.id)
    r = await api.get(URL, ta)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in r.headers["content-disposition"]
    assert r.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.headers
    assert r.content.splitlines()[0] == b",".join(h.encode() for h in export.HEADER)
    rows = parse(r.content)
    assert [int(row["id"]) for row in rows] == [second.id, first.id]  # newest first, as the list
    row = rows[1]
    assert row["description"] == tricky and row["title"] == "Принтер, лоток 2"
    assert row["customer_first_name"] == 'Ivan "The" Terrible' and row["customer_last_name"] == "Petrov, Jr."
    assert row["assigned_admin_first_name"] == "Анна" and row["status"] == "in_progress"
    assert row["tags"] == "hw, printer" and row["priority"] == "high" and row["rating"] == ""
    assert row["created_at"].endswith("Z")
    # a cell a spreadsheet would run as a formula is defused
    assert rows[0]["title"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[0]["assigned_admin_id"] == "" and rows[0]["assigned_admin_first_name"] == ""
    bom = await api.get(URL + "?bom=1", ta)
    assert bom.content.startswith("\ufeff".encode()) and bom.content[3:] == r.content


async def test_export_applies_the_list_filters(api, make_user, token_for):
    admin = await make_user("admin")
    customer = await make_user("customer")
    ta = await token_for(admin)
    a = await svc.create_request(customer, title="Printer jam", description="d", priority="urgent")
    b = await svc.create_request(customer, title="Invoice", description="d", category="billing")
    c = await svc.create_request(customer, title="Printer toner", description="d")
    await svc.take_request(admin, c.id)

    async def ids(query: str) -> list[int]:
        r = await api.get(URL + query, ta)
        assert r.status_code == 200, r.text
        return [int(row["id"]) for row in parse(r.content)]

    assert await ids("") == [c.id, b.id, a.id]
    assert await ids("?status=open") == [b.id, a.id]
    assert await ids("?priority=urgent") == [a.id]
    assert await ids("?category=billing") == [b.id]
    assert await ids("?search=printer") == [c.id, a.id]
    assert await ids(f"?assigned_admin={admin.id}") == [c.id]
    assert await ids("?unassigned=1") == [b.id, a.id]
    assert await ids("?status=open&search=printer") == [a.id]
    r = await api.get(URL + "?status=nope", ta)
    assert r.status_code == 400 and "status" in r.json()
    assert (await api.get(URL, await token_for(customer))).status_code == 403
    assert (await api.get(URL)).status_code == 401
    empty = await api.get(URL + "?search=nothing-matches", ta)
    assert empty.status_code == 200 and parse(empty.content) == []
    assert empty.content.decode().strip() == ",".join(export.HEADER)


async def test_keyset_batches_return_every_row_once_across_equal_timestamps(settings, make_user):
    """Batches of 7 over 40 requests, most sharing one created_at: ties at the batch
    boundaries are neither skipped nor repeated, and each batch is one query."""
    from tests.api_helpers import count_queries

    admin = await make_user("admin")
    customer = await make_user("customer")
    same = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    ids = []
    for n in range(40):
        req = await svc.create_request(customer, title=f"r{n}", description="d")
        created = same if n % 4 else same + timedelta(seconds=n)
        await CustomerRequest.filter(id=req.id).update(created_at=created)
        ids.append((created, req.id))
    expected = [i for _, i in sorted(ids, key=lambda x: (x[0], x[1]), reverse=True)]
    got: list[int] = []
    batches = 0
    with count_queries() as log:
        async for rows in export.export_rows(admin, RequestFilters(), batch=7):
            batches += 1
            assert len(rows) <= 7
            got += [row[0] for row in rows]
    assert got == expected
    assert batches == 6 and log.count == 6
