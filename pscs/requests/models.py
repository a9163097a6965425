"""Storage requests (S2): the department's written form, numbered in the Records
Service Division Commander's log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, ends_after_start, one_of
from pscs.retention.models import HOLD_REASONS


class RequestStatus(StrEnum):
    """submitted -> approved -> fulfilled, or submitted -> denied.  "approved" lasts only until
    the footage is in the evidence store (a failed intake leaves it there, to be retried)."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    DENIED = "denied"
    FULFILLED = "fulfilled"


REQUEST_STATES = tuple(RequestStatus)
PENDING_STATES = (RequestStatus.SUBMITTED, RequestStatus.APPROVED)


class StorageRequest(Base):
    __tablename__ = "storage_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(12), unique=True)  # "2026-0001"

    # The form, as the requester filled it in.
    requester_username: Mapped[str] = mapped_column(String(64))
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requester_name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(200))
    case_number: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(30))  # a pscs.retention.models.HOLD_REASONS key
    narrative: Mapped[str] = mapped_column(Text)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    attestation_name: Mapped[str] = mapped_column(String(200))  # typed by the requester
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # The Records Commander's decision.
    status: Mapped[str] = mapped_column(String(12), default=RequestStatus.SUBMITTED)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_by_name: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    intake_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint("year", "seq", name="uq_storage_requests_year_seq"),
        Index("ix_storage_requests_status", "status"),
        one_of("status", RequestStatus),
        one_of("reason", HOLD_REASONS),
        ends_after_start(),
        CheckConstraint("seq > 0", name="seq_positive"),
    )


class StorageRequestCamera(Base):
    __tablename__ = "storage_request_cameras"

    request_id: Mapped[int] = mapped_column(ForeignKey("storage_requests.id", ondelete="CASCADE"), primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"), primary_key=True)

    __table_args__ = (Index("ix_storage_request_cameras_camera", "camera_id"),)
