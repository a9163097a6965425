"""Policy decisions as pure functions: inputs in, a decision out, no I/O.

Services call these and act on the answer; each names the clause (or the CJIS control)
it enforces, and that name goes into the audit event the service writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pscs.policy.profile import PolicyProfile


@dataclass(frozen=True)
class Decision:
    allowed: bool
    clause: str
    reason: str = ""

    @classmethod
    def allow(cls, clause: str) -> Decision:
        return cls(True, clause)

    @classmethod
    def deny(cls, clause: str, reason: str) -> Decision:
        return cls(False, clause, reason)


# Accounts (CJIS 5.5.3: unsuccessful logon attempts) -----------------------------------------
LOCKOUT = "CJIS-5.5.3"
SESSION_LOCK = "CJIS-5.5.5"


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    return locked_until is not None and now < locked_until


def after_failed_attempt(failed_attempts: int, now: datetime, profile: PolicyProfile) -> tuple[int, datetime | None]:
    """The new failure count and, when the limit is reached, the time the lock ends."""
    attempts = failed_attempts + 1
    if attempts >= profile.security.lockout_attempts:
        return 0, now + timedelta(minutes=profile.security.lockout_minutes)
    return attempts, None


class SessionStatus(StrEnum):
    ACTIVE = "active"
    IDLE_LOCKED = "idle_locked"
    EXPIRED = "expired"


def session_status(
    created_at: datetime, last_seen_at: datetime, now: datetime, profile: PolicyProfile
) -> SessionStatus:
    """A session ends after the maximum lifetime, and locks after the idle limit."""
    if now - created_at >= timedelta(hours=profile.security.session_max_hours):
        return SessionStatus.EXPIRED
    if now - last_seen_at >= timedelta(minutes=profile.security.idle_lock_minutes):
        return SessionStatus.IDLE_LOCKED
    return SessionStatus.ACTIVE


# U3: acknowledgement before first access and yearly after --------------------------------------
def acknowledgement(
    last_acknowledged_at: datetime | None,
    last_digest: str | None,
    current_digest: str,
    now: datetime,
    profile: PolicyProfile,
) -> Decision:
    if last_acknowledged_at is None:
        return Decision.deny("U3", "the policy must be acknowledged before first access")
    if last_digest != current_digest:
        return Decision.deny("U3", "the policy profile has changed since it was last acknowledged")
    if now - last_acknowledged_at >= timedelta(days=profile.security.acknowledgement_valid_days):
        return Decision.deny("U3", "the yearly policy acknowledgement has lapsed")
    return Decision.allow("U3")


# Roles -------------------------------------------------------------------------------------------
def role_access(user_roles: frozenset[str], allowed_roles: frozenset[str]) -> Decision:
    """Least privilege: a route names the roles that may use it; anyone else is refused."""
    if user_roles & allowed_roles:
        return Decision.allow("CJIS-5.5.2")
    return Decision.deny("CJIS-5.5.2", f"requires one of the roles: {', '.join(sorted(allowed_roles))}")


def may_handle_video(user_roles: frozenset[str], profile: PolicyProfile) -> Decision:
    """U1: only video roles see video; an administrator alone does not."""
    if user_roles & frozenset(profile.video_roles):
        return Decision.allow("U1")
    return Decision.deny("U1", "this account has no video role")
