"""The camera registry (P0): where each camera is, what it streams, and who attested
that it watches only a public area."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pscs.clock import utcnow
from pscs.db.base import Base, UTCDateTime, one_of


class CameraKind(StrEnum):
    FIXED = "fixed"
    PTZ = "ptz"  # pan, tilt, zoom: ONVIF-controlled


class Camera(Base):
    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # a CameraKind

    # Where it is (P0: shown on the public transparency page).
    street_address: Mapped[str] = mapped_column(String(300))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)

    # Streams.  URLs are stored without credentials; the stream credentials (taken out of
    # a ``user:pass@`` URL) are kept apart and the password is encrypted at rest.
    main_url: Mapped[str] = mapped_column(String(500))
    sub_url: Mapped[str | None] = mapped_column(String(500))
    stream_username: Mapped[str | None] = mapped_column(String(200))
    stream_password_enc: Mapped[str | None] = mapped_column(String(500))

    # ONVIF (PTZ control, discovery of stream URLs).
    onvif_url: Mapped[str | None] = mapped_column(String(500))
    onvif_username: Mapped[str | None] = mapped_column(String(200))
    onvif_password_enc: Mapped[str | None] = mapped_column(String(500))

    # P0: someone answerable attested that the camera sees only public space.
    public_area_attested: Mapped[bool] = mapped_column(Boolean, default=False)
    attested_by: Mapped[str | None] = mapped_column(String(200))
    attested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (one_of("kind", CameraKind),)
