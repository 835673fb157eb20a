"""/api/admin/customer-requests/: the seed's CustomerRequestViewSet (staff only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic_core import PydanticCustomError
from sanic import Request
from sanic.response import empty

from api.blueprint import Blueprint
from api.http import (
    authenticate_staff,
    authenticate_staff_with,
    body,
    guard_ids,
    int_arg,
    json,
    page_number,
    paginated,
    request_language,
    str_arg,
)
from api.schemas import requests as schemas
from api.schemas.base import check, check_datetime, given, validated
from core import pg_json, queries
from core import requests as svc
from core.errors import DomainError, ValidationFailed
from core.serializers import message_data, request_data
from db.models import Source


def parse_datetime(name: str, value: Any) -> datetime | None:
    """A datetime query parameter (api.schemas.base.DateTimeIn's rules); 400 otherwise."""
    try:
        return check_datetime(value)
    except PydanticCustomError as exc:
        raise ValidationFailed({name: [exc.message()]}) from None


def request_changes(data: dict[str, Any], partial: bool) -> dict[str, Any]:
    """A create (POST), replace (PUT) or update (PATCH) body as service arguments: the
    fields sent, checked by the body model the OpenAPI document shows."""
    model = schemas.CustomerRequestUpdate if partial else schemas.CustomerRequestReplace
    return given(check(model, data))


def filters_from(request: Request) -> svc.RequestFilters:
    return svc.RequestFilters(
        status=str_arg(request, "status"),
        priority=str_arg(request, "priority"),
        category=str_arg(request, "category"),
        search=str_arg(request, "search"),
        assigned_admin_id=int_arg(request, "assigned_admin"),
        customer_id=int_arg(request, "customer"),
        unassigned=request.args.get("unassigned") in ("1", "true"),
        unassigned_first=request.args.get("unassigned_first") in ("1", "true"),
    )


async def list_page(request: Request, actor) -> dict[str, Any]:
    page = page_number(request)
    filters = filters_from(request)
    if page == -1:
        total, _ = await queries.list_requests_json(actor, filters, 1)
        page = max(1, -(-total // svc.PAGE_SIZE))
    total, results = await queries.list_requests_json(actor, filters, page)
    return paginated(request, total, page, results)


def get_blueprint() -> Blueprint:
    bp = Blueprint("customer_requests", url_prefix="/api/admin/customer-requests")
    guard_ids(bp)

    @bp.get("/")
    async def list_requests(request: Request):
        if queries.riders():
            # A page without search rides on the token's statement. Bad parameters take
            # the path below, so a caller without a token still gets 401 before any 400.
            try:
                page = page_number(request)
                filters = filters_from(request)
                rider = queries.list_rider(filters, page)
            except DomainError:
                rider = None
            if rider is not None:
                actor, rows = await authenticate_staff_with(request, rider, [])
                total, results = await queries.list_from_rider(actor, filters, page, rows)
                return json(paginated(request, total, page, results))
        return json(await list_page(request, await authenticate_staff(request)))

    @bp.post("/")
    async def create_request(request: Request):
        actor = await authenticate_staff(request)
        fields = given(validated(request, schemas.CustomerRequestCreate))
        customer_id = fields.pop("customer_id", None)
        req = await svc.create_request(
            actor,
            title=fields.pop("title"),
            description=fields.pop("description"),
            customer_id=customer_id,
            source=Source.api,
            **fields,
        )
        return json(request_data(req), status=201)

    @bp.get("/stats/")
    async def stats(request: Request):
        if queries.riders():  # read in the token's own statement
            _, row = await authenticate_staff_with(request, *queries.stats_rider())
            return json(queries.stats_from_rider(row))
        await authenticate_staff(request)
        return json(await svc.stats())

    @bp.get("/<request_id:int>/")
    async def retrieve(request: Request, request_id: int):
        if queries.riders():
            actor, row = await authenticate_staff_with(request, pg_json.DETAIL_RIDER, [request_id])
            return json(queries.detail_from_rider(actor, row))
        actor = await authenticate_staff(request)
        return json(await queries.request_json(actor, request_id))

    @bp.route("/<request_id:int>/", methods=["PUT", "PATCH"])
    async def update(request: Request, request_id: int):
        actor = await authenticate_staff(request)
        changes = request_changes(body(request), partial=request.method == "PATCH")
        return json(request_data(await svc.update_request(actor, request_id, changes)))

    @bp.delete("/<request_id:int>/")
    async def destroy(request: Request, request_id: int):
        actor = await authenticate_staff(request)
        await svc.delete_request(actor, request_id)
        return empty(status=204)

    async def action(request: Request, request_id: int, fn):
        actor = await authenticate_staff(request)
        await svc.get_request(actor, request_id)  # 404 before anything else
        try:
            req = await fn(actor, request_id)
        except DomainError as exc:
            if exc.code in ("conflict", "permission_denied"):
                return json({"error": exc.message}, status=400 if exc.code == "conflict" else 403)
            raise
        return json(request_data(req))

    @bp.post("/<request_id:int>/take/")
    async def take(request: Request, request_id: int):
        return await action(request, request_id, svc.take_request)

    @bp.post("/<request_id:int>/complete/")
    async def complete(request: Request, request_id: int):
        return await action(request, request_id, svc.complete_request)

    @bp.post("/<request_id:int>/close/")
    async def close(request: Request, request_id: int):
        return await action(request, request_id, svc.close_request)

    @bp.post("/<request_id:int>/reopen/")
    async def reopen(request: Request, request_id: int):
        return await action(request, request_id, svc.reopen_request)

    @bp.post("/<request_id:int>/reassign/")
    async def reassign(request: Request, request_id: int):
        admin_id = validated(request, schemas.Reassign).admin_id
        return await action(
            request, request_id, lambda actor, rid: svc.reassign_request(actor, rid, admin_id)
        )

    @bp.get("/<request_id:int>/messages/")
    async def messages(request: Request, request_id: int):
        if queries.riders():
            actor, rows = await authenticate_staff_with(request, pg_json.THREAD_RIDER, [request_id])
            return json(queries.thread_from_rider(actor, rows, request_language(request)))
        actor = await authenticate_staff(request)
        return json(await queries.thread_json(actor, request_id, request_language(request)))

    @bp.post("/<request_id:int>/messages/")
    async def post_message(request: Request, request_id: int):
        riders = queries.riders()
        if riders:  # the columns the access rules read, in the token's statement
            actor, row = await authenticate_staff_with(request, pg_json.ACCESS_RIDER, [request_id])
        else:
            actor = await authenticate_staff(request)
        data = validated(request, schemas.RequestMessageCreate)  # a 400 before a 404
        loaded = queries.access_from_rider(actor, row) if riders else None
        msg = await svc.post_message(
            actor,
            request_id,
            data.content,
            is_internal=data.is_internal,
            message_type=data.message_type,
            loaded=loaded,
        )
        return json(message_data(msg), status=201)

    return bp
