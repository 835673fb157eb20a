"""Request attachments: where files live, who may add and read them, and recording them.

Files live under MEDIA_ROOT/request_attachments/<request_id>/<random>_<safe name>; the
database keeps the path relative to MEDIA_ROOT. A channel (REST upload, bot media) writes
the bytes first, then calls `record_attachment`, which in ONE transaction adds the
message of type image/file with its RequestAttachment rows to the thread through
core.thread.append (the thread's one writer: counters, first response, `new_message`
event). Permission rules are the thread's (core.thread.check_can_post).
"""

from __future__ import annotations

import mimetypes
import re
import secrets
import unicodedata
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core import events, runtime, thread
from core.errors import NotFound, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import can_see_internal, is_staff
from core.queries import get_request
from core.serializers import attachment_data
from core.texts import t
from db.models import (
    CustomerRequest,
    MessageType,
    RequestAttachment,
    RequestMessage,
    Source,
    User,
)

ATTACHMENTS_DIR = "request_attachments"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPE_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}$"
)
_UNSAFE_CHARS = re.compile(r"[^\w.\- ()\[\]+,@=]+", re.UNICODE)

class FileTooLarge(ValidationFailed):
    """The file is over MAX_UPLOAD_MB (REST answers 413, the bot tells the user)."""

    def __init__(self, limit_mb: int) -> None:
        super().__init__({"file": [t("err_file_too_large", mb=limit_mb)]})
        self.limit_mb = limit_mb


def media_root() -> Path:
    return Path(runtime.settings().media_root)


def max_upload_bytes() -> int:
    return runtime.settings().max_upload_bytes


def original_name(name: str | None) -> str:
    """The name a user sees: last path component, no control characters, at most 255 chars."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        name = "file"
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot and len(ext) < 20 else name[:255]
    return name


def safe_name(name: str | None) -> str:
    """A file-system-safe version of `name` (no separators, no leading dots, <= 100 chars)."""
    cleaned = _UNSAFE_CHARS.sub("_", unicodedata.normalize("NFKC", original_name(name)))
    cleaned = cleaned.strip(" ._") or "file"
    if len(cleaned) > 100:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = (stem[: 95 - len(ext)] + dot + ext) if dot and len(ext) < 10 else cleaned[:100]
    return cleaned


def clean_content_type(value: str | None, name: str) -> str:
    """The declared content type if it looks like one, else a guess from the name."""
    value = (value or "").split(";")[0].strip().lower()
    if value and _CONTENT_TYPE_RE.match(value) and value != DEFAULT_CONTENT_TYPE:
        return value[:100]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or DEFAULT_CONTENT_TYPE


def new_storage_path(request_id: int, name: str) -> tuple[str, Path]:
    """A fresh (relative, absolute) location for a file of request `request_id`.
    The directory is created; the file is not."""
    relative = f"{ATTACHMENTS_DIR}/{int(request_id)}/{secrets.token_hex(8)}_{safe_name(name)}"
    absolute = media_root() / relative
    absolute.parent.mkdir(parents=True, exist_ok=True)
    return relative, absolute


def resolve_stored(relative: str) -> Path | None:
    """The absolute path of a stored file, or None if it escapes the attachments folder."""
    base = (media_root() / ATTACHMENTS_DIR).resolve()
    try:
        path = (media_root() / relative).resolve()
    except (OSError, ValueError):
        return None
    if base not in path.parents:
        return None
    return path


def remove_stored(relative_or_absolute: str | Path) -> None:
    """Delete a stored file, quietly (cleanup after a failed upload)."""
    path = Path(relative_or_absolute)
    if not path.is_absolute():
        resolved = resolve_stored(str(relative_or_absolute))
        if resolved is None:
            return
        path = resolved
    try:
        path.unlink()
    except OSError:
        pass


async def remove_request_files(request_id: int, stored: list[str]) -> None:
    """Delete a deleted request's files and its folder (off the event loop)."""
    import asyncio
    import logging
    import shutil

    def remove() -> None:
        for relative in stored:
            remove_stored(relative)
        folder = media_root() / ATTACHMENTS_DIR / str(int(request_id))
        base = (media_root() / ATTACHMENTS_DIR).resolve()
        if folder.resolve().parent == base and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)

    try:
        await asyncio.to_thread(remove)
    except Exception:
        logging.getLogger("helpdesk.attachments").exception(
            "could not remove the files of deleted request %s", request_id
        )


def download_path(attachment_id: int) -> str:
    return f"/api/attachments/{attachment_id}/download/"


def download_url(attachment_id: int, base_url: str | None = None) -> str:
    base = (base_url if base_url is not None else runtime.settings().base_url).rstrip("/")
    return base + download_path(attachment_id)


