"""Business errors. They carry a stable machine code and details, never an HTTP status:
the edges (``api/errors.py``, the CLI) decide how to show them."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the business rules raise on purpose."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}


class NotFound(DomainError):
    """The thing asked for does not exist (or is not visible to the caller)."""

    code = "not_found"


class Conflict(DomainError):
    """The request contradicts what is already stored: a duplicate key, a replay with another payload."""

    code = "conflict"


class InvalidInput(DomainError):
    """The values are well-formed but break a business rule (a phone that is not a phone)."""

    code = "invalid_input"


class PolicyRefused(DomainError):
    """A rule of the program refuses the action (balance short, contact not allowed)."""

    code = "policy_refused"


class Unauthorized(DomainError):
    """No valid credentials."""

    code = "unauthorized"


class Forbidden(DomainError):
    """Valid credentials, but not allowed to do this."""

    code = "forbidden"


class TooSoon(DomainError):
    """The same request came again too soon or too often (an SMS code resent within a minute)."""

    code = "too_soon"
