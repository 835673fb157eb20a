"""The console's HTTP side of sessions: cookies, CSRF, language, and the two wrappers every
console route goes through (`page` for GET, `form_action` for POST).

Cookies:
- `console_session`: the session id (core.console_sessions keeps only its digest).
  HttpOnly (no script reads it), SameSite=Lax (not sent with cross-site form posts,
  fetches or WebSocket handshakes; sent when a link from elsewhere opens a page), Secure
  when the request came over HTTPS or PUBLIC_URL is https, Path=/ (the admin WebSocket
  at /ws/admin/notifications/ reads it too).
- `console_csrf`: before sign-in there is no session to hold a CSRF token, so the sign-in
  form uses a double-submit token: a random value in this cookie (SameSite=Strict) and in
  the form; they must match. This stops login CSRF (a foreign page signing the browser in
  to an account of the attacker's).

Every POST needs: a live session (else 303 to sign-in), an Origin header that is absent or
ours, and the session's CSRF token in the form (else 403). Then the action calls the same
domain function as REST with the signed-in user, so the permissions are REST's:
PermissionDenied becomes 403, NotFound 404, and a refused move or bad input comes back to
the page as a notice (303, POST-redirect-GET).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlparse

from sanic import Request
from sanic.response import HTTPResponse, redirect

from api.console.i18n import labels, text
from api.console.render import html_response, render
from api.http import reject_null_characters
from api.multipart import load_form
from api.web.i18n import LANG_COOKIE, LANGUAGES, choose_language
from core import console_sessions as sessions
from core import i18n
from core.console_sessions import StaffSession
from core.errors import DomainError, NotFound, PermissionDenied
from core.permissions import is_director

SESSION_COOKIE = "console_session"
CSRF_COOKIE = "console_csrf"
SIGN_IN = "/console/sign-in"


def is_secure(request: Request) -> bool:
    """HTTPS as the browser sees it: the request's scheme (Sanic believes a trusted
    proxy's forwarded headers when configured) or a PUBLIC_URL that says https."""
    settings = request.app.ctx.settings
    return request.scheme == "https" or settings.public_url.lower().startswith("https://")


def set_session_cookie(request: Request, response: HTTPResponse, value: str) -> None:
    response.add_cookie(
        SESSION_COOKIE, value, path="/", httponly=True, samesite="Lax",
        secure=is_secure(request),
        max_age=int(sessions.max_age().total_seconds()),
    )


def clear_session_cookie(request: Request, response: HTTPResponse) -> None:
    response.add_cookie(SESSION_COOKIE, "", path="/", httponly=True, samesite="Lax",
                        secure=is_secure(request), max_age=0)


def sign_in_csrf(request: Request) -> str:
    """The double-submit token of the sign-in form: the cookie's, or a new one."""
    current = request.cookies.get(CSRF_COOKIE) or ""
    if 20 <= len(current) <= 128 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def set_csrf_cookie(request: Request, response: HTTPResponse, value: str) -> None:
    response.add_cookie(CSRF_COOKIE, value, path="/console/", httponly=True, samesite="Strict",
                        secure=is_secure(request), max_age=3600)


def language(request: Request) -> str:
    return choose_language(request, request.app.ctx.settings.language)


