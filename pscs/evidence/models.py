"""The evidence store (S3): items, their files, signed manifests, chain of custody and
documented disposal authorisations.  Nothing here is ever deleted from the database."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, ends_after_start, one_of
from pscs.storage.layout import Stream


class EvidenceStatus(StrEnum):
    PRESERVED = "preserved"
    DISPOSED = "disposed"  # destroyed on a documented, two-person authorisation


class CustodyAction(StrEnum):
    INTAKE = "intake"
    VIEW = "view"
    EXPORT = "export"
    TRANSFER = "transfer"
    VERIFY = "verify"
    DISPOSAL = "disposal"


class DisposalStatus(StrEnum):
    PROPOSED = "proposed"
    EXECUTED = "executed"
    WITHDRAWN = "withdrawn"


class EvidenceItem(Base):
    """The footage of one approved storage request, kept permanently as evidence."""

    __tablename__ = "evidence_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # "EV-2026-0001" (from the request)
    storage_request_id: Mapped[int | None] = mapped_column(ForeignKey("storage_requests.id"), unique=True)
    case_number: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), default=EvidenceStatus.PRESERVED)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The signed manifest (also written beside the files, read-only).
    manifest_json: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(32))
    disposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        one_of("status", EvidenceStatus),
        ends_after_start(),
        CheckConstraint(
            "(status = 'disposed' AND disposed_at IS NOT NULL) OR (status <> 'disposed' AND disposed_at IS NULL)",
            name="disposed_at_with_status",
        ),
    )


class EvidenceFile(Base):
    """One recording in an item, stored as ``objects/<sha[:2]>/<sha256>.mp4`` (read-only)."""

    __tablename__ = "evidence_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("evidence_items.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    camera_id: Mapped[int] = mapped_column(Integer)
    stream: Mapped[str] = mapped_column(String(10))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    original_path: Mapped[str] = mapped_column(String(200))  # relative to the recordings root
    store_path: Mapped[str] = mapped_column(String(200))  # relative to the evidence root
    index_sha256: Mapped[str] = mapped_column(String(64))  # what the recording index said at intake

    __table_args__ = (
        UniqueConstraint("item_id", "sha256", name="uq_evidence_files_item_sha256"),
        Index("ix_evidence_files_sha256", "sha256"),
        one_of("stream", Stream),
        ends_after_start(),
        CheckConstraint("bytes >= 0", name="bytes_not_negative"),
    )


class CustodyEvent(Base):
    """Chain of custody: intake, every view, export, transfer, verification and disposal.
    ``audit_seq`` is the audit-trail event that records the same act."""

    __tablename__ = "custody_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("evidence_items.id"))
    action: Mapped[str] = mapped_column(String(20))  # a CustodyAction
    actor: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    audit_seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_custody_events_item", "item_id", "at"), one_of("action", CustodyAction))


class EvidenceDisposal(Base):
    """The documented authorisation to destroy an evidence item: the case is closed (with
    the document that says so), proposed by the records commander, approved by a second
    person.  Kept forever, whatever its outcome."""

    __tablename__ = "evidence_disposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("evidence_items.id"))
    case_reference: Mapped[str] = mapped_column(String(100))
    case_closed_on: Mapped[date] = mapped_column(Date)
    authority: Mapped[str] = mapped_column(Text)  # the document: disposition, court order, ...
    status: Mapped[str] = mapped_column(String(12), default=DisposalStatus.PROPOSED)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_by_id: Mapped[int | None] = mapped_column(Integer)
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    files_removed: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_evidence_disposals_item", "item_id"),
        one_of("status", DisposalStatus),
        CheckConstraint("files_removed >= 0", name="files_removed_not_negative"),
    )
