"""The recorder's health monitor (pscs.recording.health): camera_health rows written in few
statements and only when something changed, and the offline alert raised when it falls
due and cleared when the camera is back."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.cameras.sources import RecordingSource
from pscs.recording.camera import RecorderConfig
from pscs.recording.health import HealthMonitor
from pscs.recording.models import Alert, CameraHealth
from pscs.runtime import Runtime
from tests.test_recording_index_writer import new_camera

RECORDER = Actor.system("recorder")


def snapshot(camera_id: int, state: str, last_error: str | None = None, fps: float = 0.0) -> dict[str, Any]:
    return {
        "camera_id": camera_id,
        "state": state,
        "state_since_ms": int(time.time() * 1000),
        "fps": fps,
        "bitrate_bps": 0.0,
        "last_frame_ms": None,
        "frames_total": 0,
        "bytes_total": 0,
        "dropped_packets": 0,
        "timestamp_discontinuities": 0,
        "reconnects": 0,
        "segments_written": 0,
        "last_error": last_error,
    }


def rows(rt: Runtime) -> dict[int, CameraHealth]:
    with rt.db.session() as s:
        return {h.camera_id: h for h in s.scalars(select(CameraHealth))}


def alerts(rt: Runtime) -> list[Alert]:
    with rt.db.session() as s:
        return list(s.scalars(select(Alert).where(Alert.kind == "camera_offline")))


def test_a_camera_offline_too_long_is_alerted_when_due_and_cleared_once_back(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    camera_id = new_camera(rt, "Broadway")
    monitor = HealthMonitor(rt, RecorderConfig(offline_alert_after_s=0.3), RECORDER)
    monitor.track([RecordingSource(camera_id, "Broadway", "rtsp://10.0.0.5/main")])
    monitor.report(0, [snapshot(camera_id, "offline", "unreachable (connection refused)")])
    assert monitor.changed
    monitor.update()
    assert not monitor.changed
    assert rows(rt)[camera_id].state == "offline" and rows(rt)[camera_id].worker == 0
    assert alerts(rt) == []
    assert monitor.alert_due is not None and monitor.alert_due <= time.monotonic() + 0.3
    time.sleep(max(0.0, monitor.alert_due - time.monotonic()))
    monitor.update()
    [alert] = alerts(rt)
    assert alert.camera_id == camera_id and alert.cleared_at is None
    assert "camera Broadway offline since" in alert.message and "connection refused" in alert.message
    assert monitor.alert_due is None  # nothing else to fall due

    monitor.report(0, [snapshot(camera_id, "online", fps=25.0)])
    monitor.update()
    [alert] = alerts(rt)
    assert alert.cleared_at is not None
    assert rows(rt)[camera_id].state == "online"


def test_rows_are_written_in_one_statement_for_all_cameras_and_only_for_a_change_between_rounds(
    sqlite_runtime: Runtime,
) -> None:
    rt = sqlite_runtime
    ids = [new_camera(rt, name) for name in ("A", "B", "C")]
    monitor = HealthMonitor(rt, RecorderConfig(routine_s=600), RECORDER)
    monitor.track([RecordingSource(c, str(c), "rtsp://10.0.0.5/main") for c in ids])
    monitor.report(0, [snapshot(c, "connecting") for c in ids])
    monitor.write()
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    sa_event.listen(rt.db.engine, "before_cursor_execute", note)
    try:
        monitor.report(0, [snapshot(c, "connecting", fps=1.0) for c in ids])  # figures only
        monitor.write()
        assert statements == []  # they wait for the round
        monitor.report(0, [snapshot(c, "online", fps=25.0) for c in ids])
        monitor.write()
    finally:
        sa_event.remove(rt.db.engine, "before_cursor_execute", note)
    assert [s for s in statements if s.lstrip().upper().startswith("UPDATE")] != []
    assert len([s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]) == 1
    assert {c: h.state for c, h in rows(rt).items()} == dict.fromkeys(ids, "online")
