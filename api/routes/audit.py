"""`GET /api/admin/audit-log/`: logins, tokens, account links, bans, deletions and other
settings-level actions, newest first, DRF-paginated (core.audit). Directors only.

Filters: `actor` (user id), `action` (one of core.audit.ACTIONS), `since` and `until`
(ISO 8601; since inclusive, until exclusive)."""

from __future__ import annotations

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate_staff, int_arg, json, page_number, paginated, str_arg
from api.routes.requests import parse_datetime
from core import audit


def filters_from(request: Request) -> audit.AuditFilters:
    return audit.AuditFilters(
        actor=int_arg(request, "actor"),
        action=str_arg(request, "action"),
        since=parse_datetime("since", str_arg(request, "since")),
        until=parse_datetime("until", str_arg(request, "until")),
    )


async def audit_log(request: Request):
    actor = await authenticate_staff(request)
    filters = filters_from(request)
    page = page_number(request)
    if page == -1:
        total, _ = await audit.list_entries(actor, filters, 1)
        page = max(1, -(-total // audit.PAGE_SIZE))
    total, rows = await audit.list_entries(actor, filters, page)
    return json(paginated(request, total, page, [audit.entry_data(r) for r in rows]))


def get_blueprint() -> Blueprint:
    bp = Blueprint("audit_log", url_prefix="/api/admin/audit-log")
    bp.add_route(audit_log, "/", methods=["GET"])
    return bp
