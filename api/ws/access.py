"""Who may hold a socket: authentication by token or by the staff console's session, the
session watch, and the re-check of a socket's token, user and chat after an access change."""

from __future__ import annotations

import asyncio
from typing import Any

from sanic import Request

from api.http import token_from
from api.ws.connection import Connection
from api.ws.protocol import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from core.permissions import is_staff
from core.users import TokenOwner, token_expired, token_owner
from db.models import AdminChat, AuthToken, User


async def authenticate(request: Request) -> TokenOwner | None:
    key = token_from(request, allow_query=True)
    if not key or len(key) > 128:
        return None
    return await token_owner(key)


async def still_allowed(conn: Connection) -> tuple[int, str] | None:
    """None if `conn` may stay open; else the close code and reason. Reads the token, the
    user and (for a chat socket) the chat and its participants as they are now."""
    assert conn.user is not None
    user = await User.filter(id=conn.user.id).first()
    if user is None or not user.is_active:
        return CLOSE_UNAUTHENTICATED, "account deactivated"
    if conn.token_id is not None:
        token = await AuthToken.filter(id=conn.token_id, user_id=user.id).first()
        if token is None or token_expired(token.created):
            return CLOSE_UNAUTHENTICATED, "token revoked"
    conn.user = user
    if not is_staff(user):
        return CLOSE_FORBIDDEN, "admins and directors only"
    if conn.kind == "chat":
        if not await AdminChat.filter(id=conn.key, is_active=True).exists():
            return CLOSE_NOT_FOUND, "chat closed"
        if not await AdminChat.filter(id=conn.key, participants__id=user.id).exists():
            return CLOSE_FORBIDDEN, "not a participant of this chat"
    return None


# How often a socket opened with a console session checks that the session still lives
# (sign-out, idle or age expiry, deactivation): it closes 4401 within this many seconds.
SESSION_CHECK_SECONDS = 15.0


async def console_session(request: Request) -> Any:
    """The staff console's session from its cookie, for a browser's socket without a token.

    Only when the handshake's Origin is this site's (api.console.session.origin_ok with
    an Origin required): browsers send the cookie with a WebSocket handshake to our host
    whoever opened it, and SameSite=Lax keeps it off cross-site handshakes, but "site" is
    wider than "origin" (a sibling subdomain is same-site). The session is not touched: a
    live queue left open does not keep its session alive."""
    from api.console.session import SESSION_COOKIE, origin_ok
    from core.console_sessions import session_for

    if not origin_ok(request, required=True):
        return None
    return await session_for(request.cookies.get(SESSION_COOKIE), touch=False)


async def watch_session(conn: Connection, digest: str) -> None:
    from core.console_sessions import session_alive

    while not conn.closed:
        await asyncio.sleep(SESSION_CHECK_SECONDS)
        try:
            alive = await session_alive(digest)
        except Exception:  # the database is away: keep the socket, check again later
            continue
        if not alive:
            await conn.close(CLOSE_UNAUTHENTICATED, "session ended")
            return
