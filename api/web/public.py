"""Public JSON routes behind the customer web pages (no account: the access key is the
credential).

- `POST /api/public/requests/` (multipart): create a request from the web form.
- `GET  /api/public/requests/<key>/?after=<message id>`: the request and its thread
  (non-internal messages, oldest first, each with its attachments).
- `POST /api/public/requests/<key>/messages/`: the customer replies, with files.
- `GET  /api/public/requests/<key>/attachments/<id>/`: download, only through the key.

Ids never grant access: every route first resolves the key, and an attachment is served
only if it belongs to that request and is not part of an internal note.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sanic import Request
from sanic.request import File
from sanic.response import HTTPResponse, redirect

from api.client_address import client_address
from api.http import MAX_DB_ID, int_arg, is_row_id, json, parse_json, reject_null_characters
from api.multipart import load_form
from api.web.i18n import choose_language, text
from core import attachments as files_svc
from core import web_form
from core.errors import NotFound, Throttled, ValidationFailed
from core.limits import current as current_limits
from core.ratelimit import MemoryRateLimiter
from core.requests import list_messages
from core.security import is_access_key
from core.serializers import customer_attachment_data, customer_message_data, customer_request_data
from core.texts import CATEGORY_LABELS, STATUS_LABELS, t
from db.models import (
    Category,
    CustomerRequest,
    RequestAttachment,
    RequestMessage,
    Status,
)

log = logging.getLogger("helpdesk.web")

EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
MAX_FILES = 10
MAX_MESSAGES_PER_POLL = 500


# --- reading ---------------------------------------------------------------------------------


async def request_for_key(key: str) -> CustomerRequest:
    """The request whose private page key is `key`; NotFound for anything else."""
    if not is_access_key(key):
        raise NotFound(t("err_not_found"))
    req = await CustomerRequest.filter(access_key=key).select_related(
        "customer", "assigned_admin"
    ).first()
    if req is None:
        raise NotFound(t("err_not_found"))
    return req


def public_request(req: CustomerRequest, lang: str) -> dict[str, Any]:
    """What the customer's page shows about the request: the customer-facing serializer
    (no staff details) plus labels in the page's language."""
    return {
        **customer_request_data(req),
        "status_label": STATUS_LABELS[lang].get(str(req.status), str(req.status)),
        "category_label": CATEGORY_LABELS[lang].get(str(req.category), str(req.category)),
        "accepts_messages": req.status != Status.closed,
        # The satisfaction survey (core.csat): open while the request is completed
        # (the rating itself comes with the customer-facing serializer).
        "can_rate": req.status == Status.completed,
    }


def attachment_url(key: str, attachment_id: int) -> str:
    return f"/api/public/requests/{key}/attachments/{attachment_id}/"


def public_message(
    msg: RequestMessage, key: str, files: list[RequestAttachment], lang: str | None = None
) -> dict[str, Any]:
    return customer_message_data(
        msg, attachments=[customer_attachment_data(a, attachment_url(key, a.id)) for a in files],
        lang=lang,
    )


async def thread_since(
    req: CustomerRequest, after: int, lang: str | None = None
) -> list[dict[str, Any]]:
    """Non-internal messages with id > `after`, oldest first, with their attachments.
    A fixed number of queries whatever the thread's length."""
    # The page acts with its customer's rights: never internal notes.
    rows = await list_messages(req.customer, req.id, after_id=after, limit=MAX_MESSAGES_PER_POLL)
    by_message: dict[int, list[RequestAttachment]] = {}
    if rows:
        for att in await RequestAttachment.filter(
            request_id=req.id, message_id__in=[m.id for m in rows]
        ).order_by("id"):
            by_message.setdefault(att.message_id, []).append(att)
    key = req.access_key or ""
    return [public_message(m, key, by_message.get(m.id, []), lang) for m in rows]


# --- input -----------------------------------------------------------------------------------


