"""Helpers for the REST tests: query counting, multipart bodies, common set-ups."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from tortoise import connections

ADMIN = "/api/admin/customer-requests/"
CUSTOMER = "/api/customer/requests/"
BACKGROUND_TASKS = ("outbox-relay", "redis-bus-listener", "webhook-")


@dataclass
class QueryLog:
    queries: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.queries)


@contextlib.contextmanager
def count_queries() -> Iterator[QueryLog]:
    """Count SQL statements sent through the default connection's class (the live server
    shares the process, so its queries are counted too). Our own wrapper, no patching of
    anything but Tortoise's public execute methods, restored on exit."""
    cls = type(connections.get("default"))
    log = QueryLog()
    originals = {}
    for name in ("execute_query", "execute_query_dict"):
        original = cls.__dict__[name]
        originals[name] = original

        def make(orig):
            async def wrapper(self, query, *args, **kwargs):
                task = asyncio.current_task()
                # Background work of the server (the outbox relay's sweeps) is not the
                # request's cost; count only what request handling sends.
                if task is None or not task.get_name().startswith(BACKGROUND_TASKS):
                    log.queries.append(query)
                return await orig(self, query, *args, **kwargs)

            return wrapper

        setattr(cls, name, make(original))
    try:
        yield log
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


def multipart_parts(
    fields: dict[str, str], file_name: str, content_type: str = "application/octet-stream"
) -> tuple[str, bytes, bytes]:
    """(content type header, bytes before the file data, bytes after it)."""
    boundary = uuid.uuid4().hex
    head = b""
    for k, v in fields.items():
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        ).encode()
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{file_name}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", head, tail


async def chunked(
    head: bytes, size: int, tail: bytes, chunk: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked transfer encoding): head, `size` bytes, tail."""
    yield head
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        yield b"x" * n
        sent += n
    yield tail


async def new_request(api, token: str, **fields) -> dict:
    """Create a request through the customer side (the caller is the customer)."""
    body = {"title": "Не работает вход", "description": "Пишет: ошибка 500", **fields}
    r = await api.post(CUSTOMER, token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def post_raw(base: str, path: str, headers: dict[str, str], body_chunks: list[bytes],
                   *, chunked: bool = False, declared_length: int | None = None
                   ) -> tuple[int, bytes]:
    """POST over a plain socket, as a client that watches for an early answer: it sends the
    headers, then the body a chunk at a time, and stops sending as soon as the server has
    answered (a server that refuses a body before reading it answers and closes; a client
    that kept writing would only see the connection reset). Returns status and body."""
    from urllib.parse import urlparse

    url = urlparse(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}:{url.port}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if chunked:
            head.append("Transfer-Encoding: chunked")
        else:
            length = declared_length if declared_length is not None else sum(map(len, body_chunks))
            head.append(f"Content-Length: {length}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        status_line = b""
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            for chunk in [*body_chunks, None] if chunked else body_chunks:
                with contextlib.suppress(TimeoutError):
                    status_line = await asyncio.wait_for(reader.readline(), 0.05)
                if status_line:
                    break
                if chunk is None:
                    writer.write(b"0\r\n\r\n")
                else:
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                await writer.drain()
        if not status_line:
            status_line = await asyncio.wait_for(reader.readline(), 10)
        length = 0
        while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return int(status_line.split()[1]), await asyncio.wait_for(reader.readexactly(length), 10)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
