"""Attachments: streamed multipart upload, list, download.

`POST /api/admin/customer-requests/{id}/attachments/` (staff) and the customer-side twin
(api/routes/customer.py) share `upload_response`. The body is never held in memory: Sanic
streams it (`stream=True`), api.multipart parses it incrementally and the file part goes
straight to MEDIA_ROOT. MAX_UPLOAD_MB is enforced from Content-Length before reading and
again while reading, with 413 as soon as the limit is passed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, file_stream

from api.blueprint import Blueprint
from api.http import (
    PK_WRONG_TYPE,
    authenticate,
    check_id_ranges,
    guard_ids,
    int_from_text,
    json,
    reject_null_characters,
)
from api.multipart import MultipartError, MultipartParser, boundary_of
from core import attachments as svc
from core import runtime
from core.errors import ValidationFailed
from core.permissions import require_staff
from core.texts import t
from db.models import RequestAttachment, Source, User

# Room for the other form fields and the multipart framing around the file.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 1024


class UploadAborted(Exception):
    def __init__(self, response: HTTPResponse) -> None:
        super().__init__("upload aborted")
        self.response = response


def base_url(request: Request) -> str:
    return f"{request.scheme}://{request.host}"


def attachment_json(request: Request, att) -> dict[str, Any]:
    return svc.serialize(att, base_url(request))


def too_large() -> HTTPResponse:
    mb = runtime.settings().max_upload_mb
    return json({"detail": t("err_file_too_large", mb=mb)}, status=413)


def _bool_field(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("true", "1", "on", "yes"):
        return True
    if low in ("false", "0", "off", "no", ""):
        return False
    raise ValidationFailed({name: [t("err_not_bool")]})


async def upload_response(
    request: Request, actor: User, request_id: int, *, allow_internal: bool = True
) -> HTTPResponse:
    """Stream a multipart upload (field `file`, optional `message` id, staff-only
    `is_internal`, optional `caption`) into storage and record it. 201 with the attachment."""
    settings = runtime.settings()
    limit = settings.max_upload_bytes
    # Refuse callers who may not attach at all before a single body byte is read. Whether
    # a staff upload is an internal file (allowed on any request) is only known from the
    # form, so staff are checked fully once the body is in (record_attachment).
    is_internal_hint = allow_internal and request.args.get("is_internal") in ("1", "true")
    await svc.check_can_attach(actor, request_id, is_internal=allow_internal)

    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            declared = 0
        if declared > limit + FORM_OVERHEAD_BYTES:
            return too_large()
    try:
        parser = MultipartParser(boundary_of(request.headers.get("content-type")))
    except MultipartError as exc:
        return json({"detail": t("err_media_type", error=exc)}, status=415)

    fields: dict[str, bytearray] = {}
    file_name: str | None = None
    file_type: str | None = None
    file_size = 0
    relative: str | None = None
    absolute = None
    handle = None
    current: str | None = None  # "file" | "field:<name>" | "skip"
    total = 0
    try:
        while True:
            chunk = await request.stream.read()
            if chunk is None:
                break
            total += len(chunk)
            if total > limit + FORM_OVERHEAD_BYTES:
                raise UploadAborted(too_large())
            try:
                events = parser.feed(chunk)
            except MultipartError as exc:
                raise ValidationFailed({"detail": [t("err_multipart", error=exc)]}) from None
            for kind, value in events:
                if kind == "part":
                    if value.name == "file" and value.filename is not None:
                        if relative is not None:
                            raise ValidationFailed({"file": [t("err_one_file")]})
                        file_name = svc.original_name(value.filename)
                        file_type = value.content_type
                        relative, absolute = svc.new_storage_path(request_id, file_name)
                        handle = open(absolute, "wb")  # noqa: SIM115 (closed in finally)
                        current = "file"
                    elif value.name and value.filename is None:
                        current = "field:" + value.name
                        fields[value.name] = bytearray()
                    else:
                        current = "skip"
                elif kind == "data":
                    if current == "file":
                        file_size += len(value)
                        if file_size > limit:
                            raise UploadAborted(too_large())
                        handle.write(value)
                    elif current and current.startswith("field:"):
                        buf = fields[current[6:]]
                        buf += value
                        if len(buf) > MAX_FIELD_BYTES:
                            raise ValidationFailed({current[6:]: [t("err_value_too_long")]})
                elif kind == "end_part":
                    current = None
        try:
            parser.close()
        except MultipartError as exc:
            raise ValidationFailed({"detail": [t("err_multipart", error=exc)]}) from None
        if handle is not None:
            handle.close()
            handle = None
        if relative is None:
            raise ValidationFailed({"file": [t("err_no_file")]})
        if file_size == 0:
            raise ValidationFailed({"file": [t("err_empty_file")]})
        text = {k: v.decode("utf-8", "replace") for k, v in fields.items()}
        reject_null_characters(text)
        message_id = None
        if text.get("message", "").strip():
            message_id = int_from_text(text["message"].strip())
            if message_id is None:
                raise ValidationFailed({"message": [PK_WRONG_TYPE]})
            check_id_ranges({"message": message_id}, ("message",))
        is_internal = is_internal_hint or (
            allow_internal and _bool_field("is_internal", text.get("is_internal", ""))
        )
        att = await svc.record_attachment(
            actor,
            request_id,
            name=file_name or "file",
            stored_path=relative,
            size=file_size,
            content_type=file_type,
            message_id=message_id,
            caption=text.get("caption") or None,
            is_internal=is_internal,
            source=Source.api,
        )
    except UploadAborted as aborted:
        _discard(handle, absolute)
        return aborted.response
    except svc.FileTooLarge:
        _discard(handle, absolute)
        return too_large()
    except BaseException:
        _discard(handle, absolute)
        raise
    return json(attachment_json(request, att), status=201)


def _discard(handle, absolute) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()
    if absolute is not None:
        svc.remove_stored(absolute)


async def list_response(request: Request, actor: User, request_id: int) -> HTTPResponse:
    rows = await svc.list_attachments(actor, request_id)
    return json([attachment_json(request, a) for a in rows])


async def attachment_response(att: RequestAttachment, path: Path) -> HTTPResponse:
    """Stream a stored attachment as a download (the REST route and the web page share it)."""
    return await file_stream(
        str(path),
        chunk_size=64 * 1024,
        mime_type=att.content_type or svc.DEFAULT_CONTENT_TYPE,
        headers={
            "Content-Disposition": svc.content_disposition(att.name),
            # Even an uploaded HTML or SVG file can never run as a page of our origin.
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def get_blueprint() -> Blueprint:
    bp = Blueprint("attachments")
    guard_ids(bp)

    @bp.get("/api/admin/customer-requests/<request_id:int>/attachments/")
    async def admin_list(request: Request, request_id: int):
        actor = await authenticate(request)
        require_staff(actor)
        return await list_response(request, actor, request_id)

    @bp.post("/api/admin/customer-requests/<request_id:int>/attachments/", stream=True)
    async def admin_upload(request: Request, request_id: int):
        actor = await authenticate(request)
        require_staff(actor)
        return await upload_response(request, actor, request_id)

    @bp.get("/api/attachments/<attachment_id:int>/download/")
    async def download(request: Request, attachment_id: int):
        actor = await authenticate(request)
        att, path = await svc.attachment_for_download(actor, attachment_id)
        return await attachment_response(att, path)

    return bp
