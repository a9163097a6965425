"""Holds, notices and sweep runs (S1).  (The disposal records are written by the deletion
path, so their table lives with it: :class:`pscs.storage.models.DisposalRecord`.)

Times of footage are UTC epoch milliseconds (like the segment index); times of people's
actions are UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, ends_after_start, one_of

HOLD_REASONS: dict[str, str] = {
    "criminal_investigation": "Criminal investigation",
    "prosecution": "Prosecution",
    "foi_request": "Pending public records (FOI) request",
    "litigation": "Litigation / preservation order",
}
# What the reference number of each reason is called on forms and in messages.
REFERENCE_LABELS: dict[str, str] = {
    "criminal_investigation": "case number",
    "prosecution": "case or docket number",
    "foi_request": "FOI request number",
    "litigation": "docket or order number",
}


class HoldStatus(StrEnum):
    ACTIVE = "active"  # protects its footage
    RELEASED = "released"  # ended by its owner, the records commander, or its storage request's decision
    LAPSED = "lapsed"  # not re-affirmed by its review date


class NoticeKind(StrEnum):
    HOLD_REVIEW_DUE = "hold.review_due"
    HOLD_LAPSED = "hold.lapsed"


class SweepStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its process died; the next round closed it


class Hold(Base):
    """Footage of some cameras over a time range that must not be destroyed (S1).

    ``provisional`` holds are placed by a storage request (S2) while it is pending and
    end with it; they are not subject to owner review.  Every other hold is re-affirmed
    by its owner every ``retention.hold_review_days`` or lapses with notice.
    """

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(String(30))  # a HOLD_REASONS key
    reference: Mapped[str] = mapped_column(String(100))  # case / docket / request number
    description: Mapped[str] = mapped_column(Text, default="")
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)  # exclusive
    status: Mapped[str] = mapped_column(String(12), default=HoldStatus.ACTIVE)
    provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    storage_request_id: Mapped[int | None] = mapped_column(ForeignKey("storage_requests.id"))
    owner_username: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    review_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: provisional
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(200))
    end_reason: Mapped[str | None] = mapped_column(String(500))
    # Segments that a deletion already had in hand when the hold was placed (see
    # pscs.storage.protection): they may be gone, and the hold says so.
    at_risk_segments: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_holds_status_due", "status", "review_due_at"),
        one_of("status", HoldStatus),
        one_of("reason", HOLD_REASONS),
        ends_after_start(),
        CheckConstraint("at_risk_segments >= 0", name="at_risk_segments_not_negative"),
    )


class HoldCamera(Base):
    __tablename__ = "hold_cameras"

    hold_id: Mapped[int] = mapped_column(ForeignKey("holds.id", ondelete="CASCADE"), primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"), primary_key=True)

    __table_args__ = (Index("ix_hold_cameras_camera", "camera_id"),)


class Notice(Base):
    """A message for a person or a role (a hold about to lapse, a hold that lapsed)."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient: Mapped[str | None] = mapped_column(String(64))  # a username ...
    recipient_role: Mapped[str | None] = mapped_column(String(40))  # ... or everyone with a role
    kind: Mapped[str] = mapped_column(String(40))  # a NoticeKind
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_notices_recipient", "recipient", "created_at"),
        Index("ix_notices_role", "recipient_role", "created_at"),
        one_of("kind", NoticeKind),
        CheckConstraint("recipient IS NOT NULL OR recipient_role IS NOT NULL", name="has_recipient"),
    )


class RetentionSweep(Base):
    """One run of the retention sweeper: what it was asked and what it did."""

    __tablename__ = "retention_sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cutoff_ms: Mapped[int] = mapped_column(BigInteger)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), default=SweepStatus.RUNNING)
    actor: Mapped[str] = mapped_column(String(200))
    deleted: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    protected: Mapped[int] = mapped_column(BigInteger, default=0)
    resumed: Mapped[int] = mapped_column(BigInteger, default=0)  # deletions an interrupted run left
    holds_lapsed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    holder: Mapped[str | None] = mapped_column(String(200))  # "host:pid" of the process running it
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # renewed after every page

    # One round at a time, whoever starts it (the service's schedule or `pscs retention run`).
    __table_args__ = (
        Index(
            "uq_retention_sweeps_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        one_of("status", SweepStatus),
        CheckConstraint(
            "deleted >= 0 AND bytes >= 0 AND protected >= 0 AND resumed >= 0 AND holds_lapsed >= 0",
            name="counts_not_negative",
        ),
    )
