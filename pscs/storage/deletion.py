"""The single deletion path for recordings (S1).  Nothing else removes a segment file.

For each batch of segments:

1. one write transaction: skip every segment that :mod:`pscs.storage.protection` says is
   protected, and write a ``PendingDelete`` for each of the others;
2. ask the protection check again (a hold may have arrived since) and cancel those;
3. unlink each file, verify that it is gone (one listing per time-bucket folder) and
   fsync the folder;
4. one write transaction: delete the index rows and their pending records, and write the
   disposal record (:func:`pscs.storage.disposals.record_disposals`);
5. remove folders left empty; audit one ``storage.delete`` event with the counts.

Each step is one set-based statement per batch (and one protection query per camera),
so that the retention sweep of a day of 100 cameras (~864,000 files) costs little more
than the unlinks themselves (bench/retention.py).

A crash anywhere leaves ``PendingDelete`` rows that reconcile finishes (see
:func:`finish_pending_deletes`), so a decided deletion is carried out exactly once and a
file is never left half-indexed.

Files that reconcile set aside in ``.quarantine/`` have no index row, but they are
recordings all the same: :func:`destroy_quarantined` destroys them under the same rules
(protection check, disposal record, audit), one file per transaction.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import TextClause, bindparam, select, text

from pscs.audit.events import Actor
from pscs.db.base import UTCDateTime
from pscs.runtime import Runtime
from pscs.storage.disposals import record_disposals
from pscs.storage.layout import QUARANTINE_DIR, parse_relpath
from pscs.storage.models import PendingDelete, Segment
from pscs.storage.protection import is_protected, protected_segment_ids
from pscs.storage.ranges import Span, forget_segments
from pscs.storage.segment_files import fsync_dir

log = logging.getLogger(__name__)
_BATCH = 1000


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
    batches = [ids[start : start + _BATCH] for start in range(0, len(ids), _BATCH)]
    if len(batches) <= 1:
        for batch in batches:
            result.deleted.extend(_carry_out(rt, root, _claim(rt, actor, batch, reason, result), result.protected))
        return _finish(rt, actor, reason, clauses, result)
    # A pipeline one batch deep: while one batch's files are unlinked (step 3, on a worker
    # thread or process: the kernel's time), the next batch is decided (steps 1-2) and the
    # previous one forgotten (step 4) — the database's time.  Each batch still goes through
    # the steps in order, so a crash leaves exactly what the sequential path would.
    process = _UNLINK_PROCESS.get()
    with (
        nullcontext(process.executor())
        if process is not None
        else ThreadPoolExecutor(max_workers=1, thread_name_prefix="pscs-unlink")
    ) as unlinker:
        in_flight: tuple[Future[list[_Claim]], set[str]] | None = None
        for batch in batches:
            claims = _recheck(rt, root, _claim(rt, actor, batch, reason, result), result.protected)
            submitted = (unlinker.submit(_unlink, root, claims), _folders(claims))
            if in_flight is not None:
                result.deleted.extend(_forget(rt, root, in_flight[0].result(), in_flight[1]))
            in_flight = submitted
        if in_flight is not None:
            result.deleted.extend(_forget(rt, root, in_flight[0].result(), in_flight[1]))
    return _finish(rt, actor, reason, clauses, result)


class _UnlinkProcess:
    """A child process for step 3, started on first use.  In a thread of this process every
    unlink would wait for the GIL while the index work holds it (up to a switch interval,
    5 ms, per file); a process of its own unlinks back to back, as ``find -delete`` does."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def executor(self) -> Executor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _exit_with_parent(parent_pid: int) -> None:
    """In the unlink process: end when the process that started it is gone (``kill -9``),
    rather than linger; whatever it had claimed is finished by reconcile or the next sweep."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="pscs-unlink-parent-watch", daemon=True).start()


_UNLINK_PROCESS: ContextVar[_UnlinkProcess | None] = ContextVar("pscs_unlink_process", default=None)


@contextmanager
def unlinking_in_a_process() -> Iterator[None]:
    """Around long work of many ``delete_segments`` calls (a retention sweep): their unlinks
    run in one child process, started when a call first has more than one batch."""
    process = _UnlinkProcess()
    token = _UNLINK_PROCESS.set(process)
    try:
        yield
    finally:
        _UNLINK_PROCESS.reset(token)
        process.close()


def _finish(rt: Runtime, actor: Actor, reason: str, clauses: Sequence[str], result: DeletionResult) -> DeletionResult:
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


class _Claim(NamedTuple):
    """A decided deletion (a ``PendingDelete`` row), as plain values."""

    segment_id: int
    camera_id: int
    start_ms: int
    end_ms: int
    path: str
    sha256: str
    reason: str
    requested_by: str


def _sql(rt: Runtime, statement: str) -> TextClause:
    """``statement`` with ``{ids:column}`` turned into a test of ``column`` against the one
    bound parameter ``:ids`` (see :func:`_ids`): thousands of ids bind as one value, not as
    thousands of parameters (which would cost more than the deletes themselves)."""
    key = (rt.db.is_sqlite, statement)
    clause = _STATEMENTS.get(key)
    if clause is None:
        form = "{} IN (SELECT value FROM json_each(:ids))" if rt.db.is_sqlite else "{} = ANY(:ids)"
        clause = text(re.sub(r"\{ids:(\w+)\}", lambda m: form.format(m.group(1)), statement))
        _STATEMENTS[key] = clause
    return clause


_STATEMENTS: dict[tuple[bool, str], TextClause] = {}
_PRESENT = "SELECT id, bytes, stream FROM segments WHERE {ids:id}"
_PRESENT_FOR_UPDATE = "SELECT id, bytes, stream FROM segments WHERE {ids:id} FOR UPDATE"


def _ids(rt: Runtime, ids: Iterable[int]) -> str | list[int]:
    values = [int(i) for i in ids]
    return json.dumps(values) if rt.db.is_sqlite else values


def _claim(rt: Runtime, actor: Actor, ids: list[int], reason: str, result: DeletionResult) -> list[_Claim]:
    """Step 1: decide, and write the decision down, in one transaction with the protection check."""
    #    (Set-based statements and one protection query per camera: a sweep deletes ~10^6 rows.)
    claimed: list[_Claim] = []
    reason, by = reason[:100], actor.username[:200]
    with rt.db.write() as s:
        rows = {
            r.id: r
            for r in s.execute(
                _sql(rt, "SELECT id, camera_id, start_ms, end_ms, path, sha256 FROM segments WHERE {ids:id}"),
                {"ids": _ids(rt, ids)},
            ).all()
        }
        already = set(
            s.scalars(_sql(rt, "SELECT segment_id FROM pending_deletes WHERE {ids:segment_id}"), {"ids": _ids(rt, ids)})
        )
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
            claimed.append(_Claim(row.id, row.camera_id, row.start_ms, row.end_ms, row.path, row.sha256, reason, by))
        if claimed:
            s.execute(
                _sql(
                    rt,
                    "INSERT INTO pending_deletes (segment_id, camera_id, start_ms, end_ms, path, sha256, reason, "
                    "requested_by, created_at) SELECT id, camera_id, start_ms, end_ms, path, sha256, :reason, :by, "
                    ":now FROM segments WHERE {ids:id}",
                ).bindparams(bindparam("now", type_=UTCDateTime())),
                {"ids": _ids(rt, (c.segment_id for c in claimed)), "reason": reason, "by": by, "now": rt.clock.now()},
            )
    return claimed


def _carry_out(rt: Runtime, root: Path, pending: list[_Claim], result_protected: list[int]) -> list[DeletedSegment]:
    """Steps 2-5 for decided deletions, in order; shared with reconcile.  Returns those finished."""
    claims = _recheck(rt, root, pending, result_protected)
    return _forget(rt, root, _unlink(root, claims), _folders(claims))


def _recheck(rt: Runtime, root: Path, pending: list[_Claim], result_protected: list[int]) -> list[_Claim]:
    """Step 2: ask again right before the irreversible step (a hold may have been placed
    since); returns the claims still to carry out."""
    if not pending:
        return []
    base = str(root)
    with rt.db.write() as s:
        again = protected_segment_ids(s, ((p.segment_id, p.camera_id, p.start_ms, p.end_ms) for p in pending))
        # (A file already gone cannot be protected any more: finish recording its deletion.)
        cancelled = {
            p.segment_id for p in pending if p.segment_id in again and os.path.exists(os.path.join(base, p.path))
        }
        if cancelled:
            s.execute(_sql(rt, "DELETE FROM pending_deletes WHERE {ids:segment_id}"), {"ids": _ids(rt, cancelled)})
    result_protected.extend(p.segment_id for p in pending if p.segment_id in cancelled)
    return [p for p in pending if p.segment_id not in cancelled]


def _folders(claims: list[_Claim]) -> set[str]:
    return {c.path.rpartition("/")[0] for c in claims}


def _unlink(root: Path, claims: list[_Claim]) -> list[_Claim]:
    """Step 3: unlink relative to the time-bucket folder (as find -delete does), verify with
    one listing per folder, fsync the folder.  Returns the claims whose file is gone.
    Touches no database (it runs on the pipeline's worker thread)."""
    base = str(root)
    by_folder: dict[str, list[_Claim]] = {}
    for p in claims:
        by_folder.setdefault(p.path.rpartition("/")[0], []).append(p)
    done: list[_Claim] = []
    for folder, in_folder in by_folder.items():
        try:
            folder_fd = os.open(os.path.join(base, folder), os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            done.extend(in_folder)  # the folder is gone, and its files with it
            continue
        try:
            failed: set[int] = set()
            for p in in_folder:
                try:
                    os.unlink(os.path.basename(p.path), dir_fd=folder_fd)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.error("could not delete %s: %s (left pending; reconcile retries)", p.path, exc.strerror)
                    failed.add(p.segment_id)
            remaining = set(os.listdir(folder_fd))
            for p in in_folder:
                if p.segment_id in failed:
                    continue
                if os.path.basename(p.path) in remaining:
                    log.error("%s still exists after unlink (left pending; reconcile retries)", p.path)
                    continue
                done.append(p)
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)
    return done


def _forget(rt: Runtime, root: Path, done: list[_Claim], folders: set[str]) -> list[DeletedSegment]:
    """Steps 4-5: forget the unlinked segments and record their disposal in one transaction
    (the rows still present are the ones this call removes: another finisher may have raced
    it to some); then tidy the time-bucket folders left empty."""
    finished: list[DeletedSegment] = []
    if done:
        ids = {"ids": _ids(rt, (p.segment_id for p in done))}
        select_present = _PRESENT if rt.db.is_sqlite else _PRESENT_FOR_UPDATE
        with rt.db.write() as s:
            present = {r.id: r for r in s.execute(_sql(rt, select_present), ids).all()}
            s.execute(_sql(rt, "DELETE FROM segments WHERE {ids:id}"), ids)
            s.execute(_sql(rt, "DELETE FROM pending_deletes WHERE {ids:segment_id}"), ids)
            removed = [p for p in done if p.segment_id in present]
            finished = [
                DeletedSegment(
                    p.segment_id, p.camera_id, p.start_ms, p.end_ms, p.path, p.sha256, present[p.segment_id].bytes
                )
                for p in removed
            ]
            record_disposals(
                s,
                (
                    (p.camera_id, p.start_ms, p.end_ms, present[p.segment_id].bytes, p.reason, p.requested_by)
                    for p in removed
                ),
            )
            forget_segments(s, (Span(p.camera_id, present[p.segment_id].stream, p.start_ms, p.end_ms) for p in removed))

    for folder in folders:
        _remove_empty_buckets(root / folder)
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


# Quarantined files -------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuarantinedFile:
    relpath: str  # under .quarantine/, named like a segment
    camera_id: int
    start_ms: int  # from its name
    end_ms: int  # its last write: a file that could not be indexed has no trusted duration
    bytes: int


@dataclass
class QuarantineResult:
    deleted: list[QuarantinedFile] = field(default_factory=list)
    protected: list[QuarantinedFile] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(f.bytes for f in self.deleted)


def expired_quarantine(rt: Runtime, cutoff_ms: int) -> list[QuarantinedFile]:
    """Quarantined files whose recording ended before ``cutoff_ms``, oldest first.  Files not
    named like a segment are not ours to judge and are left alone."""
    base = rt.settings.recordings_path / QUARANTINE_DIR
    found: list[QuarantinedFile] = []
    for path in base.rglob("*") if base.is_dir() else ():
        relpath = path.relative_to(base).as_posix()
        parsed = parse_relpath(relpath)
        if parsed is None or not path.is_file():
            continue
        stat = path.stat()
        end_ms = max(parsed.start_ms + 1, int(stat.st_mtime * 1000))
        if end_ms <= cutoff_ms:
            found.append(QuarantinedFile(relpath, parsed.camera_id, parsed.start_ms, end_ms, stat.st_size))
    return sorted(found, key=lambda f: (f.end_ms, f.relpath))


def destroy_quarantined(
    rt: Runtime,
    actor: Actor,
    files: Iterable[QuarantinedFile],
    *,
    reason: str,
    clauses: Sequence[str] = ("S1",),
    dry_run: bool = False,
) -> QuarantineResult:
    """Destroy these quarantined files unless protected.  For each, in one transaction: the
    protection check, the disposal record, then the unlink as the last step before commit
    (a failed unlink rolls the record back)."""
    if not reason.strip():
        raise ValueError("a deletion needs a reason")
    base = rt.settings.recordings_path / QUARANTINE_DIR
    result = QuarantineResult()
    for f in files:
        with rt.db.write() as s:
            if is_protected(s, f.camera_id, f.start_ms, f.end_ms):
                result.protected.append(f)
                continue
            if dry_run:
                result.deleted.append(f)
                continue
            record_disposals(s, [(f.camera_id, f.start_ms, f.end_ms, f.bytes, reason[:100], actor.username)])
            path = base / f.relpath
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)
        result.deleted.append(f)
    if (result.deleted or result.protected) and not dry_run:
        rt.audit.record(
            "storage.delete",
            actor,
            object_type="quarantined_file",
            clauses=tuple(clauses),
            details={
                "reason": reason,
                "deleted": len(result.deleted),
                "bytes": result.bytes_freed,
                "protected_refused": len(result.protected),
                "files": [f.relpath for f in result.deleted][:1000],
            },
        )
        log.info("deleted %d quarantined files (%d bytes): %s", len(result.deleted), result.bytes_freed, reason)
    return result
