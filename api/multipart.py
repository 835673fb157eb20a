"""A small push-style multipart/form-data parser for streamed request bodies.

Feed it the body chunk by chunk as it arrives; it returns events and never holds more than
one chunk plus a boundary's worth of bytes (and one part's headers) in memory:

    ("part", PartHeaders)   a new part begins
    ("data", bytes)         some bytes of the current part's body
    ("end_part", None)      the current part is complete
    ("end", None)           the closing boundary was seen

RFC 7578 only as far as browsers, curl, httpx and requests use it: no nested multipart,
no Content-Transfer-Encoding. Malformed input raises MultipartError.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from email.message import Message
from typing import Any

MAX_HEADER_BYTES = 16 * 1024
MAX_PREAMBLE_BYTES = 64 * 1024


class MultipartError(ValueError):
    pass


@dataclass
class PartHeaders:
    name: str | None
    filename: str | None
    content_type: str | None


def boundary_of(content_type: str | None) -> bytes:
    """The boundary parameter of a multipart/form-data Content-Type header."""
    msg = Message()
    msg["content-type"] = content_type or ""
    if msg.get_content_type() != "multipart/form-data":
        raise MultipartError("Content-Type must be multipart/form-data")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise MultipartError("multipart boundary is missing or invalid")
    return boundary.encode("latin-1", "replace")


def _part_headers(raw: bytes) -> PartHeaders:
    msg = Message()
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise MultipartError("malformed part header")
        msg[key.strip()] = value.strip()
    disposition = msg.get("content-disposition")
    if disposition is None:
        raise MultipartError("part without Content-Disposition")
    name = msg.get_param("name", header="content-disposition")
    filename = msg.get_filename()
    return PartHeaders(
        name=name if isinstance(name, str) else None,
        filename=filename if isinstance(filename, str) else None,
        content_type=msg.get("content-type"),
    )


class MultipartParser:
    """Incremental parser; see the module docstring for the events."""

    def __init__(self, boundary: bytes) -> None:
        self._first = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._buf = bytearray()
        self._state = "preamble"
        self._seen = 0

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        if self._state == "end":
            return []  # the epilogue is ignored
        self._buf += data
        out: list[tuple[str, Any]] = []
        while True:
            progressed = getattr(self, "_" + self._state)(out)
            if not progressed or self._state == "end":
                return out

    def close(self) -> None:
        """Call at the end of the body; raises if it ended before the closing boundary."""
        if self._state != "end":
            raise MultipartError("multipart body ended before the closing boundary")

    # --- states: each returns True when it consumed something and the loop should go on ---

    def _preamble(self, out: list) -> bool:
        buf = self._buf
        if self._seen == 0 and len(buf) < len(self._first) and self._first.startswith(bytes(buf)):
            return False
        if self._seen == 0 and buf.startswith(self._first):
            del buf[: len(self._first)]
            self._state = "after_delimiter"
            return True
        i = buf.find(self._delimiter)
        if i >= 0:
            del buf[: i + len(self._delimiter)]
            self._state = "after_delimiter"
            return True
        self._seen += max(1, len(buf) - len(self._delimiter))
        if self._seen > MAX_PREAMBLE_BYTES:
            raise MultipartError("multipart boundary not found")
        del buf[: max(0, len(buf) - len(self._delimiter))]
        return False

    def _after_delimiter(self, out: list) -> bool:
        buf = self._buf
        # Optional transport padding (spaces/tabs) may follow a delimiter.
        while buf[:1] in (b" ", b"\t"):
            del buf[:1]
        if len(buf) < 2:
            return False
        if buf.startswith(b"--"):
            self._state = "end"
            out.append(("end", None))
            buf.clear()
            return True
        if buf.startswith(b"\r\n"):
            del buf[:2]
            self._state = "headers"
            return True
        raise MultipartError("malformed multipart delimiter")

    def _headers(self, out: list) -> bool:
        buf = self._buf
        if buf.startswith(b"\r\n"):
            raw, cut = b"", 2
        else:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise MultipartError("multipart part headers too large")
                return False
            raw, cut = bytes(buf[:i]), i + 4
        if cut > MAX_HEADER_BYTES:
            raise MultipartError("multipart part headers too large")
        del buf[:cut]
        out.append(("part", _part_headers(raw)))
        self._state = "body"
        return True

    def _body(self, out: list) -> bool:
        buf = self._buf
        i = buf.find(self._delimiter)
        if i >= 0:
            if i:
                out.append(("data", bytes(buf[:i])))
            del buf[: i + len(self._delimiter)]
            out.append(("end_part", None))
            self._state = "after_delimiter"
            return True
        # Keep a tail that may be the start of the delimiter.
        safe = len(buf) - (len(self._delimiter) - 1)
        if safe > 0:
            out.append(("data", bytes(buf[:safe])))
            del buf[:safe]
        return False


MAX_FORM_FIELDS = 1000


def parse_form_body(content_type: str | None, body: bytes) -> tuple[dict[str, list[str]], dict[str, list[Any]]]:
    """Fields and files of a whole (already received) form body, the shapes of Sanic's
    `request.form` / `request.files`. Used instead of Sanic's own parser, which logs an
    ERROR with a traceback for every malformed body (a missing boundary, a header without a
    colon, bytes that are not UTF-8, an unknown charset) and then carries on with an empty
    form. Text that is not UTF-8 is decoded with replacement characters, as the streamed
    upload route does; a malformed multipart body raises MultipartError."""
    from urllib.parse import parse_qs

    from sanic.request import File

    msg = Message()
    msg["content-type"] = content_type or ""
    if msg.get_content_type() == "application/x-www-form-urlencoded":
        text = body.decode("utf-8", "replace")
        return parse_qs(text, errors="replace", max_num_fields=MAX_FORM_FIELDS), {}
    if msg.get_content_type() != "multipart/form-data":
        return {}, {}
    parser = MultipartParser(boundary_of(content_type))
    events = parser.feed(body)
    parser.close()
    fields: dict[str, list[str]] = {}
    files: dict[str, list[Any]] = {}
    part: PartHeaders | None = None
    chunks: list[bytes] = []
    count = 0
    for kind, value in events:
        if kind == "part":
            part, chunks = value, []
            count += 1
            if count > MAX_FORM_FIELDS:
                raise MultipartError("too many parts")
        elif kind == "data":
            chunks.append(value)
        elif kind == "end_part" and part is not None and part.name:
            data = b"".join(chunks)
            if part.filename is None:
                fields.setdefault(part.name, []).append(data.decode("utf-8", "replace"))
            else:
                name = unicodedata.normalize("NFC", part.filename)
                files.setdefault(part.name, []).append(
                    File(type=part.content_type or "text/plain", body=data, name=name)
                )
    return fields, files


def load_form(request: Any) -> None:
    """Parse a form body with parse_form_body into `request.form` / `request.files` (before
    anything asks Sanic for them). Malformed multipart: ValidationFailed (400)."""
    from sanic.request import RequestParameters

    from core.errors import ValidationFailed
    from core.texts import t

    if request.parsed_form is not None:
        return
    try:
        fields, files = parse_form_body(request.headers.get("content-type"), request.body or b"")
    except MultipartError as exc:
        raise ValidationFailed({"detail": [t("err_multipart", error=exc)]}) from None
    request.parsed_form = RequestParameters(fields)
    request.parsed_files = RequestParameters(files)
