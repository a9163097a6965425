"""The single deletion path, protection, reconcile and disk pressure, on real segment
files (H.264 in fragmented MP4, written through the same SegmentStore the recorder uses)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pscs.audit.events import Actor
from pscs.cameras.service import add_camera
from pscs.media.mp4 import complete_fragments_length
from pscs.recording.camera import RecorderConfig
from pscs.recording.models import Alert
from pscs.recording.supervisor import RecorderSupervisor
from pscs.runtime import Runtime
from pscs.storage import deletion
from pscs.storage.deletion import delete_segments
from pscs.storage.layout import parse_relpath, segment_relpath
from pscs.storage.models import PendingDelete, RecordingGap, Segment
from pscs.storage.pressure import DiskUsage, relieve_disk_pressure
from pscs.storage.protection import ProtectedRange, protection_source
from pscs.storage.reconcile import reconcile
from pscs.storage.segment_files import MP4_OPTIONS, file_sha256
from pscs.storage.segments import SegmentStore

ADMIN = Actor(username="admin", user_id=1)
SWEEPER = Actor.system("retention")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SEG_MS = 2000


def new_camera(rt: Runtime, name: str = "Broadway") -> int:
    return add_camera(
        rt,
        ADMIN,
        name=name,
        street_address="1 Broadway, Norwich, CT",
        latitude=41.5,
        longitude=-72.1,
        main_url="rtsp://10.0.0.5/main",
        public_area_attested=True,
    ).id


def write_segment(store: SegmentStore, camera_id: int, start_ms: int, *, frames: int = 10, commit: bool = True):
    """Encode ``frames`` tiny H.264 frames (10 fps, keyframe first) into a segment."""
    seg = store.open_segment(camera_id, "main", start_ms)
    with av.open(seg, "w", format="mp4", options=MP4_OPTIONS) as out:
        stream = out.add_stream("libx264", rate=10, options={"g": "5", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = Fraction(1, 10)
        for i in range(frames):
            image = np.full((48, 64, 3), (i * 20) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    if commit:
        return store.commit(seg, duration_ms=frames * 100, frames=frames)
    return seg


def fill(rt: Runtime, camera_id: int, count: int, start: int = T0) -> list[Segment]:
    store = SegmentStore(rt.settings.recordings_path, rt.db)
    return [write_segment(store, camera_id, start + i * SEG_MS, frames=20) for i in range(count)]


def rows(rt: Runtime) -> list[Segment]:
    with rt.db.session() as s:
        return list(s.scalars(select(Segment).order_by(Segment.start_ms)))


def hold(camera_id: int, start_ms: int, end_ms: int):  # noqa: ANN201 - a protection source
    def source(_s: Session, cam: int, lo: int, hi: int) -> Iterable[ProtectedRange]:
        return [ProtectedRange(camera_id, start_ms, end_ms, "hold 1 (case 2026-0001)")] if cam == camera_id else []

    return protection_source(source)


# Layout ----------------------------------------------------------------------------------------
def test_segment_paths_are_time_bucketed_and_parse_back() -> None:
    path = segment_relpath(7, T0 + 3_600_000 + 5, "main")
    assert path == f"7/2026-01-01/01/{T0 + 3_600_005}.mp4"
    parsed = parse_relpath(path)
    assert parsed is not None and (parsed.camera_id, parsed.start_ms, parsed.stream) == (
        7,
        T0 + 3_600_005,
        "main",
    )
    assert parse_relpath(path + ".partial").partial  # type: ignore[union-attr]
    assert parse_relpath("7/2026-01-01/02/" + f"{T0}.mp4") is None  # in the wrong hour folder
    assert parse_relpath("notes.txt") is None


def test_commit_is_durable_hashed_and_indexed(runtime: Runtime) -> None:
    camera_id = new_camera(runtime)
    [row] = fill(runtime, camera_id, 1)
    file = runtime.settings.recordings_path / row.path
    assert file.exists() and not file.with_name(file.name + ".partial").exists()
    assert row.sha256 == file_sha256(file) and row.bytes == file.stat().st_size
    assert (row.start_ms, row.end_ms, row.frames) == (T0, T0 + 2000, 20)


# The deletion path -------------------------------------------------------------------------------
def test_S1_deletion_path_never_deletes_protected_segments(runtime: Runtime) -> None:
    camera_id = new_camera(runtime)
    segs = fill(runtime, camera_id, 5)
    # A hold covering part of the third segment protects that whole file, and only it.
    with hold(camera_id, T0 + 2 * SEG_MS + 500, T0 + 2 * SEG_MS + 600):
        result = delete_segments(runtime, SWEEPER, [s.id for s in segs], reason="retention: older than 30 days")
    assert [d.segment_id for d in result.deleted] == [segs[i].id for i in (0, 1, 3, 4)]
    assert result.protected == [segs[2].id]
    assert [r.id for r in rows(runtime)] == [segs[2].id]
    assert (runtime.settings.recordings_path / segs[2].path).exists()
    for i in (0, 1, 3, 4):
        assert not (runtime.settings.recordings_path / segs[i].path).exists()
    with runtime.db.session() as s:
        assert s.scalar(select(PendingDelete.id)) is None
    [event] = runtime.audit.search(action_prefix="storage.delete")
    assert event.clauses == "S1" and '"deleted":4' in event.details and '"protected_refused":1' in event.details


def test_S1_a_hold_placed_after_the_decision_still_stops_the_unlink(runtime: Runtime) -> None:
    camera_id = new_camera(runtime)
    [seg] = fill(runtime, camera_id, 1)
    # Decision taken (pending written) ...
    deletion_claim(runtime, seg)
    # ... then a hold arrives before the unlink: the pending delete is cancelled.
    with hold(camera_id, T0, T0 + 1):
        finished, cancelled = deletion.finish_pending_deletes(runtime)
    assert (finished, cancelled) == (0, 1)
    assert (runtime.settings.recordings_path / seg.path).exists() and len(rows(runtime)) == 1
    with runtime.db.session() as s:
        assert s.scalar(select(PendingDelete.id)) is None


def deletion_claim(rt: Runtime, seg: Segment) -> None:
    """What step 1 of the deletion path leaves behind if the process dies right after it."""
    with rt.db.write() as s:
        s.add(
            PendingDelete(
                segment_id=seg.id,
                camera_id=seg.camera_id,
                start_ms=seg.start_ms,
                end_ms=seg.end_ms,
                path=seg.path,
                sha256=seg.sha256,
                reason="retention",
                requested_by="retention",
            )
        )


def test_S1_crash_between_pending_delete_and_unlink_is_finished_by_reconcile(runtime: Runtime) -> None:
    camera_id = new_camera(runtime)
    first, second = fill(runtime, camera_id, 2)
    deletion_claim(runtime, first)  # crash: the file and the row are still there
    deletion_claim(runtime, second)
    (runtime.settings.recordings_path / second.path).unlink()  # crash after this one's unlink
    report = reconcile(runtime)
    assert report.pending_deletes_finished == 2 and report.missing_files == 0
    assert rows(runtime) == []
    assert not any(runtime.settings.recordings_path.rglob("*.mp4"))
    with runtime.db.session() as s:
        assert s.scalar(select(PendingDelete.id)) is None
        assert s.scalar(select(RecordingGap.id)) is None  # a decided deletion is not a lost recording
    [event] = runtime.audit.search(action_prefix="storage.reconcile")
    assert '"pending_deletes_finished":2' in event.details


# Reconcile --------------------------------------------------------------------------------------
def test_reconcile_repairs_orphans_partials_and_missing_files(runtime: Runtime) -> None:
    root = runtime.settings.recordings_path
    camera_id = new_camera(runtime)
    store = SegmentStore(root, runtime.db)
    kept, lost = fill(runtime, camera_id, 2)
    (root / lost.path).unlink()  # an index row whose file is gone
    # Renamed into place but never indexed (crash between rename and insert):
    orphan = write_segment(store, camera_id, T0 + 10 * SEG_MS, frames=20, commit=False)
    orphan._sync_and_close()
    orphan.partial_path.rename(orphan.final_path)
    # Killed mid-write: a .partial cut in the middle of its last fragment.
    torn = write_segment(store, camera_id, T0 + 20 * SEG_MS, frames=20, commit=False)
    torn._sync_and_close()
    size = torn.partial_path.stat().st_size
    with open(torn.partial_path, "r+b") as fh:
        fh.truncate(size - 300)
    # Killed before the first fragment was complete: nothing playable.
    empty = write_segment(store, camera_id, T0 + 30 * SEG_MS, frames=20, commit=False)
    empty._sync_and_close()
    with open(empty.partial_path, "r+b") as fh:
        fh.truncate(700)
    (root / "README.txt").write_text("not ours")

    report = reconcile(runtime)
    assert (
        report.missing_files,
        report.orphans_indexed,
        report.partials_salvaged,
        report.partials_removed,
    ) == (1, 2, 1, 1)
    assert report.unknown_files == 1 and (root / "README.txt").exists()
    by_start = {r.start_ms: r for r in rows(runtime)}
    assert set(by_start) == {kept.start_ms, T0 + 10 * SEG_MS, T0 + 20 * SEG_MS}
    assert by_start[T0 + 10 * SEG_MS].frames == 20 and by_start[T0 + 10 * SEG_MS].duration_ms == 2000
    salvaged = by_start[T0 + 20 * SEG_MS]
    assert 0 < salvaged.frames < 20  # the complete fragments only
    assert complete_fragments_length(root / salvaged.path) == (root / salvaged.path).stat().st_size
    for row in by_start.values():
        assert file_sha256(root / row.path) == row.sha256
        with av.open(str(root / row.path)) as container:
            assert sum(1 for _ in container.decode(video=0)) == row.frames
    assert not list(root.rglob("*.partial"))
    with runtime.db.session() as s:
        [gap] = s.scalars(select(RecordingGap)).all()
    assert (gap.start_ms, gap.end_ms, gap.reason) == (
        lost.start_ms,
        lost.end_ms,
        "segment file missing at reconcile",
    )
    [event] = runtime.audit.search(action_prefix="storage.reconcile")
    assert '"missing_files":1' in event.details and '"orphans_indexed":2' in event.details
    assert reconcile(runtime).repairs == 0  # idempotent


# Disk pressure ------------------------------------------------------------------------------------
class FakeDisk:
    """A volume of ``capacity`` bytes whose use is what the recordings root holds."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root, self.capacity = root, capacity

    def __call__(self, _path: Path) -> DiskUsage:
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return DiskUsage(self.capacity, used, self.capacity - used)


