"""Accounts: creation, authentication (password and token), Telegram linking."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import audit, runtime
from core.errors import NotAuthenticated, NotFound, Throttled, ValidationFailed
from core.limits import check_text
from core.limits import current as current_limits
from core.permissions import require_director
from core.security import hash_password, new_token_key, verify_password
from db.models import ApiToken, LoginFailure, Role, User

USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")
USERNAME_MAX = User._meta.fields_map["username"].max_length


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
        errors["username"] = ["Введите правильное имя пользователя (буквы, цифры и @/./+/-/_)."]
    if role not in Role.__members__:
        errors["role"] = [f"Значения {role} нет среди допустимых вариантов."]
    limits = current_limits()
    check_text(errors, "first_name", first_name, limits.name, language, required=False)
    check_text(errors, "last_name", last_name, limits.name, language, required=False)
    check_text(errors, "email", email, limits.email, language, required=False)
    if errors:
        raise ValidationFailed(errors)
    try:
        async with in_transaction() as conn:
            user = await User.create(
                username=username,
                password=hash_password(password) if password else "",
                role=role,
                email=email,
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
            {"username": ["Пользователь с таким именем или Telegram id уже существует."]}
        ) from None


async def get_or_create_token(user: User) -> str:
    """The user's API token key, created from a CSPRNG on first use (idempotent)."""
    token = await ApiToken.filter(user_id=user.id).first()
    if token:
        return token.key
    try:
        async with in_transaction() as conn:
            token = await ApiToken.create(key=new_token_key(), user_id=user.id, using_db=conn)
            await audit.record("token_issued", user, target=("user", user.id), using_db=conn)
    except IntegrityError:  # a concurrent call created it
        token = await ApiToken.get(user_id=user.id)
    return token.key


_TOKEN_USER_SQL = (
    'SELECT u.* FROM "users" u JOIN "api_tokens" t ON t."user_id" = u."id" WHERE t."key" = $1'
)


# What a key can look like (core.security.new_token_key: 40 hex characters). Anything else
# is refused before the database sees it: a longer value fails the column's length check,
# and non-ASCII bytes from a header cannot even be encoded for the query.
TOKEN_KEY_RE = re.compile(rf"[0-9A-Za-z]{{1,{ApiToken._meta.fields_map['key'].max_length}}}")


async def user_for_token(key: str) -> User | None:
    """The active user owning API token `key`; None for an unknown or malformed key."""
    if not isinstance(key, str) or not TOKEN_KEY_RE.fullmatch(key):
        return None
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        # Every authenticated request pays for this lookup: one hand-written join costs
        # about half the CPU of the ORM's select_related (docs/performance.md).
        rows = await conn.execute_query_dict(_TOKEN_USER_SQL, [key])
        user = User._init_from_db(**rows[0]) if rows else None
    else:
        token = await ApiToken.filter(key=key).select_related("user").first()
        user = token.user if token else None
    if user is None or not user.is_active:
        return None
    return user


def _delay_for(failures: int) -> float:
    # Each failure beyond the allowance doubles the wait, capped at 30 s.
    allowance = runtime.settings().login_max_failures
    if failures < allowance:
        return 0.0
    return min(30.0, 0.5 * 2 ** (failures - allowance))


async def login(username: str, password: str, *, address: str | None = None) -> str:
    """Check credentials and return the token (DRF obtain_auth_token).

    The check and its throttling are `check_credentials`; this adds the token.
    """
    user = await check_credentials(username, password, address=address)
    return await get_or_create_token(user)


