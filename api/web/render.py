"""Tiny HTML templating for the web pages, escaping by default, and the security headers.

`{{ name }}` is replaced by the HTML-escaped value; `{{{ name }}}` by a value the code
built itself from escaped parts (never user input directly). No template engine needed
for three pages, and nothing a customer types is ever inserted unescaped.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from sanic.response import HTTPResponse

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_PLACEHOLDER = re.compile(r"\{\{\{\s*(\w+)\s*\}\}\}|\{\{\s*(\w+)\s*\}\}")

# Scripts only from our origin (no inline code), no plugins, no framing; WebSocket and
# fetch only to our origin ('self' covers ws:/wss: to the same host in CSP Level 3).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The request page's URL is its only credential: never send it to another site.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@cache
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def render(name: str, **context: Any) -> str:
    """Fill a template; a missing name is a programming error (KeyError), not silence."""

    def fill(match: re.Match[str]) -> str:
        raw, escaped = match.group(1), match.group(2)
        if raw:
            return str(context[raw])
        return html.escape(str(context[escaped]), quote=True)

    return _PLACEHOLDER.sub(fill, _template(name))


def json_for_script(data: Any) -> str:
    """JSON safe to place inside <script type="application/json"> (no `</script>` breakout)."""
    return (
        orjson.dumps(data)
        .decode()
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def page(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    all_headers = {**SECURITY_HEADERS, "Cache-Control": "no-store", **(headers or {})}
    return HTTPResponse(
        body, status=status, headers=all_headers, content_type="text/html; charset=utf-8"
    )