def serialize(att: RequestAttachment, base_url: str | None = None) -> dict[str, Any]:
    """attachment_data with `file` = the download URL."""
    return attachment_data(att, download_url(att.id, base_url))


async def check_can_attach(
    actor: User, request_id: int, *, is_internal: bool = False
) -> CustomerRequest:
    """Raise unless `actor` may add a file to the request (the rules of post_message):
    staff replies follow CanManageRequest, internal files any staff; a customer only their
    own request (else NotFound), not once it is closed, not while banned. Call before
    reading an upload."""
    req = await get_request(actor, request_id)
    thread.check_can_post(actor, req, is_internal=is_internal)
    return req


@dataclass(frozen=True)
class StoredFile:
    """A file written to storage and not yet recorded (`stored_path` relative to MEDIA_ROOT)."""

    name: str
    stored_path: str
    size: int
    content_type: str | None = None


async def record_attachment(
    actor: User,
    request_id: int,
    *,
    name: str,
    stored_path: str,
    size: int,
    content_type: str | None = None,
    message_id: int | None = None,
    caption: str | None = None,
    is_internal: bool = False,
    source: Source = Source.api,
) -> RequestAttachment:
    """Record a file already written to `stored_path` (relative to MEDIA_ROOT).

    Without `message_id`: one transaction creates a thread message of type image/file
    (content `caption` or "Вложение: <name>"), the attachment, bumps last_message_at and
    the message counts and records a `new_message` event whose data is the message plus
    `attachments: [...]` (see `record_files`).

    With `message_id` (staff only): the file joins that existing message of the same
    request; no new message, no event. What it joins decides who may add it: a file on a
    message the customer sees is a reply, so it needs CanManageRequest like any staff
    reply, whatever `is_internal` says; on an internal note any staff member may. A
    customer cannot add files to an existing message (ValidationFailed): nobody would be
    told of a file slipped into an old message, so each customer file is a new message
    staff are notified of (the bot's albums are stored in one call, `record_files`).
    Permission as `check_can_attach`. The caller deletes the file if this raises.
    """
    if message_id is None:
        return (await record_files(
            actor, request_id, [StoredFile(name, stored_path, size, content_type)],
            caption=caption, is_internal=is_internal, source=source,
        ))[0]
    if not is_staff(actor):
        await check_can_attach(actor, request_id)
        raise ValidationFailed({"message": [t("err_attach_new_message", actor.language)]})
    target = await RequestMessage.filter(id=message_id, request_id=request_id).first()
    req = await check_can_attach(
        actor, request_id, is_internal=bool(target is not None and target.is_internal)
    )
    if target is None:
        raise ValidationFailed(
            {"message": [t("err_pk_missing", value=message_id)]}
        )
    stored = _checked(actor, [StoredFile(name, stored_path, size, content_type)], caption)[0]
    return await thread.add_file(req, target, actor, stored)


def _checked(actor: User, files: list[StoredFile], caption: str | None) -> list[StoredFile]:
    """The files with clean names and content types; ValidationFailed / FileTooLarge."""
    for f in files:
        if resolve_stored(f.stored_path) is None:
            raise ValidationFailed({"file": [t("err_file_path")]})
    caption_errors: dict[str, list[str]] = {}
    check_text(caption_errors, "caption", caption, current_limits().content, actor.language,
               required=False)
    if caption_errors:
        raise ValidationFailed(caption_errors)
    out = []
    for f in files:
        if f.size > max_upload_bytes():
            raise FileTooLarge(runtime.settings().max_upload_mb)
        name = original_name(f.name)
        out.append(StoredFile(name, f.stored_path, f.size, clean_content_type(f.content_type, name)))
    return out


async def record_files(
    actor: User,
    request_id: int,
    files: list[StoredFile],
    *,
    caption: str | None = None,
    is_internal: bool = False,
    source: Source = Source.api,
) -> list[RequestAttachment]:
    """Record files already in storage as ONE new thread message (a Telegram album, or a
    single upload): one transaction creates the message (type image when the first file is
    an image, else file; content `caption` or "Вложение: <first name>"), the attachments,
    bumps last_message_at and the counts, and records one `new_message` event carrying
    every attachment. Permission as `check_can_attach`; the caller deletes the files if
    this raises."""
    if not files:
        raise ValidationFailed({"file": [t("err_no_file")]})
    if not is_staff(actor):
        is_internal = False
    req = await check_can_attach(actor, request_id, is_internal=is_internal)
    async with in_transaction() as conn:
        atts = await attach_in(
            conn, actor, req, files, caption=caption, is_internal=is_internal, source=source
        )
    events.committed()
    return atts


