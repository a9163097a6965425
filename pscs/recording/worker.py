"""A recorder worker process: many cameras, one thread each.

The supervisor starts a few of these (``python -m pscs.recording FD``) instead of one
process per camera, and restarts one that dies; a camera that misbehaves costs its own
thread a reconnect, never its neighbours their recording.  The process imports the
recorder, the segment store and nothing else: what it imports is memory it keeps.

Protocol over the connection on file descriptor FD (plain picklable tuples):

* supervisor -> worker: first ``("spec", WorkerSpec)``; then ``("cameras", [RecordingSource,
  ...])``, ``("pause_writes", bool)``, ``("stop", None)``;
* worker -> supervisor: ``("health", [snapshot dict, ...])`` every ``health_interval_s``.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from pscs.cameras.sources import RecordingSource
from pscs.db.engine import Database
from pscs.recording.camera import CameraRecorder, RecorderConfig
from pscs.storage.segments import SegmentStore

log = logging.getLogger(__name__)
STOP_JOIN_S = 8.0


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    db_url: str
    recordings_root: Path
    config: RecorderConfig
    first_gap_reason: str
    log_level: str = "INFO"


class Worker:
    def __init__(self, spec: WorkerSpec, conn: Connection) -> None:
        self.spec = spec
        self.conn = conn
        self.db = Database(spec.db_url)
        self.store = SegmentStore(spec.recordings_root, self.db)
        self.writes_paused = threading.Event()
        self.recorders: dict[int, CameraRecorder] = {}
        self.retiring: dict[int, CameraRecorder] = {}  # stopped, finishing their last segment
        self.stopping = False

    def set_cameras(self, sources: list[RecordingSource]) -> None:
        wanted = {s.camera_id: s for s in sources}
        for camera_id, recorder in list(self.recorders.items()):
            if camera_id not in wanted or wanted[camera_id] != recorder.source:
                recorder.stop()  # disabled, or its URL changed: it finishes its segment
                del self.recorders[camera_id]
                self.retiring[camera_id] = recorder
        for camera_id, source in wanted.items():
            if camera_id in self.recorders:
                continue
            previous = self.retiring.pop(camera_id, None)
            if previous is not None:
                # One writer per camera at a time: its last segment must be indexed before
                # the next run starts, or the two could overlap.
                previous.join(STOP_JOIN_S)
            recorder = CameraRecorder(
                source, self.store, self.spec.config, self.writes_paused, self.spec.first_gap_reason
            )
            self.recorders[camera_id] = recorder
            recorder.start()
        for camera_id, recorder in list(self.retiring.items()):
            if not recorder.is_alive():
                del self.retiring[camera_id]

    def run(self) -> None:
        next_report = 0.0
        while not self.stopping:
            # Commands wake this loop at once; otherwise it wakes only to report (and so
            # notices a stop request from the signal handler within one interval).
            if self.conn.poll(max(0.0, next_report - time.monotonic())):
                try:
                    command, argument = self.conn.recv()
                except (EOFError, OSError):
                    break  # the supervisor is gone: stop cleanly
                if command == "cameras":
                    self.set_cameras(argument)
                elif command == "pause_writes":
                    (self.writes_paused.set if argument else self.writes_paused.clear)()
                elif command == "stop":
                    break
            now = time.monotonic()
            if now >= next_report:
                next_report = now + self.spec.config.health_interval_s
                try:
                    self.conn.send(("health", [r.stats.snapshot() for r in self.recorders.values()]))
                except (BrokenPipeError, OSError):
                    break
        self.shutdown()

    def shutdown(self) -> None:
        self.stopping = True
        everyone = [*self.recorders.values(), *self.retiring.values()]
        for recorder in everyone:
            recorder.stop()
        deadline = time.monotonic() + STOP_JOIN_S
        for recorder in everyone:
            recorder.join(max(0.0, deadline - time.monotonic()))
        self.db.dispose()


def worker_main(fd: int) -> None:
    """Entry point of a worker process: ``fd`` is its end of the supervisor's socket pair."""
    # The supervisor decides when we stop; a terminal's Ctrl-C goes to it, not to us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _request_stop())
    conn = Connection(fd)
    try:
        kind, spec = conn.recv()
    except (EOFError, OSError):
        return  # the supervisor went away before it said what to do
    if kind != "spec":
        raise RuntimeError(f"recorder worker: expected its spec first, got {kind!r}")
    logging.basicConfig(
        level=spec.log_level,
        format=f"%(asctime)s recorder-worker-{spec.index}[%(process)d] %(levelname)s %(message)s",
    )
    logging.getLogger("libav").setLevel(logging.ERROR)
    worker = Worker(spec, conn)
    _current.append(worker)
    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise rescan it while hundreds of cameras allocate.
    gc.freeze()
    try:
        worker.run()
    finally:
        conn.close()


_current: list[Worker] = []


def _request_stop() -> None:
    for worker in _current:
        worker.stopping = True
