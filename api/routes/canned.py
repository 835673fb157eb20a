"""`/api/admin/canned-responses/`: saved replies (core.canned). Staff only.

GET list (`?language=`, `?search=` in shortcut and title, `?is_shared=true|false`;
DRF-paginated), POST create, GET/PUT/PATCH/DELETE one. Shared responses are visible to
all staff, personal ones to their author; only the author (or a director, for a shared
one) changes or deletes one (403), someone else's personal one is 404.
"""

from __future__ import annotations

from sanic import Request
from sanic.response import empty

from api.blueprint import Blueprint
from api.http import authenticate_staff, body, guard_ids, json, page_number, paginated, str_arg
from core import canned
from core.errors import ValidationFailed
from core.texts import t


def filters_from(request: Request) -> canned.CannedFilters:
    shared = str_arg(request, "is_shared")
    if shared is not None and shared.lower() not in ("true", "false", "1", "0"):
        raise ValidationFailed({"is_shared": [t("err_not_bool")]})
    return canned.CannedFilters(
        language=str_arg(request, "language"),
        search=str_arg(request, "search"),
        is_shared=None if shared is None else shared.lower() in ("true", "1"),
    )


async def list_canned(request: Request):
    actor = await authenticate_staff(request)
    filters = filters_from(request)
    page = page_number(request)
    if page == -1:
        total, _ = await canned.list_canned(actor, filters, 1)
        page = max(1, -(-total // canned.PAGE_SIZE))
    total, rows = await canned.list_canned(actor, filters, page)
    return json(paginated(request, total, page, [canned.canned_data(r, actor) for r in rows]))


async def create_canned(request: Request):
    actor = await authenticate_staff(request)
    item = await canned.create_canned(actor, body(request))
    return json(canned.canned_data(item, actor), status=201)


async def retrieve_canned(request: Request, canned_id: int):
    actor = await authenticate_staff(request)
    return json(canned.canned_data(await canned.get_canned(actor, canned_id), actor))


async def update_canned(request: Request, canned_id: int):
    actor = await authenticate_staff(request)
    item = await canned.update_canned(
        actor, canned_id, body(request), partial=request.method == "PATCH"
    )
    return json(canned.canned_data(item, actor))


async def delete_canned(request: Request, canned_id: int):
    actor = await authenticate_staff(request)
    await canned.delete_canned(actor, canned_id)
    return empty(status=204)


def get_blueprint() -> Blueprint:
    bp = Blueprint("canned_responses", url_prefix="/api/admin/canned-responses")
    guard_ids(bp)
    bp.add_route(list_canned, "/", methods=["GET"])
    bp.add_route(create_canned, "/", methods=["POST"])
    bp.add_route(retrieve_canned, "/<canned_id:int>/", methods=["GET"])
    bp.add_route(update_canned, "/<canned_id:int>/", methods=["PUT", "PATCH"])
    bp.add_route(delete_canned, "/<canned_id:int>/", methods=["DELETE"])
    return bp
