"""The recorder supervisor: what the main service starts.

    supervisor = RecorderSupervisor(runtime)
    supervisor.start()      # reconcile storage, start workers, watch them
    ...
    supervisor.stop()

It reconciles storage before anything is written, spreads the enabled cameras over a few
worker processes (``assign_cameras``: one fills before the next starts), indexes the
segments and gaps the workers report (retrying while the database is unavailable),
reconciles and restarts a worker that dies, hands a moved camera from one worker to the
next, picks up camera changes, writes each camera's health to ``camera_health``, raises an
alert for a camera offline longer than ``offline_alert_after_s``, and keeps the disk above
its free-space threshold through the single deletion path.

Its routine database work (indexing, health rows, the look for camera changes) is done in
one round, at each worker's routine report (every ``routine_s``), or on its own clock when
no report comes; between rounds it wakes only for what cannot wait: a camera's change of
state, a worker's exit, a camera's hand-over, an alert falling due, ``stop()``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import InterfaceError, OperationalError

from pscs.audit.events import Actor
from pscs.cameras.models import Camera
from pscs.cameras.service import recording_sources
from pscs.cameras.sources import RecordingSource
from pscs.db.base import utcnow
from pscs.recording.alerts import clear_alert, open_alerts, raise_alert
from pscs.recording.assignment import assign_cameras
from pscs.recording.camera import RecorderConfig, wall_ms
from pscs.recording.models import AlertKind, AlertSeverity, CameraHealth, CameraState
from pscs.recording.worker import WorkerSpec
from pscs.runtime import Runtime
from pscs.storage.pressure import UsageProbe, disk_usage, relieve_disk_pressure
from pscs.storage.reconcile import reconcile
from pscs.storage.segment_files import FinishedSegment
from pscs.storage.segments import Gap, SegmentIndex

log = logging.getLogger(__name__)
ACTOR = Actor.system("recorder")
_STOP_TIMEOUT_S = 12.0
_INDEX_RETRY_S = 2.0
# What the workers report is indexed in the next routine round, the rows of many cameras in
# one transaction (the files are durable already; a row only makes them known), or at once
# when this many are waiting.
_INDEX_BATCH_MAX = 1000
# Index rows waiting while the database is unavailable (~7 hours of 200 cameras): past that
# the oldest are dropped from memory; their files are on disk and reconcile indexes them.
_MAX_UNINDEXED = 50_000
# Whether anything was added, changed or removed in the cameras table since the last look.
_CAMERAS_SEEN = select(func.count(Camera.id), func.max(Camera.updated_at))


@dataclass
class _WorkerHandle:
    index: int
    process: subprocess.Popen[bytes] | None = None
    conn: Connection | None = None
    cameras: list[RecordingSource] = field(default_factory=list)
    sent: list[RecordingSource] | None = None
    started_at: float = 0.0
    restart_delay: float = 0.5
    restart_at: float | None = None
    restarts: int = 0


class RecorderSupervisor:
    def __init__(
        self,
        runtime: Runtime,
        config: RecorderConfig | None = None,
        *,
        disk_usage_probe: UsageProbe = disk_usage,
    ) -> None:
        self.rt = runtime
        self.config = config or RecorderConfig()
        self.worker_count = max(1, self.config.workers or os.cpu_count() or 1)
        self._usage = disk_usage_probe
        self._workers = [_WorkerHandle(i) for i in range(self.worker_count)]
        self._assignment: dict[int, int] = {}  # camera id -> worker index
        # A camera moving between workers: camera id -> the worker it leaves.  The new
        # worker gets it only once the old one says its thread stopped (its last segment
        # indexed), so that two runs of one camera never overlap.
        self._moving: dict[int, int] = {}
        self._handoff_due = False
        self._report_arrived = False  # a worker's health report came: time for a round
        self._state_news = False  # ... and it told of a camera's change of state or error
        self._alert_due: float | None = None  # monotonic time an offline camera's alert falls due
        # Why a camera was not recorded before its next run starts: the reason of the gap
        # that run records, sent with the camera to its worker.
        self._gap_reasons: dict[int, str] = {}
        self._health: dict[int, dict[str, Any]] = {}
        self._active: set[int] = set()
        self._offline_since: dict[int, int] = {}  # camera id -> wall ms it was last seen going offline
        self._alerted: set[int] = set()
        self._names: dict[int, str] = {}
        self._cameras_seen: tuple[Any, ...] | None = None  # (count, last change) of the cameras table
        self._health_rows: set[int] = set()  # camera ids that have a camera_health row
        self._health_shown: dict[int, tuple[Any, Any]] = {}  # camera id -> (state, last error) last written
        self._health_written_at = -math.inf
        self._index = SegmentIndex(runtime.db)
        self._unindexed: deque[FinishedSegment | Gap] = deque()  # reported by workers, in order
        self._index_at: float | None = None  # when to index what is queued, before the next round
        self._index_failing = False  # the database was unavailable at the last try
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._waker: tuple[socket.socket, socket.socket] | None = None  # stop() rings it to wake the watch loop
        self._threads: list[threading.Thread] = []
        self._writes_paused = False
        self.started = False

    # Life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            raise RuntimeError("the recorder supervisor is already running")
        self.rt.settings.recordings_path.mkdir(parents=True, exist_ok=True)
        reconcile(self.rt, ACTOR)
        # Alerts left open by the previous run are ours to clear.
        for alert in open_alerts(self.rt):
            if alert.kind == AlertKind.CAMERA_OFFLINE and alert.camera_id is not None:
                self._alerted.add(alert.camera_id)
            elif alert.kind == AlertKind.STORAGE_FULL:
                self._writes_paused = True  # until the first disk check says otherwise
        self._refresh_cameras()
        self._gap_reasons = dict.fromkeys(self._active, "not recording (recorder was stopped)")
        self._send_assignments()
        self.started = True
        self._waker = socket.socketpair()
        for target, name in ((self._watch, "recorder-watch"), (self._disk_loop, "recorder-disk")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.rt.audit.record("recorder.start", ACTOR, details={"workers": self.worker_count})

    def stop(self) -> None:
        if not self.started:
            return
        self._stopping.set()
        if self._waker is not None:
            self._waker[1].send(b"!")
        for thread in self._threads:
            thread.join(_STOP_TIMEOUT_S)
        for handle in self._workers:
            self._send(handle, ("stop", None))
        # Workers finish their open segments as they stop: keep reading what they report.
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        running = [h for h in self._workers if h.process is not None]
        while running and time.monotonic() < deadline:
            for conn in wait([h.conn for h in running if h.conn is not None], timeout=0.2):
                self._receive(conn)  # type: ignore[arg-type]
            running = [h for h in running if h.process is not None and h.process.poll() is None]
        for handle in running:
            log.error("recorder worker %d did not stop; killing it", handle.index)
            assert handle.process is not None
            handle.process.kill()
            handle.process.wait(2)
        for handle in self._workers:
            if handle.conn is not None:
                self._receive(handle.conn)
                handle.conn.close()
        self._flush_index()
        if self._unindexed:
            log.error("recorder supervisor: %d index rows left for reconcile at the next start", len(self._unindexed))
        with self._lock:
            for snapshot in self._health.values():
                snapshot.update(state=CameraState.STOPPED, state_since_ms=wall_ms(), fps=0.0, bitrate_bps=0.0)
        self._write_health()
        for end in self._waker or ():
            end.close()
        self._waker = None
        self.started = False
        self.rt.audit.record("recorder.stop", ACTOR)

    def worker_pids(self) -> list[int]:
        return [h.process.pid for h in self._workers if h.process is not None and h.process.poll() is None]

    def health(self) -> dict[int, dict[str, Any]]:
        """The latest health snapshot of every camera (as also written to ``camera_health``)."""
        with self._lock:
            return {k: dict(v) for k, v in self._health.items()}

    # Workers ------------------------------------------------------------------------------
    def _spawn(self, handle: _WorkerHandle) -> None:
        # A fresh interpreter that imports only the recorder (``python -m pscs.recording``),
        # not multiprocessing's "spawn", which re-imports the parent's main module (the whole
        # CLI and web stack: some 35 MB more in every worker).
        parent, child = socket.socketpair()
        spec = WorkerSpec(
            index=handle.index,
            recordings_root=self.rt.settings.recordings_path,
            config=self.config,
            log_level=self.rt.settings.log_level,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "pscs.recording", str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            env=_worker_environment(),
        )
        child.close()
        conn = Connection(parent.detach())
        self._send_to(conn, ("spec", spec))
        handle.process, handle.conn, handle.sent = process, conn, None
        handle.started_at = time.monotonic()
        if self._writes_paused:
            self._send(handle, ("pause_writes", True))
        log.info("recorder worker %d started (pid %d)", handle.index, process.pid)

    def _send(self, handle: _WorkerHandle, message: tuple[str, Any]) -> None:
        if handle.conn is not None:
            self._send_to(handle.conn, message)

    @staticmethod
    def _send_to(conn: Connection, message: tuple[str, Any]) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):  # it died; the watcher restarts it
            conn.send(message)

    def _refresh_cameras(self) -> None:
        with self.rt.db.engine.connect() as conn:  # Core: this runs in every round
            seen = tuple(conn.execute(_CAMERAS_SEEN).one())
        if seen == self._cameras_seen:
            return  # nothing added, changed or removed since the last look
        self._cameras_seen = seen
        sources = recording_sources(self.rt.db, self.rt.secrets)
        before = {s.camera_id: s for handle in self._workers for s in handle.cameras}
        for source in sources:
            if source.camera_id in before and before[source.camera_id].main_url != source.main_url:
                self._gap_reasons[source.camera_id] = "not recording (camera's stream changed)"
        previous = self._assignment
        self._assignment = assign_cameras(
            previous, (s.camera_id for s in sources), self.worker_count, self.config.cameras_per_worker
        )
        for camera_id, worker in self._assignment.items():
            old = self._moving.get(camera_id, previous.get(camera_id))
            if old is None or old == worker:
                self._moving.pop(camera_id, None)  # new here, or back where it still runs
            elif self._workers[old].process is not None:
                self._moving[camera_id] = old
                self._gap_reasons[camera_id] = "not recording (camera moved to another recorder worker)"
            # else its old worker died, and reconciled its files then: it may start at once
        for handle in self._workers:
            handle.cameras = [s for s in sources if self._assignment[s.camera_id] == handle.index]
        with self.rt.db.session() as s:
            self._names = dict(s.query(Camera.id, Camera.name).all())  # type: ignore[arg-type]
        active = {s.camera_id for s in sources}
        with self._lock:
            for camera_id in list(self._health):
                if camera_id not in active:
                    self._health[camera_id].update(state=CameraState.STOPPED, fps=0.0, bitrate_bps=0.0)
        for camera_id in active - self._active:
            self._offline_since[camera_id] = wall_ms()  # not online until it proves it
            self._gap_reasons.setdefault(camera_id, "not recording (camera disabled)")
        for camera_id in self._active - active:
            self._offline_since.pop(camera_id, None)
            self._alerted.discard(camera_id)
        self._active = active

    def _send_assignments(self) -> None:
        for handle in self._workers:
            # A camera on its way here waits until its old worker has let it go.
            cameras = [s for s in handle.cameras if s.camera_id not in self._moving]
            if handle.process is None and handle.restart_at is None and cameras:
                self._spawn(handle)  # a worker starts once it has cameras
            if handle.sent != cameras and handle.process is not None and handle.process.poll() is None:
                reasons = {s.camera_id: r for s in cameras if (r := self._gap_reasons.pop(s.camera_id, None))}
                self._send(handle, ("cameras", (cameras, self._last_end_ms(cameras), reasons)))
                handle.sent = cameras

    def _last_end_ms(self, sources: list[RecordingSource]) -> dict[int, int]:
        """Where each camera's recording ended: a new run never starts before it."""
        ends = self._index.last_end_ms([s.camera_id for s in sources])
        for item in self._unindexed:
            if isinstance(item, FinishedSegment):
                ends[item.camera_id] = max(ends.get(item.camera_id, item.end_ms), item.end_ms)
        return ends

    def _check_workers(self) -> None:
        now = time.monotonic()
        for handle in self._workers:
            process = handle.process
            if process is not None and process.poll() is not None:
                code = process.returncode
                log.error("recorder worker %d (pid %s) died with exit code %s", handle.index, process.pid, code)
                if handle.conn is not None:
                    self._receive(handle.conn)  # what it finished before it died is indexed first
                    handle.conn.close()
                handle.process, handle.conn = None, None
                # Its cameras' files may be half-written, those it was handing over too: make
                # disk and index agree now, while nobody writes them, so that each may start
                # again anywhere (here after the restart, or on another worker).
                leaving = {c for c, w in self._moving.items() if w == handle.index}
                self._flush_index()
                reconcile(self.rt, ACTOR, camera_ids={s.camera_id for s in handle.cameras} | leaving)
                for camera_id in leaving:
                    del self._moving[camera_id]
                if leaving:
                    self._handoff_due = True
                if now - handle.started_at > 60:
                    handle.restart_delay = 0.5  # it had been healthy: not a crash loop
                handle.restart_at = now + handle.restart_delay
                handle.restart_delay = min(handle.restart_delay * 2, self.config.worker_restart_max_s)
                self._state_news = True  # its cameras are offline now
                with self._lock:
                    for source in handle.cameras:
                        self._gap_reasons[source.camera_id] = "not recording (recorder worker crashed)"
                        snapshot = self._health.setdefault(source.camera_id, {"camera_id": source.camera_id})
                        snapshot.update(
                            state=CameraState.OFFLINE,
                            state_since_ms=wall_ms(),
                            fps=0.0,
                            bitrate_bps=0.0,
                            last_error=f"recorder worker crashed (exit code {code}); restarting",
                        )
                self.rt.audit.record(
                    "recorder.worker.crash",
                    ACTOR,
                    outcome="error",
                    object_type="recorder_worker",
                    object_id=handle.index,
                    details={"exit_code": code, "cameras": [s.camera_id for s in handle.cameras]},
                )
            if handle.process is None and handle.restart_at is not None and now >= handle.restart_at:
                handle.restarts += 1
                handle.restart_at = None
                self._spawn(handle)
                self._send_assignments()

    # Watching ------------------------------------------------------------------------------
    def _watch(self) -> None:
        # The loop sleeps until a worker says something, a worker dies (its connection
        # reads EOF), stop() rings the waker, or something falls due (a restart, an alert,
        # a retry of the index, a round no report brought).
        assert self._waker is not None
        # One selector for the loop's life (multiprocessing's wait() builds one a call).
        selector = selectors.DefaultSelector()
        selector.register(self._waker[0], selectors.EVENT_READ, None)
        routine_s = self.config.routine_s
        last_round = -math.inf
        while not self._stopping.is_set():
            # A round follows each worker's routine report; a clock half a period later
            # than the reports covers their absence (no worker, a dead one).
            timers = [h.restart_at for h in self._workers if h.restart_at is not None]
            timers += [t for t in (self._index_at, self._alert_due) if t is not None]
            due = min([last_round + 1.5 * routine_s, *timers])
            self._select_workers(selector)
            for key, _ in selector.select(timeout=max(0.0, due - time.monotonic())):
                if key.data is not None:  # a worker's connection (None: the waker)
                    self._receive(key.data)
            try:
                self._check_workers()
                if self._handoff_due:
                    self._handoff_due = False
                    self._send_assignments()
                now = time.monotonic()
                if now >= last_round + 1.5 * routine_s or (self._report_arrived and now >= last_round + routine_s / 2):
                    last_round = now
                    self._report_arrived = self._state_news = False
                    self._flush_index()
                    self._refresh_cameras()
                    self._send_assignments()
                    self._write_health()
                    self._check_offline_alerts()
                    continue
                if self._index_at is not None and now >= self._index_at:
                    self._flush_index()
                if self._state_news or (self._alert_due is not None and now >= self._alert_due):
                    self._state_news = False
                    self._write_health()
                    self._check_offline_alerts()
            except Exception:  # the watcher must outlive a database hiccup
                log.exception("recorder supervisor: watch loop error")
                self._stopping.wait(1.0)
        selector.close()

    def _select_workers(self, selector: selectors.BaseSelector) -> None:
        """Keep the selector watching exactly the live workers' connections.  They are
        registered by descriptor: a closed connection has none, and a new worker's
        connection may reuse the number."""
        wanted = {h.conn.fileno(): h.conn for h in self._workers if h.conn is not None}
        for fd, key in list(selector.get_map().items()):
            if key.data is not None and wanted.get(fd) is not key.data:
                selector.unregister(fd)
        registered = selector.get_map()
        for fd, conn in wanted.items():
            if fd not in registered:
                selector.register(fd, selectors.EVENT_READ, conn)

    def _receive(self, conn: Connection) -> None:
        handle = next((h for h in self._workers if h.conn is conn), None)
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "segment" or kind == "gap":
                    self._unindexed.append(payload)
                    if len(self._unindexed) >= _INDEX_BATCH_MAX and self._index_at is None:
                        self._index_at = time.monotonic()
                elif kind == "stopped" and handle is not None and self._moving.get(payload) == handle.index:
                    del self._moving[payload]  # its last segment came before this, on the same wire
                    self._handoff_due = True
                elif kind == "health" and handle is not None:
                    self._report_arrived = True
                    with self._lock:
                        for snapshot in payload:
                            snapshot["worker"] = handle.index
                            camera_id = snapshot["camera_id"]
                            before = self._health.get(camera_id, {})
                            if (before.get("state"), before.get("last_error")) != (
                                snapshot["state"],
                                snapshot["last_error"],
                            ):
                                self._state_news = True
                            self._health[camera_id] = snapshot
        except (EOFError, OSError):
            # The worker is gone (a connection only closes when its process exits): let it
            # finish exiting, so that _check_workers sees it dead now rather than a lap later.
            if handle is not None and handle.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    handle.process.wait(2.0)

    def _flush_index(self) -> None:
        """Index what the workers reported, in order, in one transaction.  While the
        database is unavailable it waits here and is retried every couple of seconds; the
        files wait on disk, durable, either way (and reconcile indexes any that never get
        their row)."""
        batch = list(self._unindexed)
        if not batch:
            self._index_at = None
            return
        try:
            self._index.add_batch(batch)
        except (OperationalError, InterfaceError):
            if not self._index_failing:
                log.warning("recorder supervisor: database unavailable; indexing resumes when it is back")
            self._index_failing = True
            self._index_at = time.monotonic() + _INDEX_RETRY_S
            while len(self._unindexed) > _MAX_UNINDEXED:
                dropped = self._unindexed.popleft()
                log.error("recorder supervisor: %r left for reconcile to index at the next start", dropped)
            return
        except Exception:
            # Something in the batch is refused: index the rest one by one, without it.
            for item in batch:
                try:
                    self._index.add_batch([item])
                except Exception:
                    log.exception("recorder supervisor: cannot index %r; reconcile will look at it", item)
        for _ in batch:
            self._unindexed.popleft()
        if self._index_failing:
            log.info("recorder supervisor: database back; indexing caught up")
        self._index_failing = False
        self._index_at = None

    def _write_health(self) -> None:
        """Write the cameras' health rows: in each round, and between rounds when a
        camera's state or error changed (the figures, fps and bit rate, move a little at
        every report and wait for the round)."""
        with self._lock:
            snapshots = [dict(s) for s in self._health.values() if "state" in s]
        shown = {s["camera_id"]: (s["state"], s.get("last_error")) for s in snapshots}
        due = time.monotonic() >= self._health_written_at + self.config.routine_s / 2
        if not snapshots or (shown == self._health_shown and not due):
            return
        columns = {c.key for c in CameraHealth.__table__.columns}
        now = utcnow()
        rows = []
        for snapshot in snapshots:
            values = {k: v for k, v in snapshot.items() if k in columns}
            values.setdefault("state_since_ms", wall_ms())
            rows.append(values | {"updated_at": now})
        # At most two executemany statements, not one ORM merge per camera: with hundreds of
        # cameras this runs every couple of seconds.
        table = CameraHealth.__table__
        try:
            with self.rt.db.write_connection() as conn:
                if not self._health_rows:
                    self._health_rows = set(conn.scalars(select(table.c.camera_id)))
                updates = [r | {"row_id": r["camera_id"]} for r in rows if r["camera_id"] in self._health_rows]
                inserts = [r for r in rows if r["camera_id"] not in self._health_rows]
                for group in _same_keys(updates):
                    result = conn.execute(table.update().where(table.c.camera_id == bindparam("row_id")), group)
                    if result.rowcount != len(group):
                        self._health_rows = set()  # a row went missing: look again next time
                for group in _same_keys(inserts):
                    conn.execute(table.insert(), group)
        except Exception:
            self._health_rows = set()  # unknown after a failure: read again next time
            raise
        if self._health_rows:
            self._health_rows.update(r["camera_id"] for r in inserts)
        self._health_shown, self._health_written_at = shown, time.monotonic()

    def _check_offline_alerts(self) -> None:
        """Raise the alert of each camera offline for ``offline_alert_after_s``, clear that of
        each back online, and note when the next one falls due (the watch loop wakes then)."""
        now = wall_ms()
        after_ms = self.config.offline_alert_after_s * 1000
        next_due_ms: float | None = None
        with self._lock:
            snapshots = {k: dict(v) for k, v in self._health.items()}
        for camera_id in sorted(self._active):
            snapshot = snapshots.get(camera_id, {})
            if snapshot.get("state") == "online":
                self._offline_since.pop(camera_id, None)
                if camera_id in self._alerted:
                    self._alerted.discard(camera_id)
                    clear_alert(self.rt, AlertKind.CAMERA_OFFLINE, camera_id=camera_id, actor=ACTOR)
                continue
            since = self._offline_since.setdefault(camera_id, now)
            if camera_id not in self._alerted and now - since < after_ms:
                next_due_ms = min(next_due_ms or math.inf, since + after_ms)
            elif camera_id not in self._alerted:
                self._alerted.add(camera_id)
                name = self._names.get(camera_id, str(camera_id))
                started = datetime.fromtimestamp(since / 1000, UTC).isoformat(timespec="seconds")
                why = snapshot.get("last_error") or "no video received"
                raise_alert(
                    self.rt,
                    AlertKind.CAMERA_OFFLINE,
                    f"camera {name} offline since {started}: {why}",
                    camera_id=camera_id,
                    severity=AlertSeverity.WARNING,
                    actor=ACTOR,
                )
        self._alert_due = None if next_due_ms is None else time.monotonic() + (next_due_ms - now) / 1000

    # Disk pressure --------------------------------------------------------------------------
    def _disk_loop(self) -> None:
        delay = 0.0  # first check at once
        while not self._stopping.wait(delay):
            delay = self.config.disk_check_interval_s
            try:
                self.check_disk()
            except Exception:
                log.exception("recorder supervisor: disk pressure check failed")

    def check_disk(self) -> bool:
        """Free space if needed; pause every camera's writing when nothing deletable is left.
        Returns whether writing may go on."""
        result = relieve_disk_pressure(self.rt, ACTOR, usage=self._usage)
        if not result.ok and not self._writes_paused:
            self._writes_paused = True
            for handle in self._workers:
                self._send(handle, ("pause_writes", True))
            raise_alert(
                self.rt,
                AlertKind.STORAGE_FULL,
                f"recording stopped: {result.free_after} bytes free, {result.required} required, and every "
                f"remaining recording is protected ({result.protected_skipped} protected segments skipped)",
                severity=AlertSeverity.CRITICAL,
                actor=ACTOR,
            )
        elif result.ok and self._writes_paused:
            self._writes_paused = False
            for handle in self._workers:
                self._send(handle, ("pause_writes", False))
            clear_alert(self.rt, AlertKind.STORAGE_FULL, actor=ACTOR)
        return result.ok


def _worker_environment() -> dict[str, str]:
    """The service's environment, with glibc held to two malloc arenas unless the
    administrator chose otherwise: by default every camera thread may get an arena of its
    own that keeps freed memory (measured: ~30 MB less at 64 cameras, same CPU)."""
    return {"MALLOC_ARENA_MAX": "2"} | dict(os.environ)


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by their set of keys: one executemany needs the same columns in every row."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    return list(groups.values())
