"""Recorder state that the web process reads: per-camera health and alerts.

Importing this module also loads the camera and storage models, so that the one import
of it in ``pscs.schema.models`` brings every table of cameras, storage and recording.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pscs.cameras import models as camera_models  # noqa: F401 - registers "cameras"
from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, one_of
from pscs.storage import models as storage_models  # noqa: F401 - registers the segment index


class CameraState(StrEnum):
    """A camera's recorder state.  The recorder worker (which imports no database code)
    reports these values as plain strings."""

    ONLINE = "online"
    CONNECTING = "connecting"
    OFFLINE = "offline"
    PAUSED = "paused"  # disk full and nothing deletable
    STOPPED = "stopped"


class AlertKind(StrEnum):
    CAMERA_OFFLINE = "camera_offline"
    STORAGE_FULL = "storage_full"


class AlertSeverity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class CameraHealth(Base):
    """One row per camera, refreshed every couple of seconds by the recorder supervisor."""

    __tablename__ = "camera_health"

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"), primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(20))  # a CameraState
    state_since_ms: Mapped[int] = mapped_column(BigInteger)
    fps: Mapped[float] = mapped_column(Float, default=0.0)
    bitrate_bps: Mapped[float] = mapped_column(Float, default=0.0)
    last_frame_ms: Mapped[int | None] = mapped_column(BigInteger)
    frames_total: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped_packets: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp_discontinuities: Mapped[int] = mapped_column(BigInteger, default=0)
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    segments_written: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    worker: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (one_of("state", CameraState),)


class Alert(Base):
    """Something a person must look at (the console lists the open ones)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # an AlertKind
    severity: Mapped[str] = mapped_column(String(10))  # an AlertSeverity
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id"))
    message: Mapped[str] = mapped_column(String(500))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_alerts_open", "cleared_at", "raised_at"),
        one_of("kind", AlertKind),
        one_of("severity", AlertSeverity),
    )
