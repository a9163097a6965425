"""Purpose sessions (U1) and supervisor-designated crime locations (U2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, both_or_neither


class LocationDesignation(Base):
    """U2: a place of known or suspected criminal activity, designated by a supervisor:
    who designated it, why, which cameras see it, and until when."""

    __tablename__ = "location_designations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    location: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(1000))
    designated_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    designated_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoke_reason: Mapped[str | None] = mapped_column(String(500))

    cameras: Mapped[list[DesignatedCamera]] = relationship(
        back_populates="designation", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def camera_ids(self) -> frozenset[int]:
        return frozenset(c.camera_id for c in self.cameras)


class DesignatedCamera(Base):
    __tablename__ = "location_designation_cameras"
    __table_args__ = (UniqueConstraint("designation_id", "camera_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    designation_id: Mapped[int] = mapped_column(ForeignKey("location_designations.id", ondelete="CASCADE"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))

    designation: Mapped[LocationDesignation] = relationship(back_populates="cameras")


class PurposeSession(Base):
    """U1: why someone is looking.  Bound to the sign-in session that opened it; at most one
    is open per sign-in session; it ends at ``expires_at`` or earlier when ended."""

    __tablename__ = "purpose_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(64))
    web_session_id: Mapped[int] = mapped_column(ForeignKey("web_sessions.id", ondelete="CASCADE"))
    purpose_id: Mapped[str] = mapped_column(String(60))
    purpose_label: Mapped[str] = mapped_column(String(200))
    clause: Mapped[str] = mapped_column(String(10))
    case_number: Mapped[str | None] = mapped_column(String(100))
    incident_number: Mapped[str | None] = mapped_column(String(100))
    designation_id: Mapped[int | None] = mapped_column(ForeignKey("location_designations.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(60))

    __table_args__ = (
        Index("ix_purpose_sessions_web_session", "web_session_id", "ended_at"),
        both_or_neither("ended_at", "end_reason", name="ended_with_reason"),
    )