async def attach_in(
    conn: Any,
    actor: User,
    req: CustomerRequest,
    files: list[StoredFile],
    *,
    caption: str | None = None,
    is_internal: bool = False,
    source: Source = Source.api,
) -> list[RequestAttachment]:
    """`record_files` for a request the caller has loaded and checked (check_can_attach),
    in the caller's transaction `conn`: the checks of the files and caption, then one
    message through core.thread.append. Used by the web form, whose create and reply
    are one transaction each."""
    files = _checked(actor, files, caption)
    first = files[0]
    message_type = (
        MessageType.image if first.content_type.startswith("image/") else MessageType.file
    )
    text = (
        caption
        if caption and caption.strip()
        else t("attachment_added", actor.language, name=first.name)
    )
    _, atts = await thread.append(
        conn, req, actor, text, message_type=message_type,
        is_internal=bool(is_internal) and is_staff(actor), source=source, files=files,
    )
    return atts


async def store_file(
    request_id: int, name: str, content: bytes | Iterable[bytes] | AsyncIterable[bytes],
    content_type: str | None = None,
) -> StoredFile:
    """Write `content` to a new file of request `request_id` (not recorded yet), enforcing
    MAX_UPLOAD_MB (FileTooLarge); nothing is left behind if it fails."""
    limit = max_upload_bytes()
    relative, absolute = new_storage_path(request_id, name)
    size = 0
    try:
        with open(absolute, "wb") as fh:
            if isinstance(content, (bytes, bytearray, memoryview)):
                chunks: Any = [bytes(content)]
            else:
                chunks = content
            if hasattr(chunks, "__aiter__"):
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise FileTooLarge(runtime.settings().max_upload_mb)
                    fh.write(chunk)
            else:
                for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise FileTooLarge(runtime.settings().max_upload_mb)
                    fh.write(chunk)
    except BaseException:
        remove_stored(absolute)
        raise
    return StoredFile(name, relative, size, content_type)


async def save_attachment(
    actor: User,
    request_id: int,
    *,
    name: str,
    content: bytes | Iterable[bytes] | AsyncIterable[bytes],
    content_type: str | None = None,
    message_id: int | None = None,
    caption: str | None = None,
    is_internal: bool = False,
    source: Source = Source.api,
) -> RequestAttachment:
    """Write `content` to storage and record it (for channels that already hold the bytes
    or an iterator of chunks, such as the bot). Enforces MAX_UPLOAD_MB (FileTooLarge);
    the file is removed if anything fails."""
    await check_can_attach(actor, request_id, is_internal=is_internal and is_staff(actor))
    stored = await store_file(request_id, name, content, content_type)
    try:
        return await record_attachment(
            actor,
            request_id,
            name=name,
            stored_path=stored.stored_path,
            size=stored.size,
            content_type=content_type,
            message_id=message_id,
            caption=caption,
            is_internal=is_internal,
            source=source,
        )
    except BaseException:
        remove_stored(stored.stored_path)
        raise


async def list_attachments(actor: User, request_id: int) -> list[RequestAttachment]:
    """Oldest first. A customer sees only their own request's files and never files of
    internal messages (NotFound for someone else's request)."""
    req = await get_request(actor, request_id)
    qs = RequestAttachment.filter(request_id=req.id)
    if not can_see_internal(actor):
        qs = qs.filter(Q(message_id__isnull=True) | Q(message__is_internal=False))
    return await qs.order_by("created_at", "id")


async def attachment_for_download(
    actor: User, attachment_id: int
) -> tuple[RequestAttachment, Path]:
    """The attachment and its file if `actor` may read it: staff any, a customer only files
    of their own request and not of internal messages. NotFound otherwise, also when the
    stored path is missing or points outside the attachments folder."""
    att = (
        await RequestAttachment.filter(id=attachment_id)
        .select_related("request", "message")
        .first()
    )
    if att is None:
        raise NotFound(t("err_not_found", actor.language))
    if not is_staff(actor):
        if att.request.customer_id != actor.id or (
            att.message is not None and att.message.is_internal
        ):
            raise NotFound(t("err_not_found", actor.language))
    path = resolve_stored(att.file)
    if path is None or not path.is_file():
        raise NotFound(t("err_not_found", actor.language))
    return att, path


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback and the RFC 5987 UTF-8 original name."""
    from urllib.parse import quote

    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9.\-_ ()]", "_", ascii_name).strip() or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


__all__ = [
    "FileTooLarge",
    "check_can_attach",
    "record_attachment",
    "save_attachment",
    "StoredFile",
    "store_file",
    "record_files",
    "list_attachments",
    "attachment_for_download",
    "new_storage_path",
    "remove_stored",
    "serialize",
    "download_url",
    "content_disposition",
    "safe_name",
    "original_name",
]
