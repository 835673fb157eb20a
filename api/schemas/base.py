"""What every schema module shares: the base models, the types with their DRF error texts,
and `validated()`, which checks a request body against a body model.

Body models check shape and types only (required fields, strings, booleans, ids, the enums
of db.models); lengths, blank texts and the other domain rules stay in core (core.limits,
the services). A refused body answers 400 in DRF's shape `{"field": ["message"]}`, with the
messages the routes wrote by hand before the models (one table, `message_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic_core import PydanticCustomError
from sanic import Request

from api.http import (
    INVALID_INPUT,
    MAX_DB_ID,
    NOT_A_NUMBER,
    PK_WRONG_TYPE,
    body,
    is_row_id,
    pk_does_not_exist,
)
from core.errors import ValidationFailed
from core.texts import t

# --- the error texts (DRF's, as the routes answered them) ------------------------------------

REQUIRED = t("err_required_field")
NOT_NULL = t("err_not_null")
NOT_STRING = "Not a valid string."
NOT_BOOL = t("err_not_bool")
NOT_LIST = t("err_list")
STRING_LIST = t("err_tags_type")
ID_LIST = t("err_id_list")
BAD_DATETIME = t("err_datetime")


def not_a_choice(value: Any) -> str:
    return t("err_invalid_choice", value=str(value)[:40])


@dataclass(frozen=True)
class Texts:
    """Per-field overrides of the error texts (put in the field's `Annotated[...]`)."""

    required: str | None = None
    null: str | None = None
    wrong_type: str | None = None


def drf_error(message: str) -> PydanticCustomError:
    """An error whose text is `message` as it stands (`message_for` passes it through, still
    an i18n.Text when it is one, so the caller reads it in their language)."""
    return PydanticCustomError("drf", "{text}", {"text": message})


# --- types ----------------------------------------------------------------------------------


def _row_id(value: int) -> int:
    if not is_row_id(value):
        raise drf_error(pk_does_not_exist(value))
    return value


# A row's id: an int (not a bool, not a numeric text) in 1..MAX_DB_ID; beyond that no row
# can have it, and the database would refuse it.
RowId = Annotated[
    StrictInt,
    AfterValidator(_row_id),
    Field(json_schema_extra={"minimum": 1, "maximum": MAX_DB_ID}),
    Texts(wrong_type=PK_WRONG_TYPE),
]

# (Texts must sit on the field's outer type: pydantic keeps no metadata from inside a union.)
OptionalRowId = Annotated[RowId | None, Texts(wrong_type=PK_WRONG_TYPE)]


def _form_bool(value: Any) -> Any:
    """Booleans, and their texts from a form (DRF's BooleanField)."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "on", "yes"):
            return True
        if low in ("false", "0", "off", "no", ""):
            return False
    return value


FormBool = Annotated[StrictBool, BeforeValidator(_form_bool)]


def check_datetime(value: Any) -> Any:
    """ISO 8601 text (`Z` allowed; naive means UTC), stored and compared in UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            # 0001-01-01T00:00+01:00 has no UTC value.
            return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise drf_error(BAD_DATETIME)


DateTimeIn = Annotated[datetime | None, BeforeValidator(check_datetime)]
StringList = Annotated[list[StrictStr], Texts(wrong_type=STRING_LIST)]
IdList = Annotated[list[RowId], Texts(wrong_type=ID_LIST)]

# --- base models ----------------------------------------------------------------------------


class Body(BaseModel):
    """A request body: unknown fields are ignored (DRF does the same)."""

    model_config = ConfigDict(extra="ignore")


class Out(BaseModel):
    """A response body: exactly these fields (the contract test refuses any other)."""

    model_config = ConfigDict(extra="forbid")


class Detail(Out):
    detail: str


class ActionError(Out):
    """A refused take/complete/close/reopen/reassign."""

    error: str


class Page(Out):
    """DRF's PageNumberPagination envelope; subclasses say what `results` holds."""

    count: int
    next: str | None = Field(json_schema_extra={"format": "uri"})
    previous: str | None = Field(json_schema_extra={"format": "uri"})


# --- validation -----------------------------------------------------------------------------

_TEXTS_BY_TYPE = {
    "string_type": NOT_STRING,
    "bool_type": NOT_BOOL,
    "bool_parsing": NOT_BOOL,
    "int_type": NOT_A_NUMBER,
    "int_parsing": NOT_A_NUMBER,
    "int_from_float": NOT_A_NUMBER,
    "list_type": NOT_LIST,
    "dict_type": INVALID_INPUT,
}


def _texts_of(model: type[BaseModel], name: str) -> Texts:
    field = model.model_fields.get(name)
    found = Texts()
    for meta in field.metadata if field is not None else ():
        if isinstance(meta, Texts):
            found = meta
    return found


def message_for(model: type[BaseModel], error: dict[str, Any]) -> str:
    """The DRF text of one pydantic error."""
    kind = error["type"]
    if kind == "drf":
        return error.get("ctx", {}).get("text", error["msg"])
    texts = _texts_of(model, str(error["loc"][0]))
    if kind == "missing":
        return texts.required or REQUIRED
    if error.get("input", 0) is None and len(error["loc"]) == 1:
        return texts.null or NOT_NULL
    if kind in ("enum", "literal_error"):
        value = error.get("input")
        return not_a_choice(value) if isinstance(value, str) else NOT_STRING
    return texts.wrong_type or _TEXTS_BY_TYPE.get(kind, INVALID_INPUT)


def errors_of(model: type[BaseModel], exc: ValidationError) -> dict[str, list[str]]:
    """`{"field": ["message"]}`: the first error of each field."""
    out: dict[str, list[str]] = {}
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "non_field_errors"
        out.setdefault(name, [message_for(model, error)])
    return out


M = TypeVar("M", bound=BaseModel)


def check(model: type[M], data: dict[str, Any]) -> M:
    """`data` as `model`, or 400 with DRF's error shape."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(errors_of(model, exc)) from None


def validated(request: Request, model: type[M]) -> M:
    """The request's JSON (or form) body checked against `model`."""
    return check(model, body(request))


def given(item: BaseModel) -> dict[str, Any]:
    """The fields the client sent, with their checked values."""
    return {name: getattr(item, name) for name in item.model_fields_set}
