"""/api/customer/requests/: the customer side (web form, bot-less integrations).

Every route is scoped to the caller's OWN requests: another customer's id answers 404 and
never data. Staff may use it too (create a request as themselves, read their own).
Customers never see internal notes or files attached to them, and see requests and
messages through the customer-facing serializer (core.serializers.customer_request_data /
customer_message_data): staff by display name only, counts of what they can see.
"""

from __future__ import annotations

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate, guard_ids, json, page_number, paginated, request_language
from api.routes.attachments import list_response, upload_response
from api.routes.requests import filters_from
from api.schemas import customer as schemas
from api.schemas.base import given, validated
from core import requests as svc
from core.errors import NotFound
from core.serializers import customer_message_data, customer_request_data
from core.texts import t
from db.models import CustomerRequest, Source, User


async def own_request(actor: User, request_id: int) -> CustomerRequest:
    """The caller's own request, else NotFound (whoever the caller is)."""
    req = await svc.get_request(actor, request_id)
    if req.customer_id != actor.id:
        raise NotFound(t("err_not_found", actor.language))
    return req


def get_blueprint() -> Blueprint:
    bp = Blueprint("customer", url_prefix="/api/customer/requests")
    guard_ids(bp)

    @bp.get("/")
    async def list_own(request: Request):
        actor = await authenticate(request)
        filters = filters_from(request)
        filters.customer_id = actor.id
        filters.assigned_admin_id = None
        filters.unassigned = False
        page = page_number(request)
        if page == -1:
            total, _ = await svc.list_requests(actor, filters, 1)
            page = max(1, -(-total // svc.PAGE_SIZE))
        total, rows = await svc.list_requests(actor, filters, page)
        return json(paginated(request, total, page, [customer_request_data(r) for r in rows]))

    @bp.post("/")
    async def create(request: Request):
        actor = await authenticate(request)
        extra = given(validated(request, schemas.CustomerRequestCreateOwn))
        req = await svc.create_request(
            actor,
            title=extra.pop("title"),
            description=extra.pop("description"),
            source=Source.api,
            **extra,
        )
        return json(customer_request_data(req), status=201)

    @bp.get("/<request_id:int>/")
    async def retrieve(request: Request, request_id: int):
        actor = await authenticate(request)
        return json(customer_request_data(await own_request(actor, request_id)))

    @bp.get("/<request_id:int>/messages/")
    async def messages(request: Request, request_id: int):
        actor = await authenticate(request)
        await own_request(actor, request_id)
        rows = await svc.list_messages(actor, request_id)
        return json([customer_message_data(m, lang=request_language(request)) for m in rows if not m.is_internal])

    @bp.post("/<request_id:int>/messages/")
    async def post_message(request: Request, request_id: int):
        actor = await authenticate(request)
        await own_request(actor, request_id)
        data = validated(request, schemas.CustomerMessageCreate)
        msg = await svc.post_message(
            actor, request_id, data.content, message_type=data.message_type
        )
        return json(customer_message_data(msg), status=201)

    @bp.get("/<request_id:int>/attachments/")
    async def attachments(request: Request, request_id: int):
        actor = await authenticate(request)
        await own_request(actor, request_id)
        return await list_response(request, actor, request_id)

    @bp.post("/<request_id:int>/attachments/", stream=True)
    async def upload(request: Request, request_id: int):
        actor = await authenticate(request)
        await own_request(actor, request_id)
        return await upload_response(request, actor, request_id, allow_internal=False)

    return bp
