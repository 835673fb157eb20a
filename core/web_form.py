"""The customer web form's two writes, each one transaction (SPEC "Web form"):

- `create_web_request`: the contact (core.users.web_contact_for_email), the request with its
  private key, and every file as a thread message with its attachment;
- `reply_from_web`: the customer's text and files on a request loaded from its key.

A file whose bytes cannot be written to storage is reported (returned, logged) and the rest
go on; anything else rolls the whole write back and removes the files it had stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tortoise.transactions import in_transaction

from core import attachments as files_svc
from core import events, i18n, thread
from core.bans import email_is_banned
from core.errors import PermissionDenied
from core.request_writes import create_request
from core.users import web_contact_for_email
from db.models import CustomerRequest, Source, User

log = logging.getLogger("helpdesk.web")

T = TypeVar("T")


class Upload(Protocol):
    """A file as the web form received it (Sanic's File has these)."""

    name: str | None
    body: bytes
    type: str | None


async def _store_files(
    conn: Any, customer: User, req: CustomerRequest, files: Sequence[Upload],
    written: list[Path],
) -> list[str]:
    """Each file becomes a thread message with its attachment (core.attachments.attach_in)
    in `conn`; the names of the files storage refused."""
    failed: list[str] = []
    for f in files:
        try:
            stored = await files_svc.store_file(req.id, f.name or "file", f.body, f.type)
        except OSError:  # the storage, not the request: report the file, keep the rest
            log.exception("could not store attachment %r of request %s", f.name, req.id)
            failed.append(f.name or "file")
            continue
        written.append(files_svc.media_root() / stored.stored_path)
        await files_svc.attach_in(conn, customer, req, [stored], source=Source.web)
    return failed


async def _in_one_transaction(work: Callable[[Any, list[Path]], Awaitable[T]]) -> T:
    """`work(conn, written)` in one transaction; if it fails, nothing is kept: the
    transaction rolls back and the files it stored (`written`) are removed."""
    written: list[Path] = []
    try:
        async with in_transaction() as conn:
            result = await work(conn, written)
    except BaseException:
        for path in written:
            files_svc.remove_stored(path)
        raise
    events.committed()
    return result


async def create_web_request(
    *, email: str, name: str, language: str, title: str, description: str, category: str,
    files: Sequence[Upload] = (),
) -> tuple[CustomerRequest, list[str]]:
    """A web-form request with its files, in one transaction: (the request, the names of
    files storage refused). Events: new_request, new_message per file, after commit.
    PermissionDenied (in `language`) for a banned customer's address (core.bans), before
    anything is written."""
    if await email_is_banned(email):
        raise PermissionDenied(i18n.t(language, "web.err_banned"))

    async def create(conn: Any, written: list[Path]) -> tuple[CustomerRequest, list[str]]:
        customer = await web_contact_for_email(email, name, language)
        req = await create_request(
            customer, title=title, description=description, category=category,
            source=Source.web, with_access_key=True,
        )
        return req, await _store_files(conn, customer, req, files, written)

    return await _in_one_transaction(create)


async def reply_from_web(
    req: CustomerRequest, content: str, files: Sequence[Upload] = ()
) -> list[str]:
    """The request's customer replies on the page (text, files or both) in one transaction,
    on `req` as loaded from its key; the names of files storage refused. Refused before
    anything is written when the request is closed or the customer banned."""
    customer = req.customer
    thread.check_can_post(customer, req)
    if content:
        thread.check_message(customer, content)

    async def write(conn: Any, written: list[Path]) -> list[str]:
        if content:
            await thread.append(conn, req, customer, content, source=Source.web)
        return await _store_files(conn, customer, req, files, written)

    return await _in_one_transaction(write)
