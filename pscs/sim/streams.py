"""Media streams (one per RTSP path) and the sources that feed them pictures.

Threading: everything here runs on the server's event loop thread, except the live
encoders' own threads, which hand finished access units to the loop with
``call_soon_threadsafe``.  A stream keeps one SSRC and one RTP clock for all of its
clients; each client gets its own sequence numbers (so it sees no gap when it starts
late) and starts on an IDR.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from pscs.sim.encoder import EncodedLoop, H264Encoder, StreamSettings
from pscs.sim.h264 import profile_level_id
from pscs.sim.rtp import (
    H264_CLOCK_RATE,
    H264_PAYLOAD_TYPE,
    PacketizedAccessUnit,
    build_sender_report,
    interleave,
    packetize_access_unit,
)

log = logging.getLogger(__name__)

#: How often each client gets an RTCP sender report (NTP <-> RTP time mapping).
RTCP_INTERVAL_S = 5.0
#: A client whose socket has this much unsent data loses pictures until it catches up
#: (and then restarts on an IDR), like a real camera; the server never buffers without bound.
MAX_CLIENT_BACKLOG_BYTES = 4 * 1024 * 1024
#: A loop stream that falls this far behind its schedule skips ahead instead of bursting.
MAX_LAG_S = 1.0


def unix_time_us() -> int:
    return time.time_ns() // 1000


class RtpSink:
    """One client's subscription to a stream: RTP and RTCP over its RTSP connection (interleaved)."""

    def __init__(self, transport: asyncio.WriteTransport, rtp_channel: int, rtcp_channel: int) -> None:
        self.transport = transport
        self.rtp_channel = rtp_channel
        self.rtcp_channel = rtcp_channel
        self.next_seq = secrets.randbelow(1 << 16)
        self.waiting_for_keyframe = True
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.last_report_at = 0.0


class FrameSource(Protocol):
    """Where a stream's pictures come from: a cached loop or a live encoder."""

    sps: bytes
    pps: bytes

    def bind(self, stream: MediaStream, loop: asyncio.AbstractEventLoop) -> None: ...

    def on_viewers_changed(self, viewers: int) -> None: ...

    def request_keyframe(self) -> None: ...

    def close(self) -> None: ...


