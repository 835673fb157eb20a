"""Canned responses: saved replies staff send into a request's thread.

- Shared ones (`is_shared`) are visible to all staff, personal ones to their author only;
  anything else answers NotFound. Only the author edits or deletes one; a shared one, a
  director too.
- A shortcut (`greeting`, `reset-password`) is unique per language within its scope
  (shared, or one author's personal ones), so the same shortcut can exist in Russian and
  English: sending picks the reader's (the customer's) language, then the sender's, then
  any; within a language a personal response shadows a shared one.
- Placeholders `{customer_name}`, `{request_id}`, `{admin_name}` are filled at send time
  (plain replacement: any other braces stay as written). A customer without a name is
  "клиент"/"customer" in the reader's language.
- Sending is `core.requests.post_message`, the one writer of staff replies: the text is
  stored, relayed to the customer and announced exactly like a typed reply, under the
  same rules (CanManageRequest, closed requests, size limits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import is_director, require_staff
from core.queries import get_request
from core.serializers import dt
from core.texts import lang_of, t
from core.thread import post_message
from db.models import CannedResponse, RequestMessage, Source, User

SHORTCUT_MAX = 32
SHORTCUT_RE = re.compile(rf"^[A-Za-z0-9_-]{{1,{SHORTCUT_MAX}}}$")
LANGUAGES = ("ru", "en")
PLACEHOLDER_RE = re.compile(r"\{(customer_name|request_id|admin_name)\}")
PAGE_SIZE = 20


def canned_data(item: CannedResponse, viewer: User | None = None) -> dict[str, Any]:
    """The REST JSON of a canned response (`created_by` needs fetching for the name)."""
    author = item.created_by if hasattr(item, "_created_by") else None
    data = {
        "id": item.id,
        "shortcut": item.shortcut,
        "title": item.title,
        "content": item.content,
        "language": item.language,
        "is_shared": item.is_shared,
        "created_by": item.created_by_id,
        "created_by_name": author.full_name if isinstance(author, User) else "",
        "created_at": dt(item.created_at),
        "updated_at": dt(item.updated_at),
    }
    if viewer is not None:
        data["can_edit"] = can_edit(viewer, item)
    return data


def _visible(actor: User) -> Q:
    return Q(is_shared=True) | Q(created_by_id=actor.id)


def can_edit(actor: User, item: CannedResponse) -> bool:
    return item.created_by_id == actor.id or (item.is_shared and is_director(actor))


@dataclass
class CannedFilters:
    language: str | None = None
    search: str | None = None
    is_shared: bool | None = None


async def list_canned(
    actor: User, filters: CannedFilters | None = None, page: int = 1, page_size: int = PAGE_SIZE
) -> tuple[int, list[CannedResponse]]:
    """The responses `actor` can see, by shortcut then language; one page and the total."""
    require_staff(actor)
    f = filters or CannedFilters()
    if f.language is not None and f.language not in LANGUAGES:
        raise ValidationFailed({"language": [t("err_invalid_choice", value=f.language[:20])]})
    qs = CannedResponse.filter(_visible(actor))
    if f.language:
        qs = qs.filter(language=f.language)
    if f.is_shared is not None:
        qs = qs.filter(is_shared=f.is_shared)
    if f.search and f.search.strip():
        term = f.search.strip()
        qs = qs.filter(Q(shortcut__icontains=term) | Q(title__icontains=term))
    total = await qs.count()
    offset = (page - 1) * page_size
    if page < 1 or (page > 1 and offset >= total):
        raise NotFound(t("err_bad_page"))
    rows = await qs.order_by("shortcut", "language", "id").offset(offset).limit(page_size).select_related(
        "created_by"
    )
    return total, list(rows)


async def get_canned(actor: User, canned_id: int) -> CannedResponse:
    """A response `actor` can see; NotFound otherwise (someone else's personal one too)."""
    require_staff(actor)
    item = await CannedResponse.filter(_visible(actor), id=canned_id).select_related("created_by").first()
    if item is None:
        raise NotFound(t("err_not_found", actor.language))
    return item


def _clean(actor: User, data: dict[str, Any], partial: bool) -> dict[str, Any]:
    lang = actor.language
    limits = current_limits()
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    if "shortcut" in data or not partial:
        shortcut = data.get("shortcut")
        if not isinstance(shortcut, str) or not SHORTCUT_RE.match(shortcut.strip().lstrip("/")):
            errors["shortcut"] = [t("err_canned_shortcut", lang)]
        else:
            out["shortcut"] = shortcut.strip().lstrip("/").lower()
    if "title" in data or not partial:
        check_text(errors, "title", data.get("title"), limits.title, lang)
        if "title" not in errors:
            out["title"] = str(data["title"]).strip()
    if "content" in data or not partial:
        check_text(errors, "content", data.get("content"), limits.content, lang)
        if "content" not in errors:
            out["content"] = data["content"]
    if "language" in data:
        if data["language"] not in LANGUAGES:
            errors["language"] = [t("err_invalid_choice", value=data["language"])]
        else:
            out["language"] = data["language"]
    elif not partial:
        out["language"] = lang_of(actor.language)
    if "is_shared" in data:
        if not isinstance(data["is_shared"], bool):
            errors["is_shared"] = [t("err_not_bool")]
        else:
            out["is_shared"] = data["is_shared"]
    elif not partial:
        out["is_shared"] = False
    if errors:
        raise ValidationFailed(errors)
    return out


async def create_canned(actor: User, data: dict[str, Any]) -> CannedResponse:
    """Any staff member; the author is `actor`. ValidationFailed for bad fields or a
    shortcut taken in that language and scope (checked by a unique index, so concurrent
    creators cannot both win)."""
    require_staff(actor)
    fields = _clean(actor, data, partial=False)
    try:
        item = await CannedResponse.create(
            **fields, created_by_id=actor.id, scope_owner=0 if fields["is_shared"] else actor.id
        )
    except IntegrityError:
        raise ValidationFailed({"shortcut": [t("err_canned_taken", actor.language)]}) from None
    item.created_by = actor
    return item


async def update_canned(actor: User, canned_id: int, data: dict[str, Any], *, partial: bool) -> CannedResponse:
    """The author (or a director, for a shared one); PermissionDenied for other staff who
    can see it, NotFound for those who cannot."""
    item = await get_canned(actor, canned_id)
    if not can_edit(actor, item):
        raise PermissionDenied(t("err_canned_owner", actor.language))
    fields = _clean(actor, data, partial=partial)
    if "is_shared" in fields:
        fields["scope_owner"] = 0 if fields["is_shared"] else item.created_by_id
    if not fields:
        return item
    try:
        await CannedResponse.filter(id=item.id).update(**fields)
    except IntegrityError:
        raise ValidationFailed({"shortcut": [t("err_canned_taken", actor.language)]}) from None
    # Re-read without the visibility rule: a director may just have made someone's shared
    # response personal again, and still gets the result of their edit.
    return await CannedResponse.get(id=item.id).select_related("created_by")


async def delete_canned(actor: User, canned_id: int) -> None:
    item = await get_canned(actor, canned_id)
    if not can_edit(actor, item):
        raise PermissionDenied(t("err_canned_owner", actor.language))
    await CannedResponse.filter(id=item.id).delete()


async def find_by_shortcut(actor: User, shortcut: str, language: str | None) -> CannedResponse:
    """The response `/r SHORTCUT` means for `actor` writing to a reader of `language`."""
    key = shortcut.strip().lstrip("/").lower()
    found = await CannedResponse.filter(_visible(actor), shortcut=key).select_related("created_by")
    if not found:
        raise NotFound(t("err_canned_not_found", actor.language, shortcut=shortcut[:40]))
    reader, own = lang_of(language), lang_of(actor.language)

    def rank(item: CannedResponse) -> tuple[int, int, int]:
        return (
            0 if item.language == reader else 1 if item.language == own else 2,
            0 if item.created_by_id == actor.id and not item.is_shared else 1,
            item.id,
        )

    return min(found, key=rank)


def fill(content: str, *, customer: User, request_id: int, admin: User) -> str:
    """The placeholders replaced; the customer's name falls back to a word in their language."""
    name = f"{customer.first_name} {customer.last_name}".strip() if customer is not None else ""
    if not name:
        name = t("canned_customer_fallback", customer.language if customer is not None else None)
    values = {"customer_name": name, "request_id": str(request_id), "admin_name": admin.full_name}
    # One pass: a value that itself looks like a placeholder (a customer called
    # "{admin_name}") is never expanded again.
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], content)


async def send_canned(
    actor: User,
    request_id: int,
    *,
    shortcut: str | None = None,
    canned_id: int | None = None,
    source: Source = Source.api,
) -> tuple[RequestMessage, CannedResponse]:
    """Send a response (by shortcut, or by id) to the request's customer as `actor`'s reply.

    The filled text goes through core.requests.post_message (stored, relayed to the
    customer, announced as new_message; its rules apply). Returns the message and the
    response used. NotFound for a response `actor` cannot see or a request they cannot.
    """
    require_staff(actor)
    req = await get_request(actor, request_id)
    customer = req.customer
    if canned_id is not None:
        item = await get_canned(actor, canned_id)
    else:
        item = await find_by_shortcut(actor, shortcut or "", customer.language if customer else None)
    text = fill(item.content, customer=customer, request_id=req.id, admin=actor)
    msg = await post_message(actor, req.id, text, source=source)
    return msg, item
