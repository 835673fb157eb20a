"""Who is the client? The address every per-client limit counts by.

Without a proxy the client is the socket's peer. `X-Forwarded-For` is believed only when
the peer itself is a trusted proxy (`TRUSTED_PROXIES`, addresses or networks): then the
header is read from the right, skipping addresses of trusted proxies, and the first other
address is the client (the one our own proxy appended; what the client wrote further left
is ignored).

Sanic's own `SANIC_PROXIES_COUNT` / `SANIC_REAL_IP_HEADER` trust the header whoever sends
it: with `SANIC_PROXIES_COUNT=1` and port 8000 reachable directly, a client could name any
address it liked and reset its limits. So limits never use `request.remote_addr`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_FORWARDED_HOPS = 20  # a longer header is someone's attempt at making us work


@lru_cache(maxsize=8)
def trusted_networks(trusted: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in trusted)


@lru_cache(maxsize=4096)  # every request parses its peer: 2% of a write's CPU uncached
def _parse(value: str) -> IPAddress | None:
    value = value.strip().strip('"')
    if value.startswith("["):  # [v6] or [v6]:port
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress | None, networks: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in net for net in networks)


def resolve_client(peer: str, forwarded_for: list[str], trusted: tuple[str, ...]) -> str:
    """The client's address given the socket peer, the X-Forwarded-For header values (in
    order) and the trusted proxies."""
    networks = trusted_networks(trusted)
    peer_address = _parse(peer)
    if not networks or not _is_trusted(peer_address, networks):
        return str(peer_address) if peer_address is not None else (peer or "unknown")
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    client = str(peer_address)
    for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
        address = _parse(hop)
        if address is None:
            # Garbage where our proxy should have written an address: count the proxy.
            return client
        client = str(address)
        if not _is_trusted(address, networks):
            return client
    return client


def client_address(request: Any) -> str:
    """The address per-client limits count for this Sanic request (or WebSocket)."""
    trusted = request.app.ctx.settings.trusted_proxies
    forwarded = request.headers.getall("x-forwarded-for", []) if trusted else []
    return resolve_client(request.ip or "", forwarded, trusted)
