"""What retention protects from deletion (S1): footage under an active hold (criminal
investigation, prosecution, pending FOI request, litigation or preservation order, and
the provisional holds of storage requests).

:func:`register` gives the source to :mod:`pscs.storage.protection`, the one place the
deletion path asks; every process registers it at start-up (:func:`pscs.startup.prepare`).
Evidence is never in the recordings tree, so the deletion path cannot reach it at all.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pscs.retention.models import Hold, HoldCamera, HoldStatus
from pscs.storage.protection import ProtectedRange, register_source

SOURCE_NAME = "holds"


def active_holds(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[ProtectedRange]:
    q = (
        select(Hold.id, Hold.reason, Hold.reference, Hold.start_ms, Hold.end_ms)
        .join(HoldCamera, HoldCamera.hold_id == Hold.id)
        .where(
            HoldCamera.camera_id == camera_id,
            Hold.status == HoldStatus.ACTIVE,
            Hold.start_ms < end_ms,
            Hold.end_ms > start_ms,
        )
    )
    return [
        ProtectedRange(camera_id, lo, hi, f"hold {hid} ({reason}: {ref})")
        for hid, reason, ref, lo, hi in session.execute(q)
    ]


def register() -> None:
    register_source(SOURCE_NAME, active_holds)
