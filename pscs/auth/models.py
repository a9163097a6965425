"""Accounts, roles, web sessions and policy acknowledgements (U3)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, both_or_neither, one_of


class Stage(StrEnum):
    """What the holder of a web session has proved so far."""

    PASSWORD = "password"  # noqa: S105 - a stage name: password accepted, second factor outstanding
    FULL = "full"  # both factors


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret_enc: Mapped[str | None] = mapped_column(String(300))  # encrypted at rest
    mfa_enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)  # refuses a replayed code
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    roles: Mapped[list[UserRole]] = relationship(back_populates="user", cascade="all, delete-orphan", lazy="selectin")

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r.role for r in self.roles)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))

    user: Mapped[User] = relationship(back_populates="roles")


class WebSession(Base):
    """A browser or API session.  Only the SHA-256 of the token is stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(10))  # a Stage: password, then full
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(40))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))

    __table_args__ = (one_of("stage", Stage), both_or_neither("ended_at", "end_reason", name="ended_with_reason"))


class PolicyAcknowledgement(Base):
    """U3: the user read the policy and completed training, at this time, for this profile."""

    __tablename__ = "policy_acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[str] = mapped_column(String(60))
    policy_version: Mapped[str] = mapped_column(String(60))
    profile_digest: Mapped[str] = mapped_column(String(32))
    training_completed: Mapped[bool] = mapped_column(Boolean)
    typed_name: Mapped[str] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source_ip: Mapped[str | None] = mapped_column(String(64))


class RoleGrantStatus(StrEnum):
    PENDING = "pending"  # asked for by one administrator, waiting for a second
    APPROVED = "approved"
    REJECTED = "rejected"


class RoleGrant(Base):
    """A powerful role (a video role, or one the profile's approvals name) that one
    administrator gave and a second must approve before the user holds it."""

    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default=RoleGrantStatus.PENDING)
    requested_by: Mapped[str] = mapped_column(String(80))  # the audit actor's name
    requested_by_id: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_by_id: Mapped[int | None] = mapped_column(Integer)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        one_of("status", RoleGrantStatus),
        both_or_neither("decided_at", "decided_by", name="decided_with_decider"),
    )
