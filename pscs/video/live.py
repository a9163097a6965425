"""Live view: one upstream RTSP connection per camera stream, fanned out to every viewer
as fragmented MP4 (see docs/design/live-view.md).

    hub = LiveHub(runtime)
    sub = hub.subscribe(camera_id, "sub", clear_until=None, loop=asyncio.get_running_loop())
    ... await sub.next() -> bytes (init segment or fragment) or str (a JSON state message)
    hub.unsubscribe(sub)
    hub.close()

Per camera stream, one thread (:class:`Upstream`) reads the camera and feeds two
*tracks*:

* ``clear`` — the camera's own access units, remuxed (never re-encoded).  Viewers get it
  only when the camera has no privacy zone in force, or when they hold an approved mask
  lift (U4) for it;
* ``masked`` — decode → fill the zones → libx264 (zerolatency); runs only while someone
  watches it.

Each track keeps its init segment and the fragments since its last keyframe, so a new
viewer starts at once (from that keyframe; the player jumps to the live edge).  The zones
in force are re-read every second: an approval reaches every viewer within about a
second, and a viewer whose lift ends is switched to the masked track at the next picture.
Unmasked pixels of a zoned camera never reach a viewer without a lift.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from pscs.media.fmp4 import TIMESCALE, Fmp4Stream, Sample
from pscs.media.h264 import NAL_IDR, NAL_SEI, nal_type, parameter_sets_from_extradata, split_annexb, split_avcc
from pscs.runtime import Runtime
from pscs.video.masking import EncoderSettings, H264Decoder, MaskingTranscoder, encode_png, mask_frame
from pscs.video.zones import ZONES, ZoneSet

log = logging.getLogger(__name__)

MAX_PENDING_BYTES = 8 * 1024 * 1024  # a viewer this far behind restarts from the next keyframe
LINGER_S = 5.0  # keep an upstream open this long after its last viewer (page changes)
ZONE_CHECK_S = 1.0
MAX_GOP_UNITS = 600


@dataclass(frozen=True)
class UpstreamSource:
    """Where a camera stream comes from.  ``url`` may carry credentials: never log it."""

    camera_id: int
    stream: str
    url: str
    name: str

    def __repr__(self) -> str:
        return f"UpstreamSource(camera_id={self.camera_id}, stream={self.stream!r}, name={self.name!r})"


Resolver = Callable[[int, str], UpstreamSource]


def db_resolver(rt: Runtime) -> Resolver:
    """Camera URLs (with credentials) from the camera registry; ``sub`` falls back to main."""

    def resolve(camera_id: int, stream: str) -> UpstreamSource:
        from pscs.cameras.logins import connect_url
        from pscs.cameras.models import Camera
        from pscs.errors import NotFound

        with rt.db.session() as s:
            cam = s.get(Camera, camera_id)
            if cam is None or not cam.enabled:
                raise NotFound(f"no enabled camera {camera_id}")
            url = cam.sub_url if stream == "sub" and cam.sub_url else cam.main_url
            return UpstreamSource(
                camera_id, stream, connect_url(rt.secrets, url, cam.stream_username, cam.stream_password_enc), cam.name
            )

    return resolve


@dataclass
class AccessUnit:
    nals: list[bytes]
    pts: int  # 90 kHz, continuous across reconnects
    keyframe: bool


class Subscriber:
    """One viewer (or a snapshot taker, ``passive``) of one camera stream."""

    def __init__(
        self,
        camera_id: int,
        stream: str,
        *,
        clear_until: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        passive: bool = False,
    ) -> None:
        self.camera_id = camera_id
        self.stream = stream
        self.clear_until = clear_until  # epoch seconds of the viewer's mask lift, if any
        self.passive = passive
        self.track: Track | None = None
        self.started = False
        self.masked: bool | None = None
        self.wait_key = False
        self.pending_bytes = 0
        self.dropped = 0
        self.closed = False
        self._loop = loop
        self._aqueue: asyncio.Queue[bytes | str | None] | None = asyncio.Queue() if loop else None
        self._queue: list[bytes | str | None] = []
        self._cv = threading.Condition()

    def clear(self, now: float) -> bool:
        return self.clear_until is not None and now < self.clear_until

    def deliver(self, item: bytes | str | None) -> None:
        if self.passive or self.closed:
            return
        if isinstance(item, bytes):
            self.pending_bytes += len(item)
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._aqueue.put_nowait, item)  # type: ignore[union-attr]
            except RuntimeError:  # the viewer's event loop is gone
                self.closed = True
            return
        with self._cv:
            self._queue.append(item)
            self._cv.notify()

    def state(self, **message: Any) -> None:
        self.deliver(json.dumps(message))

    def _taken(self, item: bytes | str | None) -> bytes | str | None:
        if isinstance(item, bytes):
            self.pending_bytes -= len(item)
        return item

    async def next(self) -> bytes | str | None:
        """The next message (None: the stream ended for good)."""
        assert self._aqueue is not None
        return self._taken(await self._aqueue.get())

    def get(self, timeout: float | None = None) -> bytes | str | None:
        """Blocking form of :meth:`next`, for threads (tests, benchmarks)."""
        with self._cv:
            if not self._queue and not self._cv.wait_for(lambda: bool(self._queue), timeout):
                raise TimeoutError("no live data")
            return self._taken(self._queue.pop(0))


class Track:
    """One output of an upstream: init segment, fragments, and the current GOP."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.muxer = Fmp4Stream()
        self.gop: list[bytes] = []
        self.last_pts: int | None = None
        self.duration = TIMESCALE // 25

    def push(self, nals: list[bytes], pts: int, keyframe: bool) -> tuple[bytes | None, bytes | None]:
        """(new init segment or None, fragment or None) for one access unit."""
        changed = self.muxer.parameter_sets(nals)
        if self.muxer.init is None:
            return None, None
        if keyframe:
            self.gop = []
        elif not self.gop:
            return None, None  # no keyframe yet: nothing a player could start from
        if self.last_pts is not None and 0 < pts - self.last_pts < TIMESCALE * 5:
            self.duration = pts - self.last_pts
        self.last_pts = pts
        frag = self.muxer.fragment([Sample(nals, pts, self.duration, keyframe)])
        if len(self.gop) < MAX_GOP_UNITS:
            self.gop.append(frag)
        return (self.muxer.init if changed else None), frag

    def reset(self) -> None:
        self.muxer = Fmp4Stream()
        self.gop = []
        self.last_pts = None


