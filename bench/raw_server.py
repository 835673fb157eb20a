"""A hand-written raw-SQL Sanic server for comparison (bench only, never deployed).

    PORT=8100 DATABASE_URL=postgres://.../helpdesk_bench .venv/bin/python -m bench.raw_server
    .venv/bin/python -m bench.rest_bench --raw --only detail,messages,stats,create

Same routes, auth and JSON shapes as the real API for the four scenarios the issue names
(detail, messages, stats, create), written directly against asyncpg with orjson: no ORM,
no permission layer beyond "staff token", no events table write... except that create
does write its event row in the same transaction, as the real service does. It shows the
floor an ORM-based service is measured against; see docs/performance.md.
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


def request_json(row) -> dict:
    return {
        "id": row["id"], "title": row["title"], "description": row["description"],
        "status": row["status"], "priority": row["priority"], "category": row["category"],
        "customer": user_json(row, "c_"), "assigned_admin": user_json(row, "a_"),
        "created_at": dt(row["created_at"]), "updated_at": dt(row["updated_at"]),
        "last_message_at": dt(row["last_message_at"]), "messages_count": row["messages_count"],
        "estimated_resolution_time": dt(row["estimated_resolution_time"]),
        "tags": orjson.loads(row["tags"]),
    }


REQUEST_SQL = (
    "SELECT r.*, c.id c_id, c.username c_username, c.first_name c_first_name, "
    "c.last_name c_last_name, c.email c_email, a.id a_id, a.username a_username, "
    "a.first_name a_first_name, a.last_name a_last_name, a.email a_email "
    "FROM customer_requests r JOIN users c ON c.id = r.customer_id "
    "LEFT JOIN users a ON a.id = r.assigned_admin_id WHERE r.id = $1"
)


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
            "JOIN users u ON u.id = m.sender_id WHERE m.request_id = $1 "
            "ORDER BY m.created_at, m.id", rid,
        )
    return js([{
        "id": m["id"], "request": m["request_id"], "sender": m["sender_id"],
        "sender_type": m["sender_type"],
        "sender_name": f"{m['first_name']} {m['last_name']}".strip() or m["username"],
        "sender_avatar": None, "content": m["content"], "message_type": m["message_type"],
        "is_read": m["is_read"], "is_internal": m["is_internal"], "created_at": dt(m["created_at"]),
    } for m in rows])


@app.get(f"{BASE}/stats/")
async def stats(request: Request):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with app.ctx.pool.acquire() as con:
        if await staff(request, con) is None:
            return js({"detail": "Недопустимый токен."}, 401)
        o, p, c, cl, t = await con.fetchrow(
            "SELECT (SELECT count(*) FROM customer_requests WHERE status = 'open'), "
            "(SELECT count(*) FROM customer_requests WHERE status = 'in_progress'), "
            "(SELECT count(*) FROM customer_requests WHERE status = 'completed'), "
            "(SELECT count(*) FROM customer_requests WHERE status = 'closed'), "
            "(SELECT count(*) FROM customer_requests WHERE status = 'completed' "
            "AND status_changed_at >= $1)", today,
        )
    total = o + p + c + cl
    return js({"total_requests": total, "open_requests": o, "in_progress_requests": p,
               "completed_today": t,
               "completion_rate": round(c / total * 100, 2) if total else 0})


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
