"""HTTP helpers shared by the routes: auth, JSON bodies, query params, DRF envelopes."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import orjson
from sanic import Request
from sanic.response import HTTPResponse

from api.multipart import load_form
from core import i18n
from core.errors import NotAuthenticated, NotFound, ValidationFailed
from core.texts import t
from core.users import token_owner, token_owner_with
from db.models import User

# Every table's id is a 32-bit integer (db.models IntField); the event log's is 64-bit.
# A value outside these ranges can name no row, and handing it to the database fails there
# (SQLite: "Python int too large", PostgreSQL: "out of int32/int64 range"), so the helpers
# below answer 400/404 for it instead.
MAX_DB_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1
# More pages than rows any table can hold; OFFSET stays inside PostgreSQL's bigint.
MAX_PAGE = MAX_DB_ID

NOT_A_NUMBER = t("err_number")
PK_WRONG_TYPE = t("err_pk_type")
BAD_PAGE = t("err_bad_page")
INVALID_INPUT = t("err_invalid_input")
NUL_NOT_ALLOWED = t("err_nul")
# ASCII digits only: int() would also take "1_000", " 7 " and other scripts' digits, and
# raises for texts over 4,300 digits; 30 digits are more than any id needs.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,30}")


def int_from_text(raw: str) -> int | None:
    """A decimal integer written in ASCII digits (at most 30), else None."""
    return int(raw) if _INT_TEXT.fullmatch(raw) else None


def pk_does_not_exist(value: Any) -> str:
    return t("err_pk_missing", value=value)


def is_row_id(value: Any) -> bool:
    """True for an int that a row's id can be (1 .. MAX_DB_ID)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DB_ID


