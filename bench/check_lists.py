"""Check the PostgreSQL list path against the ORM on the bench data (not a test).

    .venv/bin/python -m bench.check_lists [--database-url postgres://.../helpdesk_bench]

core.queries.list_requests answers PostgreSQL with hand-written SQL (core.pg_queries) and
counts from the request_counts table; list_requests_json (the REST path) maps records
straight to JSON (core.pg_json). For a set of filters (staff and customer, equality
filters, searches with quotes, backslashes and LIKE wildcards) and pages (first, second,
50th, last, one past the last) this compares every page with the plain ORM query
(`filtered(...).order_by(...).offset().limit().select_related()`, serialized with
request_data) and checks that the count is exact and that 404 comes exactly past the last
page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from bench.fill_pg import DEFAULT_URL, SMALL_TERM


async def check(url: str) -> int:
    from core import queries as svc
    from core import runtime
    from core.errors import NotFound
    from core.serializers import request_data
    from core.settings import Settings
    from db.models import User
    from db.setup import close_db, init_db

    runtime.configure(Settings(database_url=url))
    await init_db(url)
    failures = 0
    try:
        admin = await User.get(username="bench_admin1")
        customer = await User.get(username="customer3")
        admin_id = (await User.get(username="bench_admin2")).id
        F = svc.RequestFilters
        cases = [
            (admin, F()), (admin, F(status="open", priority="high")),
            (admin, F(category="billing")), (admin, F(search=SMALL_TERM)),
            (admin, F(search="example")), (admin, F(search="ИВАНОВ")),
            (admin, F(search="100%_x\\")), (admin, F(search="o'brien\\' OR 1=1 --")),
            # the word index (migration 0016_search_words): with filters, more than one word
            (admin, F(search=SMALL_TERM, status="open")),
            (admin, F(search="термоп", category="order", unassigned=True)),
            (admin, F(search="не работает вход")), (admin, F(search="ошибка при", priority="low")),
            (admin, F(unassigned=True, priority="urgent")),
            (admin, F(assigned_admin_id=admin_id, status="closed")),
            (admin, F(customer_id=customer.id)), (customer, F()), (customer, F(status="closed")),
        ]
        for actor, f in cases:
            qs = svc.filtered(actor, f)
            true_total = await qs.count()
            last = max(1, -(-true_total // svc.PAGE_SIZE))
            for page in sorted({1, 2, 50, last, last + 1}):
                offset = (page - 1) * svc.PAGE_SIZE
                expected = await (
                    qs.order_by("-created_at", "-id").offset(offset).limit(svc.PAGE_SIZE)
                    .select_related("customer", "assigned_admin")
                )
                want = [request_data(r) for r in expected]
                try:
                    total, rows = await svc.list_requests(actor, f, page)
                    # the REST path: records straight to JSON (core.pg_json)
                    total_json, data = await svc.list_requests_json(actor, f, page)
                except NotFound:
                    ok = not expected and page > 1
                    shown = "404"
                else:
                    same = [request_data(r) for r in rows] == want == data
                    ok = same and total == total_json == true_total
                    shown = f"count {total}"
                failures += not ok
                who = "customer" if actor is customer else "admin"
                active = {k: v for k, v in vars(f).items() if v not in (None, False)}
                print(f"{'ok  ' if ok else 'FAIL'} {who:<8} {str(active):<52} page {page:>5}: "
                      f"{true_total:>6} rows -> {shown}")
    finally:
        await close_db()
    print("all pages match" if not failures else f"{failures} FAILED")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    return asyncio.run(check(args.database_url.replace("postgresql://", "postgres://", 1)))


if __name__ == "__main__":
    sys.exit(main())
