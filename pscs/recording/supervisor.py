"""The recorder supervisor: what the main service starts.

    supervisor = RecorderSupervisor(runtime)
    supervisor.start()      # reconcile storage, start workers, watch them
    ...
    supervisor.stop()

It reconciles storage before anything is written and then runs one watch loop that ties
together the parts, each with one job:

* the worker pool (pool.py): the worker processes, which cameras each records, hand-overs
  of a camera between workers, restarts of a worker that dies (whose cameras' files are
  reconciled here first);
* the index writer (index_writer.py): the segments and gaps the workers report, indexed in
  batches, retried while the database is unavailable;
* the health monitor (health.py): each camera's ``camera_health`` row and the alert for a
  camera offline longer than ``offline_alert_after_s``;
* periodic tasks (periodic.py): the disk pressure check (disk.py), every
  ``disk_check_interval_s``, which keeps the disk above its free-space threshold through the
  single deletion path.

Its routine database work (indexing, health rows, the look for camera changes, periodic
tasks) is done in one round, at each worker's routine report (every ``routine_s``), or on
its own clock when no report comes; between rounds it wakes only for what cannot wait: a
camera's change of state, a worker's exit, a camera's hand-over, an alert or a retry of the
index falling due, ``stop()``.  See docs/design/storage.md, "Scale".
"""

from __future__ import annotations

import logging
import math
import selectors
import socket
import threading
import time
from typing import Any

from sqlalchemy import func, select

from pscs.audit.events import Actor
from pscs.cameras.models import Camera
from pscs.cameras.service import recording_sources
from pscs.recording.alerts import open_alerts
from pscs.recording.camera import RecorderConfig
from pscs.recording.disk import DiskGuard
from pscs.recording.health import CAMERA_OFFLINE, HealthMonitor
from pscs.recording.index_writer import IndexWriter
from pscs.recording.periodic import PeriodicTasks
from pscs.recording.pool import CAMERA_DISABLED, RECORDER_STOPPED, WorkerPool
from pscs.runtime import Runtime
from pscs.storage.pressure import UsageProbe, disk_usage
from pscs.storage.reconcile import reconcile

