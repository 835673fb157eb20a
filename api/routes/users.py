"""/api/admin/users/ and /api/admin/customers/: directors manage access.

- `PATCH /api/admin/users/{id}/` `{"is_active": bool, "role": "..."}`: deactivate,
  reactivate or change a role; the user's open WebSockets follow within a second.
- `POST /api/admin/customers/{id}/ban/` and `.../unban/`: block a customer from writing
  (core.bans); nothing stored changes.
"""

from __future__ import annotations

from typing import Any

from sanic import Request

from api.blueprint import Blueprint
from api.http import authenticate_staff, guard_ids, json
from api.schemas.base import validated
from api.schemas.users import AccessChange
from core import bans, users
from core.serializers import dt, user_data
from db.models import User


def access_data(user: User) -> dict[str, Any]:
    return {
        **(user_data(user) or {}),
        "role": str(user.role),
        "is_active": user.is_active,
        "banned": user.banned_at is not None,
        "banned_at": dt(user.banned_at),
    }


async def update_user(request: Request, user_id: int):
    actor = await authenticate_staff(request)
    data = validated(request, AccessChange)
    user = await users.change_access(actor, user_id, is_active=data.is_active, role=data.role)
    return json(access_data(user))


async def ban(request: Request, customer_id: int):
    actor = await authenticate_staff(request)
    return json(access_data(await bans.ban_customer(actor, customer_id)))


async def unban(request: Request, customer_id: int):
    actor = await authenticate_staff(request)
    return json(access_data(await bans.unban_customer(actor, customer_id)))


def get_blueprint() -> Blueprint:
    bp = Blueprint("admin_users", url_prefix="/api/admin")
    guard_ids(bp)
    bp.add_route(update_user, "/users/<user_id:int>/", methods=["PATCH"])
    bp.add_route(ban, "/customers/<customer_id:int>/ban/", methods=["POST"])
    bp.add_route(unban, "/customers/<customer_id:int>/unban/", methods=["POST"])
    return bp
