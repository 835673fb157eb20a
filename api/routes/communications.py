"""/api/admin/internal-communications/: the seed's InternalCommunication (staff only).

Directors see every communication; an admin sees those they sent or take part in.
"""

from __future__ import annotations

from sanic import Request

from api.blueprint import Blueprint
from api.http import (
    authenticate_staff,
    guard_ids,
    json,
    page_number,
    paginated,
    str_arg,
)
from api.schemas import communications as schemas
from api.schemas.base import given, validated
from core import communications as svc


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
        data = given(validated(request, schemas.InternalCommunicationWrite))
        return json(await svc.create_communication(actor, data), status=201)

    @bp.get("/<comm_id:int>/")
    async def retrieve(request: Request, comm_id: int):
        actor = await authenticate_staff(request)
        return json(await svc.get_communication(actor, comm_id))

    @bp.route("/<comm_id:int>/", methods=["PUT", "PATCH"])
    async def update(request: Request, comm_id: int):
        actor = await authenticate_staff(request)
        partial = request.method == "PATCH"
        model = schemas.InternalCommunicationUpdate if partial else schemas.InternalCommunicationWrite
        data = given(validated(request, model))
        return json(
            await svc.update_communication(actor, comm_id, data, partial=partial)
        )

    return bp
