"""Jinja2 for the console's pages: autoescaping on, templates in api/console/templates.

Why Jinja2 directly, not sanic-ext's templating: sanic-ext renders through the same
Jinja2, but only once its Extend machinery is loaded, which the app switches off on
purpose (AUTO_EXTEND=False in api.app: ~2.5 s per start and a CDN-loaded docs page). An
Environment of our own is a dozen lines and renders the same templates.

- `autoescape=True` for every template: whatever a customer or an admin typed is escaped;
  `|safe` appears only on SVG built by core.charts (which escapes its own texts).
- `StrictUndefined`: a name a template uses but the page did not pass is an error in
  tests, not an empty string in production.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from sanic.response import HTTPResponse

from api.web.render import SECURITY_HEADERS
from core import runtime

TEMPLATES = Path(__file__).parent / "templates"
# Unlike the customer's page, a console URL is no secret: referrers go to our own origin
# only (never to other sites), which also lets the browser send a real Origin header with
# the console's form posts (with no-referrer Chromium sends `Origin: null`).
CONSOLE_HEADERS = {"Referrer-Policy": "same-origin"}
STATIC = Path(__file__).parent / "static"


def local_time(value: datetime | None, fmt: str = "%d.%m.%Y %H:%M") -> str:
    """A stored (UTC) time in the desk's time zone (TZ)."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(runtime.settings().tz)).strftime(fmt)


def iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def file_size(size: int | None) -> str:
    size = int(size or 0)
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    if size >= 1024:
        return f"{round(size / 1024)} KB"
    return f"{size} B"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = local_time
    env.filters["iso"] = iso
    env.filters["file_size"] = file_size
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def html_response(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    """An HTML page with the customer pages' security headers (CSP: scripts only from our
    origin, no inline code; no framing) and no caching (pages show private data)."""
    all_headers = {**SECURITY_HEADERS, **CONSOLE_HEADERS, "Cache-Control": "no-store", **(headers or {})}
    return HTTPResponse(body, status=status, headers=all_headers,
                        content_type="text/html; charset=utf-8")
