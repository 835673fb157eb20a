"""HTTP helpers shared by the routes: auth, JSON bodies, query params, DRF envelopes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from sanic import Request
from sanic.response import HTTPResponse

from core.errors import NotAuthenticated, ValidationFailed
from core.users import user_for_token
from db.models import User


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and key.strip():
        return key.strip()
    return request.args.get("token") or None


async def authenticate(request: Request) -> User:
    """The caller, from `Authorization: Token <key>` (or `?token=`). 401 otherwise."""
    cached = getattr(request.ctx, "user", None)
    if cached is not None:
        return cached
    key = token_from(request)
    if not key:
        raise NotAuthenticated("Учетные данные не были предоставлены.")
    user = await user_for_token(key)
    if user is None:
        raise NotAuthenticated("Недопустимый токен.")
    request.ctx.user = user
    return user


async def authenticate_staff(request: Request) -> User:
    """The caller if an admin or a director (the seed's IsAdminUser); 401/403 otherwise."""
    from core.permissions import require_staff

    user = await authenticate(request)
    require_staff(user)
    return user


def body(request: Request) -> dict[str, Any]:
    """The JSON (or form) body as a dict; 400 for anything else."""
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = {k: v[0] if len(v) == 1 else v for k, v in request.form.items()}
        reject_null_characters(form)
        return form
    raw = request.body or b""
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed({"detail": [f"JSON parse error - {exc}"]}) from None
    if not isinstance(data, dict):
        raise ValidationFailed(
            {"non_field_errors": ["Недопустимые данные. Ожидался dictionary, но был получен "
                                  f"{type(data).__name__}."]}
        )
    reject_null_characters(data)
    return data


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def reject_null_characters(data: dict[str, Any]) -> None:
    """DRF's ProhibitNullCharactersValidator: PostgreSQL cannot store NUL in text."""
    errors = {str(k): ["Символы NULL не допускаются."] for k, v in data.items() if _has_nul(k) or _has_nul(v)}
    if errors:
        raise ValidationFailed(errors)


def str_arg(request: Request, name: str) -> str | None:
    """A query parameter as text (None when absent or empty); NUL characters are refused."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if "\x00" in raw:
        raise ValidationFailed({name: ["Символы NULL не допускаются."]})
    return raw


def check_types(data: dict[str, Any], strings: tuple[str, ...]) -> None:
    """400 naming every field of `strings` that is present, not null and not a string."""
    errors = {
        name: ["Not a valid string."]
        for name in strings
        if name in data and data[name] is not None and not isinstance(data[name], str)
    }
    if errors:
        raise ValidationFailed(errors)


def int_arg(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed({name: ["Введите правильное число."]}) from None
    if abs(value) > 2**31 - 1:  # beyond PostgreSQL's integer: no row can match
        raise ValidationFailed({name: ["Введите правильное число."]})
    return value


def page_number(request: Request) -> int:
    raw = request.args.get("page")
    if raw in (None, ""):
        return 1
    if raw == "last":
        return -1
    from core.errors import NotFound

    try:
        page = int(raw)
    except ValueError:
        raise NotFound("Неправильная страница") from None
    if page < 1:  # -1 is the "last" sentinel above; never let a client send it
        raise NotFound("Неправильная страница")
    return page


def paginated(
    request: Request, total: int, page: int, results: list[Any], page_size: int = 20
) -> dict[str, Any]:
    """DRF PageNumberPagination envelope."""

    def link(n: int | None) -> str | None:
        if n is None:
            return None
        params = {k: v[0] for k, v in request.args.items() if k != "page"}
        if n != 1:
            params["page"] = str(n)
        query = urlencode(params)
        return f"{request.scheme}://{request.host}{request.path}" + (f"?{query}" if query else "")

    last_page = max(1, -(-total // page_size))
    return {
        "count": total,
        "next": link(page + 1) if page < last_page else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": results,
    }


MAX_DB_ID = 2**31 - 1


def guard_ids(bp: Any) -> None:
    """Answer 404 for path ids no database row can have (PostgreSQL's integer is 32-bit;
    a larger value would otherwise surface as a database error)."""

    @bp.on_request
    async def _ids_in_range(request: Request):
        for value in (request.match_info or {}).values():
            if isinstance(value, int) and not 0 <= value <= MAX_DB_ID:
                return json({"detail": "Не найдено."}, status=404)
        return None
