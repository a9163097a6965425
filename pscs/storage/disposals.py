"""The disposal ledger (S1; Connecticut form RC-075 in spirit): what recordings were
destroyed, when, and under which rule.

:func:`record_disposals` is called only by the single deletion path
(:mod:`pscs.storage.deletion`), inside the transaction that removes the index rows of
files it has verified gone, so a disposal record exists exactly when the recording does
not, whoever finishes the deletion (the sweeper, disk pressure, or reconcile after a
crash).  The periodic report read from it is retention's (:mod:`pscs.retention.disposal`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from pscs.clock import utcnow
from pscs.storage.models import DisposalRecord

# (camera_id, start_ms, end_ms, bytes, reason, requested_by)
Disposed = tuple[int, int, int, int, str, str]


def record_disposals(session: Session, disposed: Iterable[Disposed], *, when: datetime | None = None) -> int:
    """Write one record per camera and rule for these destroyed segments; returns rows written."""
    groups: dict[tuple[int, str, str], list[int]] = {}
    for camera_id, start_ms, end_ms, size, reason, requested_by in disposed:
        g = groups.get((camera_id, reason, requested_by))
        if g is None:
            groups[(camera_id, reason, requested_by)] = [start_ms, end_ms, 1, size]
        else:
            g[0] = min(g[0], start_ms)
            g[1] = max(g[1], end_ms)
            g[2] += 1
            g[3] += size
    if not groups:
        return 0
    at = when or utcnow()
    session.execute(
        insert(DisposalRecord.__table__),
        [
            {
                "camera_id": camera_id,
                "from_ms": lo,
                "to_ms": hi,
                "segments": count,
                "bytes": size,
                "rule": reason[:100],
                "clause": "S1",
                "requested_by": requested_by[:200],
                "disposed_at": at,
            }
            for (camera_id, reason, requested_by), (lo, hi, count, size) in groups.items()
        ],
    )
    return len(groups)
