"""Start-up reconcile: make the disk and the index agree again after a crash.

Runs before any recorder writes (at supervisor start, and for a crashed worker's cameras
before that worker is restarted).  Every repair is counted, logged and audited as one
``storage.reconcile`` event:

* unfinished ``PendingDelete`` rows are carried out (or cancelled if now protected);
* ``.partial`` files are cut back to their last complete MP4 fragment and indexed, or
  removed when they hold no complete fragment;
* complete files without an index row (crash between rename and insert) are indexed;
* index rows whose file is missing are removed and the lost time is recorded as a
  ``RecordingGap`` (and logged as an error: this should never happen);
* un-indexed files that cannot be indexed (no playable H.264, or overlapping an indexed
  segment) are moved to ``<root>/.quarantine/`` for a person to look at, never deleted
  here (retention destroys them at the same age as any recording:
  :func:`pscs.storage.deletion.destroy_quarantined`);
* files that are not ours are left alone and counted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.cameras.models import Camera
from pscs.media.mp4 import complete_fragments_length, summarize
from pscs.runtime import Runtime
from pscs.storage.deletion import finish_pending_deletes
from pscs.storage.layout import QUARANTINE_DIR, SegmentPath, parse_relpath
from pscs.storage.models import PendingDelete, RecordingGap, Segment
from pscs.storage.ranges import Span, forget_segments, note_segment
from pscs.storage.segment_files import file_sha256, fsync_dir

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    pending_deletes_finished: int = 0
    pending_deletes_cancelled: int = 0
    partials_salvaged: int = 0
    partials_removed: int = 0
    orphans_indexed: int = 0
    orphans_quarantined: int = 0  # un-indexed files that could not be indexed: moved aside
    missing_files: int = 0  # index rows whose file was gone
    unknown_files: int = 0  # not named like a segment: left alone
    segments_checked: int = 0

    @property
    def repairs(self) -> int:
        return sum(v for k, v in asdict(self).items() if k not in ("segments_checked", "unknown_files"))


def reconcile(rt: Runtime, actor: Actor | None = None, camera_ids: set[int] | None = None) -> ReconcileReport:
    """Repair the recordings root and the index; ``camera_ids`` limits it to those cameras."""
    actor = actor or Actor.system("recorder")
    root = rt.settings.recordings_path
    root.mkdir(parents=True, exist_ok=True)
    report = ReconcileReport()
    report.pending_deletes_finished, report.pending_deletes_cancelled = finish_pending_deletes(rt, camera_ids)

    with rt.db.session() as s:
        known_cameras = set(s.scalars(select(Camera.id)))
        pending_paths = set(s.scalars(select(PendingDelete.path)))
    on_disk: set[str] = set()
    for relpath in _walk(root, camera_ids):
        parsed = parse_relpath(relpath)
        if parsed is None or parsed.camera_id not in known_cameras:
            report.unknown_files += 1
            log.warning("reconcile: leaving unrecognised file %s alone", relpath)
            continue
        if parsed.partial:
            _salvage_partial(rt, root, relpath, parsed, report, on_disk)
        else:
            on_disk.add(relpath)

    with rt.db.session() as s:
        q = select(Segment.id, Segment.camera_id, Segment.stream, Segment.start_ms, Segment.end_ms, Segment.path)
        if camera_ids is not None:
            q = q.where(Segment.camera_id.in_(camera_ids))
        indexed = {row.path: row for row in s.execute(q.execution_options(yield_per=10_000))}
    report.segments_checked = len(indexed)

    missing = [row for path, row in indexed.items() if path not in on_disk and path not in pending_paths]
    if missing:
        _forget_missing(rt, missing)
        report.missing_files = len(missing)
    for relpath in sorted(on_disk - indexed.keys()):
        parsed = parse_relpath(relpath)
        assert parsed is not None
        if _index_file(rt, root / relpath, parsed):
            report.orphans_indexed += 1
        else:
            _quarantine(root, relpath)
            report.orphans_quarantined += 1

    level = logging.WARNING if report.repairs else logging.INFO
    log.log(level, "storage reconcile: %s", asdict(report))
    rt.audit.record(
        "storage.reconcile",
        actor,
        object_type="recordings",
        object_id=str(root),
        clauses=("S1", "M1"),
        details={**asdict(report), "cameras": sorted(camera_ids) if camera_ids is not None else "all"},
    )
    return report


def _walk(root: Path, camera_ids: set[int] | None) -> list[str]:
    found: list[str] = []
    for camera_dir in _entries(root):
        if camera_dir.name.startswith("."):
            continue  # .quarantine and other non-camera folders
        if camera_ids is not None and (not camera_dir.name.isdigit() or int(camera_dir.name) not in camera_ids):
            continue
        if not camera_dir.is_dir(follow_symlinks=False):
            found.append(camera_dir.name)
            continue
        for current, _dirs, files in os.walk(camera_dir.path):
            rel = os.path.relpath(current, root)
            found.extend(f"{rel}/{name}".replace(os.sep, "/") for name in files)
    return found


def _entries(root: Path) -> list[os.DirEntry[str]]:
    with os.scandir(root) as it:
        return sorted(it, key=lambda e: e.name)


def _salvage_partial(
    rt: Runtime, root: Path, relpath: str, parsed: SegmentPath, report: ReconcileReport, on_disk: set[str]
) -> None:
    partial = root / relpath
    final = root / parsed.relpath
    keep = complete_fragments_length(partial)
    if final.exists():  # a finished copy is in place; this one is a leftover
        _quarantine(root, relpath)
        report.partials_removed += 1
        return
    if keep == 0:  # not one complete fragment: no frame in it can be played
        _remove(partial)
        report.partials_removed += 1
        return
    with open(partial, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(partial, final)
    fsync_dir(final.parent)
    report.partials_salvaged += 1
    on_disk.add(parsed.relpath)  # indexed below with the other un-indexed files


def _index_file(rt: Runtime, path: Path, parsed: SegmentPath) -> bool:
    summary = summarize(path)
    if summary is None or summary.codec != "h264":
        log.error("reconcile: %s holds no playable H.264 video; moving it to quarantine", path)
        return False
    with rt.db.write() as s:
        clash = s.scalar(
            select(Segment.id).where(
                Segment.camera_id == parsed.camera_id,
                Segment.stream == parsed.stream,
                Segment.start_ms < parsed.start_ms + summary.duration_ms,
                Segment.end_ms > parsed.start_ms,
            )
        )
        if clash is not None:
            log.error("reconcile: %s overlaps indexed segment %s; moving it to quarantine", path, clash)
            return False
        s.add(
            Segment(
                camera_id=parsed.camera_id,
                stream=parsed.stream,
                start_ms=parsed.start_ms,
                end_ms=parsed.start_ms + summary.duration_ms,
                duration_ms=summary.duration_ms,
                frames=summary.frames,
                bytes=path.stat().st_size,
                path=parsed.relpath,
                sha256=file_sha256(path),
                created_at=rt.clock.now(),
            )
        )
        note_segment(s, parsed.camera_id, parsed.stream, parsed.start_ms, parsed.start_ms + summary.duration_ms)
    log.warning("reconcile: indexed un-indexed segment %s (%d ms)", parsed.relpath, summary.duration_ms)
    return True


def _forget_missing(rt: Runtime, rows: list) -> None:  # noqa: ANN001 - result rows
    with rt.db.write() as s:
        for row in rows:
            log.error("reconcile: segment file %s is missing; removing its index row and recording a gap", row.path)
            s.add(
                RecordingGap(
                    camera_id=row.camera_id,
                    stream=row.stream,
                    start_ms=row.start_ms,
                    end_ms=row.end_ms,
                    reason="segment file missing at reconcile",
                    created_at=rt.clock.now(),
                )
            )
            s.query(Segment).filter(Segment.id == row.id).delete()
        forget_segments(s, (Span(r.camera_id, r.stream, r.start_ms, r.end_ms) for r in rows))


def _quarantine(root: Path, relpath: str) -> None:
    target = root / QUARANTINE_DIR / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(root / relpath, target)
    fsync_dir(target.parent)
    fsync_dir((root / relpath).parent)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    if path.parent.is_dir():
        fsync_dir(path.parent)