def _capture_sei(nals: list[bytes]) -> list[bytes]:
    """Timing metadata (SEI user data) carried from the camera's picture to the masked one;
    SEI carries no pixels."""
    return [n for n in nals if nal_type(n) == NAL_SEI and len(n) > 1 and n[1] == 5]


class Upstream(threading.Thread):
    """One camera stream: connect, read, fan out; reconnect with back-off; stop when idle."""

    def __init__(self, hub: LiveHub, key: tuple[int, str]) -> None:
        super().__init__(name=f"live-{key[0]}-{key[1]}", daemon=True)
        self.hub = hub
        self.key = key
        self.camera_id, self.stream_name = key
        self.subscribers: list[Subscriber] = []
        self.lock = threading.Lock()
        self.clear_track = Track("clear")
        self.masked_track = Track("masked")
        self.transcoder: MaskingTranscoder | None = None
        self.raw_gop: list[AccessUnit] = []
        self.zones: ZoneSet | None = None
        self._zones_checked = 0.0
        self.state = "connecting"
        self.stopping = threading.Event()
        self.idle_since: float | None = None
        self._offset = 0
        self._last_pts: int | None = None
        self._step = TIMESCALE // 25
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self.key_ready = threading.Event()
        self.frames = 0

    # Viewers ------------------------------------------------------------------------------------
    def add(self, sub: Subscriber) -> None:
        with self.lock:
            self.subscribers.append(sub)
            self.idle_since = None
        if self.state != "online":
            sub.state(state=self.state)

    def remove(self, sub: Subscriber) -> None:
        with self.lock:
            if sub in self.subscribers:
                self.subscribers.remove(sub)
            if not self.subscribers:
                self.idle_since = time.monotonic()

    def _set_state(self, state: str, reason: str | None = None) -> None:
        if state == self.state:
            return
        self.state = state
        with self.lock:
            subs = list(self.subscribers)
        for sub in subs:
            sub.state(state=state, reason=reason)

    # Thread ---------------------------------------------------------------------------------
    def run(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            if self._idle_expired():
                break
            try:
                source = self.hub.resolve(self.camera_id, self.stream_name)
                got = self._read(source)
                reason = "stream ended"
            except Exception as exc:  # noqa: BLE001 - every failure is a reconnect
                got = False
                reason = type(exc).__name__
                log.info("live %s/%s: %s", self.camera_id, self.stream_name, reason)
            if self.stopping.is_set() or self._idle_expired():
                break
            self._set_state("reconnecting" if got or self.state == "online" else "offline", reason)
            backoff = 0.2 if got else min(backoff * 2, 2.0)
            self.stopping.wait(backoff)
        self._set_state("stopped")
        self.hub._forget(self)

    def _idle_expired(self) -> bool:
        with self.lock:
            return (
                not self.subscribers
                and self.idle_since is not None
                and (time.monotonic() - self.idle_since >= self.hub.linger_s)
            )

    def _read(self, source: UpstreamSource) -> bool:
        options = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32", "fflags": "nobuffer"}
        got = False
        container = av.open(source.url, options=options, timeout=(5.0, 5.0))
        try:
            stream = container.streams.video[0]
            sps, pps = parameter_sets_from_extradata(stream.codec_context.extradata)
            self._sps, self._pps = sps or self._sps, pps or self._pps
            time_base = stream.time_base or Fraction(1, TIMESCALE)
            first = True
            for packet in container.demux(stream):
                if self.stopping.is_set() or self._idle_expired():
                    break
                if packet.size == 0:
                    continue
                data = bytes(packet)
                # FFmpeg's RTSP demuxer hands out Annex B; anything else is length-prefixed.
                nals = (
                    split_annexb(data)
                    if data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01"
                    else (split_avcc(data) or [])
                )
                if not nals:
                    continue
                keyframe = any(nal_type(n) == NAL_IDR for n in nals)
                if first and not keyframe:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                pts = round(ts * time_base * TIMESCALE) if ts is not None else None
                pts = self._continuous(pts, first)
                first = False
                if not got:
                    got = True
                    self._set_state("online")
                self.handle(AccessUnit(nals, pts, keyframe))
        finally:
            container.close()
        return got

    def _continuous(self, pts: int | None, first: bool) -> int:
        """One timeline for viewers across reconnects and camera clock jumps."""
        if pts is None:
            pts = (self._last_pts - self._offset + self._step) if self._last_pts is not None else 0
        out = pts + self._offset
        if self._last_pts is not None:
            delta = out - self._last_pts
            if first or delta <= 0 or delta > TIMESCALE * 5:
                self._offset += self._last_pts + self._step - out
                out = self._last_pts + self._step
            elif delta:
                self._step = delta
        self._last_pts = out
        return out

    # Fan-out ----------------------------------------------------------------------------------
    def _current_zones(self) -> ZoneSet | None:
        now = time.monotonic()
        if now - self._zones_checked >= ZONE_CHECK_S:
            self._zones_checked = now
            try:
                self.zones = self.hub.zones_for(self.camera_id)
            except Exception:  # noqa: BLE001 - keep the last known zones (never fewer)
                log.exception("live %s: reading privacy zones failed", self.camera_id)
        return self.zones

    def handle(self, unit: AccessUnit) -> None:
        self.frames += 1
        if unit.keyframe:
            self.raw_gop = []
            self.key_ready.set()
        if self.raw_gop or unit.keyframe:
            self.raw_gop.append(unit)
            if len(self.raw_gop) > MAX_GOP_UNITS:
                self.raw_gop = []
        zones = self._current_zones()
        masking = zones is not None and not zones.empty
        now = time.time()
        with self.lock:
            subs = list(self.subscribers)
        wants_clear = [s for s in subs if not s.passive and (not masking or s.clear(now))]
        wants_masked = [s for s in subs if not s.passive and masking and not s.clear(now)]

        clear_init, clear_frag = self.clear_track.push(unit.nals, unit.pts, unit.keyframe)
        masked_out: list[tuple[bytes | None, bytes | None]] = []
        if wants_masked:
            assert zones is not None
            masked_out = self._masked(unit, zones)
        elif self.transcoder is not None:
            self.transcoder = None  # nobody watches the masked picture: stop encoding
            self.masked_track.reset()

        for sub in wants_clear:
            self._feed(sub, self.clear_track, [(clear_init, clear_frag)], masked=False)
        for sub in wants_masked:
            self._feed(sub, self.masked_track, masked_out, masked=True)

    def _masked(self, unit: AccessUnit, zones: ZoneSet) -> list[tuple[bytes | None, bytes | None]]:
        out = []
        if self.transcoder is None:
            # Start at once: decode the current GOP, encode only its newest picture.
            self.transcoder = MaskingTranscoder(
                zones, self.hub.encoder_settings, sps=self._sps, pps=self._pps, fps_hint=TIMESCALE / max(1, self._step)
            )
            self.masked_track.reset()
            for prior in self.raw_gop:
                if prior is unit:
                    break
                self.transcoder.decoder.decode(prior.nals, prior.pts)
        else:
            self.transcoder.set_zones(zones)
        sei = _capture_sei(unit.nals)
        for encoded in self.transcoder.push(unit.nals, unit.pts):
            nals = [*sei, *encoded.nals] if sei else encoded.nals
            out.append(self.masked_track.push(nals, encoded.pts, encoded.keyframe))
        return out

    def _feed(
        self, sub: Subscriber, track: Track, produced: list[tuple[bytes | None, bytes | None]], masked: bool
    ) -> None:
        if sub.track is not track:
            sub.track, sub.started = track, False
        if sub.masked is not masked:
            sub.masked = masked
            sub.state(masked=masked)
        if sub.started and sub.pending_bytes > MAX_PENDING_BYTES:
            # Too far behind: drop, and start again from the next keyframe.
            sub.started, sub.wait_key = False, True
            sub.dropped += 1
        if not sub.started:
            if track.muxer.init is None or not track.gop:
                return
            if sub.wait_key and (len(track.gop) != 1 or sub.pending_bytes > MAX_PENDING_BYTES):
                return
            sub.deliver(track.muxer.init)
            for frag in track.gop:
                sub.deliver(frag)
            sub.started, sub.wait_key = True, False
            return
        for init, frag in produced:
            if init is not None:
                sub.deliver(init)
            if frag is not None:
                sub.deliver(frag)

    # Snapshots -------------------------------------------------------------------------------
    def latest_picture(self, timeout_s: float) -> av.VideoFrame:
        if not self.key_ready.wait(timeout_s):
            raise TimeoutError("the camera sent no picture in time")
        gop = list(self.raw_gop)
        decoder = H264Decoder(self._sps, self._pps)
        last = None
        for unit in gop:
            frames = decoder.decode(unit.nals, unit.pts)
            if frames:
                last = frames[-1]
        if last is None:
            raise TimeoutError("no decodable picture yet")
        return last


class LiveHub:
    """Every live upstream of this process.  Thread-safe."""

    def __init__(
        self,
        rt: Runtime | None = None,
        *,
        resolver: Resolver | None = None,
        zones_for: Callable[[int], ZoneSet | None] | None = None,
        encoder_settings: EncoderSettings | None = None,
        linger_s: float = LINGER_S,
    ) -> None:
        if resolver is None:
            assert rt is not None
            resolver = db_resolver(rt)
        if zones_for is None:
            assert rt is not None
            zones_for = lambda camera_id: ZONES.get(rt, camera_id)  # noqa: E731
        self.resolve = resolver
        self.zones_for = zones_for
        self.encoder_settings = encoder_settings or EncoderSettings(preset="veryfast", keyframe_interval_s=1.0)
        self.linger_s = linger_s
        self._lock = threading.Lock()
        self._upstreams: dict[tuple[int, str], Upstream] = {}
        self._closed = False

    def subscribe(
        self,
        camera_id: int,
        stream: str = "sub",
        *,
        clear_until: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        passive: bool = False,
    ) -> Subscriber:
        if stream not in ("main", "sub"):
            raise ValueError("stream is main or sub")
        sub = Subscriber(camera_id, stream, clear_until=clear_until, loop=loop, passive=passive)
        with self._lock:
            if self._closed:
                raise RuntimeError("the live hub is closed")
            upstream = self._upstreams.get((camera_id, stream))
            if upstream is None or upstream.stopping.is_set() or not upstream.is_alive():
                upstream = Upstream(self, (camera_id, stream))
                self._upstreams[(camera_id, stream)] = upstream
                upstream.add(sub)
                upstream.start()
            else:
                upstream.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.closed = True
        with self._lock:
            upstream = self._upstreams.get((sub.camera_id, sub.stream))
        if upstream is not None:
            upstream.remove(sub)

    def _forget(self, upstream: Upstream) -> None:
        with self._lock:
            if self._upstreams.get(upstream.key) is upstream:
                del self._upstreams[upstream.key]
            subs = list(upstream.subscribers)
        for sub in subs:
            sub.deliver(None)

    def upstream(self, camera_id: int, stream: str) -> Upstream | None:
        with self._lock:
            return self._upstreams.get((camera_id, stream))

    def connections(self) -> int:
        with self._lock:
            return sum(1 for u in self._upstreams.values() if u.is_alive())

    def snapshot_png(
        self, camera_id: int, zones: ZoneSet | None, stream: str = "main", timeout_s: float = 8.0
    ) -> bytes:
        """The newest picture of a camera, masked with ``zones`` (None: unmasked — only for
        a viewer with a mask lift, or a camera with no zones), as PNG."""
        sub = self.subscribe(camera_id, stream, passive=True)
        try:
            upstream = self.upstream(camera_id, stream)
            assert upstream is not None
            frame = upstream.latest_picture(timeout_s)
        finally:
            self.unsubscribe(sub)
        return encode_png(mask_frame(frame, zones))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            upstreams = list(self._upstreams.values())
        for upstream in upstreams:
            upstream.stopping.set()
        for upstream in upstreams:
            upstream.join(timeout=5)
            with contextlib.suppress(Exception):
                for sub in list(upstream.subscribers):
                    sub.deliver(None)
