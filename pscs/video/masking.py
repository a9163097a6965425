"""Privacy masking on the server (U4): decode, fill the zones on the YUV planes, re-encode.

* :func:`rasterize` turns normalised polygons into a pixel mask, conservatively: a pixel
  is masked when its centre lies inside a polygon, the result is grown by one pixel, and
  then to whole 16x16 macroblocks: every 4:2:0 chroma sample and every coded block that
  touches a private pixel is masked whole, so lossy coding cannot carry a trace of a
  private pixel out, and the mask decodes as a clean, flat area.
* :class:`ZoneMask` is that mask precomputed once per (zone version, picture size) as a
  few rectangles (and, for non-rectangular zones, a boolean sub-mask per rectangle); it
  fills the planes of a decoded ``av.VideoFrame`` in place — NumPy views straight onto
  FFmpeg's buffers, no copy of the picture.
* :class:`MaskingTranscoder` runs decode → mask → libx264 (``tune=zerolatency``) for one
  stream, one access unit in, at most one out, with no added delay.

Masks are solid (limited-range black: Y=16, U=V=128).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import av
import numpy as np

from pscs.media.h264 import NAL_IDR, NAL_PPS, NAL_SPS, nal_type, split_annexb, to_annexb
from pscs.video.zones import Polygon, ZoneSet

MASK_Y, MASK_U, MASK_V = 16, 128, 128
TIME_BASE = Fraction(1, 90_000)


def rasterize_polygon(polygon: Polygon, width: int, height: int) -> np.ndarray:
    """Pixels whose centre lies inside ``polygon`` (normalised coordinates; even-odd rule)."""
    mask = np.zeros((height, width), dtype=bool)
    pts = np.array(polygon, dtype=np.float64) * (width, height)
    x0s, y0s = pts[:, 0], pts[:, 1]
    x1s, y1s = np.roll(x0s, -1), np.roll(y0s, -1)
    top = max(0, int(math.floor(y0s.min())))
    bottom = min(height, int(math.ceil(y0s.max())) + 1)
    for row in range(top, bottom):
        yc = row + 0.5
        crossing = ((y0s <= yc) & (y1s > yc)) | ((y1s <= yc) & (y0s > yc))
        if not crossing.any():
            continue
        xa, ya, xb, yb = x0s[crossing], y0s[crossing], x1s[crossing], y1s[crossing]
        xs = np.sort(xa + (yc - ya) * (xb - xa) / (yb - ya))
        for left, right in zip(xs[0::2], xs[1::2], strict=False):
            c0 = max(0, int(math.ceil(left - 0.5)))
            c1 = min(width, int(math.ceil(right - 0.5)))
            if c1 > c0:
                mask[row, c0:c1] = True
    return mask


BLOCK = 16  # H.264 macroblock: a zone covers whole macroblocks


def _grow(mask: np.ndarray) -> np.ndarray:
    """Grow by one pixel in every direction, then to whole macroblocks: a macroblock that
    holds both private and public pixels would be coded with some of each, and the lossy
    coding would let a trace of the private ones through (and blur the mask's edge)."""
    h, w = mask.shape
    grown = mask.copy()
    grown[1:, :] |= mask[:-1, :]
    grown[:-1, :] |= mask[1:, :]
    step = grown.copy()
    grown[:, 1:] |= step[:, :-1]
    grown[:, :-1] |= step[:, 1:]
    ph, pw = -(-h // BLOCK) * BLOCK, -(-w // BLOCK) * BLOCK
    padded = np.zeros((ph, pw), dtype=bool)
    padded[:h, :w] = grown
    return padded.reshape(ph // BLOCK, BLOCK, pw // BLOCK, BLOCK).any(axis=(1, 3))


def rasterize(polygons: tuple[Polygon, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(luma mask h x w, chroma mask ceil(h/2) x ceil(w/2)) for all polygons together."""
    blocks = np.zeros((-(-height // BLOCK), -(-width // BLOCK)), dtype=bool)
    for polygon in polygons:
        blocks |= _grow(rasterize_polygon(polygon, width, height))
    luma = np.repeat(np.repeat(blocks, BLOCK, axis=0), BLOCK, axis=1)[:height, :width]
    chroma = np.repeat(np.repeat(blocks, BLOCK // 2, axis=0), BLOCK // 2, axis=1)[
        : (height + 1) // 2, : (width + 1) // 2
    ]
    return luma, chroma


@dataclass(frozen=True)
class _Fill:
    rows: slice
    cols: slice
    where: np.ndarray | None  # None: the whole rectangle


def _fills(mask: np.ndarray) -> tuple[_Fill, ...]:
    """Rectangles (bounding boxes of runs of masked rows) covering ``mask``."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return ()
    fills = []
    # Split where masked rows stop being contiguous, so two far-apart zones get two boxes.
    breaks = np.flatnonzero(np.diff(rows) > 1)
    for part in np.split(rows, breaks + 1):
        r0, r1 = int(part[0]), int(part[-1]) + 1
        band = mask[r0:r1]
        cols = np.flatnonzero(band.any(axis=0))
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        sub = band[:, c0:c1]
        fills.append(_Fill(slice(r0, r1), slice(c0, c1), None if sub.all() else np.ascontiguousarray(sub)))
    return tuple(fills)


class ZoneMask:
    """A zone set rasterised for one picture size, ready to fill decoded frames in place."""

    def __init__(self, polygons: tuple[Polygon, ...], width: int, height: int) -> None:
        self.width, self.height = width, height
        self.luma, self.chroma = rasterize(polygons, width, height)
        self._planes = ((_fills(self.luma), MASK_Y), (_fills(self.chroma), MASK_U), (_fills(self.chroma), MASK_V))

    @property
    def empty(self) -> bool:
        return not self._planes[0][0]

    def apply(self, frame: av.VideoFrame) -> None:
        """Fill the zones on a ``yuv420p`` frame's planes, in place."""
        if frame.format.name not in ("yuv420p", "yuvj420p"):
            raise ValueError(f"masking needs yuv420p frames, not {frame.format.name}")
        full_range = frame.format.name == "yuvj420p"
        for plane, (fills, value) in zip(frame.planes, self._planes, strict=True):
            if not fills:
                continue
            if full_range and value == MASK_Y:
                value = 0
            rows = plane.buffer_size // plane.line_size
            pixels = np.frombuffer(plane, dtype=np.uint8).reshape(rows, plane.line_size)
            for fill in fills:
                view = pixels[fill.rows, fill.cols]
                if fill.where is None:
                    view[...] = value
                else:
                    view[fill.where] = value


@lru_cache(maxsize=64)
def zone_mask(zones: ZoneSet, width: int, height: int) -> ZoneMask:
    """The mask of a zone version at one picture size (computed once, then cached)."""
    return ZoneMask(zones.image_polygons(), width, height)


@dataclass(frozen=True)
class EncodedUnit:
    nals: list[bytes]
    pts: int  # 90 kHz
    keyframe: bool


@dataclass(frozen=True)
class EncoderSettings:
    preset: str = "veryfast"
    crf: int = 23
    keyframe_interval_s: float = 1.0
    threads: int = 1
    max_bitrate_kbps: int | None = None


class H264Decoder:
    """Decodes access units (NAL lists) with FFmpeg's H.264 decoder, no frame delay."""

    def __init__(self, sps: bytes | None = None, pps: bytes | None = None, threads: int = 1) -> None:
        self.context = av.CodecContext.create("h264", "r")
        self.context.thread_count = threads
        self.context.thread_type = "SLICE"  # frame threading would delay every picture
        self.sps, self.pps = sps, pps

    def decode(self, nals: list[bytes], pts: int) -> list[av.VideoFrame]:
        types = {nal_type(n) for n in nals}
        if NAL_SPS in types:
            self.sps = next(n for n in nals if nal_type(n) == NAL_SPS)
        if NAL_PPS in types:
            self.pps = next(n for n in nals if nal_type(n) == NAL_PPS)
        if NAL_IDR in types and NAL_SPS not in types and self.sps and self.pps:
            nals = [self.sps, self.pps, *nals]
        packet = av.Packet(to_annexb(nals))
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        return list(self.context.decode(packet))


class H264Encoder:
    """libx264 with ``tune=zerolatency``: one access unit out per picture in, at once."""

    def __init__(self, width: int, height: int, settings: EncoderSettings, fps_hint: float = 25.0) -> None:
        self.settings = settings
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(round(fps_hint * 1000), 1000)
        ctx.max_b_frames = 0
        params = "scenecut=0:bframes=0:keyint=600:min-keyint=1"
        if settings.max_bitrate_kbps:
            params += f":vbv-maxrate={settings.max_bitrate_kbps}:vbv-bufsize={settings.max_bitrate_kbps}"
        ctx.options = {
            "preset": settings.preset,
            "tune": "zerolatency",
            "crf": str(settings.crf),
            "threads": str(settings.threads),
            "forced-idr": "1",
            "x264-params": params,
        }
        ctx.open()
        self.context = ctx
        self._last_key_pts: int | None = None

    def encode(self, frame: av.VideoFrame, pts: int, force_keyframe: bool = False) -> list[EncodedUnit]:
        interval = self.settings.keyframe_interval_s * 90_000
        if (
            force_keyframe
            or self._last_key_pts is None
            or pts - self._last_key_pts >= interval
            or pts < (self._last_key_pts or 0)
        ):
            frame.pict_type = av.video.frame.PictureType.I
            self._last_key_pts = pts
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = pts
        frame.time_base = TIME_BASE
        out = []
        for packet in self.context.encode(frame):
            nals = split_annexb(bytes(packet))
            out.append(
                EncodedUnit(
                    nals, packet.pts if packet.pts is not None else pts, any(nal_type(n) == NAL_IDR for n in nals)
                )
            )
        return out


def as_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    """A ``yuv420p`` frame whose planes may be written: a decoder keeps its reference
    pictures in the frames it hands out, so writing into one would corrupt the pictures
    predicted from it.  ``make_writable`` copies only when the buffer is shared."""
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return frame.reformat(format="yuv420p")
    frame.make_writable()
    return frame


class MaskingTranscoder:
    """decode → mask (zones in force) → encode, for one stream.  ``set_zones`` switches to
    another zone version at the next picture (and starts it with a keyframe)."""

    def __init__(
        self,
        zones: ZoneSet,
        settings: EncoderSettings | None = None,
        *,
        sps: bytes | None = None,
        pps: bytes | None = None,
        fps_hint: float = 25.0,
        decoder_threads: int = 1,
    ) -> None:
        self.zones = zones
        self.settings = settings or EncoderSettings()
        self.decoder = H264Decoder(sps, pps, decoder_threads)
        self.encoder: H264Encoder | None = None
        self.fps_hint = fps_hint
        self._force_key = True
        self.frames = 0

    def set_zones(self, zones: ZoneSet) -> None:
        if zones != self.zones:
            self.zones = zones
            self._force_key = True

    def push(self, nals: list[bytes], pts: int) -> list[EncodedUnit]:
        out: list[EncodedUnit] = []
        for frame in self.decoder.decode(nals, pts):
            out.extend(self.push_frame(frame, frame.pts if frame.pts is not None else pts))
        return out

    def push_frame(self, frame: av.VideoFrame, pts: int) -> list[EncodedUnit]:
        frame = as_yuv420p(frame)
        zone_mask(self.zones, frame.width, frame.height).apply(frame)
        if self.encoder is None or (self.encoder.context.width, self.encoder.context.height) != (
            frame.width,
            frame.height,
        ):
            self.encoder = H264Encoder(frame.width, frame.height, self.settings, self.fps_hint)
            self._force_key = True
        force, self._force_key = self._force_key, False
        self.frames += 1
        return self.encoder.encode(frame, pts, force_keyframe=force)


def encode_png(frame: av.VideoFrame) -> bytes:
    """A decoded (already masked) frame as a PNG file."""
    rgb = frame.reformat(format="rgb24")
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = rgb.width, rgb.height, "rgb24"
    ctx.time_base = Fraction(1, 25)
    ctx.open()
    rgb.pts = 0
    data = b"".join(bytes(p) for p in ctx.encode(rgb))
    data += b"".join(bytes(p) for p in ctx.encode(None))
    return data


def mask_frame(frame: av.VideoFrame, zones: ZoneSet | None) -> av.VideoFrame:
    """A copy-free masked version of a decoded frame (for snapshots)."""
    frame = as_yuv420p(frame)
    if zones is not None and not zones.empty:
        zone_mask(zones, frame.width, frame.height).apply(frame)
    return frame
