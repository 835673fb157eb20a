"""Process-wide logging: one JSON object per line in production, readable text otherwise.

`setup_logging(settings)` installs one stderr handler on the root logger (LOG_FORMAT=json
or text, LOG_LEVEL). Sanic configures handlers of its own on its `sanic.*` loggers when an
app is created; `adopt_sanic_loggers()` strips them so Sanic's records (access log
included) flow through the same handler. Both are idempotent.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from core.settings import Settings

SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.access", "sanic.server", "sanic.websockets")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, any `extra` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ).replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in entry:
                entry[key] = value
        if not entry["msg"] and "request" in entry:
            # Sanic's access records carry everything as extras, with an empty message.
            entry["msg"] = f"{entry['request']} {entry.get('status', '')}".strip()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines for development: time, level, logger, message (plus access fields)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        # Sanic's access records carry the details as extras, with an empty message.
        if record.name == "sanic.access" and hasattr(record, "request"):
            text += " {} {} {}".format(
                getattr(record, "request", ""), getattr(record, "status", ""), getattr(record, "byte", "")
            )
        return text


def _handler(settings: Settings) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler._helpdesk = True  # type: ignore[attr-defined]  # ours: replaced on reconfigure
    return handler


def setup_logging(settings: Settings) -> None:
    """Route every log record of the process to stderr in the configured format and level
    (stderr keeps stdout clean for commands whose output is read, like `helpdesk token`).

    Idempotent: calling it again replaces only the handler it installed before, so other
    handlers (pytest's capture, for one) stay.
    """
    global _configured
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_helpdesk", False)]:
        root.removeHandler(old)
    root.addHandler(_handler(settings))
    root.setLevel(settings.log_level)
    _configured = True
    adopt_sanic_loggers()


def adopt_sanic_loggers() -> None:
    """Send Sanic's loggers through the root handler (no-op before setup_logging)."""
    if not _configured:
        return
    for name in SANIC_LOGGERS:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True
        lg.setLevel(logging.NOTSET)
