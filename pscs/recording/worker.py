"""A recorder worker process: many cameras, one thread each.

The supervisor starts a few of these (``python -m pscs.recording FD``) instead of one
process per camera, and restarts one that dies; a camera that misbehaves costs its own
thread a reconnect, never its neighbours their recording.  The process imports the
recorder and the segment files and nothing else, not even the database layer: what it
imports is memory it keeps.  It writes segment files; the supervisor indexes them.

Protocol over the socket on file descriptor FD (plain picklable tuples, framed as
:class:`multiprocessing.connection.Connection` frames them, which the supervisor uses):

* supervisor -> worker: first ``("spec", WorkerSpec)``; then ``("cameras", ([RecordingSource,
  ...], {camera id: end of its last indexed segment}, {camera id: why it was not recorded
  until now}))``, ``("pause_writes", bool)``, ``("stop", None)``;
* worker -> supervisor: ``("segment", FinishedSegment)`` as each file is durable,
  ``("gap", (camera id, start ms, end ms, reason))``, ``("stopped", camera id)`` once a
  camera's thread has finished its last segment, and ``("health", [snapshot dict, ...])``
  within ``state_report_s`` of a camera's change of state or error and otherwise every
  ``routine_s``.

The worker's own loop sleeps until a command, a camera's change of state (its thread
rings the loop's waker) or the next routine report: nothing polls.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import pickle
import select
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pscs.cameras.sources import RecordingSource
from pscs.recording.camera import CameraRecorder, RecorderConfig
from pscs.storage.segment_files import FinishedSegment, SegmentWriter

log = logging.getLogger(__name__)
STOP_JOIN_S = 8.0
NOT_RECORDING = "not recording"  # the supervisor normally says why


@dataclass(frozen=True)
class WorkerSpec:
    index: int
    recordings_root: Path
    config: RecorderConfig
    log_level: str = "INFO"


class Wire:
    """The worker's end of the socket pair: pickles, each behind its length as a 4-byte
    big-endian int, as :class:`multiprocessing.connection.Connection` (the supervisor's
    end) writes and reads them.  Written out because importing ``multiprocessing`` costs
    every worker some 2.5 MB (it pulls in tempfile, bz2, lzma and more)."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)

    def send(self, message: object) -> None:
        data = pickle.dumps(message)
        self._sock.sendall(struct.pack("!i", len(data)) + data)

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv(self) -> Any:
        (size,) = struct.unpack("!i", self._read(4))
        return pickle.loads(self._read(size))  # noqa: S301 - from our own supervisor, over a socket pair

    def _read(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = self._sock.recv(left)
            if not chunk:
                raise EOFError("the supervisor closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._sock.close()


class _ToSupervisor:
    """Sending to the supervisor from any of the worker's threads; also the cameras'
    :class:`~pscs.recording.camera.IndexSink`: the supervisor indexes what they finish."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self._lock = threading.Lock()  # one message at a time on the wire
        self.last_end_ms: dict[int, int] = {}  # per camera, the end of the last segment sent

    def send(self, message: tuple[str, Any]) -> bool:
        with self._lock:
            try:
                self._wire.send(message)
                return True
            except OSError:
                return False  # the supervisor is gone; the worker's loop notices and stops

    def segment_finished(self, finished: FinishedSegment) -> None:
        self.last_end_ms[finished.camera_id] = finished.end_ms
        if not self.send(("segment", finished)):
            log.warning("segment %s not handed over for indexing; reconcile will index it", finished.path)

    def gap(self, camera_id: int, start_ms: int, end_ms: int, reason: str) -> None:
        if not self.send(("gap", (camera_id, start_ms, end_ms, reason))):
            log.warning("camera %s: gap %s-%s not handed over for recording", camera_id, start_ms, end_ms)

    def stopped(self, camera_id: int) -> None:
        self.send(("stopped", camera_id))


class Worker:
    def __init__(self, spec: WorkerSpec, conn: Wire) -> None:
        self.spec = spec
        self.conn = conn
        self.supervisor = _ToSupervisor(conn)
        self.files = SegmentWriter(spec.recordings_root)
        self.writes_paused = threading.Event()
        self.recorders: dict[int, CameraRecorder] = {}
        self.retiring: dict[int, CameraRecorder] = {}  # stopped, finishing their last segment
        self.stopping = False
        self._state_changed = False  # a camera's state or error changed since the last report
        self._waker = socket.socketpair()  # rung from camera threads and the signal handler
        self._waker[1].setblocking(False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full: the loop wakes anyway
            self._waker[1].send(b"!")

    def _camera_state_changed(self) -> None:
        self._state_changed = True
        self.wake()

    def set_cameras(
        self, sources: list[RecordingSource], last_end_ms: dict[int, int], gap_reasons: dict[int, str]
    ) -> None:
        wanted = {s.camera_id: s for s in sources}
        if wanted.keys() != self.recorders.keys():
            self._state_changed = True  # cameras came or went: the next report says so
        for camera_id, recorder in list(self.recorders.items()):
            source = wanted.get(camera_id)
            if source is None or source.main_url != recorder.source.main_url:
                recorder.stop()  # disabled, or its URL changed: it finishes its segment
                del self.recorders[camera_id]
                self.retiring[camera_id] = recorder
            else:
                recorder.source = source  # renamed at most: no reason to reconnect
        for camera_id, source in wanted.items():
            if camera_id in self.recorders:
                continue
            previous = self.retiring.pop(camera_id, None)
            if previous is not None:
                # One writer per camera at a time: its last segment must be indexed before
                # the next run starts, or the two could overlap.
                previous.join(STOP_JOIN_S)
            # The supervisor's figure, unless a segment sent since is not in it yet.
            ends = [e for e in (last_end_ms.get(camera_id), self.supervisor.last_end_ms.get(camera_id)) if e]
            recorder = CameraRecorder(
                source,
                self.files,
                self.supervisor,
                self.spec.config,
                self.writes_paused,
                last_end_ms=max(ends, default=None),
                first_gap_reason=gap_reasons.get(camera_id, NOT_RECORDING),
                on_state_change=self._camera_state_changed,
            )
            self.recorders[camera_id] = recorder
            recorder.start()
        for camera_id, recorder in list(self.retiring.items()):
            if not recorder.is_alive():
                del self.retiring[camera_id]

    def run(self) -> None:
        config = self.spec.config
        next_report, reported_at, trimmed_at = 0.0, -config.state_report_s, 0.0
        while not self.stopping:
            due = next_report
            if self._state_changed:  # report it, but not sooner than state_report_s after the last
                due = min(due, reported_at + config.state_report_s)
            ready, _, _ = select.select([self.conn, self._waker[0]], [], [], max(0.0, due - time.monotonic()))
            if self._waker[0] in ready:
                self._waker[0].recv(4096)
            if self.conn in ready:
                try:
                    command, argument = self.conn.recv()
                except (EOFError, OSError):
                    break  # the supervisor is gone: stop cleanly
                if command == "cameras":
                    self.set_cameras(*argument)
                elif command == "pause_writes":
                    (self.writes_paused.set if argument else self.writes_paused.clear)()
                elif command == "stop":
                    break
            now = time.monotonic()
            if now >= next_report or (self._state_changed and now >= reported_at + config.state_report_s):
                self._state_changed = False
                next_report, reported_at = now + config.routine_s, now
                if not self.supervisor.send(("health", [r.stats.snapshot() for r in self.recorders.values()])):
                    break
                if now >= trimmed_at + config.routine_s:
                    trimmed_at = now
                    _release_free_memory()
        self.shutdown()

    def shutdown(self) -> None:
        self.stopping = True
        everyone = [*self.recorders.values(), *self.retiring.values()]
        for recorder in everyone:
            recorder.stop()
        deadline = time.monotonic() + STOP_JOIN_S
        for recorder in everyone:
            recorder.join(max(0.0, deadline - time.monotonic()))


def worker_main(fd: int) -> None:
    """Entry point of a worker process: ``fd`` is its end of the supervisor's socket pair."""
    # The supervisor decides when we stop; a terminal's Ctrl-C goes to it, not to us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _request_stop())
    conn = Wire(fd)
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

# glibc keeps pages that camera threads freed (a keyframe's buffer, a finished fragment) for
# reuse, and each thread's allocations scatter them: ~0.5 MB a camera of resident memory
# holding nothing.  malloc_trim(0) once a routine period hands them back for ~1 ms of CPU.
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only


def _release_free_memory() -> None:
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _request_stop() -> None:
    for worker in _current:
        worker.stopping = True
        worker.wake()
