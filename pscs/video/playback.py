"""Playback from the segment store: the timeline, a continuous fragmented-MP4 stream from
any instant (across segment boundaries), and snapshots at an instant.

The egress service (:mod:`pscs.video.egress`) opens every view of recorded pictures
through :class:`PlaybackStream` or :func:`snapshot_at_png`; both mask with the zones it
gives them, the zones in force when the footage is shown (U4), or pass a zone-free
camera's footage through without re-encoding.

Media time in the stream is ``wall-clock ms - origin_ms`` (in 90 kHz units), with
``origin_ms`` the wall-clock time of the first picture sent; a gap in the recording is a
gap in media time, which the player steps over.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from sqlalchemy import select

from pscs.media.fmp4 import TIMESCALE, Fmp4Stream, Sample
from pscs.media.h264 import NAL_IDR, nal_type, parameter_sets_from_extradata, split_avcc, split_nals
from pscs.runtime import Runtime
from pscs.storage.models import RecordingGap, Segment
from pscs.storage.ranges import MERGE_TOLERANCE_MS, ranges_between
from pscs.video.masking import EncoderSettings, H264Decoder, MaskingTranscoder, encode_png, mask_frame
from pscs.video.zones import ZoneSet

MAX_FRAGMENT_SAMPLES = 15


@dataclass(frozen=True)
class SegmentRef:
    id: int
    start_ms: int
    end_ms: int
    path: Path


def _segments(
    rt: Runtime, camera_id: int, after_ms: int, end_ms: int | None, stream: str = "main", limit: int = 50
) -> list[SegmentRef]:
    q = (
        select(Segment)
        .where(Segment.camera_id == camera_id, Segment.stream == stream, Segment.end_ms > after_ms)
        .order_by(Segment.start_ms)
        .limit(limit)
    )
    if end_ms is not None:
        q = q.where(Segment.start_ms < end_ms)
    root = rt.settings.recordings_path
    with rt.db.session() as s:
        return [SegmentRef(r.id, r.start_ms, r.end_ms, root / r.path) for r in s.scalars(q)]


def timeline(rt: Runtime, camera_id: int, start_ms: int, end_ms: int) -> dict[str, Any]:
    """Recorded ranges, explicit gaps and holds of one camera between two instants."""
    from pscs.storage.protection import protected_ranges

    with rt.db.session() as s:
        ranges = ranges_between(s, camera_id, "main", start_ms, end_ms)
        gaps = [
            {"start_ms": g.start_ms, "end_ms": g.end_ms, "reason": g.reason}
            for g in s.scalars(
                select(RecordingGap)
                .where(
                    RecordingGap.camera_id == camera_id, RecordingGap.end_ms > start_ms, RecordingGap.start_ms < end_ms
                )
                .order_by(RecordingGap.start_ms)
            )
        ]
        holds = [
            {"start_ms": h.start_ms, "end_ms": h.end_ms, "reason": h.reason}
            for h in protected_ranges(s, camera_id, start_ms, end_ms)
        ]
    return {
        "camera_id": camera_id,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "ranges": [{"start_ms": a, "end_ms": b} for a, b in ranges],
        "gaps": gaps,
        "holds": holds,
    }


@dataclass
class _Packet:
    nals: list[bytes]
    ms: float  # wall-clock ms of the picture
    keyframe: bool


def _packets(segment: SegmentRef) -> Iterator[tuple[_Packet, bytes | None, bytes | None]]:
    """(packet, sps, pps) of one segment file, timed on the wall clock."""
    with av.open(str(segment.path)) as container:
        stream = container.streams.video[0]
        extradata = stream.codec_context.extradata
        sps, pps = parameter_sets_from_extradata(extradata)
        # MP4 samples are length-prefixed (avcC); their first bytes may look like a start code.
        length_size = (extradata[4] & 3) + 1 if extradata and extradata[0] == 1 else None
        tb = stream.time_base
        first = None
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            first = packet.pts if first is None else first
            data = bytes(packet)
            nals = (split_avcc(data, length_size) or []) if length_size else split_nals(data)
            keyframe = packet.is_keyframe or any(nal_type(n) == NAL_IDR for n in nals)
            yield _Packet(nals, segment.start_ms + float((packet.pts - first) * tb * 1000), keyframe), sps, pps


class PlaybackStream:
    """Fragmented MP4 from ``start_ms`` on (to ``end_ms``, or the newest recording).

    ``zones`` None: the footage passes through untouched (no zones, or a mask lift);
    otherwise every picture is decoded, masked and re-encoded.  ``first_ms``/``last_ms``
    say which recorded range has actually been sent (for the audit trail)."""

    def __init__(
        self,
        rt: Runtime,
        camera_id: int,
        start_ms: int,
        *,
        zones: ZoneSet | None,
        end_ms: int | None = None,
        encoder: EncoderSettings | None = None,
    ) -> None:
        self.rt = rt
        self.camera_id = camera_id
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.zones = zones if zones is not None and not zones.empty else None
        self.encoder = encoder or EncoderSettings(preset="veryfast", keyframe_interval_s=1.0)
        self.origin_ms: float | None = None
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.muxer = Fmp4Stream()
        self._pending: list[Sample] = []
        self._transcoder: MaskingTranscoder | None = None

    # Which pictures ---------------------------------------------------------------------------
    def _source(self) -> Iterator[tuple[_Packet, bytes | None, bytes | None]]:
        """Packets from the keyframe at or before ``start_ms``, across segments, in order."""
        after = self.start_ms
        started = False
        gop: list[tuple[_Packet, bytes | None, bytes | None]] = []
        seen: set[int] = set()
        while True:
            batch = [s for s in _segments(self.rt, self.camera_id, after, self.end_ms) if s.id not in seen]
            if not batch:
                break
            for segment in batch:
                seen.add(segment.id)
                after = max(after, segment.end_ms - 1)
                try:
                    for item in _packets(segment):
                        packet = item[0]
                        if self.end_ms is not None and packet.ms >= self.end_ms:
                            return
                        if not started:
                            if packet.keyframe:
                                gop = []
                            if gop or packet.keyframe:
                                gop.append(item)
                            if packet.ms + 0.5 >= self.start_ms and gop:
                                started = True
                                yield from gop
                                gop = []
                            continue
                        yield item
                except (av.FFmpegError, OSError):
                    continue  # a damaged or vanished file: the stream goes on with the next one
        if not started and gop:
            yield from gop  # start_ms lies after the last picture: show the last GOP

    # Bytes ------------------------------------------------------------------------------------
    def set_mask(self, zones: ZoneSet | None) -> None:
        """Mask from the next picture on with ``zones`` (the zones in force changed, or the
        viewer's lift ended).  A stream never goes back to unmasked pictures: None, or
        empty zones, leave a masking stream as it is."""
        if zones is None or zones.empty:
            return
        self.zones = zones
        if self._transcoder is not None:
            self._transcoder.set_zones(zones)

    def __iter__(self) -> Iterator[bytes]:
        gop: list[tuple[list[bytes], int]] = []  # passed-through pictures since the last keyframe
        for packet, sps, pps in self._source():
            if self.origin_ms is None:
                self.origin_ms = packet.ms
                self.first_ms = int(packet.ms)
            pts = round((packet.ms - self.origin_ms) * TIMESCALE / 1000)
            if self.zones is None:
                gop = [] if packet.keyframe else gop
                gop.append((packet.nals, pts))
                units = [(packet.nals, pts, packet.keyframe, sps, pps)]
            else:
                if self._transcoder is None:
                    self._transcoder = MaskingTranscoder(self.zones, self.encoder, sps=sps, pps=pps)
                    # Masking began mid-stream: decode the pictures this one depends on.
                    for nals, prior_pts in gop:
                        self._transcoder.decoder.decode(nals, prior_pts)
                    gop = []
                if sps and pps:
                    self._transcoder.decoder.sps, self._transcoder.decoder.pps = sps, pps
                units = [(u.nals, u.pts, u.keyframe, None, None) for u in self._transcoder.push(packet.nals, pts)]
            for nals, upts, keyframe, u_sps, u_pps in units:
                yield from self._add(nals, upts, keyframe, u_sps, u_pps)
            self.last_ms = int(packet.ms)
        yield from self._flush(None)

    def _add(
        self, nals: list[bytes], pts: int, keyframe: bool, sps: bytes | None, pps: bytes | None
    ) -> Iterator[bytes]:
        if keyframe or len(self._pending) >= MAX_FRAGMENT_SAMPLES:
            yield from self._flush(pts)
        changed = self.muxer.parameter_sets(nals)
        if not changed and sps and pps:
            changed = self.muxer.set_parameter_sets(sps, pps)
        if changed and self.muxer.init is not None:
            yield self.muxer.init
        if self.muxer.init is None:
            return
        self._pending.append(Sample(nals, pts, 0, keyframe))

    def _flush(self, next_pts: int | None) -> Iterator[bytes]:
        if not self._pending:
            return
        samples = self._pending
        self._pending = []
        fixed = []
        for i, s in enumerate(samples):
            nxt = samples[i + 1].dts if i + 1 < len(samples) else next_pts
            step = (
                (nxt - s.dts)
                if nxt is not None and 0 < nxt - s.dts < TIMESCALE * 2
                else (fixed[-1].duration if fixed else TIMESCALE // 25)
            )
            fixed.append(Sample(s.nals, s.dts, step, s.keyframe))
        yield self.muxer.fragment(fixed)


def snapshot_at_png(rt: Runtime, camera_id: int, at_ms: int, zones: ZoneSet | None) -> tuple[bytes, int]:
    """(PNG, the picture's wall-clock ms) of the recorded picture shown at ``at_ms``."""
    from pscs.errors import NotFound

    segments = _segments(rt, camera_id, at_ms, None, limit=1)
    if not segments or segments[0].start_ms > at_ms + MERGE_TOLERANCE_MS:
        raise NotFound("nothing was recorded at that time")
    decoder: H264Decoder | None = None
    best: tuple[av.VideoFrame, float] | None = None
    for packet, sps, pps in _packets(segments[0]):
        if decoder is None:
            decoder = H264Decoder(sps, pps)
        if best is not None and packet.ms > at_ms + 0.5:
            break
        frames = decoder.decode(packet.nals, round(packet.ms * 90))
        if frames:
            best = (frames[-1], packet.ms)
    if best is None:
        raise NotFound("no decodable picture at that time")
    frame, ms = best
    return encode_png(mask_frame(frame, zones)), int(ms)
