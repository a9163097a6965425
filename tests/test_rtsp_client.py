"""The recorder's RTSP client (pscs.media.rtsp_client) on its own: URLs, SDP, Digest
authentication, H.264 depacketization, and a session against a scripted camera that speaks
RTSP on a real socket (keep-alive, interleaved answers, lost packets).  Recording from the
simulator and from GStreamer's RTSP server is in test_recording_sim.py and
test_recording_e2e.py."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pscs.media.rtsp_client import (
    AccessUnit,
    NotH264Error,
    RtspProtocolError,
    RtspSession,
    RtspStatusError,
    _Authenticator,
    parse_sdp_video,
    split_credentials,
)
from pscs.sim.h264 import NAL_IDR, NAL_SEI, parse_pscs_sei
from pscs.sim.rtp import build_sender_report, interleave, packetize_access_unit
from tests.peers.scripted_camera import ScriptedCamera

SPS = bytes.fromhex("6742c01eda02802d8840000003004000000f03c58ba8")
PPS = bytes.fromhex("68ce3c80")
IDR = bytes([0x65]) + bytes(range(256)) * 20  # 5 KiB: several FU-A fragments
SLICE = bytes([0x41]) + b"\x9a" * 900  # fits one packet


def rtp(seq: int, timestamp: int, payload: bytes, *, marker: bool, extra: bytes = b"") -> bytes:
    return struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | 96, seq, timestamp, 1234) + extra + payload


def frames_for(nals: list[bytes], first_seq: int, timestamp: int) -> tuple[bytes, int]:
    """The interleaved frames the simulator's packetizer makes of one access unit."""
    unit = packetize_access_unit(nals, sps=SPS, pps=PPS, mtu=1400)
    return unit.render_for(0, first_seq, timestamp & 0xFFFFFFFF, 1234), first_seq + unit.packet_count


def feed(session: RtspSession, data: bytes) -> list[AccessUnit]:
    """What the session makes of ``data`` arriving on its socket (in one read)."""
    session._buffer[session._filled : session._filled + len(data)] = data
    session._filled += len(data)
    units: list[AccessUnit] = []
    session._split(units)
    return units


def offline_session() -> RtspSession:
    return RtspSession("rtsp://127.0.0.1:9/cam")


# URLs, SDP, authentication --------------------------------------------------------------------
def test_credentials_leave_the_url_percent_decoded_and_the_default_port_is_made_explicit() -> None:
    assert split_credentials("rtsp://op%40x:p%3Ass@cam.local/axis-media/media.amp?x=1") == (
        "rtsp://cam.local:554/axis-media/media.amp?x=1",
        "op@x",
        "p:ss",
    )
    assert split_credentials("rtsp://[::1]:8554/live") == ("rtsp://[::1]:8554/live", None, None)
    with pytest.raises(RtspProtocolError, match="not an rtsp"):
        split_credentials("http://cam/live")


SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=camera
a=control:{session}
m=audio 0 RTP/AVP 0
a=control:trackID=9
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets=Z0LAHtoCgC2IQAAAAwBAAAAPA8WLqA==,aM48gA==
a=control:{control}
"""


@pytest.mark.parametrize(
    ("session", "control", "expected"),
    [
        ("*", "trackID=1", "rtsp://cam:554/live/trackID=1"),
        ("*", "rtsp://cam:554/other/track1", "rtsp://cam:554/other/track1"),
        ("rtsp://cam:554/base/", "stream=0", "rtsp://cam:554/base/stream=0"),
        ("*", "*", "rtsp://cam:554/live/"),
    ],
)
def test_sdp_gives_the_first_video_stream_its_control_url_and_parameter_sets(
    session: str, control: str, expected: str
) -> None:
    track = parse_sdp_video(SDP.format(session=session, control=control), "rtsp://cam:554/live/")
    assert track.control_url == expected
    assert track.session_url == ("rtsp://cam:554/base/" if session.startswith("rtsp") else "rtsp://cam:554/live/")
    assert (track.codec, track.payload_type, track.clock_rate) == ("h264", 96, 90_000)
    assert track.parameter_sets == [SPS, PPS]


def test_a_camera_that_does_not_send_h264_is_named_by_its_codec() -> None:
    mjpeg = "v=0\r\nm=video 0 RTP/AVP 26\r\na=control:track1\r\n"  # static payload type, no rtpmap
    assert parse_sdp_video(mjpeg, "rtsp://cam:554/x").codec == "mjpeg"
    hevc = "v=0\r\nm=video 0 RTP/AVP 98\r\na=rtpmap:98 H265/90000\r\n"
    assert parse_sdp_video(hevc, "rtsp://cam:554/x").codec == "hevc"
    with pytest.raises(RtspProtocolError, match="no video stream"):
        parse_sdp_video("v=0\r\nm=audio 0 RTP/AVP 0\r\n", "rtsp://cam:554/x")


def test_digest_authentication_answers_the_rfc_2617_example() -> None:
    auth = _Authenticator(
        "Mufasa",
        "Circle Of Life",
        'Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    )
    auth.new_cnonce = lambda: "0a4f113b"
    header = auth.header("GET", "/dir/index.html")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header
    assert _Authenticator("Aladdin", "open sesame", 'Basic realm="x"').header("DESCRIBE", "rtsp://a/") == (
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    )


# Depacketization ------------------------------------------------------------------------------
def test_access_units_come_out_as_the_camera_encoded_them_whatever_the_packetization() -> None:
    session = offline_session()
    keyframe, seq = frames_for([SPS, PPS, IDR], 100, 9000)
    delta, seq = frames_for([SLICE], seq, 12600)
    stap = rtp(
        seq, 16200, bytes([24]) + struct.pack(">H", len(SPS)) + SPS + struct.pack(">H", 5) + SLICE[:5], marker=True
    )
    rtcp = interleave(1, build_sender_report(1234, 9000, 3, 100, cname="cam"))
    units = feed(session, keyframe + rtcp + delta + interleave(0, stap))
    assert [u.timestamp for u in units] == [9000, 12600, 16200]
    assert [u.keyframe for u in units] == [True, False, False]
    first = units[0].nals
    assert first[:2] == [SPS, PPS] and first[-1] == IDR and first[2][0] & 0x1F == NAL_SEI
    assert parse_pscs_sei(units[0].annex_b()) is not None  # the SEI survived intact
    assert units[1].nals[-1] == SLICE
    assert units[2].nals == [SPS, SLICE[:5]]
    assert session.lost_packets == 0


def test_frames_split_across_reads_are_put_back_together() -> None:
    session = offline_session()
    data, _ = frames_for([SPS, PPS, IDR], 0, 0)
    units: list[AccessUnit] = []
    for start in range(0, len(data), 333):
        units += feed(session, data[start : start + 333])
    assert len(units) == 1 and units[0].nals[-1] == IDR


def test_a_lost_packet_is_counted_and_the_broken_nal_unit_is_not_kept() -> None:
    session = offline_session()
    keyframe, seq = frames_for([SPS, PPS, IDR], 10, 0)
    offsets = [i for i in range(len(keyframe)) if keyframe[i] == 0x24 and keyframe[i + 1] == 0]
    frames = [keyframe[a:b] for a, b in zip(offsets, [*offsets[1:], len(keyframe)], strict=True)]
    damaged = b"".join(frames[:4] + frames[5:])  # one FU-A fragment of the IDR missing
    delta, _ = frames_for([SLICE], seq, 3600)
    units = feed(session, damaged + delta)
    assert session.lost_packets == 1
    assert [u.timestamp for u in units] == [0, 3600]
    assert units[0].nals[:2] == [SPS, PPS] and not any(n[0] & 0x1F == NAL_IDR for n in units[0].nals)
    assert units[1].nals[-1] == SLICE


def test_timestamps_are_extended_past_the_32_bit_wrap_and_units_end_without_a_marker_too() -> None:
    session = offline_session()
    near_wrap = 0xFFFFFFFF - 1800
    units = feed(
        session,
        interleave(0, rtp(1, near_wrap, SLICE, marker=False))  # no marker: ends when the timestamp moves on
        + interleave(0, rtp(2, (near_wrap + 3600) & 0xFFFFFFFF, SLICE, marker=True)),
    )
    assert [u.timestamp for u in units] == [near_wrap, near_wrap + 3600]


def test_csrc_header_extension_and_padding_are_skipped() -> None:
    session = offline_session()
    csrc_and_extension = struct.pack(">II", 42, 0xBEDE0001) + b"\x01\x02\x03\x04"
    packet = bytearray(rtp(7, 500, SLICE, marker=True, extra=csrc_and_extension) + b"\x00\x00\x03")
    packet[0] |= 0x20 | 0x10 | 0x01  # padding, extension, one CSRC
    [unit] = feed(session, interleave(0, bytes(packet)))
    assert unit.nals == [SLICE]


def test_rtsp_messages_between_frames_are_skipped_whole() -> None:
    session = offline_session()
    answer = b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 4\r\n\r\nok\r\n"
    request = b"SET_PARAMETER rtsp://cam/live RTSP/1.0\r\nCSeq: 1\r\n\r\n"  # sent by the camera
    first, seq = frames_for([SPS, PPS, IDR], 0, 0)
    second, _ = frames_for([SLICE], seq, 3600)
    units = feed(session, first + answer[:20])
    units += feed(session, answer[20:] + request + second)
    assert [u.timestamp for u in units] == [0, 3600] and session.lost_packets == 0


def test_bytes_that_are_neither_rtsp_nor_interleaved_frames_end_the_connection() -> None:
    with pytest.raises(RtspProtocolError, match="framing"):
        feed(offline_session(), b"\x00garbage that is not a frame")


# A session against a scripted camera ----------------------------------------------------------
@pytest.fixture
def camera_factory() -> Iterator[Callable[..., ScriptedCamera]]:
    made: list[ScriptedCamera] = []

    def make(*, sdp: str | None = None, **kwargs: Any) -> ScriptedCamera:
        pictures = [[SPS, PPS, IDR]] + [[SLICE]] * 199
        camera = ScriptedCamera(pictures, sdp=sdp or SDP.format(session="*", control="trackID=1"), **kwargs)
        made.append(camera)
        return camera

    yield make
    for camera in made:
        camera.close()


def read_for(session: RtspSession, seconds: float) -> list[AccessUnit]:
    units: list[AccessUnit] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        units += session.read()[0]
    return units


def test_a_session_keeps_itself_alive_and_the_answers_do_not_disturb_the_stream(
    camera_factory: Callable[..., ScriptedCamera],
) -> None:
    camera = camera_factory(session_timeout_s=2)
    session = RtspSession(camera.url(), timeout_s=2)
    track = session.open()
    assert track.control_url == camera.url() + "/trackID=1"
    units = read_for(session, 3.5)
    session.close()
    methods = [r.split(" ", 1)[0] for r in camera.requests]
    assert methods[:4] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
    assert camera.requests[2].startswith(f"SETUP {camera.url()}/trackID=1 RTSP/1.0")
    assert camera.requests[3].startswith(f"PLAY {camera.url()}/ RTSP/1.0")  # the Content-Base
    # Every half session time-out (1 s), a keep-alive naming the session.
    keepalives = [r for r in camera.requests if r.startswith("GET_PARAMETER")]
    assert 2 <= len(keepalives) <= 4 and all("Session: 77" in r for r in keepalives)
    assert len(units) >= 50 and session.lost_packets == 0
    timestamps = [u.timestamp for u in units]
    assert timestamps == list(range(0, 4500 * len(units), 4500))
    assert units[0].keyframe and units[0].nals[-1] == IDR and units[-1].nals[-1] == SLICE


@pytest.mark.parametrize(("status", "error"), [(404, RtspStatusError), (401, RtspStatusError)])
def test_a_refused_describe_raises_with_its_status_and_no_url(
    camera_factory: Callable[..., ScriptedCamera], status: int, error: type
) -> None:
    camera = camera_factory(describe_status=status)
    session = RtspSession(camera.url().replace("rtsp://", "rtsp://op:s3cret@"), timeout_s=2)
    with pytest.raises(error) as raised:
        session.open()
    session.close()
    assert raised.value.status == status and "s3cret" not in str(raised.value) and "127.0.0.1" not in str(raised.value)


def test_a_camera_that_offers_mjpeg_is_refused_before_setup(camera_factory: Callable[..., ScriptedCamera]) -> None:
    camera = camera_factory(sdp="v=0\r\nm=video 0 RTP/AVP 26\r\na=control:track1\r\n")
    session = RtspSession(camera.url(), timeout_s=2)
    with pytest.raises(NotH264Error, match=r"not H\.264 \(camera sends mjpeg\)"):
        session.open()
    session.close()
    assert not any(r.startswith("SETUP") for r in camera.requests)