class MediaStream:
    """One RTSP path, ``<camera>/<main|sub>``: its SDP, RTP clock and clients."""

    def __init__(self, camera: str, name: str, settings: StreamSettings, source: FrameSource, scene: str) -> None:
        self.camera = camera
        self.name = name
        self.path = f"{camera}/{name}"
        self.settings = settings
        self.source = source
        self.scene = scene
        self.ssrc = secrets.randbits(32)
        self.timestamp_base = secrets.randbits(32)
        self.epoch = time.monotonic()
        self.sinks: list[RtpSink] = []
        self.frames_published = 0
        self._sdp_session_id = secrets.randbits(48)

    # RTP clock: 90 kHz since ``epoch``, from a random base (RFC 3550 5.1).
    def rtp_timestamp_at(self, monotonic_time: float) -> int:
        return (self.timestamp_base + round((monotonic_time - self.epoch) * H264_CLOCK_RATE)) & 0xFFFFFFFF

    def rtp_timestamp_of_frame(self, frame_number: int) -> int:
        return (self.timestamp_base + frame_number * H264_CLOCK_RATE // self.settings.fps) & 0xFFFFFFFF

    def sdp(self, server_address: str) -> str:
        """The session description for DESCRIBE (RFC 4566, H.264 per RFC 6184 8.2)."""
        sps, pps = self.source.sps, self.source.pps
        parameter_sets = f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
        address_type = "IP6" if ":" in server_address else "IP4"
        lines = [
            "v=0",
            f"o=- {self._sdp_session_id} 1 IN {address_type} {server_address}",
            f"s=pscs-sim {self.path}",
            f"i=pscs camera simulator, {self.scene} scene, {self.settings.width}x{self.settings.height}",
            f"c=IN {address_type} {'::' if address_type == 'IP6' else '0.0.0.0'}",
            "t=0 0",
            "a=tool:pscs-sim",
            "a=type:broadcast",
            "a=control:*",
            "a=range:npt=now-",
            f"m=video 0 RTP/AVP {H264_PAYLOAD_TYPE}",
            f"b=AS:{self.settings.bitrate_kbps}",
            f"a=rtpmap:{H264_PAYLOAD_TYPE} H264/{H264_CLOCK_RATE}",
            f"a=fmtp:{H264_PAYLOAD_TYPE} packetization-mode=1;profile-level-id={profile_level_id(sps)};"
            f"sprop-parameter-sets={parameter_sets}",
            f"a=framerate:{self.settings.fps}",
            "a=control:trackID=0",
        ]
        return "\r\n".join(lines) + "\r\n"

    @property
    def viewers(self) -> int:
        return len(self.sinks)

    def add_sink(self, sink: RtpSink) -> None:
        sink.waiting_for_keyframe = True
        self.sinks.append(sink)
        self.source.on_viewers_changed(len(self.sinks))
        # Live sources answer with an IDR so the newcomer need not wait a whole GOP.
        self.source.request_keyframe()

    def remove_sink(self, sink: RtpSink) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)
            self.source.on_viewers_changed(len(self.sinks))
            # One line per client, for benchmarks: what it was sent and what it lost by
            # reading too slowly (the recorder's loss, as opposed to the simulator's own stalls).
            log.info(
                "client of %s left: %d pictures sent, %d dropped (slow reader)",
                self.path,
                sink.frames_sent,
                sink.frames_dropped,
            )

    def publish(self, unit: PacketizedAccessUnit, rtp_timestamp: int, capture_time_us: int) -> None:
        """Send one access unit to every client (on the event loop thread)."""
        self.frames_published += 1
        if not self.sinks:
            return
        unit.stamp_capture_time(capture_time_us)
        for sink in tuple(self.sinks):
            try:
                self._send(sink, unit, rtp_timestamp)
            except Exception:  # one broken client must not stop the others
                log.exception("dropping a client of %s", self.path)
                self.remove_sink(sink)

    def _send(self, sink: RtpSink, unit: PacketizedAccessUnit, rtp_timestamp: int) -> None:
        transport = sink.transport
        if transport.is_closing():
            self.remove_sink(sink)
            return
        if transport.get_write_buffer_size() > MAX_CLIENT_BACKLOG_BYTES:
            sink.waiting_for_keyframe = True
            sink.frames_dropped += 1
            return
        if sink.waiting_for_keyframe and not unit.keyframe:
            return
        transport.write(unit.render_for(sink.rtp_channel, sink.next_seq, rtp_timestamp, self.ssrc))
        sink.next_seq = (sink.next_seq + unit.packet_count) & 0xFFFF
        sink.packets_sent += unit.packet_count
        sink.octets_sent += unit.payload_octets
        sink.frames_sent += 1
        if sink.waiting_for_keyframe:
            sink.waiting_for_keyframe = False
            self.send_report(sink)  # lets the client map RTP time to wall-clock time at once

    def send_report(self, sink: RtpSink) -> None:
        now = time.monotonic()
        report = build_sender_report(
            self.ssrc,
            self.rtp_timestamp_at(now),
            sink.packets_sent,
            sink.octets_sent,
            cname=f"pscs-sim/{self.path}",
            unix_time=time.time(),
        )
        sink.transport.write(interleave(sink.rtcp_channel, report))
        sink.last_report_at = now

    def send_due_reports(self) -> None:
        now = time.monotonic()
        for sink in tuple(self.sinks):
            if sink.frames_sent and now - sink.last_report_at >= RTCP_INTERVAL_S and not sink.transport.is_closing():
                self.send_report(sink)


class PacketizedLoop:
    """An encoded loop packetized once, shared by every camera that plays it."""

    def __init__(self, encoded: EncodedLoop) -> None:
        self.settings = encoded.settings
        self.sps = encoded.sps
        self.pps = encoded.pps
        self.units = [
            packetize_access_unit(list(unit), sps=encoded.sps, pps=encoded.pps) for unit in encoded.access_units
        ]
        self.keyframe_indexes = [index for index, unit in enumerate(self.units) if unit.keyframe]

    def next_keyframe_index(self, after: int) -> int:
        return next((index for index in self.keyframe_indexes if index > after), 0)


