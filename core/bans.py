"""Bans: a director blocks a customer from writing to the desk.

A banned customer's new requests and messages are refused on every channel with a polite
PermissionDenied (REST 403 `{"detail"}`, a message on the web form and page, a reply in the
bot). Nothing stored changes: the customer's requests, messages and files stay, staff keep
working on them and may still reply. Each ban and unban is recorded in the audit log
(customer_banned / customer_unbanned, core.audit) and the event log (user_access, reason
banned/unbanned, with the director's id), in the transaction of the change.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from core import audit, events
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.permissions import require_director
from core.texts import t
from core.users import record_access_change
from db.models import Role, User


def is_banned(user: User | None) -> bool:
    return bool(user is not None and user.banned_at is not None)


def require_not_banned(user: User) -> None:
    """PermissionDenied (in the user's language) for a banned customer."""
    if is_banned(user):
        raise PermissionDenied(t("err_banned", user.language))


async def email_is_banned(email: str) -> bool:
    """Whether a banned customer has this address (the web form refuses it)."""
    address = email.strip().lower()
    if not address:
        return False
    rows = await User.filter(banned_at__isnull=False, role=Role.customer).values_list(
        "email", flat=True
    )
    return any((e or "").strip().lower() == address for e in rows)


async def _set_ban(actor: User, customer_id: int, banned: bool) -> User:
    require_director(actor)
    user = await User.filter(id=customer_id).first()
    if user is None:
        raise NotFound(t("err_not_found", actor.language))
    if user.role != Role.customer:
        raise ValidationFailed({"customer": [t("err_not_customer", actor.language)]})
    if is_banned(user) == banned:
        return user  # idempotent: the first ban's time and director stay
    fields = (
        {"banned_at": datetime.now(UTC), "banned_by_id": actor.id}
        if banned else {"banned_at": None, "banned_by_id": None}
    )
    async with in_transaction() as conn:
        await User.filter(id=user.id).using_db(conn).update(**fields)
        await record_access_change(
            user.id, "banned" if banned else "unbanned", using_db=conn, by=actor.id
        )
        await audit.record(
            "customer_banned" if banned else "customer_unbanned", actor,
            target=("user", user.id), details={"username": user.username}, using_db=conn,
        )
    events.committed()
    for name, value in fields.items():
        setattr(user, name, value)
    return user


async def ban_customer(actor: User, customer_id: int) -> User:
    """Director bans a customer (idempotent). ValidationFailed for staff accounts."""
    return await _set_ban(actor, customer_id, True)


async def unban_customer(actor: User, customer_id: int) -> User:
    """Director lifts a ban (idempotent)."""
    return await _set_ban(actor, customer_id, False)
