"""One client socket: its bounded send queue, its writer task, the fast write path used by
fan-out, its frame-rate window and its close (4408 for a client that fell too far behind)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

from api.ws.protocol import _OPEN, CLOSE_SLOW_CONSUMER, SEND_QUEUE_MAX, log
from db.models import User


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
