"""The recorder against pscs's own RTSP camera simulator (``pscs.sim``), in-process.

The GStreamer tests (test_recording_e2e.py) cover the same ground against an independent
RTSP server, plus authentication, non-H.264 cameras and worker crashes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pscs.cameras.service import disable_camera, enable_camera, update_camera
from pscs.recording.supervisor import RecorderSupervisor
from pscs.runtime import Runtime
from pscs.sim.encoder import StreamSettings
from pscs.sim.server import CameraSpec, SimulatorServer
from tests.capabilities import PG_ADMIN_URL
from tests.test_recording_e2e import (
    ADMIN,
    FAST,
    assert_contiguous_or_gap,
    assert_disk_matches_index,
    gaps,
    health,
    register,
    segments,
    supervisor_factory,  # noqa: F401 - fixture
    unindexed_files,
    wait_for,
)

SMALL = StreamSettings(320, 180, 10, 200, gop_frames=5)  # keyframe every 0.5 s


@pytest.fixture(scope="module")
def sim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-cache")


@pytest.fixture
def sim(sim_cache: Path) -> Iterator[SimulatorServer]:
    cameras = [CameraSpec("loop1", scene="loop", main=SMALL, sub=SMALL, loop_seconds=2)]
    with SimulatorServer(cameras, port=0, cache_dir=sim_cache) as server:
        yield server


def test_S1_records_the_simulator_into_contiguous_decodable_segments(
    runtime: Runtime,
    sim: SimulatorServer,
    supervisor_factory: Callable[..., RecorderSupervisor],  # noqa: F811
) -> None:
    camera_id = register(runtime, "Sim loop", sim.url("loop1"))
    supervisor = supervisor_factory(runtime)
    wait_for(lambda: len(segments(runtime, camera_id)) >= 3, 20, "three segments")
    supervisor.stop()
    rows = segments(runtime, camera_id)
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.start_ms == before.end_ms
    assert all(1900 <= r.duration_ms <= 2100 for r in rows[:-1])
    h = health(runtime, camera_id)
    assert h is not None and h.timestamp_discontinuities == 0 and h.frames_total > 0
    assert_disk_matches_index(runtime)


def test_simulator_outage_resumes_within_2s_with_a_gap(
    sqlite_runtime: Runtime,
    sim: SimulatorServer,
    supervisor_factory: Callable[..., RecorderSupervisor],  # noqa: F811
) -> None:
    rt = sqlite_runtime
    camera_id = register(rt, "Sim loop", sim.url("loop1"))
    supervisor_factory(rt)
    wait_for(lambda: len(segments(rt, camera_id)) >= 2, 20, "two segments")
    sim.stop()
    down_ms = time.time() * 1000
    wait_for(lambda: (h := health(rt, camera_id)) and h.state == "offline", 10, "offline state")
    time.sleep(1.5)
    sim.start()  # same port
    up_ms = time.time() * 1000
    # The first segment after the outage is the one that the outage's gap leads to.
    [gap] = wait_for(lambda: [g for g in gaps(rt, camera_id) if "offline" in g.reason], 20, "the outage's gap")  # type: ignore[misc]
    resumed = wait_for(lambda: [s for s in segments(rt, camera_id) if s.start_ms == gap.end_ms], 10, "resumption")
    print(f"recording resumed {gap.end_ms - up_ms:.0f} ms after the simulator came back")
    assert resumed and up_ms - 100 <= gap.end_ms < up_ms + 2000
    assert gap.start_ms <= down_ms + 1000  # the gap starts where the last segment before it ended
    assert_contiguous_or_gap(rt, camera_id)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_S1_recording_goes_on_through_a_database_outage_and_is_indexed_when_it_returns(
    db_url: str,
    runtime: Runtime,
    sim: SimulatorServer,
    supervisor_factory: Callable[..., RecorderSupervisor],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Workers hold no database connection: they write files, the supervisor indexes them,
    and while the database is away it keeps the rows and retries, so the recording has no
    hole and no file is left for the next start's reconcile."""
    camera_id = register(runtime, "Sim loop", sim.url("loop1"))
    supervisor = supervisor_factory(runtime)
    wait_for(lambda: len(segments(runtime, camera_id)) >= 2, 20, "two segments")
    root = runtime.settings.recordings_path
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = db_url.rsplit("/", 1)[1]
    with caplog.at_level(logging.INFO, logger="pscs.recording.index_writer"):
        with admin.connect() as conn:  # the database goes away: no connection is allowed in
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        files_before = set(root.rglob("*.mp4"))
        wait_for(lambda: len(set(root.rglob("*.mp4")) - files_before) >= 2, 20, "two segments written while it is away")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        wait_for(lambda: not unindexed_files(runtime), 20, "indexing to catch up")
        supervisor.stop()
    assert "database unavailable" in caplog.text and "indexing caught up" in caplog.text
    rows = segments(runtime, camera_id)
    for before, after in zip(rows, rows[1:], strict=False):
        assert after.start_ms == before.end_ms, "the outage left a hole in the recording"
    assert gaps(runtime, camera_id) == [] or all("stopped" in g.reason for g in gaps(runtime, camera_id))
    assert_disk_matches_index(runtime)  # every file indexed by the supervisor, none left for reconcile


