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

The package, by concern:
- `protocol`: close codes, bounds, event types, frame encoding;
- `frames`: the frames each route sends for a bus event;
- `connection`: one socket, its bounded queue and writer;
- `hub`: this process's sockets and the fan-out, access-change re-checks;
- `access`: authentication (token, console session) and the permission re-check;
- `replay`: catch-up from the outbox after last_event_id;
- `limits`: resume rate and the 4429 close;
- `inbound`: frames from the client (ping, resume, chat message);
- `routes`: the three routes, a connection's life, `install`.
"""

from api.ws.protocol import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_GOING_AWAY,
    CLOSE_NOT_FOUND,
    CLOSE_RATE_LIMITED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNAUTHENTICATED,
    PUBLIC_REPLAY_SCAN_MAX,
)
from api.ws.routes import get_blueprint, install

__all__ = [
    "CLOSE_BAD_REQUEST",
    "CLOSE_FORBIDDEN",
    "CLOSE_GOING_AWAY",
    "CLOSE_NOT_FOUND",
    "CLOSE_RATE_LIMITED",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_UNAUTHENTICATED",
    "PUBLIC_REPLAY_SCAN_MAX",
    "get_blueprint",
    "install",
]
