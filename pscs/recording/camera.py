"""Recording one camera: RTSP over TCP in, stream copy out, ~10 s fragmented-MP4 segments
cut at keyframes (never re-encoded).

Time (docs/design/time.md): a *run* is an unbroken stretch of packets from one
connection.  Its first keyframe is stamped with the receiving wall clock (the *anchor*);
every later instant of the run is ``anchor + media time elapsed``, so segments of a run
are contiguous to the millisecond (one segment's end is the next one's start).  A new run
starts on reconnect, on a timestamp discontinuity, or when media time and the local
monotonic clock drift apart by more than ``max_clock_drift_s``; its start is never
earlier than the previous segment's end, and any time in between is a ``RecordingGap``.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import av

from pscs.cameras.sources import RecordingSource
from pscs.clock import now_ms
from pscs.media.h264 import NAL_PPS, NAL_SPS, nal_type, parse_sps, to_annexb
from pscs.media.rtsp_client import (
    AccessUnit,
    NotH264Error,
    RtspError,
    RtspSession,
    RtspStatusError,
)
from pscs.recording.pacing import ReadPacer
from pscs.storage.segment_files import MP4_OPTIONS, FinishedSegment, SegmentFile, SegmentWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecorderConfig:
    """Tunables; tests shorten segments and time-outs, production keeps the defaults."""

    segment_seconds: float = 10.0
    workers: int | None = None  # at most this many worker processes; default: one per CPU core
    cameras_per_worker: int = 64  # fill a worker this far before starting another
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 0.5  # bounded, so recording resumes < 2 s after a camera returns
    config_error_retry_s: float = 5.0  # 401, 404, not H.264: retry slowly, nothing will change soon
    # A camera's change of state (online, offline, an error) is reported within this; the
    # changes of many cameras within it share one report.
    state_report_s: float = 2.0
    # The routine work, done together this often: workers report figures (fps, bit rate),
    # the supervisor indexes what they finished, writes health rows and looks for camera
    # changes.  See docs/design/storage.md, "Scale".
    routine_s: float = 10.0
    offline_alert_after_s: float = 60.0
    disk_check_interval_s: float = 10.0
    max_timestamp_jump_s: float = 5.0
    max_clock_drift_s: float = 2.0
    read_batch_s: float = 0.2  # once caught up, sleep up to this long between reads (0: never); see pacing.py
    worker_restart_max_s: float = 10.0


# The muxer flushes at every fragment (at most a second) whatever the buffer, so crash
# safety is the same; 64 KiB makes a few Python write calls a second at 2 Mbit/s and is
# memory every camera keeps (256 KiB measured the same CPU and ~3 MB more at 16 cameras).
WRITE_BUFFER_BYTES = 64 * 1024


class StreamRejected(Exception):
    """The camera answered, but with something we will not record (e.g. not H.264)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_CONFIG_ERRORS = (RtspStatusError, NotH264Error, StreamRejected)
_RTSP_REASONS = {
    401: "401 unauthorized (check the camera's username and password)",
    403: "403 forbidden",
    404: "404 not found (check the stream path)",
}


def describe_error(exc: BaseException, timeout_s: float = 5.0) -> str:
    """A short, credential-free description for the health page (the RTSP client's
    messages never hold the URL, which may hold the password)."""
    if isinstance(exc, StreamRejected):
        return exc.reason
    if isinstance(exc, RtspStatusError):
        return _RTSP_REASONS.get(exc.status, f"camera refused the request (RTSP {exc.status} {exc.reason})")
    if isinstance(exc, RtspError):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"unreachable (no answer within {timeout_s:g} s)"
    if isinstance(exc, socket.gaierror):
        return "unreachable (unknown host name)"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "connection lost"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable (no route to host)"
    if isinstance(exc, av.FFmpegError):
        return f"stream error: {exc.strerror or type(exc).__name__}"
    return f"recorder error: {type(exc).__name__}"


