"""Marks every HTTP request with its channel for the history and the audit log
(core.origin): `web` for the customer pages, their JSON routes and the staff console,
`rest` for the rest."""

from __future__ import annotations

from sanic import Request, Sanic

from api.client_address import client_address
from core.origin import set_origin
from db.models import HistoryChannel

# The customer pages and the staff console: actions taken in a browser.
WEB_PREFIXES = ("/api/public/", "/r/", "/ws/public/", "/console")


def channel_of(path: str) -> HistoryChannel:
    if path == "/" or path.startswith(WEB_PREFIXES):
        return HistoryChannel.web
    return HistoryChannel.rest


def install(app: Sanic) -> None:
    @app.on_request(priority=100)
    async def mark_origin(request: Request) -> None:
        try:
            address = client_address(request)
        except Exception:  # an address we cannot read must not refuse the request
            address = ""
        set_origin(channel_of(request.path), address)