def check_id_ranges(
    data: dict[str, Any], names: tuple[str, ...] = (), lists: tuple[str, ...] = ()
) -> None:
    """400 naming every field of `names` holding an int no row can have, and every field of
    `lists` holding a list with such an int (DRF's "does not exist" message). Missing
    fields and wrong types are left to the field's own validation."""
    errors: dict[str, list[str]] = {}
    for name in names:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and not is_row_id(value):
            errors[name] = [pk_does_not_exist(value)]
    for name in lists:
        values = data.get(name)
        if isinstance(values, list):
            bad = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and not is_row_id(v)]
            if bad:
                errors[name] = [pk_does_not_exist(bad[0])]
    if errors:
        raise ValidationFailed(errors)


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    """A JSON response. An error's texts (core.i18n.Text: every domain error and validation
    message) are rendered in the caller's language (request_language)."""
    if status >= 400:
        body = i18n.render(body, request_language(_current_request()))
    return HTTPResponse(
        orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def _current_request() -> Request | None:
    try:
        return Request.get_current()
    except Exception:  # outside a request (a test calling a helper directly)
        return None


def request_language(request: Request | None) -> str:
    """The language of a REST answer: the signed-in caller's setting (User.language), else
    the `Accept-Language` header, else Russian."""
    if request is None:
        return i18n.DEFAULT_LANGUAGE
    user = getattr(request.ctx, "user", None)
    if user is not None and getattr(user, "language", None) in i18n.LANGUAGES:
        return user.language
    return i18n.parse_accept_language(request.headers.get("accept-language")) or (
        i18n.DEFAULT_LANGUAGE
    )


def token_from(request: Request, *, allow_query: bool = False) -> str | None:
    """The token of `Authorization: Token <key>` (or `Bearer <key>`). `?token=` only when
    `allow_query` (WebSocket routes: a browser cannot set headers on a WebSocket); on REST a
    token in the URL would end up in access logs and browser history."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and key.strip():
        return key.strip()
    if allow_query:
        return request.args.get("token") or None
    return None


TOKEN_IN_QUERY = t("err_token_in_query")


async def authenticate(request: Request) -> User:
    """The caller, from `Authorization: Token <key>`. 401 otherwise (also for a token sent
    as `?token=`: REST takes it only in the header). The token's id is kept in
    `request.ctx.token_id` (DELETE /api/auth/token/ revokes it)."""
    cached = getattr(request.ctx, "user", None)
    if cached is not None:
        return cached
    key = token_from(request)
    if not key:
        if request.args.get("token"):
            raise NotAuthenticated(TOKEN_IN_QUERY)
        raise NotAuthenticated(t("err_no_credentials"))
    owner = await token_owner(key)
    if owner is None:
        raise NotAuthenticated(t("err_bad_token"))
    request.ctx.user = owner.user
    request.ctx.token_id = owner.token_id
    return owner.user


async def authenticate_staff(request: Request) -> User:
    """The caller if an admin or a director (the seed's IsAdminUser); 401/403 otherwise."""
    from core.permissions import require_staff

    user = await authenticate(request)
    require_staff(user)
    return user


async def authenticate_staff_with(
    request: Request, column_sql: str, values: list[Any]
) -> tuple[User, Any]:
    """authenticate_staff, and the value of the scalar subquery `column_sql` (parameters
    $2...) read in the token's own statement (PostgreSQL: core.tokens.token_owner_with).
    The same answers as authenticate_staff for a missing, bad or non-staff token."""
    from core.permissions import require_staff

    key = token_from(request)
    if not key:
        await authenticate(request)  # raises the same 401 as authenticate_staff
    owner, value = await token_owner_with(key, column_sql, values)
    if owner is None:
        raise NotAuthenticated(t("err_bad_token"))
    request.ctx.user = owner.user
    request.ctx.token_id = owner.token_id
    require_staff(owner.user)
    return owner.user, value


def body(request: Request) -> dict[str, Any]:
    """The JSON (or form) body as a dict; 400 for anything else."""
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        load_form(request)
        form = {k: v[0] if len(v) == 1 else v for k, v in request.form.items()}
        reject_null_characters(form)
        return form
    raw = request.body or b""
    if not raw.strip():
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise ValidationFailed(
            {"non_field_errors": [t("err_not_dict", type=type(data).__name__)]}
        )
    reject_null_characters(data)
    return data


def parse_json(raw: bytes) -> Any:
    """A JSON document (orjson: strict UTF-8, no lone surrogates, nesting bounded); 400
    `{"detail": ["JSON parse error - ..."]}` otherwise."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed({"detail": [f"JSON parse error - {exc}"]}) from None


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
    errors = {str(k): [NUL_NOT_ALLOWED] for k, v in data.items() if _has_nul(k) or _has_nul(v)}
    if errors:
        raise ValidationFailed(errors)


def str_arg(request: Request, name: str) -> str | None:
    """A query parameter as text (None when absent or empty); NUL characters are refused."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if "\x00" in raw:
        raise ValidationFailed({name: [NUL_NOT_ALLOWED]})
    return raw


def int_arg(
    request: Request, name: str, default: int | None = None, *, maximum: int = MAX_DB_ID
) -> int | None:
    """A query parameter as an int in [-maximum, maximum]; 400 `{name: [...]}` otherwise
    (beyond the column's range no row can match, and the database would refuse it)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    value = int_from_text(raw)
    if value is None or abs(value) > maximum:
        raise ValidationFailed({name: [NOT_A_NUMBER]})
    return value


def page_number(request: Request) -> int:
    """`?page=` as 1.., or -1 for `last`; 404 t("err_bad_page") for anything else."""
    raw = request.args.get("page")
    if raw in (None, ""):
        return 1
    if raw == "last":
        return -1
    page = int_from_text(raw)
    # -1 is the "last" sentinel above; never let a client send it
    if page is None or not 1 <= page <= MAX_PAGE:
        raise NotFound(BAD_PAGE)
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


def guard_ids(bp: Any) -> None:
    """Answer 404 for path ids no database row can have (PostgreSQL's integer is 32-bit;
    a larger value would otherwise surface as a database error)."""

    @bp.on_request
    async def _ids_in_range(request: Request):
        for value in (request.match_info or {}).values():
            if isinstance(value, int) and not 0 <= value <= MAX_DB_ID:
                return json({"detail": t("err_not_found")}, status=404)
        return None


def _value_errors() -> tuple[type[BaseException], ...]:
    import asyncpg.exceptions as pg
    from asyncpg.exceptions import _base as pg_base

    kinds: list[type[BaseException]] = [OverflowError]  # sqlite3: "Python int too large"
    # PostgreSQL's class 22 (out of range, NUL or bad text, too long...) and asyncpg's own
    # "invalid input for query argument" (raised before the query is sent).
    return (*kinds, pg.DataError, pg_base.DataError)


_VALUE_ERRORS = _value_errors()


def refused_value(exc: BaseException) -> BaseException | None:
    """The database driver's refusal of a value the request carried, if that is what `exc`
    is (or wraps): an integer beyond the column, text PostgreSQL cannot store. Only such
    errors are the client's fault; anything else stays a 500."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, _VALUE_ERRORS):
            return exc
        if isinstance(exc, UnicodeEncodeError) and "surrogates" in str(exc):
            return exc  # undecodable bytes from a header or a query string
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def redact_credentials(request: Request, text: str) -> str:
    """`text` with the caller's token (header or `?token=`) blanked out, for logs."""
    try:
        header = request.headers.get("authorization", "")
        secrets = {header.partition(" ")[2].strip(), request.args.get("token") or ""}
    except Exception:  # a request too broken to read: log as is
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 8:
            text = text.replace(secret, "<token>")
    return text
