"""What the storage-request log (S2) tells the layers below it at start-up
(:func:`pscs.startup.prepare`):

* storage (:mod:`pscs.storage.protection`): footage named by a request still pending
  (submitted, or approved and not yet in the evidence store) is protected, a second line
  of defence should its provisional hold ever be missing;
* retention (:mod:`pscs.retention.holds`): the number a provisional hold shows for the
  request that placed it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pscs.requests.models import PENDING_STATES, StorageRequest, StorageRequestCamera
from pscs.retention.holds import name_requests_with
from pscs.storage.protection import ProtectedRange, register_source

SOURCE_NAME = "pending storage requests"


def pending_requests(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[ProtectedRange]:
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
    return [ProtectedRange(camera_id, lo, hi, f"storage request {number}") for number, lo, hi in session.execute(q)]


def request_number(session: Session, request_id: int) -> str | None:
    return session.scalar(select(StorageRequest.number).where(StorageRequest.id == request_id))


def register() -> None:
    register_source(SOURCE_NAME, pending_requests)
    name_requests_with(request_number)
