"""Domain errors: what a service raises when it refuses. Free of Flask, so the core, the
services and the command line use them alike; ``tracker.http_errors`` turns each into a JSON
error (``{"error": {"code", "message", "details"}}`` with the status below), a form error or
an error page.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 422
    code = "rule_violation"

    def __init__(self, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidInput(DomainError):
    """Malformed or out-of-range input (400)."""

    status = 400
    code = "invalid_input"


class RuleViolation(DomainError):
    """The protocol or a business rule refuses it; ``details`` lists every reason (422)."""

    status = 422
    code = "rule_violation"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Gone(DomainError):
    """It existed and was removed on purpose (an expired export's file) (410)."""

    status = 410
    code = "gone"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthorized"


class PermissionDenied(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    """Decided on a stale version, or a duplicate (409)."""

    status = 409
    code = "conflict"
