"""WebSocket routes and the hub that fans bus events out to connected clients.

Routes (see docs/realtime.md for the full protocol):
- `/ws/admin/notifications/`: admins and directors; `new_request`, `request_updated`,
  `new_message`, `message_updated`, `message_deleted` frames with the REST JSON in `data`; `{"type": "ping"}` -> `{"type": "pong"}`.
  A token, or the staff console's session cookie with this site's Origin (docs/console.md).
- `/ws/chats/<chat_id>/`: chat participants; `{"message": "text"}` is saved through
  core.chats.post_chat_message and every participant (on any process) gets the seed's
  `{"type": "message", "message", "sender", "sender_id", "timestamp", ...}` frame.
- `/ws/public/requests/<access_key>/`: the customer's request page; the access key is the
  credential; only that request's public messages and its status changes.

Every event frame carries `event_id`; `?last_event_id=N` or `{"type": "resume",
"last_event_id": N}` replays what was missed from the outbox before live events, without
duplicates. Each connection has a bounded send queue: a client that falls that far behind is
disconnected with 4408 and never slows anyone else down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import Any

import orjson
from sanic import Blueprint, Request, Sanic
from websockets.protocol import State

from api.client_address import client_address
from api.http import (
    MAX_BIG_ID,
    NUL_NOT_ALLOWED,
    int_from_text,
    is_row_id,
    refused_value,
    token_from,
)
from api.outage import CLOSE_TRY_AGAIN
from core import events, i18n, metrics
from core.bus import EventsRuntime, start_events
from core.errors import DomainError, NotFound, PermissionDenied, ValidationFailed
from core.permissions import is_staff
from core.ratelimit import DEFAULT_PREFIX, MemoryRateLimiter, RateLimiter, build_rate_limiter
from core.security import is_access_key
from core.serializers import (
    customer_attachment_data,
    customer_message_data,
    customer_request_data,
)
from core.shutdown import guarded
from core.texts import t
from core.users import TokenOwner, token_expired, token_owner
from db.models import (
    AdminChat,
    AuthToken,
    CustomerRequest,
    Event,
    RequestAttachment,
    RequestMessage,
    Source,
    User,
)

log = logging.getLogger("helpdesk.ws")
# DEBUG on this logger records how long each admin fan-out took (bench/ws_bench.py reads it).
fanout_log = logging.getLogger("helpdesk.ws.fanout")

# Close codes (documented in docs/realtime.md).
CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_BAD_REQUEST = 4400  # bad query parameter (e.g. last_event_id not a number)
CLOSE_UNAUTHENTICATED = 4401  # no token or an invalid one
CLOSE_FORBIDDEN = 4403  # not staff, or not a participant of the chat
CLOSE_NOT_FOUND = 4404  # unknown (or inactive) chat, unknown access key
CLOSE_SLOW_CONSUMER = 4408  # the client did not read fast enough; its send queue overflowed
# Abuse limits (settings WS_*; docs/deploy.md "Abuse limits"). A frame over
# WS_MAX_FRAME_BYTES is closed by the websockets library itself with 1009 (message too big).
CLOSE_RATE_LIMITED = 4429  # too many frames, resumes or sockets; the reason says which

SEND_QUEUE_MAX = 256  # frames waiting for one client
REPLAY_MAX = 1000  # events replayed on resume; beyond it the client must reload
REPLAY_SCAN_MAX = 20_000  # outbox rows scanned for a staff replay
# A customer page's replay filters the admin log in Python: scanning 20,000 rows cost ~0.5 s
# of server work per resume frame. Past this many rows the page is told to reload over REST
# (indexed and cheap) instead; a full bounded scan costs ~35 ms (tests/test_abuse_limits_ws.py).
PUBLIC_REPLAY_SCAN_MAX = 500
FANOUT_SLICE = 500  # sockets written between two yields to the event loop
_OPEN = State.OPEN
MESSAGE_TYPES = (events.NEW_MESSAGE, events.MESSAGE_UPDATED, events.MESSAGE_DELETED)
ADMIN_TYPES = (events.NEW_REQUEST, events.REQUEST_UPDATED, *MESSAGE_TYPES)
PUBLIC_TYPES = (events.REQUEST_UPDATED, *MESSAGE_TYPES)
CHAT_EVENT_NAMES = {events.CHAT_JOIN: "join", events.CHAT_LEAVE: "leave"}


def dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# --- frames ----------------------------------------------------------------------------------


def admin_frame(message: dict[str, Any], lang: str | None = None) -> dict[str, Any] | None:
    """The seed's AdminNotificationConsumer frame: the REST JSON of the change in `data`;
    a system message's text in `lang`, the reader's language (core.i18n.EVENT_FIELD)."""
    if message.get("topic") != events.ADMIN_TOPIC or message.get("type") not in ADMIN_TYPES:
        return None
    data = message["data"]
    if isinstance(data, dict) and i18n.EVENT_FIELD in data:
        text = i18n.from_json(data[i18n.EVENT_FIELD])
        data = {k: v for k, v in data.items() if k != i18n.EVENT_FIELD}
        if text is not None and lang:
            data["content"] = text.in_language(lang)
    return {"type": message["type"], "data": data, "event_id": message["id"]}


def _reader_language(conn: Connection) -> str:
    return i18n.lang_of(conn.user.language if conn.user is not None else None)


def chat_ws_frame(message: dict[str, Any]) -> dict[str, Any] | None:
    """The seed's ChatConsumer frame (core.serializers.chat_frame); join/leave say so in
    `event` and arrive as system messages."""
    if message.get("type") not in (events.CHAT_MESSAGE, *CHAT_EVENT_NAMES):
        return None
    frame = {k: v for k, v in message["data"].items() if k not in ("data", "source")}
    if message["type"] in CHAT_EVENT_NAMES:
        frame["event"] = CHAT_EVENT_NAMES[message["type"]]
    frame["event_id"] = message["id"]
    return frame


def _public_target(message: dict[str, Any], request_id: int) -> tuple[str, int] | None:
    """("request", id), ("deleted", id), ("message", id) or ("message_deleted", id) when the
    customer page of `request_id` is told of this event; None otherwise (other requests,
    internal notes, other topics)."""
    if message.get("topic") != events.ADMIN_TOPIC:
        return None
    data = message.get("data") or {}
    if message.get("type") == events.REQUEST_UPDATED and data.get("id") == request_id:
        return ("deleted" if data.get("deleted") else "request", request_id)
    if (
        message.get("type") in MESSAGE_TYPES
        and data.get("request") == request_id
        and not data.get("is_internal")
        and isinstance(data.get("id"), int)
    ):
        # new_message, message_updated (core.message_edits) and message_deleted alike;
        # internal notes (and their edits) never reach the customer's page.
        if message.get("type") == events.MESSAGE_DELETED:
            return ("message_deleted", data["id"])
        return ("message", data["id"])
    return None


async def public_frames(
    messages: list[dict[str, Any]], request_id: int, access_key: str
) -> list[tuple[int, dict[str, Any]]]:
    """The customer page's frames for `messages` (event ids and frames, in order).

    Built with the customer-facing serializer (core.serializers.customer_request_data /
    customer_message_data) from the database, never from the staff JSON the events carry:
    no staff e-mail, username or tags, and `messages_count` counting what the customer
    can see. At most four queries for any number of events (a replay batch or one live
    event). A message deleted (or made internal) since is left out; a `message_deleted`
    frame carries only the message's id and request (`is_deleted`), never its text."""
    targets = [(m, t) for m in messages if (t := _public_target(m, request_id)) is not None]
    if not targets:
        return []
    message_ids = [ident for _, (kind, ident) in targets if kind == "message"]
    deleted_ids = [ident for _, (kind, ident) in targets if kind == "message_deleted"]
    req_view = None
    if any(kind == "request" for _, (kind, _) in targets):
        req = await CustomerRequest.filter(id=request_id).select_related("assigned_admin").first()
        req_view = customer_request_data(req) if req is not None else None
    views: dict[int, dict[str, Any]] = {}
    gone_views: dict[int, dict[str, Any]] = {}
    if deleted_ids:  # a public message's deletion (core.message_edits): no text, no sender
        gone = await RequestMessage.filter(
            id__in=deleted_ids, request_id=request_id, is_internal=False, is_deleted=True
        ).values_list("id", flat=True)
        gone_views = {i: {"id": i, "request": request_id, "is_deleted": True} for i in gone}
    if message_ids:
        rows = await RequestMessage.filter(
            id__in=message_ids, request_id=request_id, is_internal=False, is_deleted=False
        ).select_related("sender")
        files: dict[int, list[dict[str, Any]]] = {}
        for att in await RequestAttachment.filter(message_id__in=message_ids).order_by("id"):
            url = f"/api/public/requests/{access_key}/attachments/{att.id}/"
            files.setdefault(att.message_id, []).append(customer_attachment_data(att, url))
        views = {m.id: customer_message_data(m, attachments=files.get(m.id, [])) for m in rows}
    out: list[tuple[int, dict[str, Any]]] = []
    for message, (kind, ident) in targets:
        if kind == "deleted":
            data: dict[str, Any] | None = {"id": request_id, "deleted": True}
        elif kind == "request":
            data = req_view
        elif kind == "message_deleted":
            data = gone_views.get(ident)
        else:
            data = views.get(ident)
        if data is not None:
            out.append((message["id"], {"type": message["type"], "data": data,
                                        "event_id": message["id"]}))
    return out


