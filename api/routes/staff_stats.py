"""`GET /api/admin/customer-requests/stats/admins/`: per-admin figures (core.staff_stats):
`in_progress`, `completed_today`, `completed_7d`, `median_first_response_minutes` (7 days),
`csat_average`, `csat_responses`; busiest first. Staff only; a fixed number of queries."""

from __future__ import annotations

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate_staff, json
from core import staff_stats


async def admin_stats(request: Request):
    await authenticate_staff(request)
    return json(await staff_stats.admin_stats())


def get_blueprint() -> Blueprint:
    bp = Blueprint("staff_stats", url_prefix="/api/admin/customer-requests")
    bp.add_route(admin_stats, "/stats/admins/", methods=["GET"])
    return bp
