"""The single deletion path for recordings (S1).  Nothing else removes a segment file.

For each batch of segments:

1. one write transaction: skip every segment that :mod:`pscs.storage.protection` says is
   protected, and write a ``PendingDelete`` for each of the others;
2. ask the protection check again (a hold may have arrived since) and cancel those;
3. unlink each file, fsync its folder and verify that it is gone;
4. one write transaction: delete the index rows and their pending records;
5. remove folders left empty; audit one ``storage.delete`` event with the counts.

A crash anywhere leaves ``PendingDelete`` rows that reconcile finishes (see
:func:`finish_pending_deletes`), so a decided deletion is carried out exactly once and a
file is never left half-indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select

from pscs.audit.events import Actor
from pscs.db.base import utcnow
from pscs.runtime import Runtime
from pscs.storage.models import PendingDelete, Segment
from pscs.storage.protection import is_protected
from pscs.storage.segments import fsync_dir

log = logging.getLogger(__name__)
_BATCH = 500


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
        entry = per_camera.setdefault(
            str(d.camera_id), {"count": 0, "from_ms": d.start_ms, "to_ms": d.end_ms}
        )
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


def _delete_batch(
    rt: Runtime, root: Path, actor: Actor, ids: list[int], reason: str, result: DeletionResult
) -> None:
    # 1. Decide, and write the decision down, in one transaction with the protection check.
    claimed: list[PendingDelete] = []
    with rt.db.write() as s:
        rows = {r.id: r for r in s.scalars(select(Segment).where(Segment.id.in_(ids)))}
        already = set(s.scalars(select(PendingDelete.segment_id).where(PendingDelete.segment_id.in_(ids))))
        for segment_id in ids:
            row = rows.get(segment_id)
            if row is None:
                result.not_found.append(segment_id)
                continue
            if is_protected(s, row.camera_id, row.start_ms, row.end_ms):
                result.protected.append(segment_id)
                continue
            if segment_id in already:
                continue  # another deletion is finishing it
            pending = PendingDelete(
                segment_id=row.id,
                camera_id=row.camera_id,
                start_ms=row.start_ms,
                end_ms=row.end_ms,
                path=row.path,
                sha256=row.sha256,
                reason=reason[:100],
                requested_by=actor.username,
                created_at=utcnow(),
            )
            s.add(pending)
            claimed.append(pending)
    sizes = {segment_id: rows[segment_id].bytes for segment_id in rows}
    finished = _carry_out(rt, root, claimed, result_protected=result.protected)
    result.deleted.extend(
        DeletedSegment(p.segment_id, p.camera_id, p.start_ms, p.end_ms, p.path, p.sha256, sizes[p.segment_id])
        for p in finished
    )


def _carry_out(
    rt: Runtime, root: Path, pending: list[PendingDelete], result_protected: list[int]
) -> list[PendingDelete]:
    """Steps 2-5 for decided deletions; shared with reconcile.  Returns those finished."""
    if not pending:
        return []
    # 2. Ask again right before the irreversible step: a hold may have been placed since.
    with rt.db.write() as s:
        # (A file already gone cannot be protected any more: finish recording its deletion.)
        cancelled = [
            p
            for p in pending
            if (root / p.path).exists() and is_protected(s, p.camera_id, p.start_ms, p.end_ms)
        ]
        if cancelled:
            s.execute(delete(PendingDelete).where(PendingDelete.id.in_([p.id for p in cancelled])))
    result_protected.extend(p.segment_id for p in cancelled)
    go = [p for p in pending if p not in cancelled]

    # 3. Unlink and verify.
    folders: set[Path] = set()
    done: list[PendingDelete] = []
    for p in go:
        path = root / p.path
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("could not delete %s: %s (left pending; reconcile retries)", p.path, exc.strerror)
            continue
        if path.exists():
            log.error("%s still exists after unlink (left pending; reconcile retries)", p.path)
            continue
        folders.add(path.parent)
        done.append(p)
    for folder in folders:
        if folder.is_dir():
            fsync_dir(folder)

    # 4. Forget them.
    if done:
        with rt.db.write() as s:
            s.execute(delete(Segment).where(Segment.id.in_([p.segment_id for p in done])))
            s.execute(delete(PendingDelete).where(PendingDelete.id.in_([p.id for p in done])))

    # 5. Tidy the time-bucket folders that are now empty (hour, then day).
    for folder in folders:
        _remove_empty_buckets(folder)
    return done


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
        pending = list(s.scalars(q))
    cancelled: list[int] = []
    finished = _carry_out(rt, rt.settings.recordings_path, pending, cancelled)
    return len(finished), len(cancelled)


def oldest_segment_ids(
    rt: Runtime, limit: int, *, after: tuple[int, int] | None = None
) -> list[tuple[int, int]]:
    """(start_ms, id) of the oldest indexed segments, oldest first, after a keyset cursor."""
    with rt.db.session() as s:
        q = select(Segment.start_ms, Segment.id).order_by(Segment.start_ms, Segment.id).limit(limit)
        if after is not None:
            q = q.where(
                (Segment.start_ms > after[0]) | ((Segment.start_ms == after[0]) & (Segment.id > after[1]))
            )
        return [(start, segment_id) for start, segment_id in s.execute(q)]


def segments_ending_before(rt: Runtime, cutoff_ms: int, limit: int = 10_000) -> list[int]:
    """Ids of segments wholly older than ``cutoff_ms`` (for the retention sweeper)."""
    with rt.db.session() as s:
        return list(
            s.scalars(
                select(Segment.id).where(Segment.end_ms <= cutoff_ms).order_by(Segment.start_ms).limit(limit)
            )
        )