def test_S1_disk_pressure_deletes_oldest_unprotected_first(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    camera_id = new_camera(rt)
    segs = fill(rt, camera_id, 6)
    size = segs[0].bytes
    rt.settings.min_free_bytes = 0
    disk = FakeDisk(rt.settings.recordings_path, capacity=int(sum(s.bytes for s in segs) / 0.96))  # 4 % free
    with hold(camera_id, segs[0].start_ms, segs[0].end_ms):  # the oldest is under a hold
        result = relieve_disk_pressure(rt, usage=disk, batch=2)
    assert result.ok and result.protected_skipped >= 1
    left = [r.id for r in rows(rt)]
    assert segs[0].id in left  # protected, although oldest
    assert segs[1].id not in left  # the oldest unprotected went first
    assert segs[-1].id in left
    assert result.free_after >= result.required and result.bytes_freed >= size


def test_S1_disk_full_of_protected_footage_stops_writing_and_alerts(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    camera_id = new_camera(rt)
    segs = fill(rt, camera_id, 3)
    rt.settings.min_free_bytes = 0
    disk = FakeDisk(rt.settings.recordings_path, capacity=sum(s.bytes for s in segs) + 10)
    supervisor = RecorderSupervisor(rt, RecorderConfig(workers=1), disk_usage_probe=disk)
    with hold(camera_id, T0, T0 + 10 * SEG_MS):
        assert supervisor.check_disk() is False
    assert len(rows(rt)) == 3  # nothing protected was deleted
    with rt.db.session() as s:
        [alert] = s.scalars(select(Alert).where(Alert.kind == "storage_full")).all()
    assert alert.severity == "critical" and alert.cleared_at is None
    assert rt.audit.search(action_prefix="alert.raise")
    # Once the hold is lifted, the oldest footage makes room and writing resumes.
    assert supervisor.check_disk() is True
    with rt.db.session() as s:
        assert s.get(Alert, alert.id).cleared_at is not None


def test_S1_a_running_recorder_relieves_disk_pressure_on_its_own(sqlite_runtime: Runtime) -> None:
    """The disk check is one of the supervisor's periodic tasks: started with the disk
    short of space, the recorder deletes the oldest unprotected footage by itself (on a
    thread of its own, the watch loop going on), and keeps what a hold protects."""
    rt = sqlite_runtime
    camera_id = new_camera(rt)
    segs = fill(rt, camera_id, 6)
    rt.settings.min_free_bytes = 0
    disk = FakeDisk(rt.settings.recordings_path, capacity=int(sum(s.bytes for s in segs) / 0.96))
    supervisor = RecorderSupervisor(rt, RecorderConfig(workers=1), disk_usage_probe=disk)
    with hold(camera_id, segs[0].start_ms, segs[0].end_ms):
        supervisor.start()
        try:
            deadline = time.monotonic() + 20
            while segs[1].id in {r.id for r in rows(rt)}:
                assert time.monotonic() < deadline, "the running recorder did not relieve disk pressure"
                time.sleep(0.1)
        finally:
            supervisor.stop()
    assert {r.id for r in rows(rt)} == {segs[0].id}  # one batch of the oldest; the held one stays
    [deleted] = rt.audit.search(action_prefix="storage.delete")
    assert "disk pressure" in deleted.details


@pytest.mark.parametrize("bad_reason", ["", "   "])
def test_deletion_needs_a_reason(sqlite_runtime: Runtime, bad_reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        delete_segments(sqlite_runtime, SWEEPER, [1], reason=bad_reason)
