"""The recorder's worker pool: the worker processes, which cameras each records, and the
hand-over of a camera from one to another.

At most ``worker_count`` processes (``python -m pscs.recording FD``, see worker.py), each
carrying many cameras.  ``assign_cameras`` fills one before the next starts; a worker
starts once it has cameras.  A camera moving between workers is handed over: the new
worker gets it only once the old one says its thread stopped (its last segment reported
before that, on the same wire), with where its recording ended, so two runs of one camera
never overlap.  A worker that dies is reported by ``reap`` (the supervisor reconciles its
cameras' files) and restarted with back-off.  Each camera goes to its worker with the
reason of the gap its next run records.

What the workers report goes on: segments and gaps to the index writer, health reports to
``on_health``.  The pool itself never touches the database, bar asking the index writer
where a camera's recording ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from pscs.cameras.sources import RecordingSource
from pscs.recording.assignment import assign_cameras
from pscs.recording.camera import RecorderConfig
from pscs.recording.index_writer import IndexWriter
from pscs.recording.worker import WorkerSpec
from pscs.runtime import Runtime

log = logging.getLogger(__name__)

# The reason of the gap before a camera's next run, as its worker records it.
RECORDER_STOPPED = "not recording (recorder was stopped)"
CAMERA_DISABLED = "not recording (camera disabled)"
STREAM_CHANGED = "not recording (camera's stream changed)"
CAMERA_MOVED = "not recording (camera moved to another recorder worker)"
WORKER_CRASHED = "not recording (recorder worker crashed)"

HealthReport = Callable[[int, list[dict[str, Any]]], None]  # (worker index, camera snapshots)


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


@dataclass(frozen=True)
class DeadWorker:
    """A worker found dead: its cameras, and those it was handing over (``leaving``), whose
    files nobody writes now."""

    index: int
    exit_code: int | None
    cameras: list[int]
    leaving: set[int]


class WorkerPool:
    def __init__(self, rt: Runtime, config: RecorderConfig, index: IndexWriter, on_health: HealthReport) -> None:
        self.rt = rt
        self.config = config
        self.worker_count = max(1, config.workers or os.cpu_count() or 1)
        self._index = index
        self._on_health = on_health
        self._workers = [_WorkerHandle(i) for i in range(self.worker_count)]
        self._assignment: dict[int, int] = {}  # camera id -> worker index
        # A camera moving between workers: camera id -> the worker it leaves.
        self._moving: dict[int, int] = {}
        self.handoff_due = False  # a worker let a moving camera go: send the assignments
        # Why a camera was not recorded before its next run starts: the reason of the gap
        # that run records, sent with the camera to its worker.
        self._gap_reasons: dict[int, str] = {}
        self.writes_paused = False

    def pids(self) -> list[int]:
        return [h.process.pid for h in self._workers if h.process is not None and h.process.poll() is None]

    def connections(self) -> dict[int, Connection]:
        """The live workers' connections, by descriptor."""
        return {h.conn.fileno(): h.conn for h in self._workers if h.conn is not None}

    def restart_times(self) -> list[float]:
        return [h.restart_at for h in self._workers if h.restart_at is not None]

    # Cameras ----------------------------------------------------------------------------------
    def assign(self, sources: list[RecordingSource], *, why_new: str = CAMERA_DISABLED) -> None:
        """Spread the cameras to record over the workers; ``why_new`` is the gap reason of a
        camera not recorded until now.  ``send_assignments`` tells the workers."""
        before = {s.camera_id: s for handle in self._workers for s in handle.cameras}
        for source in sources:
            if source.camera_id in before and before[source.camera_id].main_url != source.main_url:
                self._gap_reasons[source.camera_id] = STREAM_CHANGED
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
                self._gap_reasons[camera_id] = CAMERA_MOVED
            # else its old worker died, and reconciled its files then: it may start at once
        for handle in self._workers:
            handle.cameras = [s for s in sources if self._assignment[s.camera_id] == handle.index]
        for camera_id in self._assignment.keys() - previous.keys():
            self._gap_reasons.setdefault(camera_id, why_new)

    def send_assignments(self) -> None:
        self.handoff_due = False
        for handle in self._workers:
            # A camera on its way here waits until its old worker has let it go.
            cameras = [s for s in handle.cameras if s.camera_id not in self._moving]
            if handle.process is None and handle.restart_at is None and cameras:
                self._spawn(handle)  # a worker starts once it has cameras
            if handle.sent != cameras and handle.process is not None and handle.process.poll() is None:
                reasons = {s.camera_id: r for s in cameras if (r := self._gap_reasons.pop(s.camera_id, None))}
                last_end_ms = self._index.last_end_ms([s.camera_id for s in cameras])
                self._send(handle, ("cameras", (cameras, last_end_ms, reasons)))
                handle.sent = cameras

    def pause_writes(self, paused: bool) -> None:
        """Pause or resume every camera's writing, in the workers running and those to come."""
        self.writes_paused = paused
        for handle in self._workers:
            self._send(handle, ("pause_writes", paused))

    # Messages ---------------------------------------------------------------------------------
    def receive(self, conn: Connection) -> None:
        """Take in everything a worker has sent."""
        handle = next((h for h in self._workers if h.conn is conn), None)
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "segment" or kind == "gap":
                    self._index.add(payload)
                elif kind == "stopped" and handle is not None and self._moving.get(payload) == handle.index:
                    del self._moving[payload]  # its last segment came before this, on the same wire
                    self.handoff_due = True
                elif kind == "health" and handle is not None:
                    self._on_health(handle.index, payload)
        except (EOFError, OSError):
            # The worker is gone (a connection only closes when its process exits): let it
            # finish exiting, so that reap sees it dead now rather than a lap later.
            if handle is not None and handle.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    handle.process.wait(2.0)

    # Life and death ---------------------------------------------------------------------------
    def reap(self) -> Iterator[DeadWorker]:
        """The workers found dead, one at a time: what each sent before it died is taken in,
        its restart is scheduled (with back-off) and its cameras' next runs will say why they
        were not recorded.  The caller reconciles their files, then calls ``release``."""
        now = time.monotonic()
        for handle in self._workers:
            process = handle.process
            if process is None or process.poll() is None:
                continue
            code = process.returncode
            log.error("recorder worker %d (pid %s) died with exit code %s", handle.index, process.pid, code)
            if handle.conn is not None:
                self.receive(handle.conn)  # what it finished before it died is indexed first
                handle.conn.close()
            handle.process, handle.conn = None, None
            if now - handle.started_at > 60:
                handle.restart_delay = 0.5  # it had been healthy: not a crash loop
            handle.restart_at = now + handle.restart_delay
            handle.restart_delay = min(handle.restart_delay * 2, self.config.worker_restart_max_s)
            for source in handle.cameras:
                self._gap_reasons[source.camera_id] = WORKER_CRASHED
            leaving = {c for c, w in self._moving.items() if w == handle.index}
            yield DeadWorker(handle.index, code, [s.camera_id for s in handle.cameras], leaving)

    def release(self, dead: DeadWorker) -> None:
        """The dead worker's files are reconciled: the cameras it was handing over may start
        on their new worker."""
        for camera_id in dead.leaving:
            del self._moving[camera_id]
        if dead.leaving:
            self.handoff_due = True

    def restart_due(self) -> None:
        now = time.monotonic()
        for handle in self._workers:
            if handle.process is None and handle.restart_at is not None and now >= handle.restart_at:
                handle.restarts += 1
                handle.restart_at = None
                self._spawn(handle)
                self.send_assignments()

    def stop(self, timeout_s: float) -> None:
        """Stop every worker.  They finish their open segments as they stop, and what they
        report meanwhile is taken in; one still running after ``timeout_s`` is killed."""
        for handle in self._workers:
            self._send(handle, ("stop", None))
        deadline = time.monotonic() + timeout_s
        running = [h for h in self._workers if h.process is not None]
        while running and time.monotonic() < deadline:
            for conn in wait([h.conn for h in running if h.conn is not None], timeout=0.2):
                self.receive(conn)  # type: ignore[arg-type]
            running = [h for h in running if h.process is not None and h.process.poll() is None]
        for handle in running:
            log.error("recorder worker %d did not stop; killing it", handle.index)
            assert handle.process is not None
            handle.process.kill()
            handle.process.wait(2)
        for handle in self._workers:
            if handle.conn is not None:
                self.receive(handle.conn)
                handle.conn.close()

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
        _send_to(conn, ("spec", spec))
        handle.process, handle.conn, handle.sent = process, conn, None
        handle.started_at = time.monotonic()
        if self.writes_paused:
            self._send(handle, ("pause_writes", True))
        log.info("recorder worker %d started (pid %d)", handle.index, process.pid)

    def _send(self, handle: _WorkerHandle, message: tuple[str, Any]) -> None:
        if handle.conn is not None:
            _send_to(handle.conn, message)


def _send_to(conn: Connection, message: tuple[str, Any]) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):  # it died; the watch loop restarts it
        conn.send(message)


def _worker_environment() -> dict[str, str]:
    """The service's environment, with glibc held to two malloc arenas unless the
    administrator chose otherwise: by default every camera thread may get an arena of its
    own that keeps freed memory (measured: ~30 MB less at 64 cameras, same CPU)."""
    return {"MALLOC_ARENA_MAX": "2"} | dict(os.environ)
