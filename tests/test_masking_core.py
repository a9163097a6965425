"""The masking core (U4): conservative rasterisation, in-place filling of decoded pictures,
and the fragmented-MP4 writer the egress paths use."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from pscs.errors import InvalidInput
from pscs.media.fmp4 import Fmp4Stream, Sample
from pscs.media.h264 import parse_sps
from pscs.sim.scenes import render_clock_frame
from pscs.video.masking import (
    MASK_U,
    MASK_Y,
    EncoderSettings,
    H264Decoder,
    H264Encoder,
    MaskingTranscoder,
    rasterize,
    rasterize_polygon,
    zone_mask,
)
from pscs.video.zones import ZoneSet, validate_zones

TRIANGLE = ((0.2, 0.2), (0.7, 0.25), (0.4, 0.9))


def zones(*polygons) -> ZoneSet:
    return ZoneSet("test:1", 1, 1, "image", tuple(polygons))


def test_U4_rasterising_is_conservative_and_whole_macroblocks():
    w, h = 640, 360
    exact = rasterize_polygon(TRIANGLE, w, h)
    luma, chroma = rasterize((TRIANGLE,), w, h)
    assert exact.sum() > 0 and (luma | exact).sum() == luma.sum()  # every inside pixel is masked
    # Every pixel the polygon even touches is covered: sample the polygon 4x finer.
    fine = rasterize_polygon(TRIANGLE, w * 4, h * 4).reshape(h, 4, w, 4).any(axis=(1, 3))
    assert not (fine & ~luma).any()
    blocks = luma[: h // 16 * 16].reshape(h // 16, 16, w // 16, 16)
    assert (blocks.all(axis=(1, 3)) == blocks.any(axis=(1, 3))).all()  # whole macroblocks only
    assert chroma.shape == (h // 2, w // 2)
    assert (np.repeat(np.repeat(chroma, 2, 0), 2, 1) == luma).all()


def test_U4_ptz_zones_fail_closed_until_they_can_be_projected():
    ptz = ZoneSet("p:1", 1, 1, "ptz", (((10.0, 5.0), (20.0, 5.0), (20.0, 15.0)),))
    assert zone_mask(ptz, 320, 180).luma.all()


def test_U4_zone_validation():
    assert validate_zones([{"points": [[0, 0], [1, 0], [0.5, 1]]}])[0]["label"] == "zone 1"
    for bad in (
        [{"points": [[0, 0], [1, 0]]}],
        [{"points": [[0, 0], [1.5, 0], [0, 1]]}],
        "x",
        [{"points": [[0, 0], [1, 0], [float("nan"), 1]]}],
    ):
        with pytest.raises(InvalidInput):
            validate_zones(bad)


def test_U4_masking_a_decoded_picture_does_not_corrupt_the_decoders_references():
    """The decoder hands out frames that are also its reference pictures: masking one in
    place would bleed the mask into later pictures' unmasked areas."""
    w, h = 320, 180
    encoder = H264Encoder(w, h, EncoderSettings(preset="ultrafast", keyframe_interval_s=10), 25)
    units = []
    for i in range(12):
        rgb = render_clock_frame("cam", w, h, 1e9 + i / 25)
        rgb[:, (i * 7) % w] = 255  # motion, so P pictures predict from across the zone
        units += encoder.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"), i * 3600)
    plain, masked = H264Decoder(), H264Decoder()
    mask = zone_mask(zones(TRIANGLE), w, h)
    for unit in units:
        (reference,) = plain.decode(unit.nals, unit.pts)
        (frame,) = masked.decode(unit.nals, unit.pts)
        frame.make_writable()
        mask.apply(frame)
        ref_y = reference.to_ndarray(format="yuv420p")[:h]
        got_y = frame.to_ndarray(format="yuv420p")[:h]
        assert (got_y[mask.luma] == MASK_Y).all()
        assert np.array_equal(got_y[~mask.luma], ref_y[~mask.luma])


def test_fragmented_mp4_round_trip_and_codec_string():
    w, h = 320, 180
    source = H264Encoder(w, h, EncoderSettings(preset="ultrafast"), 25)
    transcoder = MaskingTranscoder(zones(TRIANGLE), EncoderSettings(preset="ultrafast"))
    muxer = Fmp4Stream()
    out = bytearray()
    for i in range(30):
        frame = av.VideoFrame.from_ndarray(render_clock_frame("cam", w, h, 1e9 + i / 25), format="rgb24")
        for unit in source.encode(frame.reformat(format="yuv420p"), 1_000_000 + i * 3600):
            for encoded in transcoder.push(unit.nals, unit.pts):
                if muxer.parameter_sets(encoded.nals):
                    out += muxer.init
                out += muxer.fragment([Sample(encoded.nals, encoded.pts, 3600, encoded.keyframe)])
    assert muxer.info == parse_sps(muxer.sps) and muxer.info.width == w and muxer.info.height == h
    assert muxer.info.codec.startswith("avc1.")
    with av.open(io.BytesIO(bytes(out))) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 30
    assert frames[0].time == pytest.approx(1_000_000 / 90_000, abs=1e-3)  # tfdt carries the absolute time
    mask = zone_mask(zones(TRIANGLE), w, h)
    for frame in frames:
        yuv = frame.to_ndarray(format="yuv420p")
        assert np.abs(yuv[:h][mask.luma].astype(int) - MASK_Y).max() <= 2
        assert np.abs(yuv[h : h + h // 4].reshape(h // 2, w // 2)[mask.chroma].astype(int) - MASK_U).max() <= 2
