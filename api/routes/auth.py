"""POST /api/auth/token/ (DRF obtain_auth_token)."""

from __future__ import annotations

from sanic import Blueprint, Request

from api.http import body, json
from core import users


def get_blueprint() -> Blueprint:
    bp = Blueprint("auth", url_prefix="/api/auth")

    @bp.post("/token/")
    async def obtain_token(request: Request):
        data = body(request)
        token = await users.login(data.get("username"), data.get("password"))
        return json({"token": token})

    return bp
