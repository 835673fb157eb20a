"""The hub: this process's connected sockets, grouped for fan-out of bus events, and the
access changes that make it re-check sockets (api.ws.access.still_allowed)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from api.outage import CLOSE_TRY_AGAIN
from api.ws.access import still_allowed
from api.ws.connection import Connection
from api.ws.frames import admin_frame, chat_ws_frame, public_frames, reader_language
from api.ws.protocol import (
    CLOSE_GOING_AWAY,
    FANOUT_SLICE,
    MESSAGE_TYPES,
    SEND_QUEUE_MAX,
    dumps,
    fanout_log,
    log,
)
from core import events, i18n, metrics
from core.ratelimit import MemoryRateLimiter, RateLimiter


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
                        readers.setdefault(reader_language(conn), []).append(conn)
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
                verdict = await still_allowed(conn)
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
