"""The customer's HTML pages: the form at `/` and the private request page `/r/<key>`."""

from __future__ import annotations

import html
import mimetypes
from typing import Any
from urllib.parse import urlencode

from sanic import Request
from sanic.response import HTTPResponse, file

from api.web.i18n import LANG_COOKIE, LANGUAGES, choose_language, client_texts, text
from api.web.public import MAX_FILES, public_request, request_for_key
from api.web.rating import rating_context
from api.web.render import STATIC, json_for_script, page, render
from core import i18n
from core.errors import NotFound
from core.limits import current as current_limits
from core.texts import CATEGORY_LABELS, t
from core.users import VerificationExpired, verify_email
from db.models import Category, Status


def _base_context(request: Request, lang: str, page_title: str, **extra: Any) -> dict[str, Any]:
    settings = request.app.ctx.settings
    other = "en" if lang == "ru" else "ru"
    params = {k: v[0] for k, v in request.args.items() if k not in ("lang", "created", "rated")}
    params["lang"] = other
    context: dict[str, Any] = {f"t_{k}": v for k, v in i18n.group(lang, "web").items()}
    context.update(
        lang=lang,
        page_title=page_title,
        switch_href=f"{request.path}?{urlencode(params)}",
        max_upload_bytes=settings.max_upload_bytes,
        attachments_hint=text("attachments_hint", lang, max_files=MAX_FILES, mb=settings.max_upload_mb),
        page_script="",
    )
    context.update(extra)
    return context


def _respond(request: Request, lang: str, body: str, status: int = 200) -> HTTPResponse:
    response = page(body, status=status)
    if request.args.get("lang") in LANGUAGES:
        # The switcher's choice sticks for the next pages (the request page after submit).
        response.add_cookie(
            LANG_COOKIE, lang, path="/", max_age=365 * 24 * 3600, samesite="Lax", secure=False
        )
    return response


# The page's scripts and styles: a fixed set of files, looked up by exact name. Nothing a
# client sends is joined to a filesystem path (Sanic's directory handler answered 500 for
# `/static/web/`, a NUL byte or an over-long name).
STATIC_FILES = {f.name: f for f in STATIC.iterdir() if f.is_file()}


async def static_file(request: Request, name: str) -> HTTPResponse:
    """`/static/web/<name>`: one of STATIC_FILES, revalidated by Last-Modified; 404 otherwise."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound(t("err_not_found"))
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if mime.startswith("text/") or mime == "application/javascript":
        mime += "; charset=utf-8"
    return await file(path, request_headers=request.headers, mime_type=mime, max_age=3600)


def _script_tag(name: str) -> str:
    return f'<script src="/static/web/{html.escape(name)}" defer></script>'


async def form_page(request: Request) -> HTTPResponse:
    settings = request.app.ctx.settings
    lang = choose_language(request, settings.language)
    options = "\n".join(
        '      <option value="{}"{}>{}</option>'.format(
            html.escape(c.value), " selected" if c is Category.general else "",
            html.escape(CATEGORY_LABELS[lang][c.value]),
        )
        for c in Category
    )
    data = client_texts(lang, max_upload_bytes=settings.max_upload_bytes,
                        max_upload_mb=settings.max_upload_mb, max_files=MAX_FILES)
    limits = current_limits()  # the form's maxlengths are the limits the server checks
    body = render("form.html", **_base_context(request, lang, text("form_heading", lang),
                                               category_options=options, max_name=limits.name,
                                               max_email=limits.email, max_title=limits.title,
                                               max_content=limits.content))
    full = render(
        "layout.html",
        **_base_context(request, lang, text("form_heading", lang), content=body,
                        page_data=json_for_script({"lang": lang, "texts": data}),
                        page_script=_script_tag("form.js")),
    )
    return _respond(request, lang, full)


async def not_found_page(request: Request, lang: str) -> HTTPResponse:
    heading = text("not_found_heading", lang)
    body = render("not_found.html", **_base_context(request, lang, heading))
    full = render(
        "layout.html",
        **_base_context(request, lang, heading, content=body,
                        page_data=json_for_script({"lang": lang})),
    )
    return _respond(request, lang, full, status=404)


async def request_page(request: Request, key: str) -> HTTPResponse:
    settings = request.app.ctx.settings
    lang = choose_language(request, settings.language)
    try:
        req = await request_for_key(key)
    except NotFound:
        return await not_found_page(request, lang)
    info = public_request(req, lang)
    heading = text("request_heading", lang, id=req.id)
    created = request.args.get("created") == "1"
    closed = req.status == Status.closed
    data = client_texts(lang, max_upload_bytes=settings.max_upload_bytes,
                        max_upload_mb=settings.max_upload_mb, max_files=MAX_FILES)
    ctx = _base_context(
        request, lang, f"{heading}: {req.title}",
        key=key,
        heading=heading,
        title=req.title,
        status=info["status"],
        status_label=info["status_label"],
        category_label=info["category_label"],
        created_iso=info["created_at"] or "",
        created_text=req.created_at.strftime("%Y-%m-%d %H:%M UTC") if req.created_at else "",
        description=req.description,
        created_notice=text("created_notice", lang, id=req.id) if created else "",
        created_hidden="" if created else " hidden",
        reply_hidden=" hidden" if closed else "",
        closed_hidden="" if closed else " hidden",
        max_content=current_limits().content,
        **rating_context(req, lang, just_rated=request.args.get("rated") == "1"),
    )
    body = render("request.html", **ctx)
    ctx.update(
        content=body,
        page_data=json_for_script({
            "lang": lang, "key": key, "request": info, "texts": data,
            # The customer's own messages younger than this get Edit / Delete (api.web.edits).
            "edit_window_hours": settings.message_edit_window_hours,
        }),
        page_script=_script_tag("request.js") + _script_tag("rating.js"),
    )
    return _respond(request, lang, render("layout.html", **ctx))


async def verify_page(request: Request, key: str, token: str) -> HTTPResponse:
    """`/r/<key>/verify/<token>`: the link in the confirmation mail. A token of this
    request's customer marks that web contact's address verified (core.users.verify_email;
    staff then see `customer_email_verified: true`) and answers a confirmation page; a
    wrong key is the not-found page (404), a wrong, forged or used token 404 and an expired
    one 410, and then nothing changes."""
    settings = request.app.ctx.settings
    lang = choose_language(request, settings.language)
    try:
        req = await request_for_key(key)
    except NotFound:
        return await not_found_page(request, lang)
    try:
        user = await verify_email(req.customer_id, token)
    except VerificationExpired:
        heading, message, status = (text("verify_bad_heading", lang),
                                    text("verify_expired_text", lang), 410)
    except NotFound:
        heading, message, status = (text("verify_bad_heading", lang),
                                    text("verify_bad_text", lang), 404)
    else:
        heading, message, status = (text("verify_ok_heading", lang),
                                    text("verify_ok_text", lang, email=user.email), 200)
    ctx = _base_context(request, lang, heading, heading=heading, message=message,
                        notice_class=" success" if status == 200 else " error-notice",
                        back_href=f"/r/{key}", back_label=text("verify_back", lang))
    body = render("verify.html", **ctx)
    ctx.update(content=body, page_data=json_for_script({"lang": lang}))
    return _respond(request, lang, render("layout.html", **ctx), status=status)
