"""/api/admin/internal-communications/: the seed's InternalCommunication (staff only).

Directors see every communication; an admin sees those they sent or take part in.
"""

from __future__ import annotations

from sanic import Blueprint, Request

from api.http import (
    authenticate_staff,
    body,
    check_id_ranges,
    check_types,
    guard_ids,
    json,
    page_number,
    paginated,
    str_arg,
)
from core import communications as svc

STRINGS = ("from_department", "to_department", "subject", "content", "priority", "status")
ID_FIELDS = ("request",)
ID_LISTS = ("participants",)


def get_blueprint() -> Blueprint:
    bp = Blueprint("communications", url_prefix="/api/admin/internal-communications")
    guard_ids(bp)

    @bp.get("/")
    async def list_communications(request: Request):
        actor = await authenticate_staff(request)
        page = page_number(request)
        status = str_arg(request, "status")
        if page == -1:
            total, _ = await svc.list_communications(actor, status=status, page=1)
            page = max(1, -(-total // svc.PAGE_SIZE))
        total, rows = await svc.list_communications(actor, status=status, page=page)
        return json(paginated(request, total, page, rows, page_size=svc.PAGE_SIZE))

    @bp.post("/")
    async def create(request: Request):
        actor = await authenticate_staff(request)
        data = body(request)
        check_types(data, STRINGS)
        check_id_ranges(data, ID_FIELDS, ID_LISTS)
        return json(await svc.create_communication(actor, data), status=201)

    @bp.get("/<comm_id:int>/")
    async def retrieve(request: Request, comm_id: int):
        actor = await authenticate_staff(request)
        return json(await svc.get_communication(actor, comm_id))

    @bp.route("/<comm_id:int>/", methods=["PUT", "PATCH"])
    async def update(request: Request, comm_id: int):
        actor = await authenticate_staff(request)
        data = body(request)
        check_types(data, STRINGS)
        check_id_ranges(data, ID_FIELDS, ID_LISTS)
        return json(
            await svc.update_communication(actor, comm_id, data, partial=request.method == "PATCH")
        )

    return bp
