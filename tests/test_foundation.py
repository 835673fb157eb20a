"""Settings validation, migrations agreeing with the models, the CLI, password storage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tortoise import Tortoise, connections

from core.security import hash_password, new_token_key, verify_password
from core.settings import SettingsError, load_settings
from db.setup import tortoise_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be <= 65535"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must start with sqlite:// or postgres://"),
        ({"LANGUAGE": "de"}, "LANGUAGE must be one of ru, en"),
        ({"MAX_UPLOAD_MB": "0"}, "MAX_UPLOAD_MB must be >= 1"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis://"),
        ({"TELEGRAM_BOT_TOKEN": "nonsense"}, "TELEGRAM_BOT_TOKEN must look like"),
        ({"TZ": "Mars/Olympus"}, "TZ must be an IANA time zone"),
        ({"DIGEST_CRON": "every day"}, "DIGEST_CRON must be a 5-field crontab"),
    ],
)
def test_bad_setting_is_reported_by_name(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env, dotenv=False)


def test_defaults_are_the_embedded_setup():
    s = load_settings({}, dotenv=False)
    assert s.database_url.startswith("sqlite://data/")
    assert (s.host, s.port, s.redis_url, s.max_upload_mb, s.language) == ("127.0.0.1", 8000, None, 10, "ru")


def test_dotenv_file_fills_missing_values(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text('PORT=9001\nLANGUAGE="en"\n# comment\n')
    monkeypatch.setenv("HELPDESK_ENV_FILE", str(env_file))
    s = load_settings({"PORT": "9002"})
    assert s.port == 9002 and s.language == "en"


def test_passwords_are_salted_slow_hashes():
    h1, h2 = hash_password("correct horse"), hash_password("correct horse")
    assert h1 != h2 and h1.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("correct horse", h1) and not verify_password("wrong", h1)
    assert len({new_token_key() for _ in range(100)}) == 100


async def test_migrations_match_the_models(db_url):
    from tortoise.migrations.autodetector import MigrationAutodetector

    config = tortoise_config(db_url)
    detector = MigrationAutodetector(Tortoise.apps, config["apps"])
    pending = await detector.changes()
    assert pending == [], "models changed without a migration: run tortoise makemigrations"
    conn = connections.get("default")
    for model in Tortoise.apps["models"].values():
        table = model._meta.db_table
        if conn.capabilities.dialect == "postgres":
            rows = await conn.execute_query_dict(
                "SELECT column_name AS name FROM information_schema.columns WHERE table_name = $1",
                [table],
            )
        else:
            rows = await conn.execute_query_dict(f'PRAGMA table_info("{table}")')
        columns = {r["name"] for r in rows}
        expected = {f.source_field or name for name, f in model._meta.fields_map.items()
                    if not getattr(f, "_generated_by_m2m", False) and name in model._meta.db_fields}
        assert expected <= columns, f"{table} lacks {expected - columns}"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": f"sqlite://{tmp_path}/cli.sqlite3", "HELPDESK_ENV_FILE": "/nonexistent"}
    return subprocess.run(
        [sys.executable, "-m", "bootstrap.cli", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )


@pytest.mark.heavy(seconds=15)
def test_cli_createuser_token_and_seed_demo(tmp_path):
    r = _cli(tmp_path, "createuser", "--username", "anna", "--password", "pw-123456", "--role", "admin",
             "--first-name", "Анна")
    assert r.returncode == 0, r.stderr
    assert "created admin anna" in r.stdout
    r = _cli(tmp_path, "createuser", "--username", "anna", "--role", "admin")
    assert r.returncode == 1 and "уже существует" in r.stderr
    r1, r2 = _cli(tmp_path, "token", "anna"), _cli(tmp_path, "token", "anna")
    # one token per call (per device); only digests are stored, so none can be shown again
    assert r1.returncode == 0 and len(r1.stdout.strip()) == 40 and r1.stdout != r2.stdout
    assert _cli(tmp_path, "token", "ghost").returncode == 1
    r = _cli(tmp_path, "revoke-tokens", "anna")
    assert r.returncode == 0 and "revoked 2 token(s) of anna" in r.stdout, r.stderr
    r = _cli(tmp_path, "seed-demo")
    assert r.returncode == 0 and "20" in r.stdout, r.stderr


def test_cli_refuses_bad_configuration_clearly(tmp_path):
    env = {**os.environ, "PORT": "not-a-port", "HELPDESK_ENV_FILE": "/nonexistent"}
    r = subprocess.run([sys.executable, "-m", "bootstrap.cli", "migrate"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "PORT must be an integer" in r.stderr


async def test_seed_demo_creates_the_seed_data(settings):
    import random

    from bootstrap.commands import seed_demo_data
    from db.models import CustomerRequest, RequestMessage, User

    await seed_demo_data(random.Random(1))
    assert await User.filter(role="customer").count() == 5
    assert await CustomerRequest.all().count() == 20
    per_request = await RequestMessage.all().values_list("request_id", flat=True)
    counts = {rid: per_request.count(rid) for rid in set(per_request)}
    assert len(counts) == 20 and all(1 <= c <= 5 for c in counts.values())
