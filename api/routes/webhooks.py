"""/api/admin/webhooks/: outbound webhook subscriptions, their deliveries log and
redelivery (directors; an admin gets 403). Rules in core.webhooks."""

from __future__ import annotations

from sanic import Request
from sanic.response import empty

from api.blueprint import Blueprint
from api.http import MAX_BIG_ID, MAX_DB_ID, authenticate_staff, body, json, page_number, paginated
from core import webhooks as svc
from core.errors import ValidationFailed
from core.texts import t

STATUSES = svc.DELIVERY_STATUSES


def _allow_private(request: Request) -> bool:
    return request.app.ctx.settings.webhook_allow_private


async def list_subscriptions(request: Request):
    actor = await authenticate_staff(request)
    subs = await svc.list_subscriptions(actor)
    return json([svc.subscription_data(s) for s in subs])


async def create_subscription(request: Request):
    """201 with the subscription and its `secret`: the only time the secret is shown."""
    actor = await authenticate_staff(request)
    sub = await svc.create_subscription(actor, body(request), allow_private=_allow_private(request))
    return json(svc.subscription_data(sub, secret=True), status=201)


async def read_subscription(request: Request, subscription_id: int):
    actor = await authenticate_staff(request)
    return json(svc.subscription_data(await svc.get_subscription(actor, subscription_id)))


async def update_subscription(request: Request, subscription_id: int):
    actor = await authenticate_staff(request)
    data = body(request)
    if request.method == "PUT":
        missing = {k: [t("err_required_field")] for k in ("url", "events") if k not in data}
        if missing:
            await svc.get_subscription(actor, subscription_id)  # 403/404 before 400
            raise ValidationFailed(missing)
    sub = await svc.update_subscription(actor, subscription_id, data,
                                        allow_private=_allow_private(request))
    return json(svc.subscription_data(sub))


async def delete_subscription(request: Request, subscription_id: int):
    actor = await authenticate_staff(request)
    await svc.delete_subscription(actor, subscription_id)
    return empty(status=204)


async def list_deliveries(request: Request, subscription_id: int):
    """Newest first, 20 a page; `?status=pending|sending|delivered|failed`."""
    actor = await authenticate_staff(request)
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationFailed({"status": [t("err_invalid_choice", value=status[:40])]})
    page = page_number(request)
    if page == -1:
        total, _ = await svc.list_deliveries(actor, subscription_id, 1, status)
        page = max(1, -(-total // svc.PAGE_SIZE))
    total, rows = await svc.list_deliveries(actor, subscription_id, page, status)
    return json(paginated(request, total, page, [svc.delivery_data(d) for d in rows],
                          page_size=svc.PAGE_SIZE))


async def redeliver(request: Request, subscription_id: int, delivery_id: int):
    """202 with the new delivery, queued behind what this subscription already has."""
    actor = await authenticate_staff(request)
    policy = svc.RetryPolicy.from_settings(request.app.ctx.settings)
    delivery = await svc.redeliver(actor, subscription_id, delivery_id, policy)
    runtime = getattr(request.app.ctx, "webhooks_runtime", None)
    if runtime is not None:
        runtime.sender.wake()
    return json(svc.delivery_data(delivery), status=202)


async def _ids_in_range(request: Request):
    info = request.match_info or {}
    sub = info.get("subscription_id")
    delivery = info.get("delivery_id")
    if (isinstance(sub, int) and not 0 < sub <= MAX_DB_ID) or (
        isinstance(delivery, int) and not 0 < delivery <= MAX_BIG_ID
    ):
        return json({"detail": t("err_not_found")}, status=404)
    return None


def get_blueprint() -> Blueprint:
    bp = Blueprint("webhooks", url_prefix="/api/admin/webhooks")
    bp.on_request(_ids_in_range)
    bp.add_route(list_subscriptions, "/", methods=["GET"])
    bp.add_route(create_subscription, "/", methods=["POST"])
    bp.add_route(read_subscription, "/<subscription_id:int>/", methods=["GET"])
    bp.add_route(update_subscription, "/<subscription_id:int>/", methods=["PUT", "PATCH"])
    bp.add_route(delete_subscription, "/<subscription_id:int>/", methods=["DELETE"])
    bp.add_route(list_deliveries, "/<subscription_id:int>/deliveries/", methods=["GET"])
    bp.add_route(
        redeliver, "/<subscription_id:int>/deliveries/<delivery_id:int>/redeliver/",
        methods=["POST"],
    )
    return bp
