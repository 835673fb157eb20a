"""Fill a fresh PostgreSQL database with a realistic support-desk data set, fast.

    .venv/bin/python -m bench.fill_pg --database-url postgres://postgres@127.0.0.1:5432/helpdesk_bench

Drops and re-creates the named database (it must contain "bench" in its name, so a shared
database is never touched), applies the project's migrations (db.setup.migrate_db), then
loads with asyncpg binary COPY:

- 5,000 customers, 20 admins, 1 director (each staff member gets an API token whose key is
  `bench_token(username)`); 100,000 requests x 3 messages (customer, admin, customer);
- statuses 15% open / 15% in_progress / 15% completed (some of them completed today) /
  55% closed; priorities 25% low / 45% medium / 22% high / 8% urgent; five categories;
  customers drawn with a skew (some customers write far more than others);
- created_at spread over the last 365 days in id order; `search_text` built exactly like
  core.requests.build_search_text; messages_count = 3; last_message_at = the third message.

Search terms with known selectivity (bench.rest_bench uses them):
- SMALL_TERM appears in about 0.5% of the requests (under 1,000 of 100,000);
- BROAD_TERM ("example", the e-mail domain of 85% of the customers) in most of them.

Secondary indexes of the two big tables are dropped before COPY and re-created afterwards
(same definitions, read from pg_indexes), then VACUUM ANALYZE, so the planner and
index-only scans see a settled table, like a long-running production database.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import asyncpg

from core.requests import build_search_text
from core.security import token_digest
from db.models import User

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/helpdesk_bench"
SMALL_TERM = "термопринтер"
BROAD_TERM = "example"
DIRECTOR = "bench_director"

STATUSES = (("open", 15), ("in_progress", 15), ("completed", 15), ("closed", 55))
PRIORITIES = (("low", 25), ("medium", 45), ("high", 22), ("urgent", 8))
CATEGORIES = (("technical", 30), ("billing", 20), ("account", 15), ("order", 20), ("general", 15))

FIRST_NAMES = (
    "Иван Пётр Анна Мария Ольга Сергей Алексей Дмитрий Елена Наталья Андрей Татьяна "
    "Михаил Юлия Николай Светлана Павел Ирина Владимир Екатерина John Mary Alex Kate"
).split()
LAST_NAMES = (
    "Иванов Петров Смирнов Кузнецов Попов Васильев Соколов Михайлов Новиков Фёдоров "
    "Морозов Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев "
    "Orlov Smith Brown Taylor Wilson"
).split()
SUBJECTS = {
    "technical": ["Не работает вход", "Ошибка при оплате картой", "Приложение падает",
                  "Не приходят уведомления", "Медленно грузится страница", "Сбой синхронизации"],
    "billing": ["Двойное списание", "Не пришёл чек", "Вопрос по тарифу", "Возврат средств",
                "Неверная сумма в счёте", "Смена способа оплаты"],
    "account": ["Сменить e-mail", "Не могу восстановить пароль", "Удалить аккаунт",
                "Объединить аккаунты", "Подтверждение телефона"],
    "order": ["Где мой заказ", "Заказ пришёл не полностью", "Отменить заказ",
              "Поменять адрес доставки", "Повреждённая упаковка", "Обмен товара"],
    "general": ["Вопрос по работе сервиса", "Предложение по улучшению", "Часы работы",
                "Сотрудничество", "Отзыв о поддержке"],
}
SENTENCES = [
    "Добрый день, прошу помочь как можно скорее.",
    "Проблема появилась вчера вечером после обновления.",
    "Пробовал перезагрузить устройство, не помогло.",
    "Номер заказа указан в личном кабинете.",
    "Скриншот могу прислать по запросу.",
    "Ситуация повторяется уже третий раз за неделю.",
    "Пожалуйста, сообщите сроки решения.",
    "Оплата прошла, но статус не изменился.",
    "В мобильном приложении всё работает, а на сайте нет.",
    "Курьер не позвонил и не приехал.",
    "Hello, the page shows an error after login.",
    "Please check my account settings.",
    "Спасибо заранее за ответ.",
    "Использую браузер последней версии.",
    "Деньги списались, а доставка не оформлена.",
]
REPLIES = [
    "Здравствуйте! Спасибо за обращение, уже проверяем.",
    "Мы передали вопрос профильному специалисту.",
    "Уточните, пожалуйста, номер заказа.",
    "Проблема исправлена, проверьте, пожалуйста.",
    "Средства вернутся в течение 3-5 рабочих дней.",
]
FOLLOWUPS = [
    "Спасибо, всё работает.", "Жду ответа.", "Номер заказа 48213, проверьте.",
    "Проблема осталась.", "Хорошо, спасибо за помощь!",
]


def bench_token(username: str) -> str:
    """The API token key the fill gives a staff member (40 hex chars, deterministic)."""
    return hashlib.sha1(f"helpdesk-bench:{username}".encode()).hexdigest()


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...], n: int) -> list[str]:
    names = [p[0] for p in pairs]
    weights = [p[1] for p in pairs]
    return rng.choices(names, weights=weights, k=n)


def _pg(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _with_db(url: str, dbname: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path="/" + dbname))


async def recreate_database(url: str, *, allow_any_name: bool = False) -> None:
    dbname = urlparse(url).path.lstrip("/")
    if not dbname or (("bench" not in dbname) and not allow_any_name):
        raise SystemExit(
            f"refusing to drop database {dbname!r}: its name must contain 'bench' "
            "(pass --allow-any-name to override)"
        )
    admin = await asyncpg.connect(_pg(_with_db(url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await admin.close()


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last = self.t0

    def step(self, what: str) -> None:
        now = time.perf_counter()
        print(f"  {what:<44} {now - self.last:6.1f} s", flush=True)
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.t0


def generate(n_requests: int, n_customers: int, n_admins: int, seed: int, now: datetime):
    """All rows as tuples in COPY column order (see the *_COLUMNS below)."""
    rng = random.Random(seed)
    users: list[tuple] = []
    customers: list[User] = []
    joined = now - timedelta(days=400)
    uid = 0
    for i in range(n_customers):
        uid += 1
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        domain = "example.com" if rng.random() < 0.85 else rng.choice(("mail.test", "inbox.test"))
        email = f"customer{i + 1}@{domain}"
        users.append((uid, f"customer{i + 1}", first, last, email, "customer", True, "",
                      None, None, "ru", joined, None))
        customers.append(User(id=uid, first_name=first, last_name=last, email=email))
    staff: list[int] = []
    for i in range(n_admins + 1):
        uid += 1
        name = DIRECTOR if i == n_admins else f"bench_admin{i + 1}"
        role = "director" if i == n_admins else "admin"
        users.append((uid, name, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES),
                      f"{name}@support.test", role, True, "", None, None, "ru", joined, None))
        staff.append(uid)
    admins = staff[:-1]
    tokens = [(token_digest(bench_token(u[1])), joined, u[0], "cli") for u in users if u[5] != "customer"]

    statuses = _weighted(rng, STATUSES, n_requests)
    priorities = _weighted(rng, PRIORITIES, n_requests)
    categories = _weighted(rng, CATEGORIES, n_requests)
    # Skewed customers: a few write a lot, most write a little.
    frequent = max(1, n_customers // 20)  # 5% of the customers write 30% of the requests
    cust_idx = [rng.randrange(frequent) if rng.random() < 0.3 else rng.randrange(n_customers)
                for _ in range(n_requests)]
    span = timedelta(days=365).total_seconds()
    start = now - timedelta(days=365, hours=1)
    step = span / n_requests
    today_start = now.replace(hour=0, minute=0, second=0, microsecond=0)

    # Ratings from their own generator, so the rest of the data stays as it was without them:
    # 40% of the completed and closed requests are rated, mostly well.
    rating_rng = random.Random(seed + 1)
    requests: list[tuple] = []
    messages: list[tuple] = []
    mid = 0
    for i in range(n_requests):
        rid = i + 1
        created = start + timedelta(seconds=i * step + rng.random() * step)
        status = statuses[i]
        category = categories[i]
        customer = customers[cust_idx[i]]
        title = f"{rng.choice(SUBJECTS[category])} #{rng.randrange(1000, 99999)}"
        parts = rng.sample(SENTENCES, rng.randint(2, 4))
        if rng.random() < 0.005:
            parts.insert(1, f"Модель {SMALL_TERM} XP-58 печатает пустые чеки.")
        description = " ".join(parts)
        admin = None if status == "open" else rng.choice(admins)
        t1 = created + timedelta(minutes=rng.randint(5, 600))
        t2 = t1 + timedelta(minutes=rng.randint(5, 1440))
        if status == "open":
            changed = created
        elif status == "completed" and rng.random() < 0.05:
            changed = today_start + (now - today_start) * rng.random()  # completed today
        else:
            changed = t1 + timedelta(minutes=rng.randint(1, 2000))
        changed = min(changed, now)
        t1, t2 = min(t1, now), min(t2, now)
        updated = max(changed, t2)
        tags = json.dumps(rng.sample(["vip", "mobile", "web", "refund", "bug"], rng.randint(0, 2)))
        rating = rated_at = None
        if status in ("completed", "closed") and rating_rng.random() < 0.4:
            rating = rating_rng.choices((1, 2, 3, 4, 5), (10, 8, 12, 25, 45))[0]
            rated_at = min(changed + timedelta(minutes=rating_rng.randint(1, 600)), now)
        requests.append((
            rid, title, description, status, priorities[i], category, created, updated, t2,
            None, tags, 3, changed, "api", None,
            build_search_text(title, description, customer), admin, customer.id, rating, rated_at,
        ))
        responder = admin or rng.choice(admins)
        for sender, stype, content, ts in (
            (customer.id, "customer", description, created),
            (responder, "admin", rng.choice(REPLIES), t1),
            (customer.id, "customer", rng.choice(FOLLOWUPS), t2),
        ):
            mid += 1
            messages.append((mid, stype, content, "text", True, False, ts, "api", rid, sender))
    return users, tokens, requests, messages


USER_COLUMNS = ["id", "username", "first_name", "last_name", "email", "role", "is_active",
                "password", "telegram_id", "telegram_username", "language", "date_joined",
                "active_request_id"]
TOKEN_COLUMNS = ["digest", "created", "user_id", "origin"]
REQUEST_COLUMNS = ["id", "title", "description", "status", "priority", "category", "created_at",
                   "updated_at", "last_message_at", "estimated_resolution_time", "tags",
                   "messages_count", "status_changed_at", "source", "access_key", "search_text",
                   "assigned_admin_id", "customer_id", "rating", "rated_at"]
MESSAGE_COLUMNS = ["id", "sender_type", "content", "message_type", "is_read", "is_internal",
                   "created_at", "source", "request_id", "sender_id"]


async def _drop_secondary_indexes(conn: asyncpg.Connection, tables: list[str]) -> list[str]:
    """Drop indexes that back no constraint; return their definitions to re-create."""
    rows = await conn.fetch(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        """,
        tables,
    )
    for row in rows:
        await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    return [row["indexdef"] for row in rows]