class FramePacer:
    """Drives every loop-mode stream from one timer on the event loop.

    A wake-up sends every picture that is due, and wake-ups are at least ``granularity_s``
    apart: 200 cameras at 25 fps cost at most 250 wake-ups a second rather than 5000.
    Pictures leave up to ``granularity_s`` late, never early.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, granularity_s: float = 0.004) -> None:
        self._loop = loop
        self._granularity = granularity_s
        self._players: set[LoopSource] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = math.inf

    def add(self, player: LoopSource) -> None:
        self._players.add(player)
        self._arm(player.next_due)

    def discard(self, player: LoopSource) -> None:
        self._players.discard(player)

    def close(self) -> None:
        self._players.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_later(max(0.0, due - time.monotonic()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._timer_due = math.inf
        now = time.monotonic()
        wall_clock_offset = time.time() - now
        earliest = math.inf
        for player in tuple(self._players):
            try:
                player.send_due(now, wall_clock_offset)
            except Exception:
                log.exception("loop stream failed; stopping it")
                self._players.discard(player)
                continue
            earliest = min(earliest, player.next_due)
        if self._players:
            self._arm(max(earliest, now + self._granularity))


class LoopSource:
    """Plays a packetized loop forever, with continuous RTP timestamps, while anyone watches.

    The first viewer starts the loop at its first IDR; later viewers wait for the next one.
    """

    def __init__(self, packetized: PacketizedLoop, pacer: FramePacer) -> None:
        self._loop_data = packetized
        self._pacer = pacer
        self.sps = packetized.sps
        self.pps = packetized.pps
        self._stream: MediaStream | None = None
        self._active = False
        self._index = 0
        self._frame_number = 0
        self.next_due = math.inf

    def bind(self, stream: MediaStream, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream

    def _frame_due(self, frame_number: int) -> float:
        assert self._stream is not None
        return self._stream.epoch + frame_number / self._stream.settings.fps

    def on_viewers_changed(self, viewers: int) -> None:
        assert self._stream is not None
        if viewers and not self._active:
            self._active = True
            self._index = 0
            self._frame_number = math.ceil((time.monotonic() - self._stream.epoch) * self._stream.settings.fps)
            self.next_due = self._frame_due(self._frame_number)
            self._pacer.add(self)
        elif not viewers and self._active:
            self._active = False
            self.next_due = math.inf
            self._pacer.discard(self)

    def request_keyframe(self) -> None:
        """Pictures are pre-encoded: a newcomer waits for the next IDR (at most one GOP)."""

    def send_due(self, now: float, wall_clock_offset: float) -> None:
        """Send the pictures due by monotonic time ``now``.

        A picture's capture time (in its SEI) is its scheduled time on the wall clock, the
        instant its RTP timestamp stands for; any sending delay counts as latency.
        """
        stream = self._stream
        assert stream is not None
        units = self._loop_data.units
        while self.next_due <= now:
            if now - self.next_due > MAX_LAG_S:
                # Stalled (e.g. a suspended process): resume on schedule, from an IDR.
                behind = math.ceil((time.monotonic() - stream.epoch) * stream.settings.fps) - self._frame_number
                log.warning(
                    "%s: the simulator fell %.1f s behind; %d pictures skipped (source stall)",
                    stream.path,
                    now - self.next_due,
                    behind,
                )
                self._frame_number += behind
                self._index = self._loop_data.next_keyframe_index(self._index)
                self.next_due = self._frame_due(self._frame_number)
                continue
            capture_us = round((self.next_due + wall_clock_offset) * 1e6)
            stream.publish(units[self._index], stream.rtp_timestamp_of_frame(self._frame_number), capture_us)
            self._index = (self._index + 1) % len(units)
            self._frame_number += 1
            self.next_due = self._frame_due(self._frame_number)

    def close(self) -> None:
        self._active = False


class LiveSource:
    """Renders and encodes pictures in its own thread, only while someone watches.

    ``render(unix_time)`` draws the picture for a capture time; the SEI and the RTP
    timestamp carry that same capture time.
    """

    def __init__(self, settings: StreamSettings, render: Callable[[float], np.ndarray], label: str) -> None:
        self.settings = settings
        self._render = render
        self._label = label
        self._encoder = H264Encoder(settings)
        # Encode one picture now: DESCRIBE needs SPS and PPS before anyone plays.
        self._encoder.encode(render(time.time()), force_keyframe=True)
        self.sps, self.pps = self._encoder.sps, self._encoder.pps
        self._wanted = threading.Event()
        self._keyframe_requested = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: MediaStream | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, stream: MediaStream, loop: asyncio.AbstractEventLoop) -> None:
        self._stream, self._loop = stream, loop
        self._thread = threading.Thread(target=self._run, name=f"pscs-sim {self._label}", daemon=True)
        self._thread.start()

    def on_viewers_changed(self, viewers: int) -> None:
        if viewers:
            self._wanted.set()
        else:
            self._wanted.clear()

    def request_keyframe(self) -> None:
        self._keyframe_requested.set()

    def close(self) -> None:
        self._stopping.set()
        self._wanted.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._encode_while_watched()
        except Exception:
            log.exception("live encoder %s failed", self._label)

    def _encode_while_watched(self) -> None:
        stream, loop = self._stream, self._loop
        assert stream is not None and loop is not None
        period = 1.0 / self.settings.fps
        next_capture: float | None = None
        while not self._stopping.is_set():
            if not self._wanted.is_set():
                self._wanted.wait()
                next_capture = None  # a fresh start begins with an IDR, at once
                self._keyframe_requested.set()
                continue
            now = time.monotonic()
            if next_capture is None or now - next_capture > MAX_LAG_S:
                next_capture = now
            if next_capture > now and self._stopping.wait(next_capture - now):
                break
            capture_monotonic, capture_us = time.monotonic(), unix_time_us()
            picture = self._render(capture_us / 1e6)
            force_keyframe = self._keyframe_requested.is_set()
            self._keyframe_requested.clear()
            for nals in self._encoder.encode(picture, force_keyframe=force_keyframe):
                unit = packetize_access_unit(nals, sps=self.sps, pps=self.pps)
                try:
                    loop.call_soon_threadsafe(
                        stream.publish, unit, stream.rtp_timestamp_at(capture_monotonic), capture_us
                    )
                except RuntimeError:  # the event loop is gone: the server stopped
                    return
            next_capture += period