def error_frame(code: str, detail: Any) -> str:
    return dumps({"type": "error", "code": code, "detail": detail})


# --- one connection --------------------------------------------------------------------------


class Connection:
    """A client socket with a bounded queue and its own writer task."""

    def __init__(
        self,
        ws: Any,
        kind: str,
        key: int | None,
        user: User | None,
        queue_max: int = SEND_QUEUE_MAX,
    ) -> None:
        self.ws = ws
        self.kind = kind  # "admin" | "chat" | "public"
        self.key = key  # chat id or request id
        self.user = user
        self.access_key = ""  # a customer page's key (its attachment links use it)
        self.token_id: int | None = None  # the API token it authenticated with
        self.auth_seq = 0  # the hub's access-change count when it authenticated
        self.queue: asyncio.Queue[tuple[int | None, str]] = asyncio.Queue(queue_max)
        self.live = asyncio.Event()  # cleared while a replay is being sent
        self.live.set()
        self.closed = False
        self._close_started = False
        self._busy = False  # the writer holds a frame it has not finished sending
        # Ids sent by the last replay: the live frames queued meanwhile skip them. Kept for a
        # minute (an event replayed from the table may still be on its way through the bus),
        # then dropped, so an idle socket costs no per-event memory.
        self._replayed: set[int] = set()
        self._replayed_until = 0.0
        self._writer: asyncio.Task[None] | None = None
        self._frames: collections.deque[float] = collections.deque()

    def frame_allowed(self, limit: int, window: float) -> bool:
        """Count one frame from the client; False once it sent more than `limit` frames
        within `window` seconds (a sliding window, kept per connection)."""
        now = time.monotonic()
        frames = self._frames
        while frames and frames[0] <= now - window:
            frames.popleft()
        if len(frames) >= limit:
            return False
        frames.append(now)
        return True

    def already_replayed(self, event_id: int | None) -> bool:
        """True for a live frame whose event the last replay already sent."""
        if not self._replayed or event_id is None:
            return False
        if asyncio.get_running_loop().time() > self._replayed_until:
            self._replayed = set()
            return False
        return event_id in self._replayed

    def offer(self, event_id: int | None, text: str) -> None:
        """Queue a frame without waiting; a full queue disconnects this client (4408)."""
        if self.closed:
            return
        if (
            not self._busy
            and self.queue.empty()
            and self.live.is_set()
            and self._write_now(event_id, text)
        ):
            return
        try:
            self.queue.put_nowait((event_id, text))
        except asyncio.QueueFull:
            log.warning(
                "ws: %s client too slow (%d frames queued); disconnecting",
                self.kind,
                self.queue.qsize(),
            )
            self.closed = True  # no more frames, and only one close task
            asyncio.create_task(self.close(CLOSE_SLOW_CONSUMER, "send queue overflow"))

    def _write_now(self, event_id: int | None, text: str) -> bool:
        """Fast path for fan-out: when nothing is queued or being sent and the socket is
        writable, hand the frame to the transport right here (no task switch per client).
        False means "use the queue"; only Sanic's own send path is used then."""
        ws = self.ws
        try:
            io = ws.io_proto
            if (
                ws.conn_mutex.locked()
                or ws.ws_proto.state is not _OPEN
                or io is None
                or io.transport is None
                or io.transport.is_closing()
                or not io._can_write.is_set()
            ):
                return False
            if self.already_replayed(event_id):
                return True
            ws.ws_proto.send_text(text.encode())
            for chunk in ws.ws_proto.data_to_send():
                if chunk:
                    io.transport.write(chunk)
            return True
        except AttributeError:  # a Sanic without these internals: the queue still works
            return False

    def start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while True:
            event_id, text = await self.queue.get()
            self._busy = True
            await self.live.wait()
            if not self.already_replayed(event_id):
                await self.ws.send(text)
            self._busy = self.queue.qsize() > 0

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def close(self, code: int, reason: str = "") -> None:
        if self._close_started:
            return
        self._close_started = True
        self.closed = True
        if self._writer is not None:
            self._writer.cancel()
        if code == CLOSE_SLOW_CONSUMER:
            # Its socket buffers are full: a polite close would wait behind them. Queue the
            # close frame after what is buffered and let the connection go.
            with contextlib.suppress(Exception):
                self.ws.fail_connection(code, reason)
            return
        try:
            await asyncio.wait_for(self.ws.close(code, reason), timeout=1.0)
        except Exception:
            # The client is not reading: the close frame cannot go out. Drop the TCP link.
            with contextlib.suppress(Exception):
                self.ws.fail_connection(code, reason)

    async def stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer


