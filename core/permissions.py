"""The one permission policy every channel uses (the seed's IsAdminUser and CanManageRequest).

- Staff (admin, director) may use the admin side; customers never.
- CanManageRequest: an admin manages a request assigned to them or still open; a director
  manages every request.
- A customer sees and writes only their own requests, never internal messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import PermissionDenied
from core.texts import t
from db.models import CustomerRequest, Role, Status, User


@dataclass(frozen=True, slots=True)
class RequestAccess:
    """A request's columns that the rules below read (who may see it, manage it, post to
    it), for a write that needs nothing else of the request: the staff REST message POST
    reads them in its token's statement (core.pg_json.ACCESS_RIDER) instead of a whole
    request model, whose constructor checks every one of its fifty fields."""

    id: int
    customer_id: int
    assigned_admin_id: int | None
    status: str


# What the rules accept: a request model or just its access columns.
Subject = CustomerRequest | RequestAccess


def is_staff(user: User | None) -> bool:
    return bool(user and user.is_active and user.role in (Role.admin, Role.director))


def is_director(user: User | None) -> bool:
    return bool(user and user.is_active and user.role == Role.director)


def require_staff(user: User) -> None:
    if not is_staff(user):
        raise PermissionDenied(t("err_no_permission", user.language if user else None))


def require_director(user: User) -> None:
    if not is_director(user):
        raise PermissionDenied(t("err_director_only", user.language))


def can_view_request(user: User, request: Subject) -> bool:
    if is_staff(user):
        return True
    return request.customer_id == user.id


def can_manage_request(user: User, request: Subject) -> bool:
    """Seed's CanManageRequest."""
    if is_director(user):
        return True
    if is_staff(user):
        return request.assigned_admin_id == user.id or request.status == Status.open
    return False


def require_manage_request(user: User, request: Subject) -> None:
    if not can_manage_request(user, request):
        raise PermissionDenied(t("err_manage_request", user.language))


def can_see_internal(user: User) -> bool:
    return is_staff(user)
