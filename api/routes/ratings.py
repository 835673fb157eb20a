"""`POST /api/customer/requests/{id}/rating/`: the customer rates their completed request
(core.csat): `{"rating": 1-5, "comment": "..."}` (comment optional; omitted keeps the
current one). Answers the request as its customer sees it (customer_request_data), with
`rating` and `rating_comment`."""

from __future__ import annotations

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate, guard_ids, json
from api.schemas.base import validated
from api.schemas.customer import Rating
from core import csat
from core.serializers import customer_request_data


async def rate(request: Request, request_id: int):
    actor = await authenticate(request)
    data = validated(request, Rating)
    req = await csat.rate_request(actor, request_id, data.rating, data.comment)
    return json(customer_request_data(req))


def get_blueprint() -> Blueprint:
    bp = Blueprint("customer_ratings", url_prefix="/api/customer/requests")
    guard_ids(bp)
    bp.add_route(rate, "/<request_id:int>/rating/", methods=["POST"])
    return bp
