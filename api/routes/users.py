"""/api/admin/users/ and /api/admin/customers/: directors manage access.

- `PATCH /api/admin/users/{id}/` `{"is_active": bool, "role": "..."}`: deactivate,
  reactivate or change a role; the user's open WebSockets follow within a second.
- `POST /api/admin/customers/{id}/ban/` and `.../unban/`: block a customer from writing
  (core.bans); nothing stored changes.
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request

from api.http import authenticate_staff, body, guard_ids, json
from core import bans, users
from core.errors import ValidationFailed
from core.serializers import dt, user_data
from core.texts import t
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
    data = body(request)
    errors: dict[str, list[str]] = {}
    if "is_active" in data and not isinstance(data["is_active"], bool):
        errors["is_active"] = [t("err_not_bool")]
    if "role" in data and not isinstance(data["role"], str):
        errors["role"] = ["Not a valid string."]
    if errors:
        raise ValidationFailed(errors)
    user = await users.change_access(
        actor, user_id, is_active=data.get("is_active"), role=data.get("role")
    )
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
