"""One camera's recorder (pscs.recording.camera.CameraRecorder) against a scripted RTSP
camera, for what real cameras do that the simulator and GStreamer do not do on demand:
change their picture size mid-stream, or send their parameter sets only in the SDP.
Every segment must still decode on its own, and the segments stay contiguous."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from pscs.cameras.sources import RecordingSource
from pscs.recording.camera import CameraRecorder, RecorderConfig
from pscs.sim.encoder import H264Encoder, StreamSettings
from pscs.sim.h264 import NAL_PPS, NAL_SPS, nal_type
from pscs.storage.segment_files import FinishedSegment, SegmentWriter
from tests.peers.scripted_camera import ScriptedCamera, sdp_for

FPS = 10
Recorded = list[tuple[FinishedSegment, Path]]
Record = Callable[[ScriptedCamera, float, RecorderConfig], Recorded]


def encode(width: int, height: int, pictures: int) -> tuple[list[list[bytes]], bytes, bytes]:
    """``pictures`` pictures of a moving gradient, an IDR every second (SPS and PPS in-band)."""
    encoder = H264Encoder(StreamSettings(width, height, FPS, 300, gop_frames=FPS))
    x = np.linspace(0, 255, width, dtype=np.uint8)
    units: list[list[bytes]] = []
    for i in range(pictures):
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        rgb[:] = np.roll(x, i * 8)[None, :, None]
        units += encoder.encode(rgb)
    return units, encoder.sps, encoder.pps


class Collected:
    """The recorder's index sink: what would go to the supervisor."""

    def __init__(self) -> None:
        self.segments: list[FinishedSegment] = []
        self.gaps: list[tuple[int, int, int, str]] = []

    def segment_finished(self, finished: FinishedSegment) -> None:
        self.segments.append(finished)

    def gap(self, camera_id: int, start_ms: int, end_ms: int, reason: str) -> None:
        self.gaps.append((camera_id, start_ms, end_ms, reason))

    def stopped(self, camera_id: int) -> None:
        pass


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Record]:
    cameras: list[ScriptedCamera] = []

    def run(camera: ScriptedCamera, seconds: float, config: RecorderConfig) -> Recorded:
        cameras.append(camera)
        sink = Collected()
        recorder = CameraRecorder(
            RecordingSource(1, "scripted", camera.url()),
            SegmentWriter(tmp_path),
            sink,
            config,
            threading.Event(),
            last_end_ms=None,
            first_gap_reason="not recording",
        )
        recorder.start()
        time.sleep(seconds)
        recorder.stop()
        recorder.join(10)
        assert not recorder.is_alive()
        assert recorder.stats.dropped_packets == 0 and recorder.stats.timestamp_discontinuities == 0
        return [(s, tmp_path / s.path) for s in sink.segments]

    yield run
    for camera in cameras:
        camera.close()


def picture_sizes(path: Path) -> list[tuple[int, int]]:
    """Every frame's size, decoding the file on its own; corrupt data raises."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"err_detect": "explode"}
        return [(frame.width, frame.height) for frame in container.decode(stream)]


def assert_contiguous(segments: Recorded) -> None:
    rows = [s for s, _ in segments]
    assert all(b.start_ms == a.end_ms for a, b in zip(rows, rows[1:], strict=False))


def test_S1_a_camera_reconfigured_to_another_picture_size_gets_a_new_segment_at_that_keyframe(
    record: Record,
) -> None:
    small, sps, pps = encode(320, 240, 2 * FPS)
    large, _, _ = encode(640, 360, 2 * FPS)
    camera = ScriptedCamera(small + large, sdp=sdp_for(sps, pps), interval_s=1 / FPS, frame_ticks=90_000 // FPS)
    # Segments of 3 s, pictures that change size every 2 s: each change must cut one.
    segments = record(camera, 6.5, RecorderConfig(segment_seconds=3.0))
    sizes = [set(picture_sizes(path)) for _, path in segments]
    assert len(segments) >= 3
    assert all(len(s) == 1 for s in sizes)  # each segment holds one picture size
    flat = [next(iter(s)) for s in sizes]
    assert flat[:3] == [(320, 240), (640, 360), (320, 240)]
    assert all(abs(s.duration_ms - 2000) <= 1 for s, _ in segments[:-1])
    for (finished, path), size in zip(segments, sizes, strict=True):
        with av.open(str(path)) as container:  # the file's own header agrees with its pictures
            ctx = container.streams.video[0].codec_context
            assert {(ctx.width, ctx.height)} == size
        assert len(picture_sizes(path)) == finished.frames
    assert_contiguous(segments)


def test_S1_parameter_sets_sent_only_in_the_sdp_lead_every_segment(record: Record) -> None:
    pictures, sps, pps = encode(320, 240, 3 * FPS)
    without = [[nal for nal in unit if nal_type(nal) not in (NAL_SPS, NAL_PPS)] for unit in pictures]
    assert all(without) and sum(len(u) for u in without) < sum(len(u) for u in pictures)
    camera = ScriptedCamera(without, sdp=sdp_for(sps, pps), interval_s=1 / FPS, frame_ticks=90_000 // FPS)
    segments = record(camera, 4.5, RecorderConfig(segment_seconds=1.0))
    assert len(segments) >= 3
    for finished, path in segments:
        assert picture_sizes(path) == [(320, 240)] * finished.frames  # decodes on its own
    assert_contiguous(segments)


def test_S1_parameter_sets_repeated_on_some_keyframes_do_not_cut_segments(record: Record) -> None:
    """GStreamer's payloader with config-interval adds SPS and PPS before the encoder's own
    on some keyframes: the same parameter sets, so no new segment."""
    pictures, sps, pps = encode(320, 240, 4 * FPS)
    for i in range(0, len(pictures), 2 * FPS):  # every other keyframe
        pictures[i] = [sps, pps, *pictures[i]]
    camera = ScriptedCamera(pictures, sdp=sdp_for(sps, pps), interval_s=1 / FPS, frame_ticks=90_000 // FPS)
    segments = record(camera, 5.5, RecorderConfig(segment_seconds=2.0))
    assert len(segments) >= 2
    assert all(s.duration_ms == 2000 for s, _ in segments[:-1])
    assert_contiguous(segments)


def test_S1_a_keyframe_stamped_a_little_early_by_the_cameras_clock_still_ends_the_segment(record: Record) -> None:
    """Cameras stamp pictures with their capture clock, a millisecond or two either way: a
    keyframe within half a picture of the segment length ends the segment, rather than
    making it a whole GOP longer."""
    pictures, sps, pps = encode(320, 240, 4 * FPS)
    ticks = 90_000 // FPS
    camera = ScriptedCamera(
        pictures, sdp=sdp_for(sps, pps), interval_s=1 / FPS, frame_ticks=ticks, jitter_ticks=(0, -180, 90)
    )
    segments = record(camera, 5.5, RecorderConfig(segment_seconds=2.0))
    assert len(segments) >= 2
    assert all(1990 <= s.duration_ms <= 2010 and s.frames == 2 * FPS for s, _ in segments[:-1])
    assert_contiguous(segments)