log = logging.getLogger(__name__)
ACTOR = Actor.system("recorder")
_STOP_TIMEOUT_S = 12.0
# Whether anything was added, changed or removed in the cameras table since the last look.
_CAMERAS_SEEN = select(func.count(Camera.id), func.max(Camera.updated_at))


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
        self.index = IndexWriter(runtime.db)
        self.health_monitor = HealthMonitor(runtime, self.config, ACTOR)
        self.pool = WorkerPool(runtime, self.config, self.index, self._on_health)
        self.worker_count = self.pool.worker_count
        self.disk = DiskGuard(runtime, ACTOR, disk_usage_probe, self.pool.pause_writes)
        self.tasks = PeriodicTasks(self.config.routine_s)
        self.tasks.add("disk pressure check", self.config.disk_check_interval_s, self.disk.check_soon)
        self._report_arrived = False  # a worker's health report came: time for a round
        self._cameras_seen: tuple[Any, ...] | None = None  # (count, last change) of the cameras table
        self._stopping = threading.Event()
        self._waker: tuple[socket.socket, socket.socket] | None = None  # stop() rings it to wake the watch loop
        self._thread: threading.Thread | None = None
        self.started = False

    # Life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self.started:
            raise RuntimeError("the recorder supervisor is already running")
        self.rt.settings.recordings_path.mkdir(parents=True, exist_ok=True)
        reconcile(self.rt, ACTOR)
        # Alerts left open by the previous run are ours to clear.
        alerts = open_alerts(self.rt)
        self.health_monitor.resume_alerts(
            a.camera_id for a in alerts if a.kind == CAMERA_OFFLINE and a.camera_id is not None
        )
        self.disk.resume_from({a.kind for a in alerts})
        self._refresh_cameras(RECORDER_STOPPED)
        self.pool.send_assignments()
        self.started = True
        self._waker = socket.socketpair()
        self._thread = threading.Thread(target=self._watch, name="recorder-watch", daemon=True)
        self._thread.start()
        self.rt.audit.record("recorder.start", ACTOR, details={"workers": self.worker_count})

    def stop(self) -> None:
        if not self.started:
            return
        self._stopping.set()
        if self._waker is not None:
            self._waker[1].send(b"!")
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT_S)
        self.disk.join(_STOP_TIMEOUT_S)
        self.pool.stop(_STOP_TIMEOUT_S)
        self.index.flush()
        if len(self.index):
            log.error("recorder supervisor: %d index rows left for reconcile at the next start", len(self.index))
        self.health_monitor.all_stopped()
        self.health_monitor.write()
        for end in self._waker or ():
            end.close()
        self._waker = None
        self.started = False
        self.rt.audit.record("recorder.stop", ACTOR)

    def worker_pids(self) -> list[int]:
        return self.pool.pids()

    def health(self) -> dict[int, dict[str, Any]]:
        """The latest health snapshot of every camera (as also written to ``camera_health``)."""
        return self.health_monitor.snapshot()

    def check_disk(self) -> bool:
        """Free space if needed; pause every camera's writing when nothing deletable is left.
        Returns whether writing may go on."""
        return self.disk.check()

    # Watching ------------------------------------------------------------------------------
    def _watch(self) -> None:
        # The loop sleeps until a worker says something, a worker dies (its connection
        # reads EOF), stop() rings the waker, or something falls due (a restart, an alert,
        # a retry of the index, a periodic task, a round no report brought).
        assert self._waker is not None
        # One selector for the loop's life (multiprocessing's wait() builds one a call).
        selector = selectors.DefaultSelector()
        selector.register(self._waker[0], selectors.EVENT_READ, None)
        routine_s = self.config.routine_s
        last_round = -math.inf
        while not self._stopping.is_set():
            # A round follows each worker's routine report; a clock half a period later
            # than the reports covers their absence (no worker, a dead one).
            timers = [*self.pool.restart_times(), self.index.due_at, self.health_monitor.alert_due]
            timers.append(self.tasks.wake_at())
            due = min([last_round + 1.5 * routine_s, *(t for t in timers if t is not None)])
            self._select_workers(selector)
            for key, _ in selector.select(timeout=max(0.0, due - time.monotonic())):
                if key.data is not None:  # a worker's connection (None: the waker)
                    self.pool.receive(key.data)
            try:
                self._check_workers()
                if self.pool.handoff_due:
                    self.pool.send_assignments()
                now = time.monotonic()
                if now >= last_round + 1.5 * routine_s or (self._report_arrived and now >= last_round + routine_s / 2):
                    last_round = now
                    self._report_arrived = False
                    self._round(now)
                    continue
                if self.index.due_at is not None and now >= self.index.due_at:
                    self.index.flush()
                alert_due = self.health_monitor.alert_due
                if self.health_monitor.changed or (alert_due is not None and now >= alert_due):
                    self.health_monitor.update()
                self.tasks.run_due(now, in_round=False)
            except Exception:  # the watcher must outlive a database hiccup
                log.exception("recorder supervisor: watch loop error")
                self._stopping.wait(1.0)
        selector.close()

    def _round(self, now: float) -> None:
        """The routine work, together: one burst of database work a routine period."""
        self.index.flush()
        self._refresh_cameras()
        self.pool.send_assignments()
        self.health_monitor.update()
        self.tasks.run_due(now, in_round=True)

    def _on_health(self, worker: int, snapshots: list[dict[str, Any]]) -> None:
        self._report_arrived = True
        self.health_monitor.report(worker, snapshots)

    def _select_workers(self, selector: selectors.BaseSelector) -> None:
        """Keep the selector watching exactly the live workers' connections.  They are
        registered by descriptor: a closed connection has none, and a new worker's
        connection may reuse the number."""
        wanted = self.pool.connections()
        for fd, key in list(selector.get_map().items()):
            if key.data is not None and wanted.get(fd) is not key.data:
                selector.unregister(fd)
        registered = selector.get_map()
        for fd, conn in wanted.items():
            if fd not in registered:
                selector.register(fd, selectors.EVENT_READ, conn)

    def _refresh_cameras(self, why_new: str = CAMERA_DISABLED) -> None:
        """Look whether the cameras table changed; if so, hand the cameras to record to the
        pool and the health monitor.  ``why_new``: the gap reason of a camera not recorded
        until now."""
        with self.rt.db.engine.connect() as conn:  # Core: this runs in every round
            seen = tuple(conn.execute(_CAMERAS_SEEN).one())
        if seen == self._cameras_seen:
            return  # nothing added, changed or removed since the last look
        self._cameras_seen = seen
        sources = recording_sources(self.rt.db, self.rt.secrets)
        self.pool.assign(sources, why_new=why_new)
        self.health_monitor.track(sources)

    def _check_workers(self) -> None:
        for dead in self.pool.reap():
            # Its cameras' files may be half-written, those it was handing over too: make
            # disk and index agree now, while nobody writes them, so that each may start
            # again anywhere (here after the restart, or on another worker).
            self.index.flush()
            reconcile(self.rt, ACTOR, camera_ids=set(dead.cameras) | dead.leaving)
            self.pool.release(dead)
            self.health_monitor.worker_crashed(dead.cameras, dead.exit_code)  # offline now
            self.rt.audit.record(
                "recorder.worker.crash",
                ACTOR,
                outcome="error",
                object_type="recorder_worker",
                object_id=dead.index,
                details={"exit_code": dead.exit_code, "cameras": dead.cameras},
            )
        self.pool.restart_due()
