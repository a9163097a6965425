"""End to end over real RTSP: camera -> recorder supervisor -> segment files + index.

The cameras are GStreamer's RTSP server (an independent implementation, run by Debian's
Python); nothing of the recorder is simulated.  Segments are 2 s long here (10 s in
production) to keep each test short.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.cameras.service import add_camera, disable_camera
from pscs.recording.camera import RecorderConfig
from pscs.recording.metrics import register_recording_metrics
from pscs.recording.models import Alert, CameraHealth
from pscs.recording.supervisor import RecorderSupervisor
from pscs.runtime import Runtime
from pscs.storage.models import RecordingGap, Segment
from pscs.storage.segment_files import file_sha256
from tests.peers.gst_rtsp_server import GstCamera, free_port

pytestmark = [pytest.mark.gstreamer, pytest.mark.usefixtures("need_gstreamer")]

ADMIN = Actor(username="admin", user_id=1)
FAST = RecorderConfig(
    segment_seconds=2.0,
    workers=1,
    state_report_s=0.5,
    routine_s=1.0,
    disk_check_interval_s=60,
    open_timeout_s=3,
    read_timeout_s=3,
    offline_alert_after_s=60,
)


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, step_s: float = 0.1) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def register(rt: Runtime, name: str, url: str) -> int:
    return add_camera(
        rt,
        ADMIN,
        name=name,
        street_address="100 Broadway, Norwich, CT",
        latitude=41.52,
        longitude=-72.07,
        main_url=url,
        public_area_attested=True,
    ).id


def segments(rt: Runtime, camera_id: int) -> list[Segment]:
    with rt.db.session() as s:
        return list(s.scalars(select(Segment).where(Segment.camera_id == camera_id).order_by(Segment.start_ms)))


def gaps(rt: Runtime, camera_id: int) -> list[RecordingGap]:
    with rt.db.session() as s:
        return list(s.scalars(select(RecordingGap).where(RecordingGap.camera_id == camera_id)))


def health(rt: Runtime, camera_id: int) -> CameraHealth | None:
    with rt.db.session() as s:
        return s.get(CameraHealth, camera_id)


def decode_frames(path: Path) -> int:
    """Decode every frame; any corrupt data raises (error concealment is off)."""
    frames = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"err_detect": "explode"}  # fail on corrupt data, don't conceal
        for _frame in container.decode(stream):
            frames += 1
    return frames


def unindexed_files(rt: Runtime) -> set[str]:
    """Finished segment files that have no index row (yet: the supervisor indexes a moment later)."""
    root = rt.settings.recordings_path
    with rt.db.session() as s:
        indexed = set(s.scalars(select(Segment.path)))
    return {str(p.relative_to(root)) for p in root.rglob("*.mp4") if ".quarantine" not in p.parts} - indexed


def assert_disk_matches_index(rt: Runtime) -> None:
    root = rt.settings.recordings_path
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".quarantine" not in p.parts}
    with rt.db.session() as s:
        indexed = {row.path: row for row in s.scalars(select(Segment))}
    assert not [p for p in on_disk if p.endswith(".partial")], "partial files left behind"
    assert on_disk == set(indexed), f"disk and index differ: {on_disk ^ set(indexed)}"
    for path, row in indexed.items():
        file = root / path
        assert file.stat().st_size == row.bytes
        assert file_sha256(file) == row.sha256
        assert decode_frames(file) == row.frames, f"{path} does not decode to its {row.frames} frames"


def assert_contiguous_or_gap(rt: Runtime, camera_id: int) -> None:
    """Segments never overlap; between two of them there is either nothing or a gap record."""
    rows = segments(rt, camera_id)
    gap_rows = gaps(rt, camera_id)
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.start_ms >= before.end_ms, "segments overlap"
        if after.start_ms > before.end_ms:
            assert any(g.start_ms <= before.end_ms and g.end_ms >= after.start_ms for g in gap_rows), (
                f"unexplained hole {before.end_ms}..{after.start_ms}"
            )


@pytest.fixture
def supervisor_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., RecorderSupervisor]]:
    started: list[RecorderSupervisor] = []

    def make(rt: Runtime, config: RecorderConfig = FAST) -> RecorderSupervisor:
        supervisor = RecorderSupervisor(rt, config)
        supervisor.start()
        started.append(supervisor)
        return supervisor

    yield make
    for supervisor in started:
        supervisor.stop()


def test_S1_records_real_rtsp_into_contiguous_decodable_indexed_segments(
    runtime: Runtime, supervisor_factory: Callable[..., RecorderSupervisor]
) -> None:
    with GstCamera("/cam1/main", fps=10, gop=10) as camera:
        camera_id = register(runtime, "Broadway & Main", camera.url())
        supervisor = supervisor_factory(runtime)
        wait_for(lambda: len(segments(runtime, camera_id)) >= 3, 20, "three segments")
        wait_for(lambda: (h := health(runtime, camera_id)) and h.state == "online" and h.fps > 0, 5, "health row")
        row = health(runtime, camera_id)
        assert row is not None and 5 <= row.fps <= 15 and row.bitrate_bps > 0 and row.last_error is None
        registry = CollectorRegistry()
        register_recording_metrics(registry, runtime.db)
        exported = generate_latest(registry).decode()
        assert f'pscs_camera_up{{camera="Broadway & Main",camera_id="{camera_id}"}} 1.0' in exported
        supervisor.stop()

    rows = segments(runtime, camera_id)
    assert len(rows) >= 3
    for row in rows:
        assert row.stream == "main" and row.path.endswith(f"/{row.start_ms}.mp4")
        assert row.end_ms - row.start_ms == row.duration_ms
    # Full segments are ~2 s, cut at the 1 s keyframes, and follow each other to the millisecond.
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.start_ms == before.end_ms
    assert all(1900 <= r.duration_ms <= 2100 for r in rows[:-1])
    assert abs(rows[0].start_ms - time.time() * 1000) < 60_000  # stamped with the receiving clock
    assert_disk_matches_index(runtime)


def test_the_supervisors_database_work_comes_in_one_round_per_routine_period(
    sqlite_runtime: Runtime, supervisor_factory: Callable[..., RecorderSupervisor]
) -> None:
    # Indexing, health rows and the look for camera changes share one round (at the
    # worker's routine report), not a wake-up and a transaction each on clocks of their own.
    rt = sqlite_runtime
    statements: list[float] = []  # when the watch loop ran a statement

    def note(*_: object) -> None:
        if threading.current_thread().name == "recorder-watch":
            statements.append(time.monotonic())

    with GstCamera("/cam9/main", fps=10, gop=10) as camera:
        camera_id = register(rt, "Round St", camera.url())
        supervisor_factory(rt)
        wait_for(lambda: len(segments(rt, camera_id)) >= 1, 20, "a segment")
        sa_event.listen(rt.db.engine, "before_cursor_execute", note)
        try:
            time.sleep(6.0)
        finally:
            sa_event.remove(rt.db.engine, "before_cursor_execute", note)
        indexed = len(segments(rt, camera_id))
    rounds = [t for i, t in enumerate(statements) if i == 0 or t - statements[i - 1] > 0.2]
    # routine_s is 1 s: some six rounds in 6 s (each at least half a period after the last).
    assert 4 <= len(rounds) <= 8, [round(t - statements[0], 2) for t in statements]
    assert indexed >= 3  # and in them, the segments got indexed


def test_camera_outage_resumes_within_2s_with_an_explicit_gap(
    sqlite_runtime: Runtime, supervisor_factory: Callable[..., RecorderSupervisor]
) -> None:
    rt = sqlite_runtime
    camera = GstCamera("/cam2/main", fps=10, gop=5).start()  # keyframe every 0.5 s
    try:
        camera_id = register(rt, "Water St", camera.url())
        supervisor_factory(rt)
        wait_for(lambda: len(segments(rt, camera_id)) >= 2, 20, "two segments")
        # Full length, though GStreamer repeats SPS and PPS on every other keyframe here.
        assert 1900 <= segments(rt, camera_id)[0].duration_ms <= 2100
        camera.stop()
        down_ms = time.time() * 1000
        wait_for(lambda: (h := health(rt, camera_id)) and h.state == "offline", 10, "offline state")
        time.sleep(1.5)
        camera.start()
        up_ms = time.time() * 1000
        before = [s.id for s in segments(rt, camera_id)]
        new = wait_for(
            lambda: [s for s in segments(rt, camera_id) if s.id not in before and s.start_ms > down_ms],
            20,
            "a segment after the outage",
        )
    finally:
        camera.stop()
    first_after = min(new, key=lambda s: s.start_ms)  # type: ignore[attr-defined]
    resumed_after_ms = first_after.start_ms - up_ms
    print(f"recording resumed {resumed_after_ms:.0f} ms after the camera came back")
    assert resumed_after_ms < 2000
    outage = [g for g in gaps(rt, camera_id) if g.end_ms == first_after.start_ms]
    assert len(outage) == 1 and outage[0].start_ms <= down_ms + 500
    assert "offline" in outage[0].reason
    h = health(rt, camera_id)
    assert h is not None and h.reconnects >= 2


def test_kill_9_of_a_worker_while_writing_leaves_index_and_disk_in_agreement(
    sqlite_runtime: Runtime, supervisor_factory: Callable[..., RecorderSupervisor]
) -> None:
    rt = sqlite_runtime
    with GstCamera("/cam3/main", fps=10, gop=5) as camera:
        camera_id = register(rt, "Main St", camera.url())
        supervisor = supervisor_factory(rt)
        wait_for(lambda: len(segments(rt, camera_id)) >= 1, 20, "a first segment")
        time.sleep(1.2)  # well into the next segment: a .partial with complete fragments
        partials = list(rt.settings.recordings_path.rglob("*.partial"))
        assert partials, "the recorder should be writing a segment now"
        [pid] = supervisor.worker_pids()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: supervisor.worker_pids() and supervisor.worker_pids() != [pid], 15, "worker restart")
        count = len(segments(rt, camera_id))
        wait_for(lambda: len(segments(rt, camera_id)) >= count + 1, 20, "recording after the restart")
        supervisor.stop()
    events = rt.audit.search(action_prefix="storage.reconcile")
    repaired = [e for e in events if '"partials_salvaged":1' in e.details or '"partials_removed":1' in e.details]
    assert repaired, "the reconcile after the crash should have dealt with the .partial"
    assert rt.audit.search(action_prefix="recorder.worker.crash")
    assert_disk_matches_index(rt)
    assert_contiguous_or_gap(rt, camera_id)


def test_bad_cameras_get_a_clear_status_and_do_not_disturb_the_good_one(
    sqlite_runtime: Runtime, supervisor_factory: Callable[..., RecorderSupervisor]
) -> None:
    rt = sqlite_runtime
    good = GstCamera("/good/main", fps=10, gop=10).start()
    locked = GstCamera("/locked/main", user="operator", password="s3cret-pass").start()
    digest = GstCamera("/digest/main", user="operator", password="s3cret-pass", digest=True).start()
    mjpeg = GstCamera("/mjpeg/main", codec="mjpeg", fps=5).start()
    try:
        ids = {
            "good": register(rt, "Good", good.url()),
            "unreachable": register(rt, "Unreachable", f"rtsp://127.0.0.1:{free_port()}/x/main"),
            "wrong path": register(rt, "Wrong path", good.url().replace("/good/main", "/nope")),
            "unauthorized": register(rt, "Wrong password", locked.url("operator:wrong")),
            "not h264": register(rt, "MJPEG", mjpeg.url()),
            "digest unauthorized": register(rt, "Wrong password (Digest)", digest.url("operator:wrong")),
            "authorized": register(rt, "Right password", locked.url("operator:s3cret-pass")),
            "digest authorized": register(rt, "Right password (Digest)", digest.url("operator:s3cret-pass")),
        }
        config = RecorderConfig(**{**FAST.__dict__, "workers": 2, "offline_alert_after_s": 6.0})
        supervisor_factory(rt, config)
        expected = {
            "unreachable": "unreachable (connection refused)",
            "wrong path": "404 not found",
            "unauthorized": "401 unauthorized",
            "digest unauthorized": "401 unauthorized",
            "not h264": "not H.264 (camera sends mjpeg)",
        }

        def statuses_clear() -> bool:
            rows = {k: health(rt, v) for k, v in ids.items()}
            return all(
                rows[k] and rows[k].state == "offline" and expected[k] in (rows[k].last_error or "") for k in expected
            )

        wait_for(statuses_clear, 20, "each bad camera's status")
        wait_for(
            lambda: all(len(segments(rt, ids[k])) >= 3 for k in ("good", "authorized", "digest authorized")),
            20,
            "the good cameras' segments",
        )
        with rt.db.session() as s:
            alerts = {a.camera_id for a in s.scalars(select(Alert).where(Alert.kind == "camera_offline"))}
        wait_for(lambda: _alerted(rt) >= {ids[k] for k in expected}, 10, "offline alerts")
        recording = ("good", "authorized", "digest authorized")
        assert not alerts & {ids[k] for k in recording}
        for key in recording:
            h = health(rt, ids[key])
            assert h is not None and h.state == "online"
            assert h.timestamp_discontinuities == 0
            rows = segments(rt, ids[key])
            assert all(b.start_ms == a.end_ms for a, b in zip(rows, rows[1:], strict=False))
    finally:
        for camera in (good, locked, digest, mjpeg):
            camera.stop()
    # No credential reached the audit trail or the health table.
    for event in rt.audit.search(limit=1000):
        assert "s3cret-pass" not in event.details and "wrong" not in (event.details or "").replace("wrong path", "")
    with rt.db.session() as s:
        assert all("s3cret" not in (h.last_error or "") for h in s.scalars(select(CameraHealth)))


def test_an_offline_camera_is_shown_at_once_and_alerted_on_time_between_rounds(
    sqlite_runtime: Runtime, supervisor_factory: Callable[..., RecorderSupervisor]
) -> None:
    # Rounds far apart: the state change and the alert must not wait for one.
    rt = sqlite_runtime
    camera_id = register(rt, "Nobody St", f"rtsp://127.0.0.1:{free_port()}/x/main")
    config = RecorderConfig(**{**FAST.__dict__, "routine_s": 60.0, "offline_alert_after_s": 3.0})
    started = time.monotonic()
    supervisor_factory(rt, config)
    wait_for(lambda: (h := health(rt, camera_id)) and h.state == "offline", 5, "the offline state")
    wait_for(lambda: camera_id in _alerted(rt), 10, "the offline alert")
    alerted_after = time.monotonic() - started
    assert 3.0 <= alerted_after < 10.0, alerted_after  # the next round would be a minute away
    h = health(rt, camera_id)
    assert h is not None and "connection refused" in (h.last_error or "")


def _alerted(rt: Runtime) -> set[int]:
    with rt.db.session() as s:
        return {a.camera_id for a in s.scalars(select(Alert).where(Alert.kind == "camera_offline"))}


def test_P0_cameras_added_and_disabled_while_running_start_and_stop_recording(
    sqlite_runtime: Runtime, supervisor_factory: Callable[..., RecorderSupervisor]
) -> None:
    rt = sqlite_runtime
    with GstCamera("/cam4/main", fps=10, gop=5) as camera:
        supervisor_factory(rt)  # no cameras yet
        camera_id = register(rt, "Late St", camera.url())
        wait_for(lambda: len(segments(rt, camera_id)) >= 1, 20, "recording of the new camera")
        disable_camera(rt, ADMIN, camera_id, reason="test")
        wait_for(lambda: (h := health(rt, camera_id)) and h.state == "stopped", 10, "stopped state")
        wait_for(lambda: not list(rt.settings.recordings_path.rglob("*.partial")), 10, "last segment closed")
        wait_for(lambda: not unindexed_files(rt), 10, "last segment indexed")
        count = len(segments(rt, camera_id))
        time.sleep(2.5)
        assert len(segments(rt, camera_id)) == count  # nothing more is recorded
    assert_disk_matches_index(rt)
