"""The customer's web page edits and deletes their own messages (core.message_edits, with
the rights of the request's customer: the key is the only credential).

- `POST|PATCH  /api/public/requests/<key>/messages/<id>/edit`: field `content` (form or JSON).
- `POST|DELETE /api/public/requests/<key>/messages/<id>/delete`.

The same domain functions and rules as REST and Telegram: only the customer's own message,
within MESSAGE_EDIT_WINDOW_HOURS; history, `message_updated`/`message_deleted` events and
every Telegram copy follow from the domain. Rate-limited with the replies
(WEB_RATE_LIMIT_PER_MIN per client address, the `reply` bucket). A plain form post (no
JavaScript) is redirected back to the page, or gets a page with the refusal in the page's
language (403 / 404 / 400); a script gets JSON (the edited message, or 204; refusals as
the other public routes: `{"detail": ...}`).
"""

from __future__ import annotations

from sanic import Request
from sanic.response import HTTPResponse, empty, redirect

from api.http import is_row_id, json
from api.web.i18n import choose_language, text
from api.web.public import (
    form_fields,
    public_message,
    rate_limited,
    request_for_key,
    wants_html,
)
from core import i18n, message_edits
from core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from core.texts import t
from db.models import RequestAttachment


def _acting_customer(req, lang: str):
    """The request's customer, speaking the page's language for the domain's refusals
    (the in-memory copy only: nothing about the account is saved)."""
    customer = req.customer
    customer.language = lang
    return customer


def refusal_page(request: Request, lang: str, key: str, exc: DomainError) -> HTTPResponse:
    """A page with the domain's refusal and a link back to the request (no JavaScript)."""
    from api.web.pages import _base_context, _respond
    from api.web.render import render

    if isinstance(exc, ValidationFailed):
        status, message = 400, " ".join(i18n.render(m, lang) for msgs in exc.errors.values() for m in msgs)
    elif isinstance(exc, NotFound):
        status, message = 404, text("err_edit_gone", lang)
    else:
        status, message = 403, i18n.render(exc.message, lang)
    heading = text("edit_refused_heading", lang)
    body = render("throttled.html", heading=heading, message=message, back_href=f"/r/{key}",
                  back_label=text("back_to_request", lang))
    full = render("layout.html", **_base_context(request, lang, heading, content=body,
                                                 page_data="{}"))
    return _respond(request, lang, full, status=status)


async def _run(request: Request, key: str, message_id: int, edit: bool) -> HTTPResponse:
    lang = choose_language(request, request.app.ctx.settings.language)
    req = await request_for_key(key)
    if not is_row_id(message_id):
        raise NotFound(t("err_not_found"))
    if (refused := await rate_limited(request, "reply", lang)) is not None:
        return refused
    customer = _acting_customer(req, lang)
    try:
        if edit:
            content = (form_fields(request).get("content") or "").strip()
            msg = await message_edits.edit_message(customer, req.id, message_id, content)
        else:
            await message_edits.delete_message(customer, req.id, message_id)
    except (PermissionDenied, NotFound, ValidationFailed) as exc:
        if wants_html(request):
            return refusal_page(request, lang, key, exc)
        raise
    if wants_html(request):
        return redirect(f"/r/{key}", status=303)
    if not edit:
        return empty(status=204)
    files = await RequestAttachment.filter(request_id=req.id, message_id=msg.id).order_by("id")
    return json(public_message(msg, key, list(files)))


async def edit_from_page(request: Request, key: str, message_id: int) -> HTTPResponse:
    return await _run(request, key, message_id, edit=True)


async def delete_from_page(request: Request, key: str, message_id: int) -> HTTPResponse:
    return await _run(request, key, message_id, edit=False)
