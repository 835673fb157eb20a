"""`POST /api/customer/requests/{id}/rating/`: the customer rates their completed request
(core.csat): `{"rating": 1-5, "comment": "..."}` (comment optional; omitted keeps the
current one). Answers the request as its customer sees it (customer_request_data), with
`rating` and `rating_comment`."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request

from api.http import authenticate, body, check_types, guard_ids, int_from_text, json
from core import csat
from core.errors import ValidationFailed
from core.serializers import customer_request_data
from core.texts import t


def rating_of(data: dict[str, Any]) -> Any:
    """The `rating` field: an int, or its decimal text from a form; required."""
    value = data.get("rating")
    if value is None:
        raise ValidationFailed({"rating": [t("err_required_field")]})
    if isinstance(value, str):
        parsed = int_from_text(value.strip())
        return parsed if parsed is not None else value
    return value


async def rate(request: Request, request_id: int):
    actor = await authenticate(request)
    data = body(request)
    check_types(data, ("comment",))
    req = await csat.rate_request(actor, request_id, rating_of(data), data.get("comment"))
    return json(customer_request_data(req))


def get_blueprint() -> Blueprint:
    bp = Blueprint("customer_ratings", url_prefix="/api/customer/requests")
    guard_ids(bp)
    bp.add_route(rate, "/<request_id:int>/rating/", methods=["POST"])
    return bp
