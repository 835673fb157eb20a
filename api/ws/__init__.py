"""WebSocket routes and the hub (api.ws.routes)."""

from api.ws.routes import (
    CLOSE_BAD_REQUEST,
    CLOSE_FORBIDDEN,
    CLOSE_GOING_AWAY,
    CLOSE_NOT_FOUND,
    CLOSE_RATE_LIMITED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNAUTHENTICATED,
    PUBLIC_REPLAY_SCAN_MAX,
    get_blueprint,
    install,
)

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
