"""/api/auth/token/: POST issues a token (DRF obtain_auth_token), DELETE revokes the one used."""

from __future__ import annotations

from sanic import Request
from sanic.response import empty

from api.blueprint import Blueprint
from api.client_address import client_address
from api.http import authenticate, json
from api.schemas.base import validated
from api.schemas.users import TokenRequest
from core import users


async def obtain_token(request: Request):
    """A new token per successful login (one per device); throttled per username and per
    client address (core.login_throttle)."""
    data = validated(request, TokenRequest)
    token = await users.login(data.username, data.password, address=client_address(request))
    return json({"token": token})


async def revoke_token(request: Request):
    """Revoke the token this request was made with: 204, and 401 with it from then on
    (open WebSockets using it close with 4401)."""
    user = await authenticate(request)
    await users.revoke_token(user, request.ctx.token_id)
    return empty(status=204)


def get_blueprint() -> Blueprint:
    bp = Blueprint("auth", url_prefix="/api/auth")
    bp.add_route(obtain_token, "/token/", methods=["POST"])
    bp.add_route(revoke_token, "/token/", methods=["DELETE"])
    return bp
