"""Privacy zones (U4) and mask lifts.  Importing this module also registers the purpose
models, so the one import in ``pscs.schema.models`` brings every table of the console."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, one_of
from pscs.purposes import models as purpose_models  # noqa: F401 - registers the purpose tables


class ZoneSpace(StrEnum):
    """What a version's coordinates mean (see :class:`PrivacyZoneVersion`)."""

    IMAGE = "image"
    PTZ = "ptz"


class ZoneVersionStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"  # the newest approved version is in force
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # approved once, replaced by a newer approved version
    WITHDRAWN = "withdrawn"


class MaskLiftStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"  # in force until it expires or is ended
    REJECTED = "rejected"
    ENDED = "ended"  # an approved lift ended early
    WITHDRAWN = "withdrawn"  # a request ended before anyone decided it


class PrivacyZoneVersion(Base):
    """One version of a camera's privacy zones: proposed by an administrator, approved (or
    rejected) by a supervisor.  The newest approved version is the one in force; earlier
    ones are kept (``superseded``) so any past decision can be shown again.

    ``space`` says what the coordinates mean: ``image`` — normalised picture coordinates
    (0..1, origin top left); ``ptz`` — pan/tilt degrees of a PTZ camera, projected into
    the picture for the camera's current position (see docs/design/masking.md)."""

    __tablename__ = "privacy_zone_versions"
    __table_args__ = (
        UniqueConstraint("camera_id", "version"),
        Index("ix_privacy_zone_versions_camera_status", "camera_id", "status"),
        one_of("status", ZoneVersionStatus),
        one_of("space", ZoneSpace),
        CheckConstraint("version > 0", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    version: Mapped[int] = mapped_column(Integer)
    space: Mapped[str] = mapped_column(String(10), default=ZoneSpace.IMAGE)
    zones: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"label": str, "points": [[x, y], ...]}]
    note: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12))  # a ZoneVersionStatus
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(String(500))
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MaskLift(Base):
    """U4: privacy masks of one camera lifted for one person, on a warrant, with a second
    person's approval, for a limited time."""

    __tablename__ = "mask_lifts"
    __table_args__ = (
        Index("ix_mask_lifts_camera_status", "camera_id", "status"),
        one_of("status", MaskLiftStatus),
        CheckConstraint("minutes > 0", name="minutes_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id"))
    warrant_reference: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(1000))
    minutes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # a MaskLiftStatus
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(64))
