"""The simulator's pieces on their own: SEI, RTP packetization, RTCP, scenes, PTZ geometry, loop cache."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from pscs.sim import (
    DOORWAY,
    PRIVATE_WINDOW,
    PtzPosition,
    StreamSettings,
    VirtualPtz,
    build_pscs_sei,
    caption_band,
    parse_pscs_sei,
    project_point,
    project_rect,
    render_clock_frame,
    render_grid,
    render_panorama_view,
)
from pscs.sim.encoder import load_or_encode_loop
from pscs.sim.h264 import NAL_IDR, NAL_PPS, NAL_SEI, NAL_SPS, split_nal_units
from pscs.sim.ptz import DOORWAY_COLOR, MAX_ZOOM, PRIVATE_WINDOW_COLOR, TILT_MAX_DEG
from pscs.sim.rtp import build_sender_report, packetize_access_unit
from pscs.sim.rtsp import choose_interleaved_channels, stream_path_of

SPS = bytes.fromhex("6742c01eda02802d8840000003004000000f03c58ba8")
PPS = bytes.fromhex("68ce3c80")
X264_SEI = bytes([NAL_SEI, 5, 20]) + bytes(range(16)) + b"x264" + b"\x80"  # zeros: needs escaping
CAPTURE_US = 1_764_000_000_123_456


def escape(nal: bytes) -> bytes:
    """Insert emulation-prevention bytes as an encoder would."""
    out = bytearray()
    zeros = 0
    for byte in nal:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def avcc(nals: list[bytes]) -> bytes:
    return b"".join(len(nal).to_bytes(4, "big") + nal for nal in nals)


@pytest.mark.parametrize("wrap", [annexb, avcc], ids=["annexb", "avcc"])
def test_pscs_sei_round_trips_in_annexb_and_avcc(wrap) -> None:  # noqa: ANN001
    idr = bytes([0x65]) + b"\x88\x84\x00\x00\x03\x01" * 50
    nals = [SPS, PPS, escape(X264_SEI), build_pscs_sei(CAPTURE_US), idr]
    assert parse_pscs_sei(wrap(nals)) == CAPTURE_US
    assert parse_pscs_sei(wrap([SPS, PPS, escape(X264_SEI), idr])) is None
    assert parse_pscs_sei(b"") is None


def test_pscs_sei_needs_no_emulation_prevention() -> None:
    for capture_us in (0, 10**15, CAPTURE_US, 10**16 - 1):
        sei = build_pscs_sei(capture_us)
        assert escape(sei) == sei
        assert b"\x00\x00" not in sei


def test_packetization_follows_rfc6184() -> None:
    big_idr = bytes([0x65]) + bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8))
    unit = packetize_access_unit([big_idr], sps=SPS, pps=PPS, mtu=1400, channel=0)
    assert unit.keyframe
    data = unit.render_for(channel=2, first_seq=65534, timestamp=123456, ssrc=0xDEADBEEF)
    packets = []
    pos = 0
    while pos < len(data):
        assert data[pos : pos + 2] == b"$\x02"
        size = int.from_bytes(data[pos + 2 : pos + 4], "big")
        packets.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert len(packets) == unit.packet_count
    assert all(len(packet) <= 1400 for packet in packets)
    headers = [struct.unpack(">BBHII", packet[:12]) for packet in packets]
    assert [h[2] for h in headers] == [(65534 + i) % 65536 for i in range(len(packets))]
    assert {(h[0], h[1] & 0x7F, h[3], h[4]) for h in headers} == {(0x80, 96, 123456, 0xDEADBEEF)}
    assert [bool(h[1] & 0x80) for h in headers] == [False] * (len(packets) - 1) + [True]

    # SPS, PPS and the SEI travel as single NAL unit packets, the IDR as FU-A fragments.
    payloads = [packet[12:] for packet in packets]
    assert [p[0] & 0x1F for p in payloads[:3]] == [NAL_SPS, NAL_PPS, NAL_SEI]
    fragments = payloads[3:]
    assert all(p[0] & 0x1F == 28 and p[1] & 0x1F == NAL_IDR for p in fragments)
    assert [bool(p[1] & 0x80) for p in fragments] == [True] + [False] * (len(fragments) - 1)
    assert [bool(p[1] & 0x40) for p in fragments] == [False] * (len(fragments) - 1) + [True]
    assert bytes([(fragments[0][0] & 0xE0) | NAL_IDR]) + b"".join(p[2:] for p in fragments) == big_idr

    unit.stamp_capture_time(CAPTURE_US)
    restamped = unit.render_for(channel=0, first_seq=0, timestamp=0, ssrc=0)
    assert parse_pscs_sei(annexb([payloads[2]])) == 0
    sei_packet = restamped[unit.packet_offsets[2] + 4 + 12 : unit.packet_offsets[3]]
    assert parse_pscs_sei(annexb([sei_packet])) == CAPTURE_US


def test_parameter_sets_are_not_duplicated() -> None:
    unit = packetize_access_unit([SPS, PPS, bytes([0x65, 0x88])], sps=SPS, pps=PPS)
    types = [unit.buffer[offset + 16] & 0x1F for offset in unit.packet_offsets]
    assert types == [NAL_SPS, NAL_PPS, NAL_SEI, NAL_IDR]
    p_frame = packetize_access_unit([bytes([0x41, 0x9A])], sps=SPS, pps=PPS)
    assert not p_frame.keyframe
    assert [p_frame.buffer[offset + 16] & 0x1F for offset in p_frame.packet_offsets] == [NAL_SEI, 1]


def test_sender_report_layout() -> None:
    report = build_sender_report(0x01020304, 0xFFFFFFFF, 10, 2000, cname="pscs-sim/cam1/main", unix_time=1.5)
    first, kind, length, ssrc, ntp_s, ntp_f, rtp, packets, octets = struct.unpack(">BBHIIIIII", report[:28])
    assert (first, kind, length, ssrc) == (0x80, 200, 6, 0x01020304)
    assert (ntp_s, ntp_f, rtp, packets, octets) == (2_208_988_801, 1 << 31, 0xFFFFFFFF, 10, 2000)
    sdes = report[28:]
    assert sdes[1] == 202 and (struct.unpack(">H", sdes[2:4])[0] + 1) * 4 == len(sdes)
    assert b"pscs-sim/cam1/main" in sdes


def test_transport_negotiation() -> None:
    assert choose_interleaved_channels("RTP/AVP/TCP;unicast;interleaved=0-1", set()) == (0, 1)
    assert choose_interleaved_channels("RTP/AVP/TCP;unicast;interleaved=0-1", {0, 1}) == (2, 3)
    assert choose_interleaved_channels("RTP/AVP/TCP;unicast", set()) == (0, 1)
    assert choose_interleaved_channels("RTP/AVP;unicast;client_port=5000-5001", set()) is None
    assert choose_interleaved_channels("RTP/AVP/TCP;multicast", set()) is None
    offers = "RTP/AVP;unicast;client_port=1-2, RTP/AVP/TCP;unicast;interleaved=6-7"
    assert choose_interleaved_channels(offers, set()) == (6, 7)
    assert stream_path_of("rtsp://h:1/cam1/main/trackID=0?x=1") == "cam1/main"
    assert stream_path_of("rtsp://h:1/cam1/main/") == "cam1/main"


def test_clock_scene_is_known_away_from_the_caption() -> None:
    width, height = 320, 180
    band = caption_band(width, height)
    early = render_clock_frame("cam1", width, height, 1_764_000_000.0)
    late = render_clock_frame("cam1", width, height, 1_764_000_061.3)
    grid = render_grid(width, height)
    assert np.array_equal(early[band.y1 :], grid[band.y1 :])
    assert np.array_equal(late[band.y1 :], grid[band.y1 :])
    assert not np.array_equal(early[band.slices()], late[band.slices()])
    assert len({tuple(pixel) for pixel in grid[band.y1 :].reshape(-1, 3)}) >= 12  # a coloured grid


@pytest.mark.parametrize(
    "position",
    [
        PtzPosition(44, 5, 1),
        PtzPosition(40, 3, 4),
        PtzPosition(-17.5, -6, 2.5),
        PtzPosition(-179, 0, 1),
        PtzPosition(30, 0, MAX_ZOOM),
    ],
)
def test_ptz_features_render_where_projected(position: PtzPosition) -> None:
    width, height = 640, 360
    view = render_panorama_view(position, width, height)
    for rect, colour in ((PRIVATE_WINDOW, PRIVATE_WINDOW_COLOR), (DOORWAY, DOORWAY_COLOR)):
        mask = np.all(view == np.array(colour, dtype=np.uint8), axis=2)
        box = project_rect(position, rect, width, height)
        if box is None:
            assert not mask.any()
            continue
        ys, xs = np.nonzero(mask)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (box.x0, box.y0, box.x1, box.y1)
        assert mask.sum() == box.width * box.height


def test_ptz_projection_geometry() -> None:
    centre = PtzPosition(pan=10, tilt=5, zoom=2)
    assert project_point(centre, 10, 5, 640, 360) == (320, 180)
    # 30° horizontal field of view at 2x: 15° right of centre is the right edge.
    assert project_point(centre, 25, 5, 640, 360)[0] == pytest.approx(640)
    assert project_point(centre, 10, 5 + 30 * 360 / 640 / 2, 640, 360)[1] == pytest.approx(0)
    # Pan wraps around at ±180°.
    seam = PtzPosition(pan=179, tilt=0, zoom=1)
    assert project_point(seam, -179, 0, 640, 360)[0] == pytest.approx(320 + 2 / 60 * 640)


def test_virtual_ptz_normalizes_and_is_thread_safe() -> None:
    ptz = VirtualPtz()
    assert ptz.move_to(pan=190, tilt=99, zoom=100) == PtzPosition(-170, TILT_MAX_DEG, MAX_ZOOM)
    assert ptz.move_to(zoom=0.1).zoom == 1.0
    assert ptz.move_by(pan=-20).pan == 170

    ptz.move_to(0, 0, 1)

    def nudge() -> None:
        for _ in range(1000):
            ptz.move_by(pan=0.5)

    threads = [threading.Thread(target=nudge) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ptz.position.pan == pytest.approx(-160)  # 2000° from 0, wrapped


def test_loop_is_encoded_once_and_cached(tmp_path: Path) -> None:
    settings = StreamSettings(160, 90, 10, 200)
    first = load_or_encode_loop(settings, 2, tmp_path)
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".h264", ".json"]
    assert first.frame_count == 20
    keyframes = [i for i, unit in enumerate(first.access_units) if any(n[0] & 0x1F == NAL_IDR for n in unit)]
    assert keyframes == [0, 10], "one IDR per GOP, and the loop starts on one"
    mtime = files[0].stat().st_mtime_ns
    again = load_or_encode_loop(settings, 2, tmp_path)
    assert again == first
    assert files[0].stat().st_mtime_ns == mtime, "the second call reads the cache"
    assert split_nal_units(annexb(list(first.access_units[0])))[0] == first.sps


def test_cli_prints_urls() -> None:
    from typer.testing import CliRunner

    from pscs.sim.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["urls", "--cameras", "2", "--scene", "loop", "--port", "9554"])
    assert result.exit_code == 0, result.output
    assert "rtsp://127.0.0.1:9554/cam01/main" in result.output
    assert "rtsp://127.0.0.1:9554/cam02/sub" in result.output
    demo = runner.invoke(app, ["urls"])
    assert all(f"/{name}/main" in demo.output for name in ("cam1", "cam2", "cam3", "ptz1"))
    assert runner.invoke(app, ["urls", "--scene", "fisheye", "--cameras", "1"]).exit_code != 0