# --- the hub ---------------------------------------------------------------------------------


class Hub:
    """This process's connected clients, grouped for fan-out."""

    def __init__(
        self,
        queue_max: int = SEND_QUEUE_MAX,
        frame_rate: tuple[int, int] = (20, 10),
        public_per_address: int = 30,
    ) -> None:
        self.queue_max = queue_max
        self.frame_rate = frame_rate  # frames per seconds, per connection
        self.public_per_address = public_per_address
        self.public_addresses: dict[str, int] = {}  # open public sockets per client address
        self.refusal_log = MemoryRateLimiter(1, 60.0)  # one log line per client a minute
        self.resume_limiter: RateLimiter | None = None  # per public access key, see _serve
        self.admin: set[Connection] = set()
        self.chats: dict[int, set[Connection]] = {}
        self.public: dict[int, set[Connection]] = {}
        # Staff sockets per user, and the access changes seen (see on_access_change).
        self.by_user: dict[int, set[Connection]] = {}
        self.access_seq = 0
        self.user_changed: dict[int, int] = {}  # user id -> access_seq of its last change
        self.chat_changed: dict[int, int] = {}  # chat id -> access_seq of its last closing
        self._closing: set[asyncio.Task[None]] = set()

    def _group(self, conn: Connection) -> set[Connection]:
        if conn.kind == "admin":
            return self.admin
        groups = self.chats if conn.kind == "chat" else self.public
        return groups.setdefault(conn.key or 0, set())

    def add(self, conn: Connection) -> None:
        self._group(conn).add(conn)
        if conn.user is not None:
            self.by_user.setdefault(conn.user.id, set()).add(conn)
        metrics.ws_opened(conn.kind)

    def remove(self, conn: Connection) -> None:
        if conn.user is not None:
            mine = self.by_user.get(conn.user.id)
            if mine is not None:
                mine.discard(conn)
                if not mine:
                    del self.by_user[conn.user.id]
        group = self._group(conn)
        if conn in group:
            metrics.ws_closed(conn.kind)
        group.discard(conn)
        if not group and conn.kind != "admin":
            (self.chats if conn.kind == "chat" else self.public).pop(conn.key or 0, None)

    @property
    def connections(self) -> int:
        return (
            len(self.admin)
            + sum(map(len, self.chats.values()))
            + sum(map(len, self.public.values()))
        )

    async def on_event(self, message: dict[str, Any]) -> None:
        """Bus subscriber: serialize each frame once, queue it for every interested client."""
        topic = message.get("topic") or ""
        event_id = message.get("id")
        if topic == events.ADMIN_TOPIC:
            if self.admin and (frame := admin_frame(message)):
                started = time.perf_counter()
                if i18n.EVENT_FIELD in (message.get("data") or {}):
                    # A system message: one frame per reader language.
                    readers: dict[str, list[Connection]] = {}
                    for conn in self.admin:
                        readers.setdefault(_reader_language(conn), []).append(conn)
                    for lang, conns in readers.items():
                        await self._fan_out(conns, event_id, dumps(admin_frame(message, lang)))
                else:
                    await self._fan_out(list(self.admin), event_id, dumps(frame))
                if fanout_log.isEnabledFor(logging.DEBUG):
                    fanout_log.debug(
                        "fan-out event=%s sockets=%d ms=%.2f",
                        event_id,
                        len(self.admin),
                        (time.perf_counter() - started) * 1000,
                    )
            data = message.get("data") or {}
            request_id = (
                data.get("request") if message.get("type") in MESSAGE_TYPES else data.get("id")
            )
            conns = self.public.get(request_id) if isinstance(request_id, int) else None
            if conns:
                key = next(iter(conns)).access_key
                try:
                    frames = await public_frames([message], request_id, key)
                except Exception as exc:  # the database is away: the page's poll catches up
                    log.warning("ws: customer page frame for request %s skipped: %s",
                                request_id, type(exc).__name__)
                    frames = []
                for _, frame in frames:
                    text = dumps(frame)
                    for conn in list(conns):
                        conn.offer(event_id, text)
        elif topic == events.ACCESS_TOPIC and message.get("type") == events.USER_ACCESS:
            await self.on_access_change(message.get("data") or {})
        elif topic.startswith("chat:"):
            try:
                chat_id = int(topic[5:])
            except ValueError:
                return
            conns = self.chats.get(chat_id)
            if conns and (frame := chat_ws_frame(message)):
                text = dumps(frame)
                for conn in list(conns):
                    conn.offer(event_id, text)

    async def on_access_change(self, data: dict[str, Any]) -> None:
        """What a user may see changed (deactivated, role changed, token revoked, left or
        removed from a chat, a chat closed): re-check that user's sockets here (and, for a
        closed chat, every socket on it) against the database and close the ones no longer
        allowed: 4401 (token revoked or expired, user inactive), 4403 (no longer staff, not
        a participant), 4404 (chat inactive). The event reaches every process's hub
        through the bus, so this holds on every process within the relay's delay."""
        self.access_seq += 1
        user_id, chat_id = data.get("user_id"), data.get("chat_id")
        conns: set[Connection] = set()
        if isinstance(user_id, int):
            self.user_changed[user_id] = self.access_seq
            conns |= self.by_user.get(user_id, set())
        if isinstance(chat_id, int) and data.get("reason") == "chat_closed":
            self.chat_changed[chat_id] = self.access_seq
            conns |= self.chats.get(chat_id, set())
        if conns:
            await self.recheck(list(conns))

    def changed_since(self, conn: Connection) -> bool:
        """Whether an access change that may concern `conn` arrived after it authenticated
        (it was not registered yet, so on_access_change could not see it)."""
        seq = conn.auth_seq
        if conn.user is not None and self.user_changed.get(conn.user.id, 0) > seq:
            return True
        return conn.kind == "chat" and self.chat_changed.get(conn.key or 0, 0) > seq

    async def recheck(self, conns: list[Connection]) -> None:
        """Close each of `conns` whose authentication or permission no longer holds."""
        for conn in conns:
            if conn.closed or conn.user is None:
                continue
            try:
                verdict = await _still_allowed(conn)
            except Exception as exc:  # the database is away: closing is the safe side
                log.warning("ws: could not re-check a %s socket of user %s (%s); closing it",
                            conn.kind, conn.user.id, type(exc).__name__)
                verdict = (CLOSE_TRY_AGAIN, "try again later")
            if verdict is not None:
                code, reason = verdict
                log.info("ws: %s socket of user %s closed %s: %s", conn.kind, conn.user.id,
                         code, reason)
                conn.closed = True
                task = asyncio.create_task(conn.close(code, reason))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _fan_out(conns: list[Connection], event_id: int | None, text: str) -> None:
        # Writing to a socket costs a syscall (~30-60 us on loopback); let the event loop
        # breathe between slices so a 5,000-socket fan-out does not stall REST requests.
        for start in range(0, len(conns), FANOUT_SLICE):
            if start:
                await asyncio.sleep(0)
            for conn in conns[start : start + FANOUT_SLICE]:
                conn.offer(event_id, text)

    async def close_all(self, code: int = CLOSE_GOING_AWAY) -> None:
        conns = (
            list(self.admin)
            + [c for g in self.chats.values() for c in g]
            + [c for g in self.public.values() for c in g]
        )
        await asyncio.gather(
            *(c.close(code, "server shutting down") for c in conns), return_exceptions=True
        )


