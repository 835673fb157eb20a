"""Bodies of /api/auth/ and /api/admin/users/, /api/admin/customers/ (api.routes.auth,
api.routes.users)."""

from __future__ import annotations

from datetime import datetime

from pydantic import StrictBool, StrictStr

from api.schemas.base import Body, Out
from db.models import Role


class TokenRequest(Body):
    model_config = {"json_schema_extra": {"example": {"username": "admin", "password": "secret"}}}

    username: StrictStr
    password: StrictStr


class Token(Out):
    token: str


class AccessChange(Body):
    model_config = {"json_schema_extra": {"example": {"is_active": False}}}

    is_active: StrictBool = None
    role: Role = None


class UserAccess(Out):
    id: int
    username: str
    first_name: str
    last_name: str
    email: str
    avatar: str | None
    role: Role
    is_active: bool
    banned: bool
    banned_at: datetime | None
