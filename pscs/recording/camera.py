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
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import av
import av.error

from pscs.cameras.sources import RecordingSource
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
    health_interval_s: float = 2.0  # workers report this often; a state change is written at once
    health_write_s: float = 10.0  # figures (fps, bit rate) reach the health table this often
    offline_alert_after_s: float = 60.0
    camera_refresh_s: float = 5.0
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


_CONFIG_ERRORS = (av.error.HTTPClientError, StreamRejected)


def describe_error(exc: BaseException, timeout_s: float = 5.0) -> str:
    """A short, credential-free description for the health page.  Never ``str(exc)``:
    FFmpeg's messages end with the URL, and the URL may hold the password."""
    if isinstance(exc, StreamRejected):
        return exc.reason
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return "401 unauthorized (check the camera's username and password)"
    if isinstance(exc, av.error.HTTPForbiddenError):
        return "403 forbidden"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "404 not found (check the stream path)"
    if isinstance(exc, av.error.HTTPError):
        return f"camera refused the request (RTSP error {getattr(exc, 'errno', '?')})"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable (connection refused)"
    if isinstance(exc, av.error.ExitError | TimeoutError | socket.timeout):
        return f"unreachable (no answer within {timeout_s:g} s)"
    if isinstance(exc, socket.gaierror):
        return "unreachable (unknown host name)"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "connection lost"
    if isinstance(exc, av.error.EOFError):
        return "stream ended"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable (no route to host)"
    if isinstance(exc, av.FFmpegError):
        return f"stream error: {exc.strerror or type(exc).__name__}"
    return f"recorder error: {type(exc).__name__}"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class CameraStats:
    """Counters written by the camera's thread and read by the worker's reporting loop
    (single attribute reads and writes: no lock needed under the GIL)."""

    def __init__(self, camera_id: int) -> None:
        self.camera_id = camera_id
        self.state = "connecting"
        self.state_since_ms = wall_ms()
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
        if state != self.state:
            self.state, self.state_since_ms = state, wall_ms()
        if error is not None:
            self.last_error = error  # kept after recovery: the health page shows the last one

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


