"""JSON and form bodies over `LIMIT_JSON_BODY_BYTES` (1 MB) are refused with 413 before
they are read, let alone parsed.

Sanic preloads a body up to `REQUEST_MAX_SIZE`, which must stay as large as an upload
(the web form posts its files in one multipart body). So the limit is set per request,
right after routing: a declared `Content-Length` over the limit is refused at once, and a
chunked body is cut off by Sanic as soon as it passes the limit. Multipart bodies keep the
upload limit; streamed upload routes enforce their own.
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import PayloadTooLarge

from core.settings import Settings


class BodyTooLarge(PayloadTooLarge):
    """A non-file body over the JSON limit."""


def is_file_body(request: Request) -> bool:
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    return ctype == "multipart/form-data"


def install(app: Sanic, settings: Settings) -> None:
    limit = settings.limits.json_body_bytes

    @app.signal("http.routing.after")
    async def limit_body(request: Request, route: Any, kwargs: Any, handler: Any) -> None:
        if hasattr(handler, "is_stream") or is_file_body(request):
            return
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise BodyTooLarge(f"body over {limit} bytes")
        if request.stream is not None:
            request.stream.request_max_size = limit
