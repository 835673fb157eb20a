"""Which network addresses the desk may call on someone's behalf (webhook targets).

A webhook URL is chosen by a director, but the request is made by the server, from inside
its network: without a rule anyone who can add a webhook can make the desk probe its own
database, Redis or a cloud metadata service (SSRF). So a target is refused when its host
is, or resolves to, an address that is not globally routable: loopback, private
(RFC 1918, fc00::/7), link-local (169.254/16 with the metadata service, fe80::/10),
carrier-grade NAT, multicast, reserved or unspecified. `WEBHOOK_ALLOW_PRIVATE=1` lifts the
rule (tests, a receiver on the same private network).

The rule is checked when a subscription is saved and again at every send: `GuardedResolver`
refuses forbidden addresses at connection time, so a name that later resolves elsewhere
(DNS rebinding) is still refused, and what is checked is what is connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit


class TargetRefused(ValueError):
    """The URL may not be called (bad form, or a forbidden address). `code` names why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def forbidden_address(address: str) -> bool:
    """True for an IP address the desk must not call (anything not globally routable)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def split_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; TargetRefused for anything else."""
    if not isinstance(url, str) or len(url) > 2000 or any(c.isspace() for c in url):
        raise TargetRefused("invalid", "not a valid URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("invalid", "not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("scheme", "only http and https URLs")
    host = parts.hostname
    if not host:
        raise TargetRefused("invalid", "the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("invalid", "credentials in the URL are not allowed")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def check_target(url: str, *, allow_private: bool, resolve: bool = True) -> None:
    """Raise TargetRefused unless `url` is an http(s) URL whose host is (and, with
    `resolve`, resolves only to) addresses the desk may call."""
    _, host, port = split_target(url)
    if allow_private:
        return
    literal = _literal_ip(host)
    if literal is not None:
        if forbidden_address(literal):
            raise TargetRefused("private", f"{host} is not a public address")
        return
    if host.lower() in ("localhost",) or host.lower().endswith((".localhost", ".local", ".internal")):
        raise TargetRefused("private", f"{host} is not a public host")
    if not resolve:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError):
        raise TargetRefused("resolve", f"{host} does not resolve") from None
    for info in infos:
        if forbidden_address(info[4][0]):
            raise TargetRefused("private", f"{host} resolves to a non-public address")


def guarded_resolver(allow_private: bool) -> Any:
    """An aiohttp resolver that refuses forbidden addresses at connection time (unless
    `allow_private`). Imported lazily: aiohttp is only needed where webhooks are sent."""
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import DefaultResolver

    class GuardedResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = DefaultResolver()

        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
            infos = await self._inner.resolve(host, port, family)
            if not allow_private:
                allowed = [i for i in infos if not forbidden_address(i["host"])]
                if not allowed:
                    raise OSError(f"{host} resolves only to non-public addresses; refused")
                return allowed
            return infos

        async def close(self) -> None:
            await self._inner.close()

    return GuardedResolver()
