"""One validated settings object, read once at start from the environment (and `.env`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from core.limits import CEILINGS, ENV_NAMES, Limits


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


LANGUAGES = ("ru", "en")
TELEGRAM_MODES = ("polling", "webhook", "off")


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite://data/helpdesk.sqlite3"
    redis_url: str | None = None
    # Redis pub/sub channel of the event bus: processes of one deployment share it.
    events_channel: str = "helpdesk:events"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    media_root: Path = Path("media")
    max_upload_mb: int = 10
    language: str = "ru"
    log_format: str = "text"  # text | json
    log_level: str = "INFO"
    public_url: str = ""  # used in links the bot sends; defaults to http://HOST:PORT
    # Telegram
    telegram_bot_token: str | None = None
    telegram_admin_chat_id: int | None = None
    telegram_api_server: str = "https://api.telegram.org"
    telegram_mode: str = "polling"
    telegram_webhook_secret: str | None = None
    telegram_webhook_url: str | None = None
    # Telegram's limits (messages per seconds), shared by every process through Redis when
    # REDIS_URL is set (telegram_delivery.budget). Edits, topic changes and files count like messages.
    telegram_group_rate: tuple[int, float] = (20, 60.0)  # per group
    telegram_private_rate: tuple[int, float] = (1, 1.0)  # per private chat
    telegram_global_rate: tuple[int, float] = (30, 1.0)  # the whole bot
    # A burst: more new-request cards pending for a group than this are folded into
    # summaries (a Take button per request); their own cards follow later only with
    # TELEGRAM_CARDS_AFTER_SUMMARY (telegram_delivery/sender.py says why it is off by default).
    telegram_summary_after: int = 10
    telegram_cards_after_summary: bool = False
    # Scheduler
    scheduler_enabled: bool = True
    tz: str = "UTC"
    digest_cron: str = "0 9 * * *"
    remind_urgent_min: int = 15
    remind_high_min: int = 60
    remind_medium_min: int = 240
    remind_low_min: int = 1440
    auto_close_days: int = 7
    # Abuse protection
    # Proxies whose X-Forwarded-For is believed (addresses or networks); empty: no proxy,
    # the socket's peer is the client (api/client_address.py).
    trusted_proxies: tuple[str, ...] = ()
    bot_new_requests_per_hour: int = 5  # per Telegram user
    bot_messages_per_min: int = 20  # per Telegram user, private chat
    ws_frame_rate: tuple[int, int] = (20, 10)  # frames per seconds, per WebSocket connection
    ws_resume_rate: tuple[int, int] = (10, 60)  # replays per seconds, per public access key
    ws_max_frame_bytes: int = 64 * 1024
    ws_public_sockets_per_client: int = 30  # open public sockets per client address
    web_rate_limit_per_min: int = 10
    # Login throttling (core.login_throttle): failed attempts per username and per client
    # address within a window; beyond either, 429 until the window ends.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_window_seconds: int = 300
    # API tokens older than this many days stop working (None: they never expire).
    token_ttl_days: int | None = None
    # Staff console (api/console): a session ends after this long without a page or an
    # action, and in any case this long after sign-in.
    console_idle_minutes: int = 60
    console_max_hours: int = 12
    # Poisoned work: an event (Telegram relay) or an outbox row whose handling raises is
    # tried this many times, with backoff, then parked (`helpdesk parked`).
    poison_max_attempts: int = 3
    # How long after sending one may edit or delete one's own message over REST or the web
    # page (core.message_edits; MESSAGE_EDIT_WINDOW_HOURS, 0 = never).
    message_edit_window_hours: int = 48
    # The audit log (and the history of deleted requests) is kept this long, apart from
    # the event log's 30 days (core.audit.prune, run by the housekeeping job).
    audit_retention_days: int = 365
    # Size limits of client input (core.limits; LIMIT_* variables)
    limits: Limits = field(default_factory=Limits)
    # Outbound webhooks (webhooks/): targets on loopback, private or link-local networks
    # are refused unless allowed; seconds one delivery attempt may take; hours a delivery
    # is retried (at least 24).
    webhook_allow_private: bool = False
    webhook_timeout: int = 10
    webhook_retry_hours: int = 24
    # Metrics (core/metrics.py): bearer token for /metrics (unset: open); the port on
    # which `helpdesk bot` / `helpdesk scheduler` serve their own /metrics (unset: none);
    # the directory prometheus-client's multiprocess mode shares between processes.
    metrics_token: str | None = None
    metrics_port: int | None = None
    prometheus_multiproc_dir: str | None = None
    # E-mail (mail/): off unless SMTP_URL is set. MAIL_FROM is the sender address;
    # replies go to req-<id>-<secret>@MAIL_REPLY_DOMAIN (default: MAIL_FROM's domain),
    # accepted by the inbound SMTP listener on MAIL_INBOUND_HOST:MAIL_INBOUND_PORT.
    smtp_url: str | None = None
    mail_from: str = ""
    mail_reply_domain: str = ""
    mail_inbound_host: str = "127.0.0.1"
    mail_inbound_port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://", "asyncpg://"))

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def mail_enabled(self) -> bool:
        return bool(self.smtp_url)

    @property
    def reply_domain(self) -> str:
        if self.mail_reply_domain:
            return self.mail_reply_domain
        from email.utils import parseaddr

        return parseaddr(self.mail_from)[1].rpartition("@")[2] or "localhost"

    def with_overrides(self, **kwargs: Any) -> Settings:
        return replace(self, **kwargs)


def _int(name: str, raw: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")
    return value


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _rate_per_seconds(name: str, raw: str) -> tuple[int, int]:
    """`N/S`: N events per S seconds (both at least 1)."""
    count, sep, seconds = raw.strip().partition("/")
    if not sep:
        raise SettingsError(f"{name} must look like 20/10 (events per seconds), got {raw!r}")
    return _int(name, count, 1), _int(name, seconds, 1)


def _telegram_rate(name: str, raw: str) -> tuple[int, float]:
    """`N/S`: N messages per S seconds; S may be a fraction (tests and benchmarks shrink
    Telegram's minute to a second)."""
    count, sep, seconds = raw.strip().partition("/")
    if not sep:
        raise SettingsError(f"{name} must look like 20/60 (messages per seconds), got {raw!r}")
    n = _int(name, count, 1, 100_000)
    try:
        s = float(seconds.strip())
    except ValueError:
        raise SettingsError(f"{name} must look like 20/60 (messages per seconds), got {raw!r}") from None
    if not 0.001 <= s <= 86_400:
        raise SettingsError(f"{name}: seconds must be between 0.001 and 86400, got {seconds.strip()!r}")
    return n, s


def _networks(name: str, raw: str) -> tuple[str, ...]:
    """Comma- or space-separated IP addresses or networks (10.0.0.0/8, ::1)."""
    import ipaddress

    out = []
    for item in raw.replace(",", " ").split():
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{name} must list IP addresses or networks like 10.0.0.0/8, got {item!r}"
            ) from None
    return tuple(out)


