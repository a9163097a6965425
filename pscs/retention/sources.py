"""What protects footage from deletion, as queries (S1, S2, FOI, litigation).

:mod:`pscs.storage.protection` — the one place the deletion path asks — calls these.
They return plain ``(start_ms, end_ms, label)`` tuples so that this module needs nothing
from the storage package (which imports it).

* active holds (criminal investigation, prosecution, pending FOI request, litigation or
  preservation order, and the provisional holds of storage requests);
* storage requests still pending (submitted, or approved and not yet in the evidence
  store): a second line of defence, should a provisional hold ever be missing.

Evidence is never in the recordings tree, so the deletion path cannot reach it at all.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pscs.requests.models import PENDING_STATES, StorageRequest, StorageRequestCamera
from pscs.retention.models import Hold, HoldCamera, HoldStatus

Range = tuple[int, int, str]


def hold_ranges(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[Range]:
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
    return [(lo, hi, f"hold {hid} ({reason}: {ref})") for hid, reason, ref, lo, hi in session.execute(q)]


def request_ranges(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[Range]:
    q = (
        select(StorageRequest.number, StorageRequest.start_ms, StorageRequest.end_ms)
        .join(StorageRequestCamera, StorageRequestCamera.request_id == StorageRequest.id)
        .where(
            StorageRequestCamera.camera_id == camera_id,
            StorageRequest.status.in_(PENDING_STATES),
            StorageRequest.start_ms < end_ms,
            StorageRequest.end_ms > start_ms,
        )
    )
    return [(lo, hi, f"storage request {number}") for number, lo, hi in session.execute(q)]