async def _still_allowed(conn: Connection) -> tuple[int, str] | None:
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


# --- replay (catch-up) -----------------------------------------------------------------------


def _replay_query(conn: Connection, after: int):
    if conn.kind == "admin":
        return Event.filter(topic=events.ADMIN_TOPIC, id__gt=after, type__in=ADMIN_TYPES)
    if conn.kind == "chat":
        return Event.filter(topic=events.chat_topic(conn.key or 0), id__gt=after)
    return Event.filter(topic=events.ADMIN_TOPIC, id__gt=after, type__in=PUBLIC_TYPES)


async def _frames_for(
    conn: Connection, messages: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    if conn.kind == "public":
        return await public_frames(messages, conn.key or 0, conn.access_key)
    if conn.kind == "admin":
        lang = _reader_language(conn)
        return [(m["id"], f) for m in messages if (f := admin_frame(m, lang)) is not None]
    return [(m["id"], f) for m in messages if (f := chat_ws_frame(m)) is not None]


async def replay(conn: Connection, after: int) -> None:
    """Send the committed events after `after` that this client may see, oldest first, then
    let live frames flow again (those already replayed are skipped)."""
    conn.live.clear()
    replayed: set[int] = set()
    scan_max = PUBLIC_REPLAY_SCAN_MAX if conn.kind == "public" else REPLAY_SCAN_MAX
    try:
        sent = scanned = 0
        cursor = after
        while True:
            # Plain tuples, not model instances: a third of the cost per row.
            rows = await (
                _replay_query(conn, cursor)
                .order_by("id")
                .limit(500)
                .values_list("id", "type", "topic", "payload")
            )
            batch = []
            for event_id, type_, topic, payload in rows:
                cursor = event_id
                scanned += 1
                batch.append({"id": event_id, "type": type_, "topic": topic, "data": payload})
            for event_id, frame in await _frames_for(conn, batch):
                if sent >= REPLAY_MAX:
                    await conn.send(
                        dumps(
                            {
                                "type": "resync_required",
                                "detail": "Too many missed events; reload the data over REST.",
                            }
                        )
                    )
                    return
                await conn.send(dumps(frame))
                replayed.add(event_id)
                sent += 1
            if len(rows) < 500:
                return
            if scanned >= scan_max:
                # More is left than a replay may scan: the client reloads over REST.
                await conn.send(dumps({"type": "resync_required",
                                       "detail": "Too many missed events; reload the data over REST."}))
                return
    finally:
        conn._replayed = replayed
        conn._replayed_until = asyncio.get_running_loop().time() + 60.0
        conn.live.set()


# --- routes ----------------------------------------------------------------------------------


def _parse_last_event_id(value: Any) -> int | None:
    """None when absent; ValueError unless a non-negative integer an event id can be
    (the event log's id is a BIGINT: a larger value would fail in the database)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError
    number = int_from_text(value) if isinstance(value, str) else value
    if not isinstance(number, int) or not 0 <= number <= MAX_BIG_ID:
        raise ValueError
    return number


async def _authenticate(request: Request) -> TokenOwner | None:
    key = token_from(request, allow_query=True)
    if not key or len(key) > 128:
        return None
    return await token_owner(key)


async def _serve(request: Request, ws: Any, conn: Connection) -> None:
    """Common life of a connection: replay, live frames, and the client's frames."""
    hub: Hub = request.app.ctx.ws_hub
    try:
        last_event_id = _parse_last_event_id(request.args.get("last_event_id"))
    except ValueError:
        await ws.close(CLOSE_BAD_REQUEST, "last_event_id must be a non-negative integer")
        return
    if hub.resume_limiter is None:
        hub.resume_limiter = _build_resume_limiter(request.app)
    if last_event_id is not None and not await _resume_allowed(hub, conn):
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
                await _refuse(hub, conn, "frames", f"more than {limit} frames in {window} s")
                return
            await _handle_frame(conn, raw, hub)
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


def _build_resume_limiter(app: Sanic) -> RateLimiter:
    # Shared through Redis when the web channel has a client (REDIS_URL), else per process.
    settings = app.ctx.settings
    limit, window = settings.ws_resume_rate
    prefix = settings.extra.get("ratelimit_prefix", DEFAULT_PREFIX) + "ws-resume:"
    return build_rate_limiter(limit, getattr(app.ctx, "web_redis", None), prefix, float(window))


async def _resume_allowed(hub: Hub, conn: Connection) -> bool:
    """A replay on a customer page costs a scan of the event log: WS_RESUME_RATE per access
    key (all sockets of one request together). Over it the socket is closed with 4429."""
    if conn.kind != "public" or hub.resume_limiter is None:
        return True
    decision = await hub.resume_limiter.hit(str(conn.key))
    if decision.allowed:
        return True
    await _refuse(hub, conn, "resumes", f"too many resumes; retry in {decision.retry_after} s")
    return False


async def _refuse(hub: Hub, conn: Connection, what: str, reason: str) -> None:
    """Close with 4429 and log it (once a minute per client and kind of limit)."""
    who = f"{conn.kind}:{conn.key or (conn.user.id if conn.user else '')}"
    if (await hub.refusal_log.hit(f"{what}:{who}")).allowed:
        log.warning("ws: %s socket %s closed 4429: %s", conn.kind, who, reason)
    await conn.close(CLOSE_RATE_LIMITED, reason)


async def _handle_frame(conn: Connection, raw: str | bytes, hub: Hub | None = None) -> None:
    if isinstance(raw, (bytes, bytearray)):
        await conn.send(error_frame("invalid_frame", "Only JSON text frames are accepted."))
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        await conn.send(error_frame("invalid_json", "The frame is not valid JSON."))
        return
    if not isinstance(data, dict):
        await conn.send(error_frame("invalid_frame", "A frame must be a JSON object."))
        return
    kind = data.get("type")
    if kind == "ping":
        await conn.send(dumps({"type": "pong"}))
        return
    if kind == "resume":
        try:
            after = _parse_last_event_id(data.get("last_event_id"))
        except (TypeError, ValueError):
            after = None
        if after is None:
            await conn.send(
                error_frame("invalid_frame", "resume needs last_event_id, a non-negative integer.")
            )
            return
        if hub is not None and not await _resume_allowed(hub, conn):
            return
        await replay(conn, after)
        return
    if conn.kind == "chat" and kind in (None, "message") and "message" in data:
        await _post_chat_message(conn, data.get("message"))
        return
    expected = 'ping, resume or {"message": "..."}' if conn.kind == "chat" else "ping or resume"
    await conn.send(error_frame("unknown_type", f"Unknown frame; expected {expected}."))


async def _post_chat_message(conn: Connection, text: Any) -> None:
    from core.chats import post_chat_message

    assert conn.user is not None and conn.key is not None
    if not isinstance(text, str):
        await conn.send(error_frame("invalid", {"message": [t("err_not_string")]}))
        return
    if "\x00" in text:  # PostgreSQL cannot store it (the REST body check, api.http)
        await conn.send(error_frame("invalid", {"message": [NUL_NOT_ALLOWED]}))
        return
    try:
        # The hub broadcasts it (to the sender too) when the outbox relay publishes it.
        await post_chat_message(conn.user, conn.key, text, source=Source.web)
    except ValidationFailed as exc:
        errors = dict(exc.errors)
        if "content" in errors:
            errors["message"] = errors.pop("content")
        await conn.send(error_frame("invalid", errors))
    except PermissionDenied as exc:
        await conn.send(error_frame("forbidden", exc.message))
    except NotFound as exc:
        await conn.send(error_frame("not_found", exc.message))
    except DomainError as exc:
        await conn.send(error_frame("invalid", exc.message))


# How often a socket opened with a console session checks that the session still lives
# (sign-out, idle or age expiry, deactivation): it closes 4401 within this many seconds.
SESSION_CHECK_SECONDS = 15.0


async def _console_session(request: Request) -> Any:
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


async def _watch_session(conn: Connection, digest: str) -> None:
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


async def admin_notifications(request: Request, ws: Any) -> None:
    hub: Hub = request.app.ctx.ws_hub
    seq = hub.access_seq
    owner = await _authenticate(request)
    user = owner.user if owner is not None else None
    session = None
    if user is None and not token_from(request, allow_query=True):
        session = await _console_session(request)
        user = session.user if session is not None else None
    if user is None:
        await ws.close(CLOSE_UNAUTHENTICATED, "authentication required")
        return
    if not is_staff(user):
        await ws.close(CLOSE_FORBIDDEN, "admins and directors only")
        return
    conn = Connection(ws, "admin", None, user, hub.queue_max)
    conn.token_id, conn.auth_seq = (owner.token_id if owner is not None else None), seq
    watcher = asyncio.create_task(_watch_session(conn, session.digest)) if session else None
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
    owner = await _authenticate(request)
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
        await _refuse(hub, conn, "sockets", f"more than {hub.public_per_address} open sockets "
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
