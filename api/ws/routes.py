"""The three WebSocket routes, the common life of a connection, and install (the routes
plus the event runtime started and stopped with the server)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sanic import Request, Sanic

from api.blueprint import Blueprint
from api.client_address import client_address
from api.http import is_row_id, refused_value, token_from
from api.ws.access import authenticate, console_session, watch_session
from api.ws.connection import Connection
from api.ws.hub import Hub
from api.ws.inbound import handle_frame, parse_last_event_id
from api.ws.limits import build_resume_limiter, refuse, resume_allowed
from api.ws.protocol import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
    SEND_QUEUE_MAX,
    log,
)
from api.ws.replay import replay
from core.bus import EventsRuntime, start_events
from core.permissions import is_staff
from core.security import is_access_key
from core.shutdown import guarded
from db.models import AdminChat, CustomerRequest


async def _serve(request: Request, ws: Any, conn: Connection) -> None:
    """Common life of a connection: replay, live frames, and the client's frames."""
    hub: Hub = request.app.ctx.ws_hub
    try:
        last_event_id = parse_last_event_id(request.args.get("last_event_id"))
    except ValueError:
        await ws.close(CLOSE_BAD_REQUEST, "last_event_id must be a non-negative integer")
        return
    if hub.resume_limiter is None:
        hub.resume_limiter = build_resume_limiter(request.app)
    if last_event_id is not None and not await resume_allowed(hub, conn):
        return
    hub.add(conn)  # live events queue up from here on; the replay below fills the gap
    if conn.user is not None and hub.changed_since(conn):
        await hub.recheck([conn])  # its access changed while it was being authenticated
    try:
        if last_event_id is not None:
            await replay(conn, last_event_id)
        conn.start_writer()
        limit, window = hub.frame_rate
        while not conn.closed:
            raw = await ws.recv()
            if raw is None:
                continue
            if not conn.frame_allowed(limit, window):
                await refuse(hub, conn, "frames", f"more than {limit} frames in {window} s")
                return
            await handle_frame(conn, raw, hub)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # closed by the client, or the network went away
        if refused_value(exc) is not None:
            # A value from the client the database refused (the net of api.app, for sockets).
            log.warning("ws: input refused by the database: %s", type(refused_value(exc)).__name__)
            await conn.close(CLOSE_BAD_REQUEST, "invalid input")
        elif not _is_closed_error(exc):
            log.exception("ws: connection failed")
    finally:
        hub.remove(conn)
        conn.closed = True
        await conn.stop_writer()


def _is_closed_error(exc: Exception) -> bool:
    from sanic.exceptions import WebsocketClosed
    from websockets.exceptions import ConnectionClosed

    return isinstance(exc, (ConnectionClosed, WebsocketClosed, ConnectionError))


async def admin_notifications(request: Request, ws: Any) -> None:
    hub: Hub = request.app.ctx.ws_hub
    seq = hub.access_seq
    owner = await authenticate(request)
    user = owner.user if owner is not None else None
    session = None
    if user is None and not token_from(request, allow_query=True):
        session = await console_session(request)
        user = session.user if session is not None else None
    if user is None:
        await ws.close(CLOSE_UNAUTHENTICATED, "authentication required")
        return
    if not is_staff(user):
        await ws.close(CLOSE_FORBIDDEN, "admins and directors only")
        return
    conn = Connection(ws, "admin", None, user, hub.queue_max)
    conn.token_id, conn.auth_seq = (owner.token_id if owner is not None else None), seq
    watcher = asyncio.create_task(watch_session(conn, session.digest)) if session else None
    try:
        await _serve(request, ws, conn)
    finally:
        if watcher is not None:
            watcher.cancel()


async def chat_socket(request: Request, ws: Any, chat_id: int) -> None:
    if not is_row_id(chat_id):  # no chat can have it (and the database would refuse it)
        await ws.close(CLOSE_NOT_FOUND, "unknown chat")
        return
    hub: Hub = request.app.ctx.ws_hub
    seq = hub.access_seq
    owner = await authenticate(request)
    if owner is None:
        await ws.close(CLOSE_UNAUTHENTICATED, "authentication required")
        return
    user = owner.user
    if not is_staff(user):
        await ws.close(CLOSE_FORBIDDEN, "admins and directors only")
        return
    chat = await AdminChat.filter(id=chat_id, is_active=True).first()
    if chat is None:
        await ws.close(CLOSE_NOT_FOUND, "unknown chat")
        return
    if not await AdminChat.filter(id=chat.id, participants__id=user.id).exists():
        await ws.close(CLOSE_FORBIDDEN, "not a participant of this chat")
        return
    conn = Connection(ws, "chat", chat.id, user, hub.queue_max)
    conn.token_id, conn.auth_seq = owner.token_id, seq
    await _serve(request, ws, conn)


async def public_request_socket(request: Request, ws: Any, access_key: str) -> None:
    req = None
    if is_access_key(access_key):  # checked before any query
        req = await CustomerRequest.filter(access_key=access_key).only("id").first()
    if req is None:
        await ws.close(CLOSE_NOT_FOUND, "unknown request")
        return
    hub: Hub = request.app.ctx.ws_hub
    conn = Connection(ws, "public", req.id, None, hub.queue_max)
    conn.access_key = access_key
    # Open customer-page sockets per client address (this process): each costs memory and a
    # place in every fan-out, and anyone can open them.
    address = client_address(request)
    if hub.public_addresses.get(address, 0) >= hub.public_per_address:
        await refuse(hub, conn, "sockets", f"more than {hub.public_per_address} open sockets "
                      "from one address")
        return
    hub.public_addresses[address] = hub.public_addresses.get(address, 0) + 1
    try:
        await _serve(request, ws, conn)
    finally:
        left = hub.public_addresses.get(address, 1) - 1
        if left > 0:
            hub.public_addresses[address] = left
        else:
            hub.public_addresses.pop(address, None)


def get_blueprint() -> Blueprint:
    bp = Blueprint("realtime")
    bp.add_websocket_route(admin_notifications, "/ws/admin/notifications/")
    bp.add_websocket_route(chat_socket, "/ws/chats/<chat_id:int>/")
    bp.add_websocket_route(public_request_socket, "/ws/public/requests/<access_key:str>/")
    return bp


def install(app: Sanic) -> None:
    """Register the WebSocket routes and start/stop the event runtime with the server."""
    settings = app.ctx.settings
    app.config.WEBSOCKET_MAX_SIZE = settings.ws_max_frame_bytes  # larger: closed with 1009
    app.ctx.ws_hub = Hub(
        int(settings.extra.get("ws_send_queue", SEND_QUEUE_MAX)),
        frame_rate=settings.ws_frame_rate,
        public_per_address=settings.ws_public_sockets_per_client,
    )
    app.blueprint(get_blueprint())

    @app.before_server_start
    async def start(app: Sanic) -> None:
        runtime: EventsRuntime = await start_events(app.ctx.settings)
        app.ctx.events_runtime = runtime
        app.ctx.ws_unsubscribe = runtime.bus.subscribe(app.ctx.ws_hub.on_event)

    @app.before_server_stop
    async def say_goodbye(app: Sanic) -> None:
        # 1001 "going away" before Sanic drops the sockets: clients reconnect with last_event_id.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.ctx.ws_hub.close_all(), timeout=3.0)

    @app.after_server_stop
    @guarded
    async def stop(app: Sanic) -> None:
        unsubscribe = getattr(app.ctx, "ws_unsubscribe", None)
        if unsubscribe:
            unsubscribe()
        runtime = getattr(app.ctx, "events_runtime", None)
        if runtime is not None:
            await runtime.stop()