async def check_credentials(username: str, password: str, *, address: str | None = None) -> User:
    """The active account for this username and password, or an error; the one password
    check of every sign-in channel (`POST /api/auth/token/`, the staff console), so they
    share one throttle and one audit trail.

    Repeated failures for a username are slowed down: after LOGIN_MAX_FAILURES the caller
    gets Throttled with Retry-After until the back-off passes (kept in the database, so
    every worker agrees). ValidationFailed for missing or wrong credentials. A success is
    audited as `login`, a failure as `login_failed`. `address` is the client's (for
    throttling per address; this version counts per username only).
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(username, str) or not username:
        errors["username"] = ["Обязательное поле."]
    if not isinstance(password, str) or not password:
        errors["password"] = ["Обязательное поле."]
    if "username" not in errors and len(username) > USERNAME_MAX:
        # No account can have it, and the database refuses it in a filter.
        errors["username"] = [f"Убедитесь, что это значение содержит не более {USERNAME_MAX} символов."]
    if errors:
        raise ValidationFailed(errors)
    record = await LoginFailure.filter(username=username[:150]).first()
    if record:
        wait = _delay_for(record.failures)
        ready_at = record.last_failure_at + timedelta(seconds=wait)
        remaining = (ready_at - datetime.now(UTC)).total_seconds()
        if remaining > 0:
            raise Throttled("Слишком много неудачных попыток входа. Попробуйте позже.", int(remaining) + 1)
    user = await User.filter(username=username).first()
    ok = bool(user and user.is_active and user.password and
              await asyncio.to_thread(verify_password, password, user.password))
    if not ok:
        async with in_transaction() as conn:
            updated = await LoginFailure.filter(username=username[:150]).using_db(conn).update(
                failures=(record.failures + 1) if record else 1,
                last_failure_at=datetime.now(UTC),
            )
            if not updated:
                try:
                    await LoginFailure.create(username=username[:150], failures=1, using_db=conn)
                except IntegrityError:
                    pass
            await audit.record(
                "login_failed", user, actor_name=username[:150],
                details={"username": username[:150]}, using_db=conn,
            )
        raise ValidationFailed(
            {"non_field_errors": ["Невозможно войти с предоставленными учетными данными."]}
        )
    if record:
        await LoginFailure.filter(username=username[:150]).delete()
    await audit.record("login", user, target=("user", user.id))
    return user


async def require_user(key: str | None) -> User:
    user = await user_for_token(key or "")
    if user is None:
        raise NotAuthenticated("Недопустимый токен.")
    return user


async def link_telegram(
    actor: User, username: str, telegram_id: int, telegram_username: str | None = None
) -> User:
    """Director links a Telegram account to a staff (or any) account, without SQL.
    A Telegram id already linked elsewhere is moved to the new account."""
    require_director(actor)
    user = await User.filter(username=username).first()
    if user is None:
        raise NotFound(f"Пользователь {username} не найден")
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
    (its requests stay its own). Returns (the linked user, the account it was moved from).
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


async def customer_for_email(email: str, name: str, language: str | None = None) -> User:
    """The web form's customer: an existing customer account with this email, or a new one."""
    email = email.strip().lower()
    user = await User.filter(email=email, role=Role.customer).first()
    if user:
        return user
    first, _, last = name.strip().partition(" ")
    base = re.sub(r"[^\w.@+-]", "", email)[:140] or "web"
    username = base
    for n in range(1, 1000):
        try:
            return await User.create(
                username=username,
                email=email,
                first_name=first[:150],
                last_name=last[:150],
                role=Role.customer,
                language=language if language in ("ru", "en") else runtime.settings().language,
            )
        except IntegrityError:
            username = f"{base}-{n}"
    raise ValidationFailed({"email": ["Не удалось создать пользователя"]})


async def set_language(user: User, language: str) -> User:
    """Store the user's language (`ru` or `en`); ValidationFailed for anything else."""
    if language not in ("ru", "en"):
        raise ValidationFailed({"language": [f"Значения {language} нет среди допустимых вариантов."]})
    await User.filter(id=user.id).update(language=language)
    user.language = language
    return user


async def set_active_request(user: User, request_id: int | None) -> User:
    """Make `request_id` the request a Telegram customer's plain messages continue.

    Only a request the user may see (their own, for a customer); NotFound otherwise.
    `None` clears it.
    """
    if request_id is not None:
        from core.requests import get_request

        await get_request(user, request_id)
    await User.filter(id=user.id).update(active_request_id=request_id)
    user.active_request_id = request_id
    return user


async def list_staff() -> list[User]:
    """Active admins and directors, by name (assignee choices: filters, reassignment)."""
    people = await User.filter(role__in=[Role.admin, Role.director], is_active=True)
    return sorted(people, key=lambda u: (u.full_name.lower(), u.id))
