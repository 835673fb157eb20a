"""Secrets: password hashing (argon2id), API tokens and web page keys (CSPRNG).

Passwords: argon2id at OWASP's first recommended setting (m=19 MiB, t=2, p=1; the
Password Storage Cheat Sheet, 2025), through argon2-cffi. About 40 ms to hash and 60 ms
to verify on this class of machine, and 19 MiB of memory each. We chose it over scrypt at
OWASP's scrypt setting (N=2^17, r=8, p=1): that costs 128 MiB and ~0.6 s per check here,
so twenty logins at once would want 2.5 GiB. Hashes made with other parameters (or the
scrypt hashes of earlier versions) still verify, and `needs_rehash` tells the login to
store a fresh hash. These functions are CPU-bound: callers run them with asyncio.to_thread.

Tokens: the client holds 40 hex characters from the OS's cryptographic source (as DRF's);
the database holds only their SHA-256 (`token_digest`). A fast hash is right here: the key
has 160 random bits, so there is nothing to guess, and the lookup by digest is one index
probe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1

_hasher = PasswordHasher(
    time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
)


def hash_password(password: str) -> str:
    """A salted argon2id hash of `password` (PHC string format)."""
    return _hasher.hash(password)


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches `encoded` (argon2, or a legacy `scrypt$...` hash)."""
    if not encoded:
        return False
    if encoded.startswith("scrypt$"):
        return _verify_scrypt(password, encoded)
    try:
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError, ValueError):
        return False


def needs_rehash(encoded: str) -> bool:
    """True for a hash made with other parameters than today's (or another algorithm)."""
    if not encoded.startswith("$argon2id$"):
        return True
    try:
        return _hasher.check_needs_rehash(encoded)
    except (InvalidHashError, ValueError):
        return True


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_dummy(password: str) -> bool:
    """Spend the time of a real check and fail: for unknown usernames and accounts that
    cannot log in, so the answer's timing does not tell them apart."""
    verify_password(password, _dummy_hash())
    return False


def _verify_scrypt(password: str, encoded: str) -> bool:
    try:
        algo, n, r, p, salt_b64, digest_b64 = encoded.split("$")
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        n_, r_, p_ = int(n), int(r), int(p)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=n_, r=r_, p=p_, dklen=len(expected),
            maxmem=256 * n_ * r_ + 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def new_token_key() -> str:
    """40 hex characters, like DRF's tokens, from the OS's cryptographic source."""
    return secrets.token_hex(20)


def token_digest(key: str) -> str:
    """What the database keeps of an API token: hex SHA-256 of the key."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


ACCESS_KEY_BYTES = 32
# token_urlsafe(n) is n bytes in unpadded base64url: ceil(4n / 3) characters (43 for 32).
ACCESS_KEY_LENGTH = -(-4 * ACCESS_KEY_BYTES // 3)
# What a request page key looks like; the web routes and the page's socket check a key
# against it before any query.
ACCESS_KEY_RE = re.compile(rf"[A-Za-z0-9_-]{{{ACCESS_KEY_LENGTH}}}")


def new_access_key() -> str:
    """Key of a customer's private web page: 256 bits, URL-safe (ACCESS_KEY_RE)."""
    return secrets.token_urlsafe(ACCESS_KEY_BYTES)


def is_access_key(value: object) -> bool:
    """Whether `value` has the shape of a page key (new_access_key)."""
    return isinstance(value, str) and ACCESS_KEY_RE.fullmatch(value) is not None
