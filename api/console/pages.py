"""The console's pages (GET): sign-in, the queue, a request, stats; and its static files.

Each page reads through the domain with the signed-in user (core.requests.list_requests,
get_request, list_messages, core.attachments, core.history, core.canned, the stats
functions), so it shows exactly what REST would show that user. A page fetched by the
page's own script for a live refresh (header `X-Console-Live: 1`) is the same HTML; it
does not count as activity for the session's idle clock and leaves the page's notice
for the next real view.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime, timedelta
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, file, redirect

from api.console import session as web
from api.console.i18n import text
from api.console.render import STATIC, render
from api.http import MAX_PAGE, int_from_text
from api.routes.attachments import attachment_response
from core import attachments as files
from core import canned, reports, staff_stats
from core import console_sessions as sessions
from core import history as history_svc
from core import requests as svc
from core.charts import BAR, BAR_ALT, STATUS_COLORS, horizontal_bars, per_day_chart, to_svg
from core.console_sessions import StaffSession
from core.errors import NotFound, ValidationFailed
from core.permissions import can_manage_request, is_director
from core.serializers import message_content
from core.texts import t
from core.users import list_staff
from db.models import Category, Priority, Status

LIVE_HEADER = "x-console-live"


def _is_live(request: Request) -> bool:
    return request.headers.get(LIVE_HEADER) == "1"


# --- sign-in -------------------------------------------------------------------------------


async def sign_in_page(request: Request) -> HTTPResponse:
    lang = web.language(request)
    session = await web.current_session(request)
    if session is not None:
        return redirect(web.safe_next(request.args.get("next")), status=303)
    notice = None
    if request.args.get("signed_out") == "1":
        notice = {"kind": "ok", "text": text("signed_out", lang)}
    elif request.args.get("expired") == "1":
        notice = {"kind": "error", "text": text("err_session", lang)}
    return _sign_in_form(request, lang, notice=notice)


def _sign_in_form(request: Request, lang: str, *, notice: dict[str, str] | None = None,
                  username: str = "", status: int = 200) -> HTTPResponse:
    token = web.sign_in_csrf(request)
    body = render("sign_in.html", **web.base_context(
        request, lang, None, title=text("sign_in", lang), flash=notice, username=username,
        sign_in_csrf=token, next=web.safe_next(request.args.get("next")),
    ))
    response = web.respond(request, lang, body, status)
    web.set_csrf_cookie(request, response, token)
    return response


# --- the queue -----------------------------------------------------------------------------

QUEUE_PARAMS = ("status", "priority", "category", "assigned", "search", "unassigned_first")


def _queue_filters(request: Request, session: StaffSession) -> tuple[svc.RequestFilters, dict[str, str]]:
    """The REST list filters from the query, and the form's current values."""
    values = {name: (request.args.get(name) or "") for name in QUEUE_PARAMS}
    if any("\x00" in v for v in values.values()):
        raise ValidationFailed({"search": ["NUL"]})
    assigned = values["assigned"]
    filters = svc.RequestFilters(
        status=values["status"] or None,
        priority=values["priority"] or None,
        category=values["category"] or None,
        search=values["search"][:200] or None,
        unassigned_first=values["unassigned_first"] == "1",
    )
    if assigned == "me":
        filters.assigned_admin_id = session.user.id
    elif assigned == "none":
        filters.unassigned = True
    elif assigned:
        number = int_from_text(assigned)
        if number is None or not 0 < number <= MAX_PAGE:
            raise ValidationFailed({"assigned": [assigned[:20]]})
        filters.assigned_admin_id = number
    return filters, values


def _page_number(request: Request, name: str = "page") -> int:
    raw = request.args.get(name) or "1"
    number = int_from_text(raw)
    if number is None or not 1 <= number <= MAX_PAGE:
        raise NotFound("page")
    return number


def _query(values: dict[str, Any], **override: Any) -> str:
    from urllib.parse import urlencode

    merged = {k: v for k, v in {**values, **override}.items() if v not in ("", None)}
    return urlencode(merged)


