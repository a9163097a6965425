"""The single deletion path for recordings (S1).  Nothing else removes a segment file.

For each batch of segments:

1. one write transaction: skip every segment that :mod:`pscs.storage.protection` says is
   protected, and write a ``PendingDelete`` for each of the others;
2. ask the protection check again (a hold may have arrived since) and cancel those;
3. unlink each file, verify that it is gone (one listing per time-bucket folder) and
   fsync the folder;
4. one write transaction: delete the index rows and their pending records, and write the
   disposal record (:func:`pscs.retention.disposal.record_disposals`);
5. remove folders left empty; audit one ``storage.delete`` event with the counts.

Each step is one set-based statement per batch (and one protection query per camera),
so that the retention sweep of a day of 100 cameras (~864,000 files) costs little more
than the unlinks themselves (bench/retention.py).

A crash anywhere leaves ``PendingDelete`` rows that reconcile finishes (see
:func:`finish_pending_deletes`), so a decided deletion is carried out exactly once and a
file is never left half-indexed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, insert, select

from pscs.audit.events import Actor
from pscs.db.base import utcnow
from pscs.retention.disposal import record_disposals
from pscs.runtime import Runtime
from pscs.storage.models import PendingDelete, Segment
from pscs.storage.protection import protected_segment_ids
from pscs.storage.segments import fsync_dir

log = logging.getLogger(__name__)
_BATCH = 2000
_SEGMENTS = Segment.__table__
_PENDING = PendingDelete.__table__
_COLUMNS = (Segment.id, Segment.camera_id, Segment.start_ms, Segment.end_ms, Segment.path, Segment.sha256)


@dataclass(frozen=True)
class DeletedSegment:
    """What was destroyed: enough for a disposal record (S1)."""

    segment_id: int
    camera_id: int
    start_ms: int
    end_ms: int
    path: str
    sha256: str
    bytes: int


@dataclass
class DeletionResult:
    deleted: list[DeletedSegment] = field(default_factory=list)
    protected: list[int] = field(default_factory=list)  # ids refused: a hold or evidence covers them
    not_found: list[int] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(d.bytes for d in self.deleted)


def delete_segments(
    rt: Runtime,
    actor: Actor,
    segment_ids: Iterable[int],
    *,
    reason: str,
    clauses: Sequence[str] = ("S1",),
) -> DeletionResult:
    """Delete these segments unless protected; returns what was deleted and what was refused."""
    if not reason.strip():
        raise ValueError("a deletion needs a reason")
    ids = list(dict.fromkeys(segment_ids))
    result = DeletionResult()
    root = rt.settings.recordings_path
    for start in range(0, len(ids), _BATCH):
        _delete_batch(rt, root, actor, ids[start : start + _BATCH], reason, result)
    if result.deleted or result.protected:
        rt.audit.record(
            "storage.delete",
            actor,
            object_type="segment",
            clauses=tuple(clauses),
            details=_summary(reason, result),
        )
    if result.deleted:
        log.info("deleted %d segments (%d bytes): %s", len(result.deleted), result.bytes_freed, reason)
    return result


def _summary(reason: str, result: DeletionResult) -> dict[str, object]:
    per_camera: dict[str, dict[str, int]] = {}
    for d in result.deleted:
        entry = per_camera.setdefault(str(d.camera_id), {"count": 0, "from_ms": d.start_ms, "to_ms": d.end_ms})
        entry["count"] += 1
        entry["from_ms"] = min(entry["from_ms"], d.start_ms)
        entry["to_ms"] = max(entry["to_ms"], d.end_ms)
    return {
        "reason": reason,
        "deleted": len(result.deleted),
        "bytes": result.bytes_freed,
        "protected_refused": len(result.protected),
        "cameras": per_camera,
        "segment_ids": [d.segment_id for d in result.deleted][:1000],
    }


@dataclass(frozen=True)
class _Claim:
    """A decided deletion (a ``PendingDelete`` row), as plain values."""

    segment_id: int
    camera_id: int
    start_ms: int
    end_ms: int
    path: str
    sha256: str
    reason: str
    requested_by: str


def _delete_batch(rt: Runtime, root: Path, actor: Actor, ids: list[int], reason: str, result: DeletionResult) -> None:
    # 1. Decide, and write the decision down, in one transaction with the protection check.
    #    (Core statements and one protection query per camera: a sweep deletes ~10^6 rows.)
    claimed: list[_Claim] = []
    with rt.db.write() as s:
        rows = {r.id: r for r in s.execute(select(*_COLUMNS).where(Segment.id.in_(ids)))}
        already = set(s.scalars(select(PendingDelete.segment_id).where(PendingDelete.segment_id.in_(ids))))
        protected = protected_segment_ids(s, ((r.id, r.camera_id, r.start_ms, r.end_ms) for r in rows.values()))
        for segment_id in ids:
            row = rows.get(segment_id)
            if row is None:
                result.not_found.append(segment_id)
                continue
            if segment_id in protected:
                result.protected.append(segment_id)
                continue
            if segment_id in already:
                continue  # another deletion is finishing it
            claimed.append(
                _Claim(
                    row.id,
                    row.camera_id,
                    row.start_ms,
                    row.end_ms,
                    row.path,
                    row.sha256,
                    reason[:100],
                    actor.username[:200],
                )
            )
        if claimed:
            now = utcnow()
            s.execute(
                insert(_PENDING),
                [
                    {
                        "segment_id": c.segment_id,
                        "camera_id": c.camera_id,
                        "start_ms": c.start_ms,
                        "end_ms": c.end_ms,
                        "path": c.path,
                        "sha256": c.sha256,
                        "reason": c.reason,
                        "requested_by": c.requested_by,
                        "created_at": now,
                    }
                    for c in claimed
                ],
            )
    result.deleted.extend(_carry_out(rt, root, claimed, result_protected=result.protected))


def _carry_out(rt: Runtime, root: Path, pending: list[_Claim], result_protected: list[int]) -> list[DeletedSegment]:
    """Steps 2-5 for decided deletions; shared with reconcile.  Returns those finished."""
    if not pending:
        return []
    base = str(root)
    # 2. Ask again right before the irreversible step: a hold may have been placed since.
    with rt.db.write() as s:
        again = protected_segment_ids(s, ((p.segment_id, p.camera_id, p.start_ms, p.end_ms) for p in pending))
        # (A file already gone cannot be protected any more: finish recording its deletion.)
        cancelled = {
            p.segment_id for p in pending if p.segment_id in again and os.path.exists(os.path.join(base, p.path))
        }
        if cancelled:
            s.execute(delete(_PENDING).where(_PENDING.c.segment_id.in_(cancelled)))
    result_protected.extend(p.segment_id for p in pending if p.segment_id in cancelled)

    # 3. Unlink; verify with one listing per time-bucket folder; fsync the folder.
    by_folder: dict[str, list[_Claim]] = {}
    for p in pending:
        if p.segment_id not in cancelled:
            by_folder.setdefault(os.path.dirname(p.path), []).append(p)
    done: list[_Claim] = []
    for folder, claims in by_folder.items():
        folder_path = os.path.join(base, folder)
        failed: set[int] = set()
        for p in claims:
            try:
                os.unlink(os.path.join(base, p.path))
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("could not delete %s: %s (left pending; reconcile retries)", p.path, exc.strerror)
                failed.add(p.segment_id)
        try:
            remaining = set(os.listdir(folder_path))
        except FileNotFoundError:
            remaining = set()
        for p in claims:
            if p.segment_id in failed:
                continue
            if os.path.basename(p.path) in remaining:
                log.error("%s still exists after unlink (left pending; reconcile retries)", p.path)
                continue
            done.append(p)
        if os.path.isdir(folder_path):
            fsync_dir(Path(folder_path))

    # 4. Forget them, and record their disposal, in one transaction: the rows still present
    #    are the ones this call removes (another finisher may have raced it to some).
    finished: list[DeletedSegment] = []
    if done:
        ids = [p.segment_id for p in done]
        with rt.db.write() as s:
            sizes = dict(
                s.execute(select(Segment.id, Segment.bytes).where(Segment.id.in_(ids)).with_for_update()).all()
            )
            s.execute(delete(_SEGMENTS).where(_SEGMENTS.c.id.in_(ids)))
            s.execute(delete(_PENDING).where(_PENDING.c.segment_id.in_(ids)))
            finished = [
                DeletedSegment(p.segment_id, p.camera_id, p.start_ms, p.end_ms, p.path, p.sha256, sizes[p.segment_id])
                for p in done
                if p.segment_id in sizes
            ]
            record_disposals(
                s,
                (
                    (p.camera_id, p.start_ms, p.end_ms, sizes[p.segment_id], p.reason, p.requested_by)
                    for p in done
                    if p.segment_id in sizes
                ),
            )

    # 5. Tidy the time-bucket folders that are now empty (hour, then day).
    for folder in by_folder:
        _remove_empty_buckets(Path(base, folder))
    return finished


def _remove_empty_buckets(hour_dir: Path) -> None:
    for folder in (hour_dir, hour_dir.parent):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty, or already gone
        fsync_dir(folder.parent)


def finish_pending_deletes(rt: Runtime, camera_ids: set[int] | None = None) -> tuple[int, int]:
    """Carry out deletions a crash interrupted.  Returns (finished, cancelled as protected)."""
    with rt.db.session() as s:
        q = select(PendingDelete).order_by(PendingDelete.id)
        if camera_ids is not None:
            q = q.where(PendingDelete.camera_id.in_(camera_ids))
        pending = [
            _Claim(p.segment_id, p.camera_id, p.start_ms, p.end_ms, p.path, p.sha256, p.reason, p.requested_by)
            for p in s.scalars(q)
        ]
    cancelled: list[int] = []
    finished: list[DeletedSegment] = []
    for start in range(0, len(pending), _BATCH):
        finished.extend(_carry_out(rt, rt.settings.recordings_path, pending[start : start + _BATCH], cancelled))
    return len(finished), len(cancelled)


def oldest_segment_ids(rt: Runtime, limit: int, *, after: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """(start_ms, id) of the oldest indexed segments, oldest first, after a keyset cursor."""
    with rt.db.session() as s:
        q = select(Segment.start_ms, Segment.id).order_by(Segment.start_ms, Segment.id).limit(limit)
        if after is not None:
            q = q.where((Segment.start_ms > after[0]) | ((Segment.start_ms == after[0]) & (Segment.id > after[1])))
        return [(start, segment_id) for start, segment_id in s.execute(q)]


def segments_ending_before(rt: Runtime, cutoff_ms: int, limit: int = 10_000) -> list[int]:
    """Ids of segments wholly older than ``cutoff_ms`` (for the retention sweeper)."""
    with rt.db.session() as s:
        return list(
            s.scalars(select(Segment.id).where(Segment.end_ms <= cutoff_ms).order_by(Segment.start_ms).limit(limit))
        )
