"""A hand-written raw-SQL Sanic server for comparison (bench only, never deployed).

    PORT=8100 DATABASE_URL=postgres://.../helpdesk_bench .venv/bin/python -m bench.raw_server
    .venv/bin/python -m bench.rest_bench --raw --only detail,messages,stats,create

Same routes, auth and JSON shapes as the real API for every scenario of bench.rest_bench
(detail, messages GET and POST, stats, list pages with filters, search, create), written
directly against asyncpg with orjson: no ORM, no permission layer beyond "staff token", no
history. Writes record their event row in the same transaction, as the real service does;
list counts read the same exact counters (migration 0014_counts) and searches count
exactly like core.pg_queries. It shows the floor the service is measured against; see
docs/performance.md.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime

import asyncpg
import orjson
from sanic import Request, Sanic
from sanic.response import HTTPResponse

app = Sanic("raw_bench")
BASE = "/api/admin/customer-requests"
USER_COLS = "id, username, first_name, last_name, email"


def js(body, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(body), status=status, content_type="application/json")


def dt(value):
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def user_json(row, prefix: str):
    if row[f"{prefix}id"] is None:
        return None
    return {k: row[f"{prefix}{k}"] for k in ("id", "username", "first_name", "last_name", "email")} | {
        "avatar": None
    }


def page_envelope(request: Request, total: int, page: int, results: list) -> dict:
    from urllib.parse import urlencode

    def link(n):
        params = {k: v[0] for k, v in request.args.items() if k != "page"}
        if n != 1:
            params["page"] = str(n)
        query = urlencode(params)
        return f"{request.scheme}://{request.host}{request.path}" + (f"?{query}" if query else "")

    last = max(1, -(-total // 20))
    return {"count": total, "next": link(page + 1) if page < last else None,
            "previous": link(page - 1) if page > 1 else None, "results": results}


def request_json(row) -> dict:
    return {
        "id": row["id"], "title": row["title"], "description": row["description"],
        "status": row["status"], "priority": row["priority"], "category": row["category"],
        "customer": user_json(row, "c_"), "assigned_admin": user_json(row, "a_"),
        "created_at": dt(row["created_at"]), "updated_at": dt(row["updated_at"]),
        "last_message_at": dt(row["last_message_at"]), "messages_count": row["messages_count"],
        "estimated_resolution_time": dt(row["estimated_resolution_time"]),
        "tags": orjson.loads(row["tags"]),
        "customer_email_verified": bool(row["c_email"] and row["c_email_verified"]),
        "customer_banned": row["c_banned_at"] is not None,
        "rating": row["rating"], "rating_comment": row["rating_comment"] or "",
    }


SELECT_REQUEST = (
    "SELECT r.*, c.id c_id, c.username c_username, c.first_name c_first_name, "
    "c.last_name c_last_name, c.email c_email, c.email_verified c_email_verified, "
    "c.banned_at c_banned_at, a.id a_id, a.username a_username, "
    "a.first_name a_first_name, a.last_name a_last_name, a.email a_email "
    "FROM customer_requests r JOIN users c ON c.id = r.customer_id "
    "LEFT JOIN users a ON a.id = r.assigned_admin_id "
)
REQUEST_SQL = SELECT_REQUEST + "WHERE r.id = $1"


def message_json(m) -> dict:
    return {
        "id": m["id"], "request": m["request_id"], "sender": m["sender_id"],
        "sender_type": m["sender_type"],
        "sender_name": f"{m['first_name']} {m['last_name']}".strip() or m["username"],
        "sender_avatar": None, "content": m["content"], "message_type": m["message_type"],
        "is_read": m["is_read"], "is_internal": m["is_internal"],
        "created_at": dt(m["created_at"]), "edited_at": dt(m["edited_at"]),
    }


@app.before_server_start
async def start(app: Sanic) -> None:
    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    app.ctx.pool = await asyncpg.create_pool(url, min_size=1, max_size=5)


@app.after_server_stop
async def stop(app: Sanic) -> None:
    await app.ctx.pool.close()


async def staff(request: Request, con):
    key = request.headers.get("authorization", "").partition(" ")[2].strip()
    row = await con.fetchrow(
        "SELECT u.id, u.role, u.first_name, u.last_name, u.username FROM auth_tokens t "
        "JOIN users u ON u.id = t.user_id WHERE t.digest = $1 AND u.is_active",
        hashlib.sha256(key.encode("ascii", "replace")).hexdigest()
    )
    return row if row is not None and row["role"] in ("admin", "director") else None


@app.get(f"{BASE}/<rid:int>/")
async def detail(request: Request, rid: int):
    async with app.ctx.pool.acquire() as con:
        if await staff(request, con) is None:
            return js({"detail": "Недопустимый токен."}, 401)
        row = await con.fetchrow(REQUEST_SQL, rid)
    return js(request_json(row)) if row else js({"detail": "Не найдено."}, 404)


@app.get(f"{BASE}/<rid:int>/messages/")
async def messages(request: Request, rid: int):
    async with app.ctx.pool.acquire() as con:
        if await staff(request, con) is None:
            return js({"detail": "Недопустимый токен."}, 401)
        if await con.fetchval("SELECT 1 FROM customer_requests WHERE id = $1", rid) is None:
            return js({"detail": "Не найдено."}, 404)
        rows = await con.fetch(
            "SELECT m.*, u.first_name, u.last_name, u.username FROM request_messages m "
            "JOIN users u ON u.id = m.sender_id WHERE m.request_id = $1 AND NOT m.is_deleted "
            "ORDER BY m.created_at, m.id", rid,
        )
    return js([message_json(m) for m in rows])


@app.post(f"{BASE}/<rid:int>/messages/")
async def post_message(request: Request, rid: int):
    data = orjson.loads(request.body)
    internal = bool(data.get("is_internal", False))
    now = datetime.now(UTC)
    async with app.ctx.pool.acquire() as con:
        actor = await staff(request, con)
        if actor is None:
            return js({"detail": "Недопустимый токен."}, 401)
        async with con.transaction():
            if await con.fetchval("SELECT 1 FROM customer_requests WHERE id = $1", rid) is None:
                return js({"detail": "Не найдено."}, 404)
            m = await con.fetchrow(
                "INSERT INTO request_messages (request_id, sender_id, sender_type, content, "
                "message_type, is_read, is_internal, created_at, source, is_deleted) "
                "VALUES ($1, $2, 'admin', $3, 'text', false, $5, $4, 'api', false) "
                "RETURNING *", rid, actor["id"], data["content"], now, internal,
            )
            await con.execute(
                "UPDATE customer_requests SET last_message_at = $2, messages_count = "
                "messages_count + 1, public_messages_count = public_messages_count + $3 "
                "WHERE id = $1", rid, now, 0 if internal else 1,
            )
            body = message_json({**dict(m), "first_name": actor["first_name"],
                                 "last_name": actor["last_name"], "username": actor["username"]})
            await con.execute(
                "INSERT INTO events (type, topic, payload, created_at, published) "
                "VALUES ('new_message', 'admin', $1, $2, false)", orjson.dumps(body).decode(), now,
            )
    return js(body, 201)


def escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@app.get(f"{BASE}/")
async def list_page(request: Request):
    """Staff list: status/priority/category/search filters, newest first, exact count (the
    counters without search; with search the word index for one word, else up to 1,001
    matches collected, else COUNT(*))."""
    page = int(request.args.get("page", "1"))
    conds, args = [], []
    for name in ("status", "priority", "category"):
        if request.args.get(name):
            args.append(request.args.get(name))
            conds.append(f"{name} = ${len(args)}")
    search = (request.args.get("search") or "").strip().lower()
    async with app.ctx.pool.acquire() as con:
        if await staff(request, con) is None:
            return js({"detail": "Недопустимый токен."}, 401)
        if search and 3 <= len(search) <= 64 and not any(c in " \t\n\r\f\v" for c in search):
            # The word index (migration 0016_search_words) when the word is in at most 256
            # vocabulary words and 20,000 postings.
            words = await con.fetch(
                "SELECT word FROM request_vocab WHERE word LIKE $1 LIMIT 257",
                f"%{escape_like(search)}%",
            )
            if len(words) <= 256:
                wargs = [*args, [w[0] for w in words]]
                wconds = " AND ".join([*conds, f"word = ANY(${len(wargs)})"])
                postings, total = await con.fetchrow(
                    f"SELECT count(*), count(DISTINCT request_id) FROM (SELECT request_id FROM "
                    f"request_words WHERE {wconds} LIMIT 20001) m", *wargs
                )
                if postings <= 20000:
                    if page < 1 or (page > 1 and (page - 1) * 20 >= total):
                        return js({"detail": "Неправильная страница"}, 404)
                    rows = await con.fetch(
                        f"{SELECT_REQUEST} JOIN (SELECT DISTINCT request_id AS id, created_at "
                        f"FROM request_words WHERE {wconds} ORDER BY created_at DESC, id DESC "
                        f"LIMIT 20 OFFSET {(page - 1) * 20}) p "
                        "ON p.id = r.id ORDER BY r.created_at DESC, r.id DESC", *wargs,
                    )
                    return js(page_envelope(request, total, page, [request_json(r) for r in rows]))
        if search:
            args.append(f"%{escape_like(search)}%")
            conds.append(f"search_text LIKE ${len(args)}")
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        if search:
            total = await con.fetchval(
                f"SELECT count(*) FROM (SELECT 1 FROM customer_requests{where} LIMIT 1001) m", *args
            )
            if total > 1000:
                total = await con.fetchval(f"SELECT count(*) FROM customer_requests{where}", *args)
        else:
            total = await con.fetchval(
                f"SELECT COALESCE(sum(n), 0)::bigint FROM request_counts{where}", *args
            )
        if page < 1 or (page > 1 and (page - 1) * 20 >= total):
            return js({"detail": "Неправильная страница"}, 404)
        rows = await con.fetch(
            f"{SELECT_REQUEST} JOIN (SELECT id FROM customer_requests{where} "
            f"ORDER BY created_at DESC, id DESC LIMIT 20 OFFSET {(page - 1) * 20}) p "
            "ON p.id = r.id ORDER BY r.created_at DESC, r.id DESC", *args,
        )
    return js(page_envelope(request, total, page, [request_json(r) for r in rows]))


@app.get(f"{BASE}/stats/")
async def stats(request: Request):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with app.ctx.pool.acquire() as con:
        if await staff(request, con) is None:
            return js({"detail": "Недопустимый токен."}, 401)
        o, p, c, cl, t, rn, rs = await con.fetchrow(
            "SELECT (SELECT coalesce(sum(n), 0)::bigint FROM request_counts WHERE status = 'open'), "
            "(SELECT coalesce(sum(n), 0)::bigint FROM request_counts WHERE status = 'in_progress'), "
            "(SELECT coalesce(sum(n), 0)::bigint FROM request_counts WHERE status = 'completed'), "
            "(SELECT coalesce(sum(n), 0)::bigint FROM request_counts WHERE status = 'closed'), "
            # the stats' counters (migration 0017_stats_counters); UTC midnight starts a
            # quarter hour
            "(SELECT coalesce(sum(n), 0)::bigint FROM request_completions WHERE bucket >= $1), "
            "(SELECT coalesce(sum(n), 0)::bigint FROM request_ratings), "
            "(SELECT coalesce(sum(rating * n), 0)::bigint FROM request_ratings)", today,
        )
    total = o + p + c + cl
    return js({"total_requests": total, "open_requests": o, "in_progress_requests": p,
               "completed_today": t,
               "completion_rate": round(c / total * 100, 2) if total else 0,
               "csat_average": round(rs / rn, 2) if rn else None, "csat_responses": rn})


@app.post(f"{BASE}/")
async def create(request: Request):
    data = orjson.loads(request.body)
    now = datetime.now(UTC)
    async with app.ctx.pool.acquire() as con:
        actor = await staff(request, con)
        if actor is None:
            return js({"detail": "Недопустимый токен."}, 401)
        async with con.transaction():
            rid = await con.fetchval(
                "INSERT INTO customer_requests (title, description, status, priority, category, "
                "created_at, updated_at, tags, messages_count, status_changed_at, source, "
                "search_text, customer_id) VALUES ($1, $2, 'open', $3, $4, $5, $5, '[]', 0, $5, "
                "'api', $6, $7) RETURNING id",
                data["title"], data["description"], data.get("priority", "medium"),
                data.get("category", "general"), now,
                f"{data['title']} {data['description']}".lower(), actor["id"],
            )
            row = await con.fetchrow(REQUEST_SQL, rid)
            body = request_json(row)
            await con.execute(
                "INSERT INTO events (type, topic, payload, created_at, published) "
                "VALUES ('new_request', 'admin', $1, $2, false)", orjson.dumps(body).decode(), now,
            )
    return js(body, 201)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), single_process=True,
            access_log=False, debug=False, motd=False)
