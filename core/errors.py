"""Domain errors. Channels map them to their own shapes (HTTP status, bot alert)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class. `code` is a stable machine name; `message` is for people."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class PermissionDenied(DomainError):
    code = "permission_denied"


class NotAuthenticated(DomainError):
    code = "not_authenticated"


class Conflict(DomainError):
    """A state change that is not allowed now (already taken, wrong status...)."""

    code = "conflict"


class ValidationFailed(DomainError):
    """Bad input. `errors` maps a field name to a list of messages (DRF's shape)."""

    code = "invalid"

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class Throttled(DomainError):
    code = "throttled"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