def origin_ok(request: Request, *, required: bool = False) -> bool:
    """True when the request's Origin header names this host (the Host header, or
    PUBLIC_URL's host), or says nothing: absent, or `null` (sent by privacy settings and
    some redirects; the CSRF token still decides) unless `required`. Browsers send the
    real Origin on every cross-site POST and on WebSocket handshakes."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return not required
    parsed = urlparse(origin)
    if not parsed.scheme or not parsed.netloc:
        return False
    allowed = {request.host.lower()}
    public = request.app.ctx.settings.public_url
    if public:
        allowed.add(urlparse(public).netloc.lower())
    return parsed.netloc.lower() in allowed


async def current_session(request: Request, *, touch: bool = True) -> StaffSession | None:
    cached = getattr(request.ctx, "console_session", None)
    if cached is not None:
        return cached
    found = await sessions.session_for(request.cookies.get(SESSION_COOKIE), touch=touch)
    request.ctx.console_session = found
    return found


def acting_user(session: StaffSession, lang: str):
    """The signed-in user as the domain sees them on this request: a copy speaking the
    console's language, so refusals and the thread's system messages come out in the
    language the page is in (as REST uses the account's language)."""
    actor = copy.copy(session.user)
    actor.language = lang
    return actor


def base_context(request: Request, lang: str, session: StaffSession | None, **extra: Any) -> dict[str, Any]:
    other = "en" if lang == "ru" else "ru"
    params = {k: v[0] for k, v in request.args.items() if k != "lang"}
    params["lang"] = other
    query = "&".join(f"{quote(k)}={quote(str(v))}" for k, v in params.items())
    user = session.user if session else None
    context: dict[str, Any] = {
        **labels(lang),
        "lang": lang,
        "switch_href": f"{request.path}?{query}",
        "session": session,
        "user": user,
        "is_director": is_director(user) if user else False,
        "csrf_token": session.csrf_token if session else "",
        "nav": "",
        "flash": None,
        "page_script": "",
        "live": False,
    }
    context.update(extra)
    return context


def respond(request: Request, lang: str, body: str, status: int = 200) -> HTTPResponse:
    response = html_response(body, status=status)
    if request.args.get("lang") in LANGUAGES:
        response.add_cookie(LANG_COOKIE, lang, path="/", max_age=365 * 24 * 3600,
                            samesite="Lax", secure=is_secure(request))
    return response


def error_page(request: Request, lang: str, session: StaffSession | None, status: int,
               heading: str, message: str, back: str | None = None) -> HTTPResponse:
    body = render("error.html", **base_context(
        request, lang, session, title=heading, heading=heading, message=message,
        back=back or "/console/"))
    return respond(request, lang, body, status)


def sign_in_redirect(request: Request) -> HTTPResponse:
    target = request.path + (f"?{request.query_string}" if request.query_string else "")
    return redirect(f"{SIGN_IN}?next={quote(target, safe='')}", status=303)


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: only a console path of ours (never `//host`)."""
    if value and value.startswith("/console/") and "//" not in value and "\\" not in value:
        return value
    return "/console/"


Handler = Callable[..., Awaitable[HTTPResponse]]


def page(handler: Handler, *, touch: bool = True) -> Handler:
    """A GET page for staff: no live session → 303 to sign-in (coming back here after);
    the handler gets (request, session, lang, *args)."""

    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        lang = language(request)
        session = await current_session(request, touch=touch)
        if session is None:
            if not touch:  # a background refresh: the page's script shows "signed out"
                return html_response("", status=401)
            return sign_in_redirect(request)
        try:
            return await handler(request, session, lang, *args, **kwargs)
        except PermissionDenied as exc:
            return error_page(request, lang, session, 403, text("forbidden", lang), _message(exc, lang))
        except NotFound:
            return error_page(request, lang, session, 404, text("not_found", lang),
                              text("not_found_text", lang))

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def form_action(handler: Handler) -> Handler:
    """A POST of a console form: live session, Origin ours, CSRF token right (403 page
    otherwise); the handler gets (request, session, lang, form, *args) and returns where to
    go. Domain refusals: 403 (PermissionDenied), 404 (NotFound); anything else the domain
    refuses is shown on the page the form came from."""

    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        lang = language(request)
        session = await current_session(request)
        if session is None:
            return sign_in_redirect(request) if request.method == "GET" else redirect(
                f"{SIGN_IN}?expired=1", status=303)
        if not origin_ok(request):
            return error_page(request, lang, session, 403, text("forbidden", lang),
                              text("err_csrf", lang))
        load_form(request)
        form = {k: v[0] for k, v in request.form.items()}
        if not sessions.check_csrf(session, form.get("csrf_token")):
            return error_page(request, lang, session, 403, text("forbidden", lang),
                              text("err_csrf", lang))
        try:
            reject_null_characters(form)
            return await handler(request, session, lang, form, *args, **kwargs)
        except PermissionDenied as exc:
            return error_page(request, lang, session, 403, text("forbidden", lang), _message(exc, lang))
        except NotFound:
            return error_page(request, lang, session, 404, text("not_found", lang),
                              text("not_found_text", lang))
        except DomainError as exc:
            await sessions.set_flash(session, "error", _message(exc, lang),
                                     draft=form.get("content", "")[:20000])
            return redirect(_back(request, kwargs), status=303)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _message(exc: DomainError, lang: str | None = None) -> str:
    """The refusal's text in the page's language (catalog texts are i18n.Text)."""
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict):
        return " ".join(str(i18n.render(m, lang)) for msgs in errors.values()
                        for m in (msgs if isinstance(msgs, list) else [msgs]))
    return i18n.render(exc.message, lang)


def _back(request: Request, kwargs: dict[str, Any]) -> str:
    request_id = kwargs.get("request_id")
    if isinstance(request_id, int):
        return f"/console/requests/{request_id}/"
    return "/console/"
