"""The WebSocket protocol's constants: close codes (docs/realtime.md), bounds, the event
types each route carries, and how a frame is written."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from websockets.protocol import State

from core import events

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


def error_frame(code: str, detail: Any) -> str:
    return dumps({"type": "error", "code": code, "detail": detail})
