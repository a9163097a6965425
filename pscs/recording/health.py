"""The recorder's health monitor: each camera's health as its worker reports it, the
``camera_health`` rows the console reads, and the alert for a camera offline too long.

Workers report a camera's change of state or error within ``state_report_s`` and every
camera's figures (fps, bit rate) once a routine period.  The supervisor writes the rows in
each round and, between rounds, as soon as a state or error changed (``changed``); the
figures wait for the round.  A camera offline for ``offline_alert_after_s`` gets a
``camera_offline`` alert, cleared when it is back online; ``alert_due`` says when the next
one falls due, so the watch loop wakes for it whether or not a round comes first.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, select

from pscs.audit.events import Actor
from pscs.cameras.sources import RecordingSource
from pscs.clock import iso_ms, now_ms, utcnow
from pscs.recording.alerts import clear_alert, raise_alert
from pscs.recording.camera import RecorderConfig
from pscs.recording.models import AlertKind, AlertSeverity, CameraHealth, CameraState
from pscs.runtime import Runtime

CAMERA_OFFLINE = AlertKind.CAMERA_OFFLINE
_TABLE = CameraHealth.__table__
_COLUMNS = {c.key for c in _TABLE.columns}


class HealthMonitor:
    def __init__(self, rt: Runtime, config: RecorderConfig, actor: Actor) -> None:
        self.rt = rt
        self.config = config
        self.actor = actor
        self._lock = threading.Lock()  # health() is read from other threads
        self._health: dict[int, dict[str, Any]] = {}  # camera id -> latest snapshot
        self.changed = False  # a camera's state or error changed since the rows were written
        self.alert_due: float | None = None  # monotonic time an offline camera's alert falls due
        self._active: set[int] = set()
        self._names: dict[int, str] = {}
        self._offline_since: dict[int, int] = {}  # camera id -> wall ms it was last seen going offline
        self._alerted: set[int] = set()
        self._rows: set[int] = set()  # camera ids that have a camera_health row
        self._shown: dict[int, tuple[Any, Any]] = {}  # camera id -> (state, last error) last written
        self._written_at = -math.inf

    def snapshot(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._health.items()}

    def resume_alerts(self, alerted_camera_ids: Iterable[int]) -> None:
        """Offline alerts left open by the previous run are ours to clear."""
        self._alerted.update(alerted_camera_ids)

    # What changes it -----------------------------------------------------------------------
    def track(self, sources: list[RecordingSource]) -> None:
        """The cameras recorded now: a new one counts as offline until it proves otherwise,
        one no longer recorded shows as stopped and has no alert to raise."""
        active = {s.camera_id for s in sources}
        self._names = {s.camera_id: s.name for s in sources}
        with self._lock:
            for camera_id, snapshot in self._health.items():
                if camera_id not in active:
                    snapshot.update(state=CameraState.STOPPED, fps=0.0, bitrate_bps=0.0)
        for camera_id in active - self._active:
            self._offline_since[camera_id] = now_ms()
        for camera_id in self._active - active:
            self._offline_since.pop(camera_id, None)
            self._alerted.discard(camera_id)
        self._active = active

    def report(self, worker: int, snapshots: list[dict[str, Any]]) -> None:
        """A worker's health report."""
        with self._lock:
            for snapshot in snapshots:
                snapshot["worker"] = worker
                camera_id = snapshot["camera_id"]
                before = self._health.get(camera_id, {})
                if (before.get("state"), before.get("last_error")) != (snapshot["state"], snapshot["last_error"]):
                    self.changed = True
                self._health[camera_id] = snapshot

    def worker_crashed(self, camera_ids: Iterable[int], exit_code: int | None) -> None:
        self.changed = True
        with self._lock:
            for camera_id in camera_ids:
                snapshot = self._health.setdefault(camera_id, {"camera_id": camera_id})
                snapshot.update(
                    state=CameraState.OFFLINE,
                    state_since_ms=now_ms(),
                    fps=0.0,
                    bitrate_bps=0.0,
                    last_error=f"recorder worker crashed (exit code {exit_code}); restarting",
                )

    def all_stopped(self) -> None:
        with self._lock:
            for snapshot in self._health.values():
                snapshot.update(state=CameraState.STOPPED, state_since_ms=now_ms(), fps=0.0, bitrate_bps=0.0)

    # What it writes -------------------------------------------------------------------------
    def update(self) -> None:
        """Write the rows and raise or clear the offline alerts."""
        self.changed = False
        self.write()
        self.check_offline_alerts()

    def write(self) -> None:
        """Write the cameras' health rows: in each round, and between rounds when a
        camera's state or error changed (the figures, fps and bit rate, move a little at
        every report and wait for the round)."""
        with self._lock:
            snapshots = [dict(s) for s in self._health.values() if "state" in s]
        shown = {s["camera_id"]: (s["state"], s.get("last_error")) for s in snapshots}
        due = time.monotonic() >= self._written_at + self.config.routine_s / 2
        if not snapshots or (shown == self._shown and not due):
            return
        now = utcnow()
        rows = []
        for snapshot in snapshots:
            values = {k: v for k, v in snapshot.items() if k in _COLUMNS}
            values.setdefault("state_since_ms", now_ms())
            rows.append(values | {"updated_at": now})
        # At most two executemany statements, not one ORM merge per camera: with hundreds of
        # cameras this runs every couple of seconds.
        try:
            with self.rt.db.write_connection() as conn:
                if not self._rows:
                    self._rows = set(conn.scalars(select(_TABLE.c.camera_id)))
                updates = [r | {"row_id": r["camera_id"]} for r in rows if r["camera_id"] in self._rows]
                inserts = [r for r in rows if r["camera_id"] not in self._rows]
                for group in _same_keys(updates):
                    result = conn.execute(_TABLE.update().where(_TABLE.c.camera_id == bindparam("row_id")), group)
                    if result.rowcount != len(group):
                        self._rows = set()  # a row went missing: look again next time
                for group in _same_keys(inserts):
                    conn.execute(_TABLE.insert(), group)
        except Exception:
            self._rows = set()  # unknown after a failure: read again next time
            raise
        if self._rows:
            self._rows.update(r["camera_id"] for r in inserts)
        self._shown, self._written_at = shown, time.monotonic()

    def check_offline_alerts(self) -> None:
        """Raise the alert of each camera offline for ``offline_alert_after_s``, clear that of
        each back online, and note when the next one falls due."""
        now = now_ms()
        after_ms = self.config.offline_alert_after_s * 1000
        next_due_ms: float | None = None
        snapshots = self.snapshot()
        for camera_id in sorted(self._active):
            snapshot = snapshots.get(camera_id, {})
            if snapshot.get("state") == CameraState.ONLINE:
                self._offline_since.pop(camera_id, None)
                if camera_id in self._alerted:
                    self._alerted.discard(camera_id)
                    clear_alert(self.rt, CAMERA_OFFLINE, camera_id=camera_id, actor=self.actor)
                continue
            since = self._offline_since.setdefault(camera_id, now)
            if camera_id not in self._alerted and now - since < after_ms:
                next_due_ms = min(next_due_ms or math.inf, since + after_ms)
            elif camera_id not in self._alerted:
                self._alerted.add(camera_id)
                name = self._names.get(camera_id, str(camera_id))
                started = iso_ms(since, "seconds")
                why = snapshot.get("last_error") or "no video received"
                raise_alert(
                    self.rt,
                    CAMERA_OFFLINE,
                    f"camera {name} offline since {started}: {why}",
                    camera_id=camera_id,
                    severity=AlertSeverity.WARNING,
                    actor=self.actor,
                )
        self.alert_due = None if next_due_ms is None else time.monotonic() + (next_due_ms - now) / 1000


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their set of keys: one executemany needs the same columns in every row."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    return list(groups.values())
