"""The production deployment files hold together (no Docker engine runs here, so the
compose file, the Dockerfile and .env.example are checked as data)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from core.limits import ENV_NAMES as LIMIT_ENV_NAMES
from core.settings import Settings, load_dotenv_file, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
# Variables only compose itself reads (they never reach a helpdesk process as settings).
COMPOSE_ONLY = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "API_PORT", "API_WORKERS"}


def documented_variables() -> set[str]:
    """Names set (or shown commented out) in .env.example."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, re.M))


def cli_commands() -> set[str]:
    source = (ROOT / "bootstrap" / "cli.py").read_text(encoding="utf-8")
    return set(re.findall(r'sub\.add_parser\(\s*"([a-z-]+)"', source))


def test_compose_runs_every_part_of_the_desk():
    assert set(SERVICES) >= {"postgres", "redis", "migrate", "api", "bot", "scheduler"}
    commands = {name: svc.get("command") for name, svc in SERVICES.items()}
    assert commands["api"] == ["api"]
    assert commands["bot"] == ["bot"]
    assert commands["scheduler"] == ["scheduler"]
    assert commands["migrate"] == ["migrate"]
    known = cli_commands()
    for name in ("api", "bot", "scheduler", "migrate"):
        assert commands[name][0] in known, f"{name}: helpdesk {commands[name][0]} is not a CLI command"


def test_every_dependency_exists_and_waits_for_health():
    for name, svc in SERVICES.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            condition = spec["condition"]
            if dep in ("postgres", "redis"):
                assert condition == "service_healthy", (name, dep)
                assert "healthcheck" in SERVICES[dep]
            if dep == "migrate":
                assert condition == "service_completed_successfully", name
    for name in ("api", "bot", "scheduler"):
        assert set(SERVICES[name]["depends_on"]) == {"postgres", "redis", "migrate"}


def test_health_checks_and_graceful_stop():
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "ping" in SERVICES["redis"]["healthcheck"]["test"]
    assert "/ready" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    for name in ("api", "bot", "scheduler"):
        assert SERVICES[name]["stop_grace_period"] == "30s"


def test_api_runs_several_workers_on_postgres_and_redis():
    env = SERVICES["api"]["environment"]
    assert env["WORKERS"] == "${API_WORKERS:-4}"
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["HOST"] == "0.0.0.0"
    assert env["MIGRATE_ON_START"] == "0"  # the migrate service did it
    for name in ("migrate", "bot", "scheduler"):
        assert SERVICES[name]["environment"]["DATABASE_URL"] == env["DATABASE_URL"]


def test_database_and_media_live_on_named_volumes():
    declared = set(COMPOSE["volumes"])
    assert {"pgdata", "media"} <= declared
    for name, svc in SERVICES.items():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    # Uploads from the web (api) and from Telegram (bot) land on the same volume.
    assert "media:/app/media" in SERVICES["api"]["volumes"]
    assert "media:/app/media" in SERVICES["bot"]["volumes"]


def test_every_variable_compose_uses_is_documented():
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    missing = used - documented_variables()
    assert not missing, f"used in docker-compose.yml but not in .env.example: {sorted(missing)}"


def test_env_example_documents_every_setting_and_loads_cleanly():
    names = {f.name.upper() for f in fields(Settings) if f.name not in ("extra", "limits")}
    names |= set(LIMIT_ENV_NAMES.values())
    missing = names - documented_variables()
    assert not missing, f"settings not documented in .env.example: {sorted(missing)}"
    # The example, as shipped, is a valid configuration.
    settings = load_settings(env=load_dotenv_file(ROOT / ".env.example"), dotenv=False)
    assert settings.language == "ru"
    assert settings.max_upload_mb == 10
    assert "MIGRATE_ON_START" in documented_variables()
    assert COMPOSE_ONLY <= documented_variables()


def test_dockerfile_builds_a_non_root_image_with_the_helpdesk_entrypoint():
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["helpdesk"]' in text
    assert "pip install" in text
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignore and ".git" in ignore and ".venv" in ignore
    # Every helpdesk container is built from this file.
    for name in ("migrate", "api", "bot", "scheduler"):
        assert SERVICES[name]["build"] == "."