async def enforce_rate_limit(request: Request, action: str, lang: str) -> None:
    """WEB_RATE_LIMIT_PER_MIN per client address and action (`create`, `reply`): Throttled
    (429 with Retry-After) beyond it. The address is the socket's peer unless a trusted
    proxy forwarded the request (api.client_address, TRUSTED_PROXIES)."""
    limiter = request.app.ctx.web_limiter
    address = client_address(request)
    decision = await limiter.hit(f"{action}:{address}")
    if not decision.allowed:
        await _log_refusal(request, action, address, decision.retry_after)
        raise Throttled(text("err_rate", lang, seconds=decision.retry_after), decision.retry_after)


async def _log_refusal(request: Request, action: str, address: str, retry_after: int) -> None:
    # One line per client and action a minute, however hard it floods.
    once = getattr(request.app.ctx, "web_refusal_log", None)
    if once is None:
        once = request.app.ctx.web_refusal_log = MemoryRateLimiter(1, 60.0)
    if (await once.hit(f"{action}:{address}")).allowed:
        log.warning("web rate limit: %s from %s refused for %ss (429)", action, address, retry_after)


async def rate_limited(request: Request, action: str, lang: str) -> HTTPResponse | None:
    """None when the client may go on. Over the limit: a page saying when to try again for a
    form posted without JavaScript, Throttled (429 JSON) otherwise; both carry Retry-After."""
    try:
        await enforce_rate_limit(request, action, lang)
    except Throttled as exc:
        if not wants_html(request):
            raise
        return throttled_page(request, lang, exc, back="/" if action == "create" else request.path)
    return None