def _database_url(raw: str) -> str:
    raw = raw.strip()
    if raw.startswith("postgresql://"):
        raw = "postgres://" + raw[len("postgresql://") :]
    scheme = urlparse(raw).scheme
    if scheme not in ("sqlite", "postgres", "asyncpg"):
        raise SettingsError(
            f"DATABASE_URL must start with sqlite:// or postgres://, got {raw!r}"
        )
    return raw


def load_dotenv_file(path: str | os.PathLike[str] = ".env") -> dict[str, str]:
    """Read KEY=VALUE lines from a .env file if present (no shell expansion)."""
    p = Path(path)
    if not p.is_file():
        return {}
    values: dict[str, str] = {}
    for line in p.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def load_settings(env: dict[str, str] | None = None, dotenv: bool = True) -> Settings:
    """Build Settings from the environment; a `.env` file fills in what the environment lacks.

    Raises SettingsError with a message naming the bad variable.
    """
    source: dict[str, str] = {}
    if dotenv:
        source.update(load_dotenv_file(os.environ.get("HELPDESK_ENV_FILE", ".env")))
    source.update(os.environ if env is None else env)

    def get(name: str) -> str | None:
        value = source.get(name)
        return value if value not in (None, "") else None

    kw: dict[str, Any] = {}
    if (v := get("DATABASE_URL")) is not None:
        kw["database_url"] = _database_url(v)
    if (v := get("REDIS_URL")) is not None:
        if urlparse(v).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(f"REDIS_URL must start with redis://, got {v!r}")
        kw["redis_url"] = v
    if (v := get("EVENTS_CHANNEL")) is not None:
        kw["events_channel"] = v
    if (v := get("HOST")) is not None:
        kw["host"] = v
    if (v := get("PORT")) is not None:
        kw["port"] = _int("PORT", v, 0, 65535)
    if (v := get("WORKERS")) is not None:
        kw["workers"] = _int("WORKERS", v, 1, 64)
    if (v := get("MEDIA_ROOT")) is not None:
        kw["media_root"] = Path(v)
    if (v := get("MAX_UPLOAD_MB")) is not None:
        kw["max_upload_mb"] = _int("MAX_UPLOAD_MB", v, 1, 2048)
    if (v := get("LANGUAGE")) is not None:
        if v not in LANGUAGES:
            raise SettingsError(f"LANGUAGE must be one of {', '.join(LANGUAGES)}, got {v!r}")
        kw["language"] = v
    if (v := get("LOG_FORMAT")) is not None:
        if v not in ("text", "json"):
            raise SettingsError(f"LOG_FORMAT must be text or json, got {v!r}")
        kw["log_format"] = v
    if (v := get("LOG_LEVEL")) is not None:
        if v.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {v!r}")
        kw["log_level"] = v.upper()
    if (v := get("PUBLIC_URL")) is not None:
        kw["public_url"] = v
    if (v := get("TELEGRAM_BOT_TOKEN")) is not None:
        head, _, tail = v.partition(":")
        if not head.isdigit() or not tail:
            raise SettingsError("TELEGRAM_BOT_TOKEN must look like 123456:ABC... (from @BotFather)")
        kw["telegram_bot_token"] = v
    if (v := get("TELEGRAM_ADMIN_CHAT_ID")) is not None:
        kw["telegram_admin_chat_id"] = _int("TELEGRAM_ADMIN_CHAT_ID", v)
    if (v := get("TELEGRAM_API_SERVER")) is not None:
        if urlparse(v).scheme not in ("http", "https"):
            raise SettingsError(f"TELEGRAM_API_SERVER must be an http(s) URL, got {v!r}")
        kw["telegram_api_server"] = v.rstrip("/")
    if (v := get("TELEGRAM_MODE")) is not None:
        if v not in TELEGRAM_MODES:
            raise SettingsError(f"TELEGRAM_MODE must be one of {', '.join(TELEGRAM_MODES)}, got {v!r}")
        kw["telegram_mode"] = v
    if (v := get("TELEGRAM_WEBHOOK_SECRET")) is not None:
        kw["telegram_webhook_secret"] = v
    if (v := get("TELEGRAM_WEBHOOK_URL")) is not None:
        kw["telegram_webhook_url"] = v
    for rate in ("GROUP", "PRIVATE", "GLOBAL"):
        name = f"TELEGRAM_{rate}_RATE"
        if (v := get(name)) is not None:
            kw[f"telegram_{rate.lower()}_rate"] = _telegram_rate(name, v)
    if (v := get("TELEGRAM_SUMMARY_AFTER")) is not None:
        kw["telegram_summary_after"] = _int("TELEGRAM_SUMMARY_AFTER", v, 0, 10_000)
    if (v := get("TELEGRAM_CARDS_AFTER_SUMMARY")) is not None:
        kw["telegram_cards_after_summary"] = _bool("TELEGRAM_CARDS_AFTER_SUMMARY", v)
    if (v := get("SCHEDULER_ENABLED")) is not None:
        kw["scheduler_enabled"] = _bool("SCHEDULER_ENABLED", v)
    if (v := get("TZ")) is not None:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(v)
        except Exception:
            raise SettingsError(f"TZ must be an IANA time zone like Europe/Moscow, got {v!r}") from None
        kw["tz"] = v
    if (v := get("DIGEST_CRON")) is not None:
        if len(v.split()) != 5:
            raise SettingsError(f"DIGEST_CRON must be a 5-field crontab expression, got {v!r}")
        kw["digest_cron"] = v
    for prio in ("urgent", "high", "medium", "low"):
        name = f"REMIND_{prio.upper()}_MIN"
        if (v := get(name)) is not None:
            kw[f"remind_{prio}_min"] = _int(name, v, 1)
    if (v := get("AUTO_CLOSE_DAYS")) is not None:
        kw["auto_close_days"] = _int("AUTO_CLOSE_DAYS", v, 1)
    if (v := get("TRUSTED_PROXIES")) is not None:
        kw["trusted_proxies"] = _networks("TRUSTED_PROXIES", v)
    if (v := get("BOT_NEW_REQUESTS_PER_HOUR")) is not None:
        kw["bot_new_requests_per_hour"] = _int("BOT_NEW_REQUESTS_PER_HOUR", v, 1)
    if (v := get("BOT_MESSAGES_PER_MIN")) is not None:
        kw["bot_messages_per_min"] = _int("BOT_MESSAGES_PER_MIN", v, 1)
    if (v := get("WS_FRAME_RATE")) is not None:
        kw["ws_frame_rate"] = _rate_per_seconds("WS_FRAME_RATE", v)
    if (v := get("WS_RESUME_RATE")) is not None:
        kw["ws_resume_rate"] = _rate_per_seconds("WS_RESUME_RATE", v)
    if (v := get("WS_MAX_FRAME_BYTES")) is not None:
        kw["ws_max_frame_bytes"] = _int("WS_MAX_FRAME_BYTES", v, 1024, 16 * 1024 * 1024)
    if (v := get("WS_PUBLIC_SOCKETS_PER_CLIENT")) is not None:
        kw["ws_public_sockets_per_client"] = _int("WS_PUBLIC_SOCKETS_PER_CLIENT", v, 1)
    if (v := get("WEB_RATE_LIMIT_PER_MIN")) is not None:
        kw["web_rate_limit_per_min"] = _int("WEB_RATE_LIMIT_PER_MIN", v, 1)
    if (v := get("LOGIN_MAX_FAILURES")) is not None:
        kw["login_max_failures"] = _int("LOGIN_MAX_FAILURES", v, 1)
    if (v := get("LOGIN_MAX_FAILURES_PER_ADDRESS")) is not None:
        kw["login_max_failures_per_address"] = _int("LOGIN_MAX_FAILURES_PER_ADDRESS", v, 1)
    if (v := get("LOGIN_WINDOW_SECONDS")) is not None:
        kw["login_window_seconds"] = _int("LOGIN_WINDOW_SECONDS", v, 1, 86400)
    if (v := get("TOKEN_TTL_DAYS")) is not None:
        kw["token_ttl_days"] = _int("TOKEN_TTL_DAYS", v, 1, 36500)
    if (v := get("CONSOLE_IDLE_MINUTES")) is not None:
        kw["console_idle_minutes"] = _int("CONSOLE_IDLE_MINUTES", v, 1, 7 * 24 * 60)
    if (v := get("CONSOLE_MAX_HOURS")) is not None:
        kw["console_max_hours"] = _int("CONSOLE_MAX_HOURS", v, 1, 24 * 90)
    if (v := get("MESSAGE_EDIT_WINDOW_HOURS")) is not None:
        kw["message_edit_window_hours"] = _int("MESSAGE_EDIT_WINDOW_HOURS", v, 0, 24 * 365)
    if (v := get("POISON_MAX_ATTEMPTS")) is not None:
        kw["poison_max_attempts"] = _int("POISON_MAX_ATTEMPTS", v, 1, 100)
    if (v := get("WEBHOOK_ALLOW_PRIVATE")) is not None:
        kw["webhook_allow_private"] = _bool("WEBHOOK_ALLOW_PRIVATE", v)
    if (v := get("WEBHOOK_TIMEOUT")) is not None:
        kw["webhook_timeout"] = _int("WEBHOOK_TIMEOUT", v, 1, 60)
    if (v := get("WEBHOOK_RETRY_HOURS")) is not None:
        kw["webhook_retry_hours"] = _int("WEBHOOK_RETRY_HOURS", v, 24, 24 * 30)
    if (v := get("METRICS_TOKEN")) is not None:
        kw["metrics_token"] = v
    if (v := get("METRICS_PORT")) is not None:
        kw["metrics_port"] = _int("METRICS_PORT", v, 1, 65535)
    if (v := get("PROMETHEUS_MULTIPROC_DIR")) is not None:
        kw["prometheus_multiproc_dir"] = v
    if (v := get("SMTP_URL")) is not None:
        if urlparse(v).scheme not in ("smtp", "smtps", "smtp+starttls"):
            raise SettingsError(
                f"SMTP_URL must look like smtp://user:password@host:587 (or smtps://), got {v!r}"
            )
        kw["smtp_url"] = v
    if (v := get("MAIL_FROM")) is not None:
        from email.utils import parseaddr

        if "@" not in parseaddr(v)[1]:
            raise SettingsError(f"MAIL_FROM must be an e-mail address, got {v!r}")
        kw["mail_from"] = v
    if (v := get("MAIL_REPLY_DOMAIN")) is not None:
        kw["mail_reply_domain"] = v.strip().lower()
    if (v := get("MAIL_INBOUND_HOST")) is not None:
        kw["mail_inbound_host"] = v
    if (v := get("MAIL_INBOUND_PORT")) is not None:
        kw["mail_inbound_port"] = _int("MAIL_INBOUND_PORT", v, 1, 65535)
    if (v := get("AUDIT_RETENTION_DAYS")) is not None:
        kw["audit_retention_days"] = _int("AUDIT_RETENTION_DAYS", v, 1, 36500)
    limit_overrides: dict[str, int] = {}
    for attr, name in ENV_NAMES.items():
        if (v := get(name)) is not None:
            limit_overrides[attr] = _int(name, v, 1, CEILINGS.get(attr))
    if limit_overrides:
        kw["limits"] = replace(Limits(), **limit_overrides)
    settings = Settings(**kw)
    if settings.telegram_mode == "webhook" and settings.telegram_bot_token and not settings.telegram_webhook_secret:
        raise SettingsError("TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET")
    if settings.smtp_url and not settings.mail_from:
        raise SettingsError("SMTP_URL needs MAIL_FROM (the address e-mail is sent from)")
    return settings


SETTING_NAMES = [f.name for f in fields(Settings)]
