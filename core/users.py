"""Accounts: creation, password sign-in, web contacts, Telegram linking, access changes.

API tokens (issue, look up, revoke) are core.tokens; their names stay importable here."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import audit, events, login_throttle, runtime
from core.errors import NotFound, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import require_director
from core.security import (
    hash_password,
    needs_rehash,
    token_digest,
    verify_dummy,
    verify_password,
)
from core.texts import t
from core.tokens import (  # noqa: F401  (re-exported: callers sign in and look up here)
    TOKEN_KEY_RE,
    TokenOwner,
    issue_token,
    record_access_change,
    revoke_all_tokens,
    revoke_token,
    token_expired,
    token_owner,
    token_owner_with,
    user_for_token,
)
from db.models import Role, User

USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")
USERNAME_MAX = User._meta.fields_map["username"].max_length
PASSWORD_MAX = 1024  # argon2 would take any length; nobody's password is longer


async def create_user(
    username: str,
    password: str | None = None,
    *,
    role: str = Role.customer,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    telegram_id: int | None = None,
    telegram_username: str | None = None,
    language: str | None = None,
) -> User:
    """Create an account. ValidationFailed for a bad or taken username/telegram_id."""
    errors: dict[str, list[str]] = {}
    if not USERNAME_RE.match(username or ""):
        errors["username"] = [t("err_username")]
    if role not in Role.__members__:
        errors["role"] = [t("err_invalid_choice", value=role)]
    limits = current_limits()
    check_text(errors, "first_name", first_name, limits.name, language, required=False)
    check_text(errors, "last_name", last_name, limits.name, language, required=False)
    check_text(errors, "email", email, limits.email, language, required=False)
    if errors:
        raise ValidationFailed(errors)
    hashed = await asyncio.to_thread(hash_password, password) if password else ""
    try:
        async with in_transaction() as conn:
            user = await User.create(
                username=username,
                password=hashed,
                role=role,
                email=email,
                # An address an operator typed in (createuser, staff tools) is taken as given.
                email_verified=bool(email),
                first_name=first_name,
                last_name=last_name,
                telegram_id=telegram_id,
                telegram_username=telegram_username,
                language=language or runtime.settings().language,
                using_db=conn,
            )
            await audit.record(
                "user_created", None, target=("user", user.id),
                details={"username": username, "role": str(role)}, using_db=conn,
            )
            return user
    except IntegrityError:
        raise ValidationFailed(
            {"username": [t("err_user_exists")]}
        ) from None


LOGIN_FAILED = t("err_login_failed")
LOGIN_THROTTLED = t("err_login_throttled")


def _check_login_input(username: Any, password: Any) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(username, str) or not username:
        errors["username"] = [t("err_required_field")]
    if not isinstance(password, str) or not password:
        errors["password"] = [t("err_required_field")]
    if "username" not in errors and len(username) > USERNAME_MAX:
        # No account can have it, and the database refuses it in a filter.
        errors["username"] = [t("err_too_long", n=USERNAME_MAX)]
    if "password" not in errors and len(password) > PASSWORD_MAX:
        errors["password"] = [t("err_too_long", n=PASSWORD_MAX)]
    if errors:
        raise ValidationFailed(errors)


async def login(username: str, password: str, *, address: str | None = None) -> str:
    """Check credentials (`check_credentials`) and issue a new token (DRF
    obtain_auth_token, one per device)."""
    user = await check_credentials(username, password, address=address)
    return await issue_token(user)


async def check_credentials(username: str, password: str, *, address: str | None = None) -> User:
    """The active account for this username and password, or an error; the one password
    check of every sign-in channel (`POST /api/auth/token/`, the staff console), so they
    share one throttle and one audit trail.

    Throttled (429 with Retry-After) once LOGIN_MAX_FAILURES attempts for the username, or
    LOGIN_MAX_FAILURES_PER_ADDRESS for the client `address`, failed within
    LOGIN_WINDOW_SECONDS; counted atomically before the password is checked, so parallel
    attempts cannot overtake the limit (core.login_throttle). An unknown username, an
    inactive account or one without a password costs the same argon2 check as a wrong
    password. A hash made with older parameters is replaced on success. Hashing runs off
    the event loop. Audited as `login` / `login_failed`.
    """
    _check_login_input(username, password)
    s = runtime.settings()
    places = await login_throttle.admit(
        username, address, per_user=s.login_max_failures,
        per_address=s.login_max_failures_per_address, window=float(s.login_window_seconds),
        message=LOGIN_THROTTLED,
    )
    user = await User.filter(username=username).first()
    if user and user.is_active and user.password:
        ok = await asyncio.to_thread(verify_password, password, user.password)
    else:
        ok = await asyncio.to_thread(verify_dummy, password)
    if not ok or user is None:
        await audit.record(
            "login_failed", user, actor_name=username[:150], details={"username": username[:150]},
        )
        raise ValidationFailed({"non_field_errors": [LOGIN_FAILED]})
    for place in places:
        if place.key == login_throttle.username_key(username):
            await login_throttle.clear(place.key)
        else:
            await login_throttle.give_back(place)
    if needs_rehash(user.password):
        fresh = await asyncio.to_thread(hash_password, password)
        # Conditional: a password changed meanwhile is not overwritten.
        await User.filter(id=user.id, password=user.password).update(password=fresh)
    await audit.record("login", user, target=("user", user.id))
    return user


async def link_telegram(
    actor: User, username: str, telegram_id: int, telegram_username: str | None = None
) -> User:
    """Director links a Telegram account to a staff (or any) account, without SQL.
    A Telegram id already linked elsewhere is moved to the new account."""
    require_director(actor)
    user = await User.filter(username=username).first()
    if user is None:
        raise NotFound(t("err_user_not_found", username=username))
    async with in_transaction() as conn:
        await User.filter(telegram_id=telegram_id).exclude(id=user.id).using_db(conn).update(
            telegram_id=None
        )
        await User.filter(id=user.id).using_db(conn).update(
            telegram_id=telegram_id, telegram_username=telegram_username
        )
        await audit.record(
            "account_linked", actor, target=("user", user.id),
            details={"username": user.username, "telegram_id": telegram_id,
                     "previous_telegram_id": user.telegram_id},
            using_db=conn,
        )
    user.telegram_id = telegram_id
    user.telegram_username = telegram_username
    return user


def is_automatic_customer(user: User) -> bool:
    """An account the bot created on someone's first message (`customer_for_telegram`):
    a customer named `tg<id>` with no password."""
    return (
        user.role == Role.customer and not user.password
        and user.telegram_id is not None and user.username == f"tg{user.telegram_id}"
    )


async def holder_of_telegram_id(telegram_id: int, exclude_user_id: int | None = None) -> User | None:
    query = User.filter(telegram_id=telegram_id)
    if exclude_user_id is not None:
        query = query.exclude(id=exclude_user_id)
    return await query.first()


async def link_telegram_account(username: str, telegram_id: int, *, move: bool = False) -> tuple[User, User | None]:
    """Link `telegram_id` to the account `username` (an operator's command: no actor).

    When another account holds the id: Conflict naming it (saying when it is the automatic
    customer account the bot made when that person first wrote to it), unless `move`, which
    takes the id from it in the same transaction. The other account keeps everything else
    (its requests stay its own). Audited as `account_linked`. Returns (the linked user, the
    account it was moved from).
    """
    from core.errors import Conflict

    if not 0 < telegram_id < 2**53:
        raise ValidationFailed({"telegram_id": [f"{telegram_id} is not a Telegram user id"]})
    user = await User.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    holder = await holder_of_telegram_id(telegram_id, exclude_user_id=user.id)
    if holder is not None and not move:
        if is_automatic_customer(holder):
            from db.models import CustomerRequest

            requests = await CustomerRequest.filter(customer_id=holder.id).count()
            raise Conflict(
                f"Telegram id {telegram_id} belongs to the automatic customer account "
                f"{holder.username!r} (the bot created it when this person first wrote to it; "
                f"{requests} request(s)). Run again with --move to move the id to {username!r}; "
                f"{holder.username!r} keeps its requests."
            )
        raise Conflict(
            f"Telegram id {telegram_id} is linked to {holder.username!r} ({holder.role}). "
            f"Run again with --move to move it to {username!r}."
        )
    async with in_transaction() as conn:
        if holder is not None:
            await User.filter(id=holder.id).using_db(conn).update(telegram_id=None)
        await User.filter(id=user.id).using_db(conn).update(telegram_id=telegram_id)
        # In the audit trail like a director's /link (link_telegram).
        await audit.record(
            "account_linked", None, actor_name="helpdesk link-telegram", target=("user", user.id),
            details={"username": user.username, "telegram_id": telegram_id,
                     "previous_telegram_id": user.telegram_id,
                     "moved_from": holder.username if holder is not None else None},
            using_db=conn,
        )
    user.telegram_id = telegram_id
    return user, holder


async def customer_for_telegram(
    telegram_id: int, *, first_name: str = "", last_name: str = "",
    telegram_username: str | None = None, language: str | None = None,
) -> tuple[User, bool]:
    """The account linked to this Telegram user, creating a customer on first contact."""
    user = await User.filter(telegram_id=telegram_id).first()
    if user:
        return user, False
    try:
        user = await User.create(
            username=f"tg{telegram_id}",
            first_name=first_name[:150],
            last_name=last_name[:150],
            telegram_id=telegram_id,
            telegram_username=telegram_username,
            role=Role.customer,
            language=language if language in ("ru", "en") else runtime.settings().language,
        )
        return user, True
    except IntegrityError:
        return await User.get(telegram_id=telegram_id), False


async def web_contact_for_email(email: str, name: str, language: str | None = None) -> User:
    """The customer a web form submission belongs to: a new web contact holding the address
    and name as typed. Never an existing account: anyone can type anyone's address, so a
    submission must not reach a password or Telegram account's requests, nor appear in
    their lists; the request's private link is the only key to it. The address is marked
    unverified (staff see `customer_email_verified: false`). One contact per submission,
    so no submitter ever sees what another one typed."""
    email = email.strip().lower()
    first, _, last = name.strip().partition(" ")
    for _ in range(5):
        try:
            # A savepoint when the caller has a transaction open (the web form's create),
            # so a collision leaves that transaction usable for the next try.
            async with in_transaction():
                return await User.create(
                    username=f"web-{secrets.token_hex(8)}",
                    email=email,
                    email_verified=False,
                    is_web_contact=True,
                    first_name=first[:150],
                    last_name=last[:150],
                    role=Role.customer,
                    language=language if language in ("ru", "en") else runtime.settings().language,
                )
        except IntegrityError:  # a username collision: 64 random bits, practically never
            continue
    raise ValidationFailed({"email": [t("err_user_create")]})


EMAIL_VERIFY_DAYS = 7
_VERIFY_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


class VerificationExpired(ValidationFailed):
    """A real verification link whose time ran out (nothing changed)."""


async def issue_email_verification(user: User) -> str:
    """A new verification token for a web contact's address, for the confirmation mail.
    Only its SHA-256 is stored, with an expiry EMAIL_VERIFY_DAYS from now; a newer token
    replaces an older one. The caller mails the token; the desk cannot show it again."""
    key = secrets.token_urlsafe(32)
    await User.filter(id=user.id).update(
        email_verify_hash=token_digest(key),
        email_verify_expires=datetime.now(UTC) + timedelta(days=EMAIL_VERIFY_DAYS),
    )
    return key


async def verify_email(customer_id: int, token: str) -> User:
    """Mark `customer_id`'s address verified with a token from its confirmation mail.
    Single use, atomically (of parallel clicks one wins): the stored hash is cleared with
    the same UPDATE that sets `email_verified`. Only that user's flag changes; the contact
    is never merged into, nor linked to, any other account. NotFound for a wrong, forged
    or already used token; VerificationExpired for a real one past its expiry. On either
    nothing changes."""
    if not token or not _VERIFY_TOKEN_RE.match(token):
        raise NotFound(t("err_not_found"))
    digest = token_digest(token)
    done = await User.filter(
        id=customer_id, email_verify_hash=digest, email_verify_expires__gt=datetime.now(UTC)
    ).update(email_verified=True, email_verify_hash="", email_verify_expires=None)
    if not done:
        if await User.filter(id=customer_id, email_verify_hash=digest).exists():
            raise VerificationExpired({"token": ["expired"]})
        raise NotFound(t("err_not_found"))
    return await User.get(id=customer_id)


async def change_access(
    actor: User | None, user_id: int, *, is_active: bool | None = None, role: str | None = None
) -> User:
    """Deactivate/reactivate an account or change its role: a director (`actor`), or the
    operator's CLI (`actor` None). Open WebSockets of that user follow within a second on
    every process (event user_access: a deactivated user's close with 4401, a demoted
    one's admin and chat sockets with 4403). A director cannot lock themselves out.
    NotFound for an unknown id; ValidationFailed for a bad role."""
    if actor is not None:
        require_director(actor)
    lang = actor.language if actor is not None else None
    user = await User.filter(id=user_id).first()
    if user is None:
        raise NotFound(t("err_not_found", lang))
    errors: dict[str, list[str]] = {}
    if role is not None and role not in Role.__members__:
        errors["role"] = [t("err_invalid_choice", value=role)]
    if actor is not None and user.id == actor.id and (is_active is False or (role and role != actor.role)):
        errors["non_field_errors"] = [t("err_self_lockout", lang)]
    if errors:
        raise ValidationFailed(errors)
    fields: dict[str, Any] = {}
    if is_active is not None and is_active != user.is_active:
        fields["is_active"] = is_active
    if role is not None and role != user.role:
        fields["role"] = role
    if not fields:
        return user
    reason = "deactivated" if fields.get("is_active") is False else (
        "role_changed" if "role" in fields else "reactivated")
    async with in_transaction() as conn:
        await User.filter(id=user.id).using_db(conn).update(**fields)
        await record_access_change(
            user.id, reason, using_db=conn, by=actor.id if actor is not None else None
        )
    events.committed()
    for name, value in fields.items():
        setattr(user, name, value)
    return user


async def set_language(user: User, language: str) -> User:
    """Store the user's language (`ru` or `en`); ValidationFailed for anything else."""
    if language not in ("ru", "en"):
        raise ValidationFailed({"language": [t("err_invalid_choice", value=language)]})
    await User.filter(id=user.id).update(language=language)
    user.language = language
    return user


async def set_active_request(user: User, request_id: int | None) -> User:
    """Make `request_id` the request a Telegram customer's plain messages continue.

    Only a request the user may see (their own, for a customer); NotFound otherwise.
    `None` clears it.
    """
    if request_id is not None:
        from core.queries import get_request

        await get_request(user, request_id)
    await User.filter(id=user.id).update(active_request_id=request_id)
    user.active_request_id = request_id
    return user


async def list_staff() -> list[User]:
    """Active admins and directors, by name (assignee choices: filters, reassignment)."""
    people = await User.filter(role__in=[Role.admin, Role.director], is_active=True)
    return sorted(people, key=lambda u: (u.full_name.lower(), u.id))
