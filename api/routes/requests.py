"""/api/admin/customer-requests/: the seed's CustomerRequestViewSet (staff only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sanic import Blueprint, Request
from sanic.response import empty

from api.http import (
    PK_WRONG_TYPE,
    authenticate_staff,
    body,
    check_id_ranges,
    check_types,
    guard_ids,
    int_arg,
    json,
    page_number,
    paginated,
    request_language,
    str_arg,
)
from core import requests as svc
from core.errors import DomainError, ValidationFailed
from core.serializers import message_data, request_data
from core.texts import t
from db.models import Source


def parse_datetime(name: str, value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            # Stored and compared in UTC: 0001-01-01T00:00+01:00 has no UTC value.
            return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise ValidationFailed(
        {name: [t("err_datetime")]}
    )


def parse_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValidationFailed({"tags": [t("err_tags_type")]})
    return value


def request_changes(data: dict[str, Any], partial: bool) -> dict[str, Any]:
    """Validate a create/update body into service arguments (DRF error shapes)."""
    check_types(data, ("title", "description", "priority", "category", "status"))
    errors: dict[str, list[str]] = {
        name: [t("err_not_null")]
        for name in ("title", "description", "priority", "category", "status", "tags")
        if name in data and data[name] is None
    }
    if not partial:
        for name in ("title", "description"):
            if name not in data:
                errors[name] = [t("err_required_field")]
    if errors:
        raise ValidationFailed(errors)
    out: dict[str, Any] = {
        k: data[k] for k in ("title", "description", "priority", "category", "status") if k in data
    }
    if "tags" in data:
        out["tags"] = parse_tags(data["tags"])
    if "estimated_resolution_time" in data:
        out["estimated_resolution_time"] = parse_datetime(
            "estimated_resolution_time", data["estimated_resolution_time"]
        )
    return out


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
        total, _ = await svc.list_requests(actor, filters, 1)
        page = max(1, -(-total // svc.PAGE_SIZE))
    total, rows = await svc.list_requests(actor, filters, page)
    return paginated(request, total, page, [request_data(r) for r in rows])


def get_blueprint() -> Blueprint:
    bp = Blueprint("customer_requests", url_prefix="/api/admin/customer-requests")
    guard_ids(bp)

    @bp.get("/")
    async def list_requests(request: Request):
        return json(await list_page(request, await authenticate_staff(request)))

    @bp.post("/")
    async def create_request(request: Request):
        actor = await authenticate_staff(request)
        data = body(request)
        fields = request_changes(data, partial=False)
        fields.pop("status", None)
        customer_id = data.get("customer_id")
        if customer_id is not None and (not isinstance(customer_id, int) or isinstance(customer_id, bool)):
            raise ValidationFailed({"customer_id": [PK_WRONG_TYPE]})
        check_id_ranges(data, ("customer_id",))
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
        await authenticate_staff(request)
        return json(await svc.stats())

    @bp.get("/<request_id:int>/")
    async def retrieve(request: Request, request_id: int):
        actor = await authenticate_staff(request)
        return json(request_data(await svc.get_request(actor, request_id)))

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
        data = body(request)
        admin_id = data.get("admin_id")
        if not isinstance(admin_id, int) or isinstance(admin_id, bool):
            raise ValidationFailed({"admin_id": [t("err_required_admin")]})
        check_id_ranges(data, ("admin_id",))
        return await action(
            request, request_id, lambda actor, rid: svc.reassign_request(actor, rid, admin_id)
        )

    @bp.get("/<request_id:int>/messages/")
    async def messages(request: Request, request_id: int):
        actor = await authenticate_staff(request)
        rows = await svc.list_messages(actor, request_id)
        return json([message_data(m, lang=request_language(request)) for m in rows])

    @bp.post("/<request_id:int>/messages/")
    async def post_message(request: Request, request_id: int):
        actor = await authenticate_staff(request)
        data = body(request)
        check_types(data, ("content", "message_type"))
        is_internal = data.get("is_internal", False)
        if isinstance(is_internal, str):
            low = is_internal.strip().lower()
            if low in ("true", "1", "on", "yes"):
                is_internal = True
            elif low in ("false", "0", "off", "no", ""):
                is_internal = False
        if not isinstance(is_internal, bool):
            raise ValidationFailed({"is_internal": [t("err_not_bool")]})
        if "content" not in data:
            raise ValidationFailed({"content": [t("err_required_field")]})
        msg = await svc.post_message(
            actor,
            request_id,
            data["content"],
            is_internal=is_internal,
            message_type=data.get("message_type", "text"),
        )
        return json(message_data(msg), status=201)

    return bp
