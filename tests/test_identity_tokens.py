"""API tokens: stored as digests, one per login, revocable, optionally expiring, header only
on REST; the upgrade keeps deployed tokens working. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from tortoise import Tortoise, connections

from core import runtime
from db.models import AuthToken
from tests.api_helpers import CUSTOMER
from tests.wsutil import close_code, connect

LOGIN = "/api/auth/token/"


async def test_login_issues_a_new_token_per_device_stored_only_as_its_digest(api, make_user):
    user = await make_user("admin", username="boss", password="s3cret-pass")
    keys = []
    for _ in range(2):
        r = await api.post(LOGIN, json={"username": "boss", "password": "s3cret-pass"})
        assert r.status_code == 200, r.text
        keys.append(r.json()["token"])
    assert keys[0] != keys[1] and all(len(k) == 40 for k in keys)
    rows = await AuthToken.filter(user_id=user.id).values_list("digest", flat=True)
    assert sorted(rows) == sorted(hashlib.sha256(k.encode()).hexdigest() for k in keys)
    # the key itself is nowhere in the database
    conn = connections.get("default")
    _, dump = await conn.execute_query('SELECT * FROM "auth_tokens"')
    assert not any(k in str(tuple(row)) for row in dump for k in keys)
    for key in keys:  # both devices are signed in
        assert (await api.get(CUSTOMER, key)).status_code == 200


async def test_delete_revokes_only_the_token_used(api, make_user):
    await make_user("customer", username="ann", password="pw-123456")
    phone, laptop = [
        (await api.post(LOGIN, json={"username": "ann", "password": "pw-123456"})).json()["token"]
        for _ in range(2)
    ]
    r = await api.request("DELETE", LOGIN, phone)
    assert r.status_code == 204
    r = await api.get(CUSTOMER, phone)
    assert r.status_code == 401 and r.json()["detail"] == "Недопустимый токен."
    assert (await api.request("DELETE", LOGIN, phone)).status_code == 401
    assert (await api.get(CUSTOMER, laptop)).status_code == 200
    assert (await api.request("DELETE", LOGIN)).status_code == 401


async def test_query_token_is_refused_on_rest_and_accepted_on_websockets(api, make_user, token_for):
    admin = await make_user("admin")
    key = await token_for(admin)
    r = await api.get(f"{CUSTOMER}?token={key}")
    assert r.status_code == 401 and "Authorization" in r.json()["detail"]
    r = await api.get(f"/api/admin/customer-requests/?token={key}")
    assert r.status_code == 401
    ws = await connect(api.base, "/ws/admin/notifications/", key)
    await ws.send('{"type": "ping"}')
    await ws.close()
    assert await close_code(await connect(api.base, "/ws/admin/notifications/", "f" * 40)) == 4401


async def test_tokens_expire_after_token_ttl_days(api, make_user, token_for, settings):
    user = await make_user("customer")
    old, fresh = await token_for(user), await token_for(user)
    await AuthToken.filter(digest=hashlib.sha256(old.encode()).hexdigest()).update(
        created=datetime.now(UTC) - timedelta(days=3)
    )
    assert (await api.get(CUSTOMER, old)).status_code == 200  # no TTL by default
    runtime.configure(settings.with_overrides(token_ttl_days=2))
    try:
        assert (await api.get(CUSTOMER, old)).status_code == 401
        assert (await api.get(CUSTOMER, fresh)).status_code == 200
    finally:
        runtime.configure(settings)


async def test_upgrade_converts_plaintext_tokens_so_clients_stay_signed_in(backend, tmp_path):
    """A database at 0008 with DRF-style plaintext keys; after 0009 the same keys work."""
    from db.setup import close_db, init_db, tortoise_config
    from tests.conftest import _pg_admin, pg_url

    if backend == "sqlite":
        url = f"sqlite://{tmp_path}/upgrade.sqlite3"
    else:
        name = f"helpdesk_upgrade_{uuid.uuid4().hex[:8]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        url = pg_url(name)
    from tortoise.migrations.api.migrate import migrate

    try:
        await migrate(config=tortoise_config(url), target="models.0008_console")
        conn = connections.get("default")
        pg = conn.capabilities.dialect == "postgres"
        p = (lambda n: f"${n}") if pg else (lambda n: "?")
        now = datetime.now(UTC)
        key = "0123456789abcdef0123456789abcdef01234567"
        await conn.execute_query(
            'INSERT INTO "users" (username, first_name, last_name, email, role, is_active, password, '
            f'language, date_joined) VALUES ({p(1)}, \'Old\', \'Client\', \'old@example.com\', '
            f"'customer', TRUE, '', 'ru', {p(2)})",
            ["oldclient", now],
        )
        await conn.execute_query(
            f'INSERT INTO "api_tokens" ("key", "user_id", "created") VALUES ({p(1)}, 1, {p(2)})',
            [key, now],
        )
        await Tortoise.close_connections()
        await migrate(config=tortoise_config(url))
        await Tortoise.close_connections()
        await init_db(url)
        from core.users import user_for_token

        user = await user_for_token(key)
        assert user is not None and user.username == "oldclient"
        row = await AuthToken.get(user_id=user.id)
        assert row.digest == hashlib.sha256(key.encode()).hexdigest() and row.origin == "migrated"
        conn = connections.get("default")
        _, dump = await conn.execute_query('SELECT * FROM "auth_tokens"')
        assert key not in str([tuple(r) for r in dump])
    finally:
        await close_db()
        if backend != "sqlite":
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
