"""The recorded-ranges summary that the playback timeline reads (pscs.storage.ranges) always
equals the segment index merged at the tolerance: after segments are committed through the
SegmentStore, deleted through the single deletion path, and lost files forgotten by
reconcile; and the one-statement rebuild (used by the migration) agrees.  Both databases."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.runtime import Runtime
from pscs.storage.deletion import delete_segments
from pscs.storage.models import RecordedRange, Segment
from pscs.storage.ranges import MERGE_TOLERANCE_MS, merge, rebuild_all
from pscs.storage.reconcile import reconcile
from pscs.storage.segments import SegmentStore
from pscs.video.playback import timeline
from tests.test_storage_deletion import new_camera

ADMIN = Actor(username="admin", user_id=1)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_names = itertools.count(1)

# Gaps around the tolerance, where an off-by-one would show.
GAPS = st.sampled_from([0, 1, MERGE_TOLERANCE_MS - 1, MERGE_TOLERANCE_MS, MERGE_TOLERANCE_MS + 1, 60_000])


def record(rt: Runtime, camera_id: int, layout: list[tuple[int, int]]) -> list[Segment]:
    """Commit one small segment file per (gap before it, duration) through the SegmentStore."""
    store = SegmentStore(rt.settings.recordings_path, rt.db)
    rows, t = [], T0
    for gap, duration in layout:
        t += gap
        file = store.open_segment(camera_id, "main", t)
        file.write(b"\x00" * 32)
        rows.append(store.commit(file, duration_ms=duration, frames=1))
        t += duration
    return rows


def stored_ranges(rt: Runtime, camera_id: int) -> list[tuple[int, int]]:
    with rt.db.session() as s:
        q = select(RecordedRange.start_ms, RecordedRange.end_ms).where(RecordedRange.camera_id == camera_id)
        return [tuple(r) for r in s.execute(q.order_by(RecordedRange.start_ms))]


def assert_ranges_match_index(rt: Runtime, camera_id: int) -> None:
    with rt.db.session() as s:
        q = select(Segment.start_ms, Segment.end_ms).where(Segment.camera_id == camera_id)
        expected = merge(tuple(r) for r in s.execute(q.order_by(Segment.start_ms)))
    assert stored_ranges(rt, camera_id) == expected
    with rt.db.session() as s:
        rebuild_all(s)  # not committed: only compared
        q = select(RecordedRange.start_ms, RecordedRange.end_ms).where(RecordedRange.camera_id == camera_id)
        assert [tuple(r) for r in s.execute(q.order_by(RecordedRange.start_ms))] == expected
        s.rollback()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    layout=st.lists(st.tuples(GAPS, st.integers(min_value=1, max_value=10_000)), min_size=1, max_size=12),
    data=st.data(),
)
def test_recorded_ranges_always_equal_the_merged_index(runtime: Runtime, layout, data) -> None:  # noqa: ANN001
    camera_id = new_camera(runtime, f"Ranges camera {next(_names)}")
    rows = record(runtime, camera_id, layout)
    assert_ranges_match_index(runtime, camera_id)

    doomed = data.draw(st.sets(st.sampled_from([r.id for r in rows])), label="deleted")
    delete_segments(runtime, ADMIN, doomed, reason="test: ranges follow deletions")
    assert_ranges_match_index(runtime, camera_id)

    survivors = [r for r in rows if r.id not in doomed]
    if survivors:
        lost = data.draw(st.sampled_from(survivors), label="file lost")
        (runtime.settings.recordings_path / lost.path).unlink()
        reconcile(runtime, ADMIN, camera_ids={camera_id})
        assert_ranges_match_index(runtime, camera_id)


def test_timeline_reads_the_ranges_with_gaps_between_them(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    camera_id = new_camera(rt)
    # Two runs of 10 s segments, 1 s apart inside each run, a minute between the runs.
    record(rt, camera_id, [(0, 10_000), (1_000, 10_000), (60_000, 10_000), (0, 10_000)])
    result = timeline(rt, camera_id, T0, T0 + 3_600_000)
    assert result["ranges"] == [
        {"start_ms": T0, "end_ms": T0 + 21_000},
        {"start_ms": T0 + 81_000, "end_ms": T0 + 101_000},
    ]
    later = timeline(rt, camera_id, T0 + 50_000, T0 + 3_600_000)
    assert later["ranges"] == [{"start_ms": T0 + 81_000, "end_ms": T0 + 101_000}]
