"""Staff console sessions: who a browser is signed in as, and its CSRF token.

- `open_session` follows a successful password check (core.users.check_credentials, the
  one shared with `POST /api/auth/token/`, its throttling and its audit trail): staff
  only, a customer is refused with PermissionDenied and gets no session.
- The browser keeps a random id (256 bits) in a cookie; the database keeps only its
  SHA-256 digest, so reading the table (a backup, a leaked dump) signs nobody in.
- A session ends after CONSOLE_IDLE_MINUTES without a page or an action, and
  CONSOLE_MAX_HOURS after sign-in whatever happens; sign-out deletes it at once. A
  deactivated user, or one who is no longer staff, has no session: `session_for` checks
  the account on every call, so a role change applies on the next page.
- Each session has its own CSRF token (synchronizer pattern): every console form posts
  it and `check_csrf` compares it in constant time.
- `last_seen_at` is written at most once a minute per session (a page view is a read, and
  the idle clock does not need finer steps).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise.transactions import in_transaction

from core import audit, runtime
from core.errors import PermissionDenied
from core.permissions import is_staff
from core.texts import t
from db.models import ConsoleSession, User

TOUCH_EVERY = timedelta(minutes=1)
# What a cookie value can look like (secrets.token_urlsafe(32)): checked before hashing.
_COOKIE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _now() -> datetime:
    return datetime.now(UTC)


def digest_of(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class StaffSession:
    """A live session: its user (staff, active), CSRF token and the cookie's digest."""

    digest: str
    user: User
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


def idle_limit() -> timedelta:
    return timedelta(minutes=runtime.settings().console_idle_minutes)


def max_age() -> timedelta:
    return timedelta(hours=runtime.settings().console_max_hours)


def expired(created_at: datetime, last_seen_at: datetime, now: datetime | None = None) -> bool:
    """Whether a session with these times is over (idle too long, or too old)."""
    now = now or _now()
    return (
        _aware(last_seen_at) <= now - idle_limit() or _aware(created_at) <= now - max_age()
    )


async def open_session(user: User, client_address: str = "") -> tuple[str, StaffSession]:
    """A new session for `user` after their password was checked. Returns the cookie value
    (the only copy of it) and the session. PermissionDenied for anyone but active staff.
    A new id every time: an id planted in the browser before sign-in is never adopted."""
    if not is_staff(user):
        raise PermissionDenied(t("err_no_permission", user.language))
    value = secrets.token_urlsafe(32)
    now = _now()
    row = await ConsoleSession.create(
        digest=digest_of(value), user_id=user.id, csrf_token=new_csrf_token(),
        last_seen_at=now, client_address=(client_address or "")[:64],
    )
    return value, StaffSession(row.digest, user, row.csrf_token, row.created_at or now, now)


def _plausible(cookie_value: Any) -> bool:
    return (
        isinstance(cookie_value, str)
        and 20 <= len(cookie_value) <= 128
        and all(c in _COOKIE_CHARS for c in cookie_value)
    )


async def session_for(cookie_value: str | None, *, touch: bool = True) -> StaffSession | None:
    """The live session of this cookie, or None (unknown, malformed, expired, or its user
    deactivated or no longer staff; such a row is deleted). `touch` counts this call as
    activity for the idle clock (a page or an action; not a background refresh)."""
    if not _plausible(cookie_value):
        return None
    digest = digest_of(cookie_value)  # type: ignore[arg-type]
    row = await ConsoleSession.filter(digest=digest).select_related("user").first()
    if row is None:
        return None
    now = _now()
    if expired(row.created_at, row.last_seen_at, now) or not is_staff(row.user):
        await ConsoleSession.filter(digest=digest).delete()
        return None
    last_seen = _aware(row.last_seen_at)
    if touch and now - last_seen >= TOUCH_EVERY:
        await ConsoleSession.filter(digest=digest).update(last_seen_at=now)
        last_seen = now
    return StaffSession(digest, row.user, row.csrf_token, _aware(row.created_at), last_seen)


async def session_alive(digest: str) -> bool:
    """Whether the session with this digest still exists and has not expired (a socket
    opened with it checks this now and then)."""
    row = await ConsoleSession.filter(digest=digest).select_related("user").first()
    return bool(row and not expired(row.created_at, row.last_seen_at) and is_staff(row.user))


async def close_session(session: StaffSession) -> None:
    """Sign out: the session is deleted (its cookie signs nobody in from now on)."""
    async with in_transaction() as conn:
        await ConsoleSession.filter(digest=session.digest).using_db(conn).delete()
        await audit.record(
            "console_sign_out", session.user, target=("user", session.user.id), using_db=conn
        )


def check_csrf(session: StaffSession, submitted: Any) -> bool:
    """True when the form's token is this session's (constant-time comparison)."""
    return isinstance(submitted, str) and hmac.compare_digest(
        submitted.encode(), session.csrf_token.encode()
    )


async def set_flash(session: StaffSession, kind: str, text: str, **extra: Any) -> None:
    """Leave a notice for the session's next page (`kind` "ok" or "error")."""
    await ConsoleSession.filter(digest=session.digest).update(
        flash=orjson.dumps({"kind": kind, "text": text, **extra}).decode()
    )


async def pop_flash(session: StaffSession) -> dict[str, Any] | None:
    """The notice left for this page, removed as it is read (shown once)."""
    row = await ConsoleSession.filter(digest=session.digest).only("digest", "flash").first()
    if row is None or not row.flash:
        return None
    await ConsoleSession.filter(digest=session.digest).update(flash=None)
    try:
        data = orjson.loads(row.flash)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def prune_sessions(now: datetime | None = None) -> int:
    """Delete expired sessions (the scheduler's housekeeping). Returns how many."""
    now = now or _now()
    return await ConsoleSession.filter(
        last_seen_at__lte=now - idle_limit()
    ).delete() + await ConsoleSession.filter(created_at__lte=now - max_age()).delete()
