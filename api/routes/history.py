"""`GET /api/admin/customer-requests/{id}/history/`: every change to a request, oldest
first, DRF-paginated (core.history). Staff only."""

from __future__ import annotations

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate_staff, guard_ids, json, page_number, paginated
from core import history


async def request_history(request: Request, request_id: int):
    actor = await authenticate_staff(request)
    page = page_number(request)
    if page == -1:
        total, _ = await history.list_history(actor, request_id, 1)
        page = max(1, -(-total // history.PAGE_SIZE))
    total, rows = await history.list_history(actor, request_id, page)
    return json(paginated(request, total, page, [history.entry_data(r) for r in rows]))


def get_blueprint() -> Blueprint:
    bp = Blueprint("request_history", url_prefix="/api/admin/customer-requests")
    guard_ids(bp)
    bp.add_route(request_history, "/<request_id:int>/history/", methods=["GET"])
    return bp
