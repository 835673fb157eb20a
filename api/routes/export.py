"""`GET /api/admin/customer-requests/export/?<the list's filters>`: the requests as CSV
(core.export), streamed batch by batch: UTF-8, a header row, one request a row, newest
first. `?bom=1` starts the file with a byte-order mark (for Excel). Staff only."""

from __future__ import annotations

from datetime import UTC, datetime

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate_staff
from api.routes.requests import filters_from
from core import export


async def export_requests(request: Request):
    actor = await authenticate_staff(request)
    filters = filters_from(request)
    export.check(actor, filters)  # a bad filter is a 400 before the stream starts
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    response = await request.respond(
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="requests-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )
    if request.args.get("bom") in ("1", "true"):
        await response.send("\ufeff".encode())
    async for chunk in export.csv_chunks(actor, filters):
        await response.send(chunk)
    await response.eof()


def get_blueprint() -> Blueprint:
    bp = Blueprint("request_export", url_prefix="/api/admin/customer-requests")
    bp.add_route(export_requests, "/export/", methods=["GET"])
    return bp
