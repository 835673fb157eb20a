"""Password hashing (scrypt, salted) and API token generation (CSPRNG)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt cost: ~40 ms on this class of machine; slow enough to make guessing expensive.
_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        algo, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        if algo != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def new_token_key() -> str:
    """40 hex characters, like DRF's tokens, from the OS's cryptographic source."""
    return secrets.token_hex(20)


def new_access_key() -> str:
    """Key of a customer's private web page: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)
