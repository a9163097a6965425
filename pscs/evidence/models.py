"""The evidence store (S3): items, their files, signed manifests, chain of custody and
documented disposal authorisations.  Nothing here is ever deleted from the database."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pscs.db.base import Base, UTCDateTime, utcnow


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
    status: Mapped[str] = mapped_column(String(12), default="preserved")  # preserved | disposed
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The signed manifest (also written beside the files, read-only).
    manifest_json: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(32))
    disposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
    )


class CustodyEvent(Base):
    """Chain of custody: intake, every view, export, transfer, verification and disposal.
    ``audit_seq`` is the audit-trail event that records the same act."""

    __tablename__ = "custody_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("evidence_items.id"))
    action: Mapped[str] = mapped_column(String(20))  # intake | view | export | transfer | verify | disposal
    actor: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    audit_seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_custody_events_item", "item_id", "at"),)


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
    status: Mapped[str] = mapped_column(String(12), default="proposed")  # proposed | executed | withdrawn
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_by_id: Mapped[int | None] = mapped_column(Integer)
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_by_id: Mapped[int | None] = mapped_column(Integer)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    files_removed: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_evidence_disposals_item", "item_id"),)
