"""The recording index: one row per segment file, explicit gaps, deletions in flight, and the
ledger of recordings destroyed (S1).

Times are UTC milliseconds since the epoch (BigInteger): exact, cheap to compare and the
same on SQLite and PostgreSQL.  See docs/design/storage.md for the invariants.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pscs.cameras import models as _cameras  # noqa: F401 - the table these rows' camera_id refers to
from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, ends_after_start, one_of
from pscs.storage.layout import Stream


class Segment(Base):
    """A finished, durable segment file.  A row exists only after its file was fsynced and
    renamed into place, so every row names a complete file (reconcile checks this)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    stream: Mapped[str] = mapped_column(String(10))  # a Stream
    start_ms: Mapped[int] = mapped_column(BigInteger)  # receive clock, UTC epoch ms
    end_ms: Mapped[int] = mapped_column(BigInteger)  # start_ms + duration_ms
    duration_ms: Mapped[int] = mapped_column(Integer)  # from the media timestamps
    frames: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(200), unique=True)  # relative to the recordings root
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("camera_id", "stream", "start_ms", name="uq_segments_camera_stream_start"),
        Index("ix_segments_camera_end", "camera_id", "end_ms"),
        Index("ix_segments_start", "start_ms"),  # oldest-first for retention and disk pressure
        one_of("stream", Stream),
        CheckConstraint("end_ms = start_ms + duration_ms", name="end_is_start_plus_duration"),
        # A row names a complete file with at least one frame (invariant 1).
        CheckConstraint("duration_ms > 0", name="duration_positive"),
        CheckConstraint("frames > 0", name="frames_positive"),
        CheckConstraint("bytes > 0", name="bytes_positive"),
    )


class RecordedRange(Base):
    """A stretch of one camera's stream covered by indexed segments, no hole in it longer than
    the merge tolerance: the playback timeline's summary of the index, kept in step with it
    in the same transactions (:mod:`pscs.storage.ranges`)."""

    __tablename__ = "recorded_ranges"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    stream: Mapped[str] = mapped_column(String(10))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_recorded_ranges_camera_end", "camera_id", "stream", "end_ms"),
        one_of("stream", Stream),
        ends_after_start(),
    )


class RecordingGap(Base):
    """Time with no recording, said out loud: the camera was offline, the recorder was not
    running, a file was lost, the disk was full."""

    __tablename__ = "recording_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    stream: Mapped[str] = mapped_column(String(10), default=Stream.MAIN)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_recording_gaps_camera_start", "camera_id", "start_ms"),
        one_of("stream", Stream),
        ends_after_start(),
    )


class PendingDelete(Base):
    """A deletion that was decided but may not have finished.  Written (in the same
    transaction as the protection check) before the file is unlinked; removed with the
    segment row once the unlink is verified.  Reconcile finishes any left behind."""

    __tablename__ = "pending_deletes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # no FK: outlives the row briefly
    camera_id: Mapped[int] = mapped_column(Integer)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(100))
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (ends_after_start(),)


class DisposalRecord(Base):
    """Recordings destroyed: one row per camera per deletion batch, written in the same
    transaction that removes their index rows, after the files were verified gone."""

    __tablename__ = "disposal_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(Integer)  # no FK: the record outlives the camera
    from_ms: Mapped[int] = mapped_column(BigInteger)
    to_ms: Mapped[int] = mapped_column(BigInteger)
    segments: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(100))  # e.g. "retention: 30 days (S1)"; "disk pressure"
    clause: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(200))
    disposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_disposal_records_disposed_at", "disposed_at"),
        Index("ix_disposal_records_camera", "camera_id", "from_ms"),
        ends_after_start("from_ms", "to_ms"),
        CheckConstraint("segments > 0", name="segments_positive"),
        CheckConstraint("bytes >= 0", name="bytes_not_negative"),
    )