class _OpenSegment:
    def __init__(self, file: SegmentFile, container: Any, stream: Any, start_ts: int) -> None:
        self.file = file
        self.container = container
        self.stream = stream
        self.start_ts = start_ts
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
    ) -> None:
        super().__init__(name=f"camera-{source.camera_id}", daemon=True)
        self.source = source
        self.files = files
        self.index = index
        self.config = config
        self.stats = CameraStats(source.camera_id)
        self._writes_paused = writes_paused
        self._stopping = threading.Event()
        self._gap_reason = first_gap_reason
        self._last_end_ms = last_end_ms  # never start a run before this: segments do not overlap
        self._frames_this_connection = 0
        self._in_stream: Any = None
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
                elif not isinstance(exc, av.FFmpegError | OSError):
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
    def _open(self, probe: bool) -> Any:
        host = urlsplit(self.source.main_url).hostname or ""
        socket.getaddrinfo(host, None)  # a clear "unknown host" rather than FFmpeg's I/O error
        # The socket time-out is FFmpeg's own option, not PyAV's ``timeout=``: PyAV's version
        # is an interrupt callback that takes the GIL on every network poll, which with many
        # cameras per process cost more CPU than the recording itself.
        timeout_us = int(max(self.config.open_timeout_s, self.config.read_timeout_s) * 1_000_000)
        options = {"rtsp_transport": "tcp", "rtsp_flags": "prefer_tcp", "timeout": str(timeout_us)}
        # Parameters normally come from the SDP (sprop-parameter-sets): skip the 5 s probe.
        options |= (
            {"analyzeduration": "2000000", "probesize": "1000000"}
            if probe
            else {"analyzeduration": "0", "probesize": "32"}
        )
        return av.open(self.source.main_url, options=options)

    def _record_connection(self) -> bool:
        self._frames_this_connection = 0
        container = self._open(probe=False)
        try:
            stream = self._video_stream(container)
            if not stream.codec_context.extradata or not stream.codec_context.width:
                container.close()  # no parameter sets in the SDP: probe the stream for them
                container = self._open(probe=True)
                stream = self._video_stream(container)
            self._in_stream = stream
            self.stats.reconnects += 1
            read_started = time.monotonic()
            for packet in container.demux(stream):
                returned = time.monotonic()
                if self._stopping.is_set() or self._writes_paused.is_set():
                    break
                if packet.size == 0:
                    continue  # end-of-stream marker
                self._on_packet(packet)
                if self._last_dts is not None:
                    nap = self._pacer.nap_after(self._seconds(self._last_dts), read_started, returned, packet.size)
                    if nap:
                        self._stopping.wait(nap)  # the socket buffer holds what arrives meanwhile
                read_started = time.monotonic()
        finally:
            try:
                self._end_run()
            finally:
                container.close()
        return self._frames_this_connection > 0

    @staticmethod
    def _video_stream(container: Any) -> Any:
        if not container.streams.video:
            raise StreamRejected("no video stream")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec != "h264":
            raise StreamRejected(f"not H.264 (camera sends {codec}); set the camera to H.264")
        return stream

    # Packets, runs and segments ----------------------------------------------------------------
    def _reset_run(self) -> None:
        self._segment: _OpenSegment | None = None
        self._anchor_ms = 0
        self._anchor_ts = 0
        self._anchor_mono = 0.0
        # The time base as integers (90 kHz unless the stream says otherwise), and the
        # thresholds in its ticks: the per-packet path does integer arithmetic only.
        self._tb_num, self._tb_den = 1, 90_000
        self._segment_ticks = self._max_jump_ticks = 0.0
        self._set_time_base(1, 90_000)
        self._last_ts: int | None = None
        self._last_dts: int | None = None
        self._step = 0  # one frame's duration, in time-base units
        self._held: Any = None  # a first keyframe that came without a timestamp
        self._pacer.reset()

    def _set_time_base(self, num: int, den: int) -> None:
        self._tb_num, self._tb_den = num, den
        ticks_per_s = den / num
        self._segment_ticks = self.config.segment_seconds * ticks_per_s
        self._max_jump_ticks = self.config.max_timestamp_jump_s * ticks_per_s

    def _seconds(self, ticks: int) -> float:
        return ticks * self._tb_num / self._tb_den

    def _ms(self, ts: int) -> int:
        # Rounded to the nearest millisecond, in integers: exact however long the run.
        return self._anchor_ms + ((ts - self._anchor_ts) * self._tb_num * 2000 + self._tb_den) // (2 * self._tb_den)

    def _on_packet(self, packet: Any) -> None:
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None:
            if self._last_ts is not None and self._step:
                ts = self._last_ts + self._step
            elif packet.is_keyframe and self._segment is None:
                self._held = packet  # timed from the next packet (RTSP's first packet can lack one)
                return
            else:
                self.stats.dropped_packets += 1
                return
        if self._held is not None:
            held, self._held = self._held, None
            step = held.duration or packet.duration
            if step:
                held.pts = held.dts = ts - step
                self._on_timed_packet(held, ts - step, ts - step)
            else:
                self.stats.dropped_packets += 1
        self._on_timed_packet(packet, ts, packet.dts if packet.dts is not None else ts)

    def _on_timed_packet(self, packet: Any, ts: int, dts: int) -> None:
        if self._last_dts is not None:
            jump = dts - self._last_dts
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
            if not packet.is_keyframe:
                self.stats.dropped_packets += 1  # cannot start a playable segment mid-GOP
                return
            self._start_run(packet, ts)
        elif packet.is_keyframe and ts - self._segment.start_ts >= self._segment_ticks:
            drift = self._seconds(ts - self._anchor_ts) - (time.monotonic() - self._anchor_mono)
            if abs(drift) > self.config.max_clock_drift_s:
                log.warning(
                    "camera %s: media time and local clock differ by %.2f s; re-anchoring",
                    self.camera_id,
                    drift,
                )
                self._end_run(end_ts=ts)
                self._gap_reason = "clock re-sync (camera and recorder clocks drifted apart)"
                self._start_run(packet, ts)
            else:
                self._close_segment(ts)
                self._open_segment(ts)
        if packet.duration:
            self._step = packet.duration
        elif self._last_ts is not None and ts > self._last_ts:
            self._step = ts - self._last_ts
        self._last_ts, self._last_dts = ts, dts
        self._write(packet, ts, dts)

    def _start_run(self, packet: Any, ts: int) -> None:
        if packet.time_base:
            self._set_time_base(packet.time_base.numerator, packet.time_base.denominator)
        start_ms = wall_ms()
        if self._last_end_ms is not None:
            # Never overlap what is already recorded, even if the wall clock stepped back.
            start_ms = max(start_ms, self._last_end_ms)
            if start_ms > self._last_end_ms:
                self._record_gap(self._last_end_ms, start_ms, self._gap_reason)
        self._anchor_ms, self._anchor_ts, self._anchor_mono = start_ms, ts, time.monotonic()
        self._open_segment(ts)
        self.stats.set_state("online")
        log.info("camera %s (%s) recording", self.camera_id, self.source.name)

    def _open_segment(self, ts: int) -> None:
        file = self.files.open_segment(self.camera_id, "main", self._ms(ts))
        try:
            container = av.open(file, "w", format="mp4", options=MP4_OPTIONS, buffer_size=WRITE_BUFFER_BYTES)
            stream = container.add_stream_from_template(self._in_stream)
        except Exception:
            self.files.discard(file)
            raise
        self._segment = _OpenSegment(file, container, stream, ts)

    def _write(self, packet: Any, ts: int, dts: int) -> None:
        seg = self._segment
        assert seg is not None
        packet.pts = ts - seg.start_ts
        packet.dts = dts - seg.start_ts
        packet.stream = seg.stream
        seg.container.mux(packet)
        seg.frames += 1
        self._frames_this_connection += 1
        self.stats.frames_total += 1
        self.stats.bytes_total += packet.size
        self.stats.last_frame_ms = wall_ms()

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
