"""The console's form posts: sign-in, sign-out and the actions on a request.

Each action is one call of the domain function REST calls for the same thing, with the
signed-in user; the console decides nothing about who may do what. An admin who forces a
director's move (posting the form by hand, with a valid CSRF token) gets the domain's
PermissionDenied as a 403 page, exactly as REST answers 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sanic import Request
from sanic.response import HTTPResponse, redirect

from api.client_address import client_address
from api.console import session as web
from api.console.i18n import text
from api.console.pages import _sign_in_form
from api.http import int_from_text, is_row_id
from core import canned, message_edits, users
from core import console_sessions as sessions
from core import requests as svc
from core.console_sessions import StaffSession
from core.errors import NotFound, Throttled, ValidationFailed
from core.permissions import is_staff
from db.models import Source, User

# --- sign-in / sign-out --------------------------------------------------------------------


async def sign_in(request: Request) -> HTTPResponse:
    """Check the password with core.users.check_credentials (the REST login's check, its
    throttling and audit), refuse customers, then open a session with a new id."""
    from api.multipart import load_form

    lang = web.language(request)
    if not web.origin_ok(request):
        return web.error_page(request, lang, None, 403, text("forbidden", lang), text("err_csrf", lang),
                              back=web.SIGN_IN)
    load_form(request)
    form = {k: v[0] for k, v in request.form.items()}
    cookie_token = request.cookies.get(web.CSRF_COOKIE) or ""
    submitted = form.get("csrf_token") or ""
    if not cookie_token or not isinstance(submitted, str) or not _same(cookie_token, submitted):
        return _sign_in_form(request, lang, notice={"kind": "error", "text": text("err_csrf", lang)},
                             status=403)
    username = form.get("username") or ""
    password = form.get("password") or ""
    if "\x00" in username or "\x00" in password:
        return _sign_in_form(request, lang, status=400,
                             notice={"kind": "error", "text": text("err_credentials", lang)})
    try:
        user = await users.check_credentials(username, password, address=client_address(request))
    except Throttled as exc:
        response = _sign_in_form(
            request, lang, username=username[:150], status=429,
            notice={"kind": "error", "text": text("err_throttled", lang, seconds=exc.retry_after)})
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except ValidationFailed:
        return _sign_in_form(request, lang, username=username[:150], status=400,
                             notice={"kind": "error", "text": text("err_credentials", lang)})
    if not is_staff(user):
        return _sign_in_form(request, lang, status=403,
                             notice={"kind": "error", "text": text("err_customers", lang)})
    value, _ = await sessions.open_session(user, client_address(request))
    response = redirect(web.safe_next(form.get("next")), status=303)
    web.set_session_cookie(request, response, value)
    return response


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


async def _sign_out(request: Request, session: StaffSession, lang: str, form: dict[str, str]) -> HTTPResponse:
    await sessions.close_session(session)
    response = redirect(f"{web.SIGN_IN}?signed_out=1", status=303)
    web.clear_session_cookie(request, response)
    return response


sign_out = web.form_action(_sign_out)


# --- actions on a request ------------------------------------------------------------------

Action = Callable[[User, int, dict[str, str]], Awaitable[str | None]]


async def _take(actor: User, request_id: int, form: dict[str, str]) -> None:
    await svc.take_request(actor, request_id)


async def _complete(actor: User, request_id: int, form: dict[str, str]) -> None:
    await svc.complete_request(actor, request_id)


async def _close(actor: User, request_id: int, form: dict[str, str]) -> None:
    await svc.close_request(actor, request_id)


async def _reopen(actor: User, request_id: int, form: dict[str, str]) -> None:
    await svc.reopen_request(actor, request_id)


async def _reassign(actor: User, request_id: int, form: dict[str, str]) -> None:
    admin_id = int_from_text(form.get("admin_id") or "")
    if admin_id is None or not is_row_id(admin_id):
        raise ValidationFailed({"admin_id": [text("reassign_to", actor.language)]})
    await svc.reassign_request(actor, request_id, admin_id)


async def _status(actor: User, request_id: int, form: dict[str, str]) -> None:
    await svc.set_status(actor, request_id, form.get("status") or "")


async def _edit(actor: User, request_id: int, form: dict[str, str]) -> None:
    changes = {k: form[k] for k in ("priority", "category") if form.get(k)}
    if changes:
        await svc.update_request(actor, request_id, changes)


async def _reply(actor: User, request_id: int, form: dict[str, str]) -> None:
    await svc.post_message(actor, request_id, form.get("content") or "", source=Source.web)


async def _note(actor: User, request_id: int, form: dict[str, str]) -> None:
    await svc.post_message(actor, request_id, form.get("content") or "", is_internal=True,
                           source=Source.web)


async def _canned(actor: User, request_id: int, form: dict[str, str]) -> str:
    canned_id = int_from_text(form.get("canned_id") or "")
    if canned_id is None or not is_row_id(canned_id):
        raise NotFound(text("not_found", actor.language))
    _, item = await canned.send_canned(actor, request_id, canned_id=canned_id, source=Source.web)
    return text("done_canned", actor.language, title=item.title)


def _message_id(form: dict[str, str], lang: str) -> int:
    message_id = int_from_text(form.get("message_id") or "")
    if message_id is None or not is_row_id(message_id):
        raise NotFound(text("not_found", lang))
    return message_id


async def _edit_message(actor: User, request_id: int, form: dict[str, str]) -> None:
    # One's own reply or note within MESSAGE_EDIT_WINDOW_HOURS (core.message_edits refuses
    # the rest with PermissionDenied: a 403 page, like REST's 403).
    await message_edits.edit_message(actor, request_id, _message_id(form, actor.language),
                                     (form.get("content") or "").strip())


async def _delete_message(actor: User, request_id: int, form: dict[str, str]) -> None:
    await message_edits.delete_message(actor, request_id, _message_id(form, actor.language))


ACTIONS: dict[str, Action] = {
    "take": _take,
    "complete": _complete,
    "reply": _reply,
    "note": _note,
    "canned": _canned,
    "edit": _edit,
    "edit_message": _edit_message,
    "delete_message": _delete_message,
    # the director's moves (the domain refuses them to admins)
    "close": _close,
    "reopen": _reopen,
    "reassign": _reassign,
    "status": _status,
}


async def _act(request: Request, session: StaffSession, lang: str, form: dict[str, str],
               request_id: int, action: str) -> HTTPResponse:
    handler = ACTIONS.get(action)
    if handler is None or not is_row_id(request_id):
        raise NotFound(text("not_found", lang))
    actor = web.acting_user(session, lang)
    done = await handler(actor, request_id, form)
    await sessions.set_flash(session, "ok", done or text(f"done_{action}", lang))
    return redirect(f"/console/requests/{request_id}/", status=303)


request_action = web.form_action(_act)