class CameraStats:
    """Counters written by the camera's thread and read by the worker's reporting loop
    (single attribute reads and writes: no lock needed under the GIL).  ``on_change`` is
    called, from the camera's thread, when the state or the last error changes."""

    def __init__(self, camera_id: int, on_change: Callable[[], None] | None = None) -> None:
        self.camera_id = camera_id
        self._on_change = on_change
        self.state = "connecting"
        self.state_since_ms = now_ms()
        self.last_error: str | None = None
        self.last_frame_ms: int | None = None
        self.frames_total = 0
        self.bytes_total = 0
        self.dropped_packets = 0
        self.timestamp_discontinuities = 0
        self.reconnects = 0
        self.segments_written = 0
        self._mark: tuple[float, int, int] = (time.monotonic(), 0, 0)

    def set_state(self, state: str, error: str | None = None) -> None:
        changed = False
        if state != self.state:
            self.state, self.state_since_ms, changed = state, now_ms(), True
        if error is not None and error != self.last_error:
            self.last_error, changed = error, True  # kept after recovery: the health page shows the last one
        if changed and self._on_change is not None:
            self._on_change()

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        then, frames, nbytes = self._mark
        elapsed = max(now - then, 1e-3)
        self._mark = (now, self.frames_total, self.bytes_total)
        online = self.state == "online"
        return {
            "camera_id": self.camera_id,
            "state": self.state,
            "state_since_ms": self.state_since_ms,
            "fps": round((self.frames_total - frames) / elapsed, 2) if online else 0.0,
            "bitrate_bps": round((self.bytes_total - nbytes) * 8 / elapsed, 1) if online else 0.0,
            "last_frame_ms": self.last_frame_ms,
            "frames_total": self.frames_total,
            "bytes_total": self.bytes_total,
            "dropped_packets": self.dropped_packets,
            "timestamp_discontinuities": self.timestamp_discontinuities,
            "reconnects": self.reconnects,
            "segments_written": self.segments_written,
            "last_error": self.last_error,
        }


class IndexSink(Protocol):
    """Where a camera's finished segments and gaps go to be indexed (in a worker: to the
    supervisor).  Neither call may raise: a file that never gets its row is durable on
    disk, and reconcile indexes it at the next start."""

    def segment_finished(self, finished: FinishedSegment) -> None: ...

    def gap(self, camera_id: int, start_ms: int, end_ms: int, reason: str) -> None: ...

    def stopped(self, camera_id: int) -> None:
        """The camera's thread has ended: its last segment has been handed over."""


def _picture_size(parameter_sets: list[bytes]) -> tuple[int, int]:
    """Width and height (cropping applied) from the camera's SPS."""
    sps = next((nal for nal in parameter_sets if nal_type(nal) == NAL_SPS), None)
    try:
        info = parse_sps(sps) if sps is not None else None
    except ValueError:
        info = None
    if info is None or not info.width or not info.height:
        raise StreamRejected("the camera's H.264 SPS cannot be read")
    return info.width, info.height


class _OpenSegment:
    def __init__(
        self, file: SegmentFile, container: Any, stream: Any, start_ts: int, parameter_sets: list[bytes]
    ) -> None:
        self.file = file
        self.container = container
        self.stream = stream
        self.start_ts = start_ts
        self.parameter_sets = parameter_sets  # SPS and PPS the segment's avcC was made from
        self.frames = 0


