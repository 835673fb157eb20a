"""Reply addresses: `req-<request id>-<secret>@<MAIL_REPLY_DOMAIN>`.

The secret is HMAC-SHA256 of `reply:<id>` keyed with the request's access key (the key of
its private web page, which only its customer has), cut to 24 hex digits (96 bits). So
the address names the request and proves the sender got it from us: a forged or guessed
address, another request's number with this secret, or a request without an access key
is refused. No extra setting or table is needed, and the secret changes if the key does.
"""

from __future__ import annotations

import hashlib
import hmac
import re

SECRET_HEX = 24
_LOCAL = re.compile(rf"req-([1-9][0-9]{{0,9}})-([0-9a-f]{{{SECRET_HEX}}})")


def reply_secret(request_id: int, access_key: str) -> str:
    mac = hmac.new(access_key.encode(), f"reply:{request_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SECRET_HEX]


def reply_address(request_id: int, access_key: str, domain: str) -> str:
    return f"req-{request_id}-{reply_secret(request_id, access_key)}@{domain}"


def parse_reply_address(address: str, domain: str) -> tuple[int, str] | None:
    """(request id, secret) when `address` has our form and domain, else None."""
    address = (address or "").strip().strip("<>")
    local, at, host = address.rpartition("@")
    if not at or host.lower() != domain.lower():
        return None
    match = _LOCAL.fullmatch(local.lower())
    if match is None:
        return None
    return int(match.group(1)), match.group(2)


def secret_matches(request_id: int, access_key: str | None, secret: str) -> bool:
    if not access_key:
        return False
    return hmac.compare_digest(reply_secret(request_id, access_key), secret)
