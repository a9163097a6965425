"""What an audit event says (M1).  Every domain records through ``AuditLog.record``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    ERROR = "error"


@dataclass(frozen=True)
class Actor:
    """Who did it and from where.  ``username`` is also set for system actors
    (``system``, ``cli:<os user>``, ``anonymous``) so that every event names someone."""

    username: str
    user_id: int | None = None
    source_ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls, component: str = "system") -> Actor:
        return cls(username=component)


@dataclass(frozen=True)
class AuditEvent:
    action: str  # dotted verb, e.g. "auth.login", "user.create", "video.live.start"
    actor: Actor
    outcome: Outcome = Outcome.ALLOWED
    object_type: str | None = None
    object_id: str | None = None
    clauses: tuple[str, ...] = ()
    purpose_session_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
