"""Synthetic recordings for tests, demos and benchmarks: segments of the simulator's clock
scene written through the real segment store (same files, same index rows as the
recorder's), so playback can be checked against a picture known to the pixel."""

from __future__ import annotations

from fractions import Fraction

import av

from pscs.runtime import Runtime
from pscs.storage.segment_files import MP4_OPTIONS
from pscs.storage.segments import SegmentStore


def record_clock_segments(
    rt: Runtime,
    camera_id: int,
    start_ms: int,
    seconds: float,
    *,
    camera_name: str = "cam",
    segment_seconds: float = 2.0,
    width: int = 640,
    height: int = 360,
    fps: int = 15,
    gap_after_ms: tuple[int, int] | None = None,
) -> list[int]:
    """Record ``seconds`` of the clock scene from ``start_ms`` (UTC epoch ms) in segments of
    ``segment_seconds`` (keyframe every second).  ``gap_after_ms=(at, length)`` leaves a hole.
    Returns the segment ids."""
    from pscs.sim.scenes import render_clock_frame

    store = SegmentStore(rt.settings.recordings_path, rt.db)
    rt.settings.recordings_path.mkdir(parents=True, exist_ok=True)
    ids: list[int] = []
    frames_per_segment = round(segment_seconds * fps)
    total = round(seconds * fps)
    index = 0
    shift = 0
    while index < total:
        seg_start = start_ms + shift + round(index * 1000 / fps)
        file = store.open_segment(camera_id, "main", seg_start)
        container = av.open(file, "w", format="mp4", options=MP4_OPTIONS)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.codec_context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0",
        }
        count = 0
        while count < frames_per_segment and index < total:
            wall = (start_ms + shift) / 1000 + index / fps
            frame = av.VideoFrame.from_ndarray(render_clock_frame(camera_name, width, height, wall), format="rgb24")
            frame.pts = count
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
            index += 1
        for packet in stream.encode(None):
            container.mux(packet)
        container.close()
        row = store.commit(file, duration_ms=round(count * 1000 / fps), frames=count)
        ids.append(row.id)
        seg_end = seg_start + round(count * 1000 / fps)
        if gap_after_ms is not None and shift == 0 and seg_end >= start_ms + gap_after_ms[0]:
            shift = gap_after_ms[1]
    return ids