def test_S1_a_camera_moved_to_another_worker_starts_there_only_after_its_old_worker_let_it_go(
    sqlite_runtime: Runtime,
    sim: SimulatorServer,
    supervisor_factory: Callable[..., RecorderSupervisor],  # noqa: F811
) -> None:
    """Disabling a camera can leave a worker over its even share: one of its cameras moves.
    The new worker starts it only once the old one has indexed its last segment, so the two
    runs cannot overlap, and the gap between them says why it is there."""
    rt = sqlite_runtime
    first, second, moved = (register(rt, f"Sim {n}", sim.url("loop1")) for n in ("A", "B", "C"))
    supervisor = supervisor_factory(rt, dataclasses.replace(FAST, workers=2, cameras_per_worker=1))
    wait_for(lambda: all(segments(rt, c) for c in (first, second, moved)), 20, "every camera recording")
    assert supervisor.health()[moved]["worker"] == 0  # workers: 0 has A and C, 1 has B
    disable_camera(rt, ADMIN, second, reason="test")  # 1 is empty now, 0 over its share
    why = "not recording (camera moved to another recorder worker)"
    [gap] = wait_for(lambda: [g for g in gaps(rt, moved) if g.reason == why], 20, "the move's gap")  # type: ignore[misc]
    wait_for(lambda: [s for s in segments(rt, moved) if s.start_ms == gap.end_ms], 10, "recording on the new worker")
    assert supervisor.health()[moved]["worker"] == 1
    rows = segments(rt, moved)
    before = [s for s in rows if s.end_ms <= gap.start_ms]
    assert before and before[-1].end_ms == gap.start_ms, "the gap starts where the old worker's last segment ended"
    assert not [s for s in rows if s.start_ms < gap.end_ms and s.end_ms > gap.start_ms]
    assert gaps(rt, first) == [], "camera A stayed where it was, recording all along"

    enable_camera(rt, ADMIN, second)  # back, on the emptier worker: the gap says it was disabled
    [off] = wait_for(lambda: [g for g in gaps(rt, second) if "disabled" in g.reason], 20, "the disabled stretch's gap")  # type: ignore[misc]
    assert off.reason == "not recording (camera disabled)"
    recorded = len(segments(rt, first))
    update_camera(rt, ADMIN, first, name="Sim A renamed")  # a new name: no reconnect, no gap
    wait_for(lambda: len(segments(rt, first)) >= recorded + 2, 20, "camera A recording on")
    assert gaps(rt, first) == []
    # Another stream URL (here: with credentials) is a new connection: a new run, whose
    # counters start again.  Any hole before it is a gap that says why; there may be none,
    # when the new connection's first picture comes within a picture of the old one's last.
    frames_before = supervisor.health()[first]["frames_total"]
    with_user = sim.url("loop1").replace("rtsp://", "rtsp://viewer:pw@")
    update_camera(rt, ADMIN, first, main_url=with_user, public_area_attested=True)
    wait_for(lambda: supervisor.health()[first]["frames_total"] < frames_before, 20, "camera A's new connection")
    recorded = len(segments(rt, first))
    wait_for(lambda: len(segments(rt, first)) >= recorded + 2, 20, "camera A recording on the new connection")
    assert all(g.reason == "not recording (camera's stream changed)" for g in gaps(rt, first))
    supervisor.stop()
    for camera_id in (first, second, moved):
        assert_contiguous_or_gap(rt, camera_id)
    assert_disk_matches_index(rt)