class CameraRecorder(threading.Thread):
    """One camera, one thread: connect, record, on any failure record the reason and
    reconnect with bounded back-off.  Never raises out of ``run``."""

    def __init__(
        self,
        source: RecordingSource,
        files: SegmentWriter,
        index: IndexSink,
        config: RecorderConfig,
        writes_paused: threading.Event,
        *,
        last_end_ms: int | None,
        first_gap_reason: str,
        on_state_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"camera-{source.camera_id}", daemon=True)
        self.source = source
        self.files = files
        self.index = index
        self.config = config
        self.stats = CameraStats(source.camera_id, on_state_change)
        self._writes_paused = writes_paused
        self._stopping = threading.Event()
        self._gap_reason = first_gap_reason
        self._last_end_ms = last_end_ms  # never start a run before this: segments do not overlap
        self._frames_this_connection = 0
        self._dropped_units = 0  # pictures not recorded (before a run's first keyframe)
        self._lost_earlier = 0  # RTP packets lost on this camera's earlier connections
        self._parameter_sets: list[bytes] = []  # the camera's SPS and PPS: from the SDP, then in-band
        self._set_time_base(1, 90_000)
        self._pacer = ReadPacer(config.read_batch_s)
        self._reset_run()

    # Control ----------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    @property
    def camera_id(self) -> int:
        return self.source.camera_id

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.stats.set_state("stopped")
            self.index.stopped(self.camera_id)

    def _run(self) -> None:
        backoff = self.config.reconnect_initial_s
        while not self._stopping.is_set():
            if self._writes_paused.is_set():
                self.stats.set_state("paused", "recording paused: disk full and nothing deletable")
                self._gap_reason = "recording paused: disk full and nothing deletable"
                self._stopping.wait(0.5)
                continue
            if self.stats.state != "offline":  # while retrying, an offline camera stays offline
                self.stats.set_state("connecting")
            retry_after = backoff
            try:
                got_frames = self._record_connection()
                reason = "stream ended"
            except Exception as exc:  # every failure is reported, none ends the thread
                got_frames = self._frames_this_connection > 0
                reason = describe_error(exc, self.config.open_timeout_s)
                if isinstance(exc, _CONFIG_ERRORS):
                    retry_after = self.config.config_error_retry_s
                elif not isinstance(exc, RtspError | av.FFmpegError | OSError):
                    log.exception("camera %s (%s): recorder error", self.camera_id, self.source.name)
            if self._stopping.is_set():
                break
            if self._writes_paused.is_set():
                continue
            if got_frames:
                backoff = self.config.reconnect_initial_s
                retry_after = min(retry_after, backoff)
            else:
                backoff = min(backoff * 2, self.config.reconnect_max_s)
            if self.stats.state != "offline":
                log.warning("camera %s (%s) offline: %s", self.camera_id, self.source.name, reason)
            self.stats.set_state("offline", reason)
            self._gap_reason = f"camera offline: {reason}"
            self._stopping.wait(retry_after)

    # One connection ---------------------------------------------------------------------------
    def _record_connection(self) -> bool:
        self._frames_this_connection = 0
        timeout_s = max(self.config.open_timeout_s, self.config.read_timeout_s)
        session = RtspSession(self.source.main_url, timeout_s=timeout_s)
        try:
            track = session.open()
            self._parameter_sets = list(track.parameter_sets)
            self._set_time_base(1, track.clock_rate)
            self.stats.reconnects += 1
            should_stop = self._should_stop
            while not should_stop():
                units, drained = session.read(should_stop)
                for unit in units:
                    self._on_unit(unit)
                self.stats.dropped_packets = self._dropped_units + self._lost_earlier + session.lost_packets
                nap = self._pacer.nap_after(time.monotonic(), session.bytes_received, drained)
                if nap:
                    self._stopping.wait(nap)  # the socket buffer holds what arrives meanwhile
        finally:
            self._lost_earlier += session.lost_packets
            try:
                self._end_run()
            finally:
                session.close()
        return self._frames_this_connection > 0

    def _should_stop(self) -> bool:
        return self._stopping.is_set() or self._writes_paused.is_set()

    # Access units, runs and segments -------------------------------------------------------------
    def _reset_run(self) -> None:
        self._segment: _OpenSegment | None = None
        self._anchor_ms = 0
        self._anchor_ts = 0
        self._anchor_mono = 0.0
        self._last_ts: int | None = None
        self._step = 0  # one frame's duration, in time-base units
        self._pacer.reset()

    def _set_time_base(self, num: int, den: int) -> None:
        # The thresholds in the time base's ticks: the per-picture path does integer arithmetic.
        self._tb_num, self._tb_den = num, den
        self._time_base = Fraction(num, den)
        ticks_per_s = den / num
        self._segment_ticks = self.config.segment_seconds * ticks_per_s
        self._max_jump_ticks = self.config.max_timestamp_jump_s * ticks_per_s

    def _seconds(self, ticks: int) -> float:
        return ticks * self._tb_num / self._tb_den

    def _ms(self, ts: int) -> int:
        # Rounded to the nearest millisecond, in integers: exact however long the run.
        return self._anchor_ms + ((ts - self._anchor_ts) * self._tb_num * 2000 + self._tb_den) // (2 * self._tb_den)

    def _on_unit(self, unit: AccessUnit) -> None:
        ts = unit.timestamp
        if unit.keyframe:
            self._note_parameter_sets(unit)
        if self._last_ts is not None:
            jump = ts - self._last_ts
            if jump <= 0 or jump > self._max_jump_ticks:
                self.stats.timestamp_discontinuities += 1
                log.warning(
                    "camera %s: timestamp discontinuity (%.3f s); starting a new run",
                    self.camera_id,
                    self._seconds(jump),
                )
                self._end_run()
                self._gap_reason = "timestamp discontinuity in the camera's stream"
        if self._segment is None:
            if not unit.keyframe or not self._parameter_sets:
                self._dropped_units += 1  # a playable segment starts with a keyframe and its SPS and PPS
                return
            self._start_run(unit)
        elif unit.keyframe and (
            # Within half a picture of the length counts: cameras stamp pictures with their
            # capture clock, and a keyframe a millisecond early must not add a whole GOP.
            ts - self._segment.start_ts + self._step // 2 >= self._segment_ticks
            or self._segment.parameter_sets != self._parameter_sets
        ):
            drift = self._seconds(ts - self._anchor_ts) - (time.monotonic() - self._anchor_mono)
            if abs(drift) > self.config.max_clock_drift_s:
                log.warning(
                    "camera %s: media time and local clock differ by %.2f s; re-anchoring",
                    self.camera_id,
                    drift,
                )
                self._end_run(end_ts=ts)
                self._gap_reason = "clock re-sync (camera and recorder clocks drifted apart)"
                self._start_run(unit)
            else:
                self._close_segment(ts)
                self._open_segment(unit)
        if self._last_ts is not None and ts > self._last_ts:
            self._step = ts - self._last_ts
        self._last_ts = ts
        self._write(unit, ts)

    def _note_parameter_sets(self, unit: AccessUnit) -> None:
        """A keyframe's in-band SPS and PPS replace those from the SDP (a camera whose
        settings changed sends new ones; its next segment is cut with them)."""
        # Once each: a payloader that inserts them too (GStreamer's config-interval) may
        # repeat the encoder's, on some keyframes and not others.
        in_band = list(dict.fromkeys(nal for nal in unit.nals if nal_type(nal) in (NAL_SPS, NAL_PPS)))
        if in_band:
            self._parameter_sets = in_band

    def _start_run(self, unit: AccessUnit) -> None:
        ts = unit.timestamp
        start_ms = now_ms()
        if self._last_end_ms is not None:
            # Never overlap what is already recorded, even if the wall clock stepped back.
            start_ms = max(start_ms, self._last_end_ms)
            if start_ms > self._last_end_ms:
                self._record_gap(self._last_end_ms, start_ms, self._gap_reason)
        self._anchor_ms, self._anchor_ts, self._anchor_mono = start_ms, ts, time.monotonic()
        self._open_segment(unit)
        self.stats.set_state("online")
        log.info("camera %s (%s) recording", self.camera_id, self.source.name)

    def _open_segment(self, keyframe: AccessUnit) -> None:
        ts = keyframe.timestamp
        width, height = _picture_size(self._parameter_sets)
        file = self.files.open_segment(self.camera_id, "main", self._ms(ts))
        try:
            container = av.open(file, "w", format="mp4", options=MP4_OPTIONS, buffer_size=WRITE_BUFFER_BYTES)
            # No codec context: the packets are muxed as they came (stream copy); the muxer
            # takes the avcC from the parameter sets that lead the segment's first picture.
            stream = container.add_mux_stream("h264", width=width, height=height, time_base=self._time_base)
        except Exception:
            self.files.discard(file)
            raise
        self._segment = _OpenSegment(file, container, stream, ts, list(self._parameter_sets))

    def _write(self, unit: AccessUnit, ts: int) -> None:
        seg = self._segment
        assert seg is not None
        data = unit.annex_b()
        if seg.frames == 0 and not any(nal_type(nal) == NAL_SPS for nal in unit.nals):
            data = to_annexb(seg.parameter_sets) + data  # every segment decodes on its own
        packet = av.Packet(data)
        packet.pts = packet.dts = ts - seg.start_ts
        packet.time_base = self._time_base
        packet.is_keyframe = unit.keyframe
        packet.stream = seg.stream
        seg.container.mux(packet)
        seg.frames += 1
        self._frames_this_connection += 1
        self.stats.frames_total += 1
        self.stats.bytes_total += packet.size
        self.stats.last_frame_ms = now_ms()

    def _close_segment(self, end_ts: int) -> None:
        seg, self._segment = self._segment, None
        if seg is None:
            return
        try:
            seg.container.close()
        except Exception:
            # Keep the .partial: reconcile salvages its complete fragments at the next start.
            log.exception("camera %s: closing segment %s failed", self.camera_id, seg.file.relpath)
            return
        start_ms, end_ms = self._ms(seg.start_ts), self._ms(end_ts)
        if seg.frames == 0 or end_ms <= start_ms:
            self.files.discard(seg.file)
            return
        try:
            finished = self.files.finish(seg.file, duration_ms=end_ms - start_ms, frames=seg.frames)
        except Exception:
            # Still a .partial: reconcile salvages its complete fragments at the next start.
            log.exception("camera %s: finishing segment %s failed", self.camera_id, seg.file.relpath)
            return
        self.index.segment_finished(finished)
        self._last_end_ms = finished.end_ms
        self.stats.segments_written += 1

    def _end_run(self, end_ts: int | None = None) -> None:
        """Close the open segment at ``end_ts`` (default: end of the last frame)."""
        if self._segment is not None and self._last_ts is not None:
            self._close_segment(end_ts if end_ts is not None else self._last_ts + (self._step or 1))
        elif self._segment is not None:
            self._close_segment(self._segment.start_ts)  # no frame written: discarded
        self._reset_run()

    def _record_gap(self, start_ms: int, end_ms: int, reason: str) -> None:
        self.index.gap(self.camera_id, start_ms, end_ms, reason)
