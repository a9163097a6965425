"""Domain errors.  Services raise these with a message meant for the user; the web layer
turns them into JSON with the matching status, the CLI into a message and exit code."""

from __future__ import annotations


class PscsError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PscsError):
    status = 422
    code = "invalid_input"


class NotFound(PscsError):
    status = 404
    code = "not_found"


class Conflict(PscsError):
    status = 409
    code = "conflict"


class PolicyDenied(PscsError):
    """The policy forbids it; ``clause`` names the clause that does."""

    status = 403
    code = "policy_denied"

    def __init__(self, message: str, clause: str) -> None:
        super().__init__(message)
        self.clause = clause


class AuthenticationFailed(PscsError):
    status = 401
    code = "authentication_failed"


class TooManyAttempts(PscsError):
    """Refused before any work is done: the caller must wait ``retry_after_s`` seconds."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
