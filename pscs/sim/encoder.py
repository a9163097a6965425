"""H.264 encoding with PyAV's libx264, and the on-disk cache of encoded loops."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from pscs.sim.h264 import NAL_PPS, NAL_SPS, is_keyframe, nal_type, split_annexb, to_annexb

log = logging.getLogger(__name__)

#: Bump when the loop scene or the encoder settings change, to invalidate cached loops.
LOOP_FORMAT_VERSION = 1


@dataclass(frozen=True)
class StreamSettings:
    """Picture and coding parameters of one stream (main or sub) of a simulated camera."""

    width: int
    height: int
    fps: int
    bitrate_kbps: int
    gop_frames: int | None = None  # frames from one IDR to the next; default: one second
    profile: str = "main"  # "baseline" or "main"; never B-frames

    @property
    def gop(self) -> int:
        return self.gop_frames or self.fps

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"4:2:0 needs even picture sizes, not {self.width}x{self.height}")
        if not 1 <= self.fps <= 120:
            raise ValueError(f"fps must be in 1..120, not {self.fps}")
        if self.profile not in ("baseline", "main"):
            raise ValueError(f"profile must be baseline or main, not {self.profile}")


AccessUnit = list[bytes]  # the NAL units of one picture, without start codes


class H264Encoder:
    """A libx264 encoder for live pictures: no B-frames, no lookahead, one slice per picture.

    Each call to ``encode`` returns the access units ready so far (with ``tune=zerolatency``:
    exactly the one for this picture).  SPS and PPS precede every IDR (x264's
    repeat-headers), and ``sps``/``pps`` hold the latest ones for the SDP.
    """

    def __init__(self, settings: StreamSettings, *, preset: str = "ultrafast", threads: int = 1) -> None:
        self.settings = settings
        self.sps = b""
        self.pps = b""
        context = av.CodecContext.create("libx264", "w")
        context.width = settings.width
        context.height = settings.height
        context.pix_fmt = "yuv420p"
        context.time_base = Fraction(1, settings.fps)
        context.framerate = Fraction(settings.fps, 1)
        context.bit_rate = settings.bitrate_kbps * 1000
        context.gop_size = settings.gop
        context.max_b_frames = 0
        context.options = {
            "preset": preset,
            "tune": "zerolatency",
            "profile": settings.profile,
            "threads": str(threads),
            "forced-idr": "1",
            "x264-params": (
                f"keyint={settings.gop}:min-keyint={settings.gop}:scenecut=0:bframes=0:"
                f"vbv-maxrate={settings.bitrate_kbps}:vbv-bufsize={settings.bitrate_kbps}"
            ),
        }
        context.open()
        self._context = context
        self._frame_count = 0

    def encode(self, rgb: np.ndarray, *, force_keyframe: bool = False) -> list[AccessUnit]:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._frame_count
        self._frame_count += 1
        if force_keyframe:
            frame.pict_type = PictureType.I
        units: list[AccessUnit] = []
        for packet in self._context.encode(frame):
            nals = split_annexb(bytes(packet))
            for nal in nals:
                if nal_type(nal) == NAL_SPS:
                    self.sps = nal
                elif nal_type(nal) == NAL_PPS:
                    self.pps = nal
            units.append(nals)
        return units


@dataclass(frozen=True)
class EncodedLoop:
    """A few seconds of encoded pictures, starting with an IDR, that loop seamlessly."""

    settings: StreamSettings
    sps: bytes
    pps: bytes
    access_units: tuple[tuple[bytes, ...], ...]

    @property
    def frame_count(self) -> int:
        return len(self.access_units)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pscs-sim"


def loop_cache_key(settings: StreamSettings, frame_count: int) -> str:
    description = json.dumps(
        {"version": LOOP_FORMAT_VERSION, "frames": frame_count, "av": av.__version__, **asdict(settings)},
        sort_keys=True,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:16]


def _atomic_write(path: Path, data: bytes) -> None:
    # Several processes may encode the same loop at once: each writes whole files.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_cached_loop(stream_path: Path, index_path: Path, settings: StreamSettings) -> EncodedLoop | None:
    try:
        index = json.loads(index_path.read_text())
        data = stream_path.read_bytes()
    except (OSError, ValueError):
        return None
    units: list[tuple[bytes, ...]] = []
    position = 0
    for size in index["access_unit_sizes"]:
        units.append(tuple(split_annexb(data[position : position + size])))
        position += size
    if position != len(data) or not units or not is_keyframe(list(units[0])):
        return None
    return EncodedLoop(settings, bytes.fromhex(index["sps"]), bytes.fromhex(index["pps"]), tuple(units))


def load_or_encode_loop(
    settings: StreamSettings,
    seconds: float,
    cache_dir: Path | None = None,
    render: Callable[[int, int, int], np.ndarray] | None = None,
) -> EncodedLoop:
    """The loop for ``settings``: from the cache, or encoded now (a second or two) and cached.

    The loop is a whole number of GOPs, so it restarts on an IDR.  ``render(index, width,
    height)`` draws picture ``index``; the default is the loop scene.
    """
    from pscs.sim.scenes import render_loop_frame

    render = render or render_loop_frame
    gops = max(1, round(seconds * settings.fps / settings.gop))
    frame_count = gops * settings.gop
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    size = f"{settings.width}x{settings.height}-{settings.fps}fps-{settings.bitrate_kbps}k"
    name = f"loop-{size}-{loop_cache_key(settings, frame_count)}"
    stream_path, index_path = cache_dir / f"{name}.h264", cache_dir / f"{name}.json"
    if render is render_loop_frame:
        cached = _read_cached_loop(stream_path, index_path, settings)
        if cached is not None and cached.frame_count == frame_count:
            return cached

    log.info("encoding a %d-frame loop at %dx%d into %s", frame_count, settings.width, settings.height, cache_dir)
    # Encoded once and cached: spend effort on quality, like a real camera's hardware encoder.
    encoder = H264Encoder(settings, preset="veryfast", threads=2)
    units: list[AccessUnit] = []
    for index in range(frame_count):
        units.extend(encoder.encode(render(index, settings.width, settings.height), force_keyframe=index == 0))
    if len(units) != frame_count or not is_keyframe(units[0]):
        raise RuntimeError(f"libx264 returned {len(units)} access units for {frame_count} pictures")
    loop = EncodedLoop(settings, encoder.sps, encoder.pps, tuple(tuple(unit) for unit in units))
    if render is render_loop_frame:
        annexb = [to_annexb(unit) for unit in units]
        _atomic_write(stream_path, b"".join(annexb))
        index = {
            "access_unit_sizes": [len(chunk) for chunk in annexb],
            "sps": loop.sps.hex(),
            "pps": loop.pps.hex(),
        }
        _atomic_write(index_path, json.dumps(index).encode())
    return loop