async def _queue(request: Request, session: StaffSession, lang: str) -> HTTPResponse:
    """The request list with the REST filters, search and paging; live over the admin
    WebSocket (the page's script refetches this page's results when an event arrives)."""
    actor = web.acting_user(session, lang)
    error = None
    total, rows, page = 0, [], 1
    try:
        filters, values = _queue_filters(request, session)
        page = _page_number(request)
        total, rows = await svc.list_requests(actor, filters, page)
    except ValidationFailed:
        values = {name: (request.args.get(name) or "").replace("\x00", "") for name in QUEUE_PARAMS}
        error = text("nothing_found", lang)
    pages = max(1, -(-total // svc.PAGE_SIZE))
    context = web.base_context(
        request, lang, session, title=text("queue", lang), nav="queue",
        flash=None if _is_live(request) else await sessions.pop_flash(session),
        values=values, rows=rows, total=total, page=page, pages=pages, error=error,
        statuses=[s.value for s in Status], priorities=[p.value for p in Priority],
        categories=[c.value for c in Category], staff=await list_staff(),
        prev_query=_query(values, page=page - 1 if page > 2 else None) if page > 1 else None,
        next_query=_query(values, page=page + 1) if page < pages else None,
        page_script="console-queue.js", live=True,
    )
    return web.respond(request, lang, render("queue.html", **context), 400 if error else 200)


async def queue_page(request: Request) -> HTTPResponse:
    handler = web.page(_queue, touch=not _is_live(request))
    return await handler(request)


# --- a request -----------------------------------------------------------------------------


def _history_value(field: str, value: Any, lang: str, labels: dict[str, Any]) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if field == "status":
        return labels["status_labels"].get(value, str(value))
    if field == "priority":
        return labels["priority_labels"].get(value, str(value))
    if field == "category":
        return labels["category_labels"].get(value, str(value))
    if field == "assigned_admin" and isinstance(value, dict):
        return str(value.get("name") or f"#{value.get('id')}")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    text_value = str(value)
    return text_value if len(text_value) <= 200 else text_value[:199] + "…"


async def _request(request: Request, session: StaffSession, lang: str, request_id: int) -> HTTPResponse:
    """Card, thread (internal notes marked), attachments, history and the actions this user
    may take (the domain refuses the rest anyway)."""
    from api.console.i18n import labels

    actor = web.acting_user(session, lang)
    req = await svc.get_request(actor, request_id)
    messages = await svc.list_messages(actor, request_id)
    for m in messages:  # system messages in the page's language (not saved)
        m.content = message_content(m, lang)
    attachments = await files.list_attachments(actor, request_id)
    by_message: dict[int | None, list[Any]] = {}
    for att in attachments:
        by_message.setdefault(att.message_id, []).append(att)
    history_page = _page_number(request, "hp")
    history_total, history_rows = await history_svc.list_history(actor, request_id, history_page)
    names = labels(lang)
    history = [
        {
            "field": names["field_labels"].get(row.field, row.field),
            "old": _history_value(row.field, history_svc.entry_data(row)["old"], lang, names),
            "new": _history_value(row.field, history_svc.entry_data(row)["new"], lang, names),
            "who": row.actor_name or "—",
            "channel": names["channel_labels"].get(str(row.channel), str(row.channel)),
            "at": row.created_at,
        }
        for row in history_rows
    ]
    _, canned_items = await canned.list_canned(actor, page_size=100)
    canned_options = [
        {
            "id": item.id,
            "label": f"/{item.shortcut} · {item.title} ({item.language})",
            "text": canned.fill(item.content, customer=req.customer, request_id=req.id, admin=actor),
        }
        for item in canned_items
    ]
    # The signed-in user's own replies and notes still inside the edit window get the
    # edit and delete forms (core.message_edits checks the same again on the post).
    window = timedelta(hours=request.app.ctx.settings.message_edit_window_hours)
    now = datetime.now(UTC)
    editable = {
        m.id for m in messages
        if m.sender_id == actor.id and str(m.message_type) != "system" and now - m.created_at <= window
    }
    manage = can_manage_request(actor, req)
    director = is_director(actor)
    history_pages = max(1, -(-history_total // history_svc.PAGE_SIZE))
    context = web.base_context(
        request, lang, session, title=f"{text('request_n', lang, id=req.id)}: {req.title}",
        nav="queue", flash=None if _is_live(request) else await sessions.pop_flash(session),
        req=req, messages=messages, by_message=by_message, editable=editable, attachments=attachments,
        history=history, history_page=history_page, history_pages=history_pages,
        canned_options=canned_options, can_manage=manage,
        can_take=req.status == Status.open and req.assigned_admin_id is None,
        can_complete=req.status == Status.in_progress
        and (req.assigned_admin_id == actor.id or director),
        can_close=director and req.status == Status.completed,
        can_reopen=director and req.status in (Status.completed, Status.closed),
        can_reassign=director and req.status in (Status.open, Status.in_progress),
        staff=await list_staff() if director else [],
        statuses=[s.value for s in Status], priorities=[p.value for p in Priority],
        categories=[c.value for c in Category],
        page_script="console-request.js", live=True,
    )
    return web.respond(request, lang, render("request.html", **context))


async def request_page(request: Request, request_id: int) -> HTTPResponse:
    handler = web.page(_request, touch=not _is_live(request))
    return await handler(request, request_id)


async def _download(request: Request, session: StaffSession, lang: str, attachment_id: int) -> HTTPResponse:
    """A file of a request (any, for staff: core.attachments' rule), as a download."""
    att, path = await files.attachment_for_download(web.acting_user(session, lang), attachment_id)
    return await attachment_response(att, path)


download = web.page(_download)


# --- stats ---------------------------------------------------------------------------------


def _minutes(value: float | None) -> str:
    return "—" if value is None else (f"{value:.0f}" if value >= 10 else f"{value:.1f}")


async def _stats(request: Request, session: StaffSession, lang: str) -> HTTPResponse:
    """Today's figures and four charts drawn on the server as SVG (core.charts): requests
    per day for 30 days by status, load per person, first-response time, CSAT. Each
    chart has its numbers in a table too (screen readers, copying)."""
    figures = await svc.stats()
    admins = await staff_stats.admin_stats()
    days = await reports.requests_per_day(30)
    ratings = await reports.ratings_by_score()
    per_day_svg = to_svg(per_day_chart(days, lang), title=text("chart_per_day", lang),
                         desc=text("chart_per_day_desc", lang))
    load_svg = to_svg(
        horizontal_bars([(a["name"], a["in_progress"], str(a["in_progress"])) for a in admins],
                        color=STATUS_COLORS["in_progress"]),
        title=text("chart_load", lang), desc=text("chart_load_desc", lang))
    with_frt = [a for a in admins if a["median_first_response_minutes"] is not None]
    frt_svg = to_svg(
        horizontal_bars(
            [(a["name"], a["median_first_response_minutes"],
              text("minutes", lang, n=_minutes(a["median_first_response_minutes"])))
             for a in with_frt], color=BAR),
        title=text("chart_frt", lang), desc=text("chart_frt_desc", lang)) if with_frt else ""
    csat_svg = to_svg(
        horizontal_bars([(text("stars", lang, n=score), n, str(n))
                         for score, n in sorted(ratings.items(), reverse=True)], color=BAR_ALT,
                        label_width=80),
        title=text("chart_csat", lang), desc=text("chart_csat_desc", lang))
    context = web.base_context(
        request, lang, session, title=text("stats", lang), nav="stats",
        figures=figures, admins=admins, days=days, ratings=ratings,
        per_day_svg=per_day_svg, load_svg=load_svg, frt_svg=frt_svg, csat_svg=csat_svg,
        minutes=_minutes, status_colors=STATUS_COLORS,
    )
    return web.respond(request, lang, render("stats.html", **context))


stats_page = web.page(_stats)


# --- static files --------------------------------------------------------------------------

STATIC_FILES = {f.name: f for f in STATIC.iterdir() if f.is_file()}


async def static_file(request: Request, name: str) -> HTTPResponse:
    """`/static/console/<name>`: one of STATIC_FILES by exact name; 404 otherwise."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound(t("err_not_found"))
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if mime.startswith("text/") or mime == "application/javascript":
        mime += "; charset=utf-8"
    return await file(path, request_headers=request.headers, mime_type=mime, max_age=3600)