async def fill(url: str, *, n_requests: int, n_customers: int, n_admins: int, seed: int,
               allow_any_name: bool = False) -> None:
    from db.setup import migrate_db

    timer = Timer()
    now = datetime.now(UTC)
    print(f"fill {url}: {n_requests} requests x 3 messages, {n_customers} customers, "
          f"{n_admins} admins + 1 director", flush=True)
    await recreate_database(url, allow_any_name=allow_any_name)
    timer.step("drop + create database")
    await migrate_db(url)
    timer.step("migrate (db.setup.migrate_db)")
    users, tokens, requests, messages = generate(n_requests, n_customers, n_admins, seed, now)
    timer.step("generate rows in Python")

    conn = await asyncpg.connect(_pg(url))
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        indexdefs = await _drop_secondary_indexes(conn, ["customer_requests", "request_messages"])
        # The exact-count trigger (migration 0014_counts) would queue one deferred event
        # per row; recount once after the load instead.
        await conn.execute("ALTER TABLE customer_requests DISABLE TRIGGER request_counts_row")
        # So would the word index's (migration 0016_search_words): rebuilt once, too.
        await conn.execute("ALTER TABLE customer_requests DISABLE TRIGGER request_words_row")
        # And the stats' counters' (migration 0017_stats_counters): one per completed or
        # rated request.
        for trigger in ("request_stats_completions_insert", "request_stats_ratings_insert"):
            await conn.execute(f"ALTER TABLE customer_requests DISABLE TRIGGER {trigger}")
        await conn.copy_records_to_table("users", records=users, columns=USER_COLUMNS)
        await conn.copy_records_to_table("auth_tokens", records=tokens, columns=TOKEN_COLUMNS)
        await conn.copy_records_to_table(
            "customer_requests", records=requests, columns=REQUEST_COLUMNS
        )
        timer.step(f"COPY users, tokens, {len(requests)} requests")
        await conn.copy_records_to_table(
            "request_messages", records=messages, columns=MESSAGE_COLUMNS
        )
        timer.step(f"COPY {len(messages)} messages")
        for table in ("users", "customer_requests", "request_messages"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await conn.execute("SELECT request_counts_rebuild()")
        await conn.execute("ALTER TABLE customer_requests ENABLE TRIGGER request_counts_row")
        await conn.execute("SELECT request_stats_rebuild()")
        for trigger in ("request_stats_completions_insert", "request_stats_ratings_insert"):
            await conn.execute(f"ALTER TABLE customer_requests ENABLE TRIGGER {trigger}")
        timer.step("recount")
        await conn.execute("SELECT request_words_rebuild()")
        await conn.execute("ALTER TABLE customer_requests ENABLE TRIGGER request_words_row")
        timer.step("word index (request_words_rebuild)")
        for definition in indexdefs:
            await conn.execute(definition)
        timer.step(f"re-create {len(indexdefs)} secondary indexes")
        await conn.execute("VACUUM (ANALYZE) users")
        await conn.execute("VACUUM (ANALYZE) auth_tokens")
        await conn.execute("VACUUM (ANALYZE) customer_requests")
        await conn.execute("VACUUM (ANALYZE) request_messages")
        await conn.execute("VACUUM (ANALYZE) request_words")
        await conn.execute("VACUUM (ANALYZE) request_vocab")
        timer.step("VACUUM ANALYZE")
        small = await conn.fetchval(
            "SELECT count(*) FROM customer_requests WHERE search_text LIKE $1", f"%{SMALL_TERM}%"
        )
        broad = await conn.fetchval(
            "SELECT count(*) FROM customer_requests WHERE search_text LIKE $1", f"%{BROAD_TERM}%"
        )
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
    finally:
        await conn.close()
    print(f"done in {timer.total():.1f} s; database size {size}; "
          f"search {SMALL_TERM!r} matches {small}, {BROAD_TERM!r} matches {broad}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url",
                        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
                        help=f"PostgreSQL URL of the database to (re)create (default {DEFAULT_URL})")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--admins", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--allow-any-name", action="store_true",
                        help="allow a database name without 'bench' in it (it is dropped!)")
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        sys.exit("--database-url must be a postgres:// URL")
    url = args.database_url.replace("postgresql://", "postgres://", 1)
    asyncio.run(fill(url, n_requests=args.requests, n_customers=args.customers,
                     n_admins=args.admins, seed=args.seed, allow_any_name=args.allow_any_name))


if __name__ == "__main__":
    main()