def throttled_page(request: Request, lang: str, exc: Throttled, back: str) -> HTTPResponse:
    from api.web.pages import _base_context, _respond
    from api.web.render import render

    if back != "/":
        back = "/r/" + back.split("/api/public/requests/", 1)[-1].split("/", 1)[0]
    label = text("new_request_link" if back == "/" else "back_to_request", lang)
    heading = text("rate_heading", lang)
    body = render("throttled.html", heading=heading, message=exc.message, back_href=back,
                  back_label=label)
    full = render("layout.html", **_base_context(request, lang, heading, content=body,
                                                 page_data="{}"))
    response = _respond(request, lang, full, status=429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def form_fields(request: Request) -> dict[str, str]:
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        load_form(request)  # api.multipart: malformed bodies are a 400, not a logged traceback
        fields = {k: (v[0] if v else "") for k, v in request.form.items()}
    elif ctype == "application/json":
        data = parse_json(request.body or b"")
        if not isinstance(data, dict):
            raise ValidationFailed({"non_field_errors": [t("err_not_json_object")]})
        fields = {k: v if isinstance(v, str) else str(v) for k, v in data.items() if v is not None}
    else:
        return {}
    reject_null_characters(fields)
    return fields


def uploaded_files(request: Request, lang: str, max_bytes: int, max_mb: int) -> list[File]:
    """The form's files (field `attachments`), empty file inputs ignored; checks the count
    and the total size (ValidationFailed / 413 with a message in the page's language)."""
    if request.files is None:
        return []
    files = [f for f in request.files.getlist("attachments", []) if f.name or f.body]
    if len(files) > MAX_FILES:
        raise ValidationFailed({"attachments": [text("err_too_many", lang, max_files=MAX_FILES)]})
    total = sum(len(f.body) for f in files)
    if total > max_bytes:
        raise TooLarge(text("err_too_big", lang, size=f"{total / 1048576:.1f}", mb=max_mb))
    return files


class TooLarge(ValidationFailed):
    def __init__(self, message: str) -> None:
        super().__init__({"attachments": [message]})


def _required(errors: dict[str, list[str]], data: dict[str, str], name: str, limit: int, lang: str) -> str:
    value = (data.get(name) or "").strip()
    if not value:
        errors[name] = [text("err_required", lang)]
    elif len(value) > limit:
        errors[name] = [text("err_too_long", lang, max=limit)]
    return value


def validate_form(data: dict[str, str], lang: str) -> dict[str, str]:
    """The form's fields under the shared limits (core.limits), messages in the page's language."""
    errors: dict[str, list[str]] = {}
    limits = current_limits()
    out = {
        "name": _required(errors, data, "name", limits.name, lang),
        "email": _required(errors, data, "email", limits.email, lang),
        "title": _required(errors, data, "title", limits.title, lang),
        "description": _required(errors, data, "description", limits.content, lang),
        "category": (data.get("category") or Category.general).strip(),
    }
    if "email" not in errors and not EMAIL_RE.match(out["email"]):
        errors["email"] = [text("err_email", lang)]
    if out["category"] not in Category.__members__:
        errors["category"] = [text("err_category", lang)]
    if errors:
        raise ValidationFailed(errors)
    return out


def wants_html(request: Request) -> bool:
    """A plain form post from a browser without JavaScript (fetch asks for JSON)."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


# --- handlers --------------------------------------------------------------------------------


async def create_from_form(request: Request) -> HTTPResponse:
    settings = request.app.ctx.settings
    lang = choose_language(request, settings.language)
    if (refused := await rate_limited(request, "create", lang)) is not None:
        return refused
    data = validate_form(form_fields(request), lang)
    files = uploaded_files(request, lang, settings.max_upload_bytes, settings.max_upload_mb)
    # A banned customer's address is refused by core.web_form (core.bans).
    req, failed = await web_form.create_web_request(
        email=data["email"], name=data["name"], language=lang, title=data["title"],
        description=data["description"], category=data["category"], files=files,
    )
    url = f"/r/{req.access_key}?created=1"
    log.info("web request #%s created (%d files)", req.id, len(files) - len(failed))
    if wants_html(request):
        return redirect(url, status=303)
    return json(
        {
            "access_key": req.access_key,
            "url": url,
            "request": public_request(req, lang),
            "failed_attachments": failed,
        },
        status=201,
    )


async def request_state(request: Request, key: str) -> HTTPResponse:
    lang = choose_language(request, request.app.ctx.settings.language)
    req = await request_for_key(key)
    after = max(0, int_arg(request, "after", 0, maximum=MAX_DB_ID) or 0)
    return json(
        {"request": public_request(req, lang), "messages": await thread_since(req, after, lang)},
        headers={"Cache-Control": "no-store"},
    )


async def reply(request: Request, key: str) -> HTTPResponse:
    settings = request.app.ctx.settings
    lang = choose_language(request, settings.language)
    req = await request_for_key(key)
    if (refused := await rate_limited(request, "reply", lang)) is not None:
        return refused
    data = form_fields(request)
    content = (data.get("content") or "").strip()
    files = uploaded_files(request, lang, settings.max_upload_bytes, settings.max_upload_mb)
    if not content and not files:
        raise ValidationFailed({"content": [text("err_required", lang)]})
    most = current_limits().content
    if len(content) > most:  # the page's language; core.thread checks again in the domain
        raise ValidationFailed({"content": [text("err_too_long", lang, max=most)]})
    last_id = (
        await RequestMessage.filter(request_id=req.id).order_by("-id").first().values_list("id", flat=True)
    ) or 0
    # Refuses a closed request (or a banned customer) before anything is written.
    failed = await web_form.reply_from_web(req, content, files)
    if wants_html(request):
        return redirect(f"/r/{key}", status=303)
    # Everything new in the thread since just before this reply (the page de-duplicates).
    return json(
        {"messages": await thread_since(req, last_id, lang), "failed_attachments": failed}, status=201
    )


async def download(request: Request, key: str, attachment_id: int) -> HTTPResponse:
    """A file of this request, with the rights of its customer (the key stands for them)."""
    from api.routes.attachments import attachment_response

    req = await request_for_key(key)
    if not is_row_id(attachment_id):
        raise NotFound(t("err_not_found"))
    att, path = await files_svc.attachment_for_download(req.customer, attachment_id)
    if att.request_id != req.id:
        raise NotFound(t("err_not_found"))
    return await attachment_response(att, path)
