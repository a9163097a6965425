"""The camera simulator speaks real RTSP: ffmpeg, GStreamer and PyAV play it as they would a camera."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import av
import imageio_ffmpeg
import numpy as np
import pytest

from pscs.sim import (
    PRIVATE_WINDOW,
    CameraSpec,
    PtzPosition,
    SimulatorServer,
    StreamSettings,
    caption_band,
    loop_noise_band,
    parse_pscs_sei,
    project_rect,
    render_clock_frame,
    render_grid,
    render_panorama_view,
    streams,
)
from pscs.sim.h264 import NAL_IDR, NAL_PPS, NAL_SEI, NAL_SPS
from pscs.sim.ptz import PRIVATE_WINDOW_COLOR
from tests.capabilities import require

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
LOOP_MAIN = StreamSettings(640, 360, 25, 1000)  # small, so the test session encodes it quickly
LOOP_SUB = StreamSettings(320, 180, 25, 300)
CLOCK_MAIN = StreamSettings(640, 360, 15, 800)
CLOCK_SUB = StreamSettings(320, 180, 10, 200)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorServer]:
    cameras = [
        CameraSpec("cam1", scene="clock", main=CLOCK_MAIN, sub=CLOCK_SUB),
        CameraSpec("loop1", scene="loop", main=LOOP_MAIN, sub=LOOP_SUB, loop_seconds=2),
        CameraSpec("ptz1", scene="ptz"),
    ]
    with SimulatorServer(cameras, port=0, cache_dir=tmp_path_factory.mktemp("sim-cache")) as server:
        yield server


# -- helpers ---------------------------------------------------------------------------------


def scene_region_error(decoded: np.ndarray, expected: np.ndarray, exclude_rows: list[tuple[int, int]]) -> float:
    """Mean absolute difference outside the caption band and the given row ranges."""
    height, width = expected.shape[:2]
    keep = np.ones(height, dtype=bool)
    keep[: caption_band(width, height).y1] = False
    for start, stop in exclude_rows:
        keep[start:stop] = False
    return float(np.abs(decoded[keep].astype(np.int16) - expected[keep].astype(np.int16)).mean())


def ffmpeg_read_frames(url: str, frames: int, *extra: str) -> subprocess.Popen[bytes]:
    """ffmpeg decoding ``frames`` pictures as raw RGB on stdout; only errors on stderr."""
    command = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", *extra, "-i", url]
    command += ["-frames:v", str(frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class RawRtspClient:
    """A minimal RTSP client on a plain socket, to look at the bytes the server sends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.cseq = 0
        self.buffer = b""
        self.frames: list[tuple[int, bytes]] = []  # interleaved (channel, payload), in order

    def close(self, abort: bool = False) -> None:
        if abort:  # RST instead of FIN: the client vanished
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data

    def _next_item(self) -> tuple[int, bytes] | tuple[str, bytes]:
        while True:
            if self.buffer.startswith(b"$") and len(self.buffer) >= 4:
                size = int.from_bytes(self.buffer[2:4], "big")
                if len(self.buffer) >= 4 + size:
                    channel, payload = self.buffer[1], self.buffer[4 : 4 + size]
                    self.buffer = self.buffer[4 + size :]
                    return channel, payload
            elif not self.buffer.startswith(b"$") and b"\r\n\r\n" in self.buffer:
                head, _, rest = self.buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    return head.decode(), rest[:length]
            self._fill()

    def request(self, method: str, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: pscs-test"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            item = self._next_item()
            if isinstance(item[0], int):
                self.frames.append(item)  # type: ignore[arg-type]
                continue
            head, body = item
            status_line, *header_lines = head.split("\r\n")
            response_headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                response_headers[name.strip().lower()] = value.strip()
            assert response_headers["cseq"] == str(self.cseq)
            return int(status_line.split()[1]), response_headers, body

    def play(self, url: str, interleaved: str = "0-1") -> dict[str, str]:
        status, _, _ = self.request("DESCRIBE", url, Accept="application/sdp")
        assert status == 200
        status, setup, _ = self.request(
            "SETUP", f"{url}/trackID=0", Transport=f"RTP/AVP/TCP;unicast;interleaved={interleaved}"
        )
        assert status == 200, status
        self.session = setup["session"].split(";")[0]
        status, play, _ = self.request("PLAY", f"{url}/", Session=self.session, Range="npt=now-")
        assert status == 200
        return {**setup, **play}

    def read_frames_for(self, seconds: float) -> list[tuple[int, bytes]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            item = self._next_item()
            assert isinstance(item[0], int), f"unexpected RTSP message {item!r}"
            self.frames.append(item)  # type: ignore[arg-type]
        frames, self.frames = self.frames, []
        return frames


def rtp_fields(packet: bytes) -> tuple[bool, int, int, int, int, bytes]:
    """(marker, payload type, sequence number, timestamp, SSRC, payload) of an RTP packet."""
    first, second, seq, timestamp, ssrc = struct.unpack(">BBHII", packet[:12])
    assert first == 0x80  # RTP version 2, no padding/extension/CSRC
    return bool(second & 0x80), second & 0x7F, seq, timestamp, ssrc, packet[12:]


def depacketize(payloads: list[bytes]) -> list[bytes]:
    """NAL units from the RTP payloads of one access unit (single NAL unit and FU-A packets)."""
    nals: list[bytes] = []
    fragment = bytearray()
    for payload in payloads:
        kind = payload[0] & 0x1F
        if kind == 28:  # FU-A
            header = payload[1]
            if header & 0x80:
                fragment = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
            fragment += payload[2:]
            if header & 0x40:
                nals.append(bytes(fragment))
        else:
            assert 1 <= kind <= 23, f"unexpected packet type {kind}"
            nals.append(payload)
    return nals


# -- ffmpeg --------------------------------------------------------------------------------------


def test_ffmpeg_plays_clock_main_and_sub_over_tcp(sim: SimulatorServer) -> None:
    frames = 15
    runs = {
        stream: ffmpeg_read_frames(sim.url("cam1", stream), frames, "-rtsp_transport", "tcp")
        for stream in ("main", "sub")
    }
    for stream, settings in (("main", CLOCK_MAIN), ("sub", CLOCK_SUB)):
        out, err = runs[stream].communicate(timeout=30)
        assert runs[stream].returncode == 0, err.decode()
        assert err.decode().strip() == "", f"ffmpeg reported errors on {stream}: {err.decode()}"
        frame_size = settings.width * settings.height * 3
        assert len(out) == frames * frame_size, f"{stream}: not {frames} frames of {settings.width}x{settings.height}"
        last = np.frombuffer(out[-frame_size:], dtype=np.uint8).reshape(settings.height, settings.width, 3)
        # The scene below the caption is the known grid, to within coding loss.
        assert scene_region_error(last, render_grid(settings.width, settings.height), []) < 6


def test_ffmpeg_default_transport_falls_back_from_udp_to_tcp(sim: SimulatorServer) -> None:
    """UDP is not offered: SETUP answers 461 and ffmpeg retries over TCP on its own."""
    run = ffmpeg_read_frames(sim.url("cam1", "sub"), 5)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err.decode()
    assert len(out) == 5 * CLOCK_SUB.width * CLOCK_SUB.height * 3


# -- GStreamer -----------------------------------------------------------------------------------


@pytest.mark.gstreamer
@pytest.mark.parametrize("protocols", ["tcp", None], ids=["tcp", "udp-then-tcp"])
def test_gstreamer_rtspsrc_plays_clock_camera(sim: SimulatorServer, protocols: str | None) -> None:
    require("GStreamer", None if shutil.which("gst-launch-1.0") else "gst-launch-1.0 is not installed")
    source = ["rtspsrc", f"location={sim.url('cam1')}", "latency=0"]
    if protocols:
        source.append(f"protocols={protocols}")
    pipeline = [*source, "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!"]
    pipeline += ["fakesink", "num-buffers=20", "silent=false"]
    run = subprocess.run(["gst-launch-1.0", "-v", *pipeline], capture_output=True, text=True, timeout=30, check=False)
    output = run.stderr + run.stdout
    decoded = output.count("fakesink0: last-message = chain")
    assert decoded == 20, output[-2000:]
    if run.returncode != 0:
        # After the last frame, on its way out, rtspsrc may send its PAUSE after its own
        # TEARDOWN has closed the connection and report that as an error (the simulator's log
        # then shows TEARDOWN and no PAUSE).  That shutdown race is rtspsrc's; anything else
        # is a failure.
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        assert errors and all("rtspsrc0: Could not write to resource" in e for e in errors), output[-2000:]
        assert output.count("(Received end-of-file)") == len(errors), output[-2000:]


# -- PyAV ----------------------------------------------------------------------------------------


def test_pyav_demuxes_loop_stream_with_sei_capture_times(sim: SimulatorServer) -> None:
    fps, gop = LOOP_MAIN.fps, LOOP_MAIN.gop
    packets: list[tuple[int | None, bool, int | None, float]] = []  # pts, keyframe, SEI µs, arrival
    grid_errors: list[float] = []
    with av.open(sim.url("loop1"), options={"rtsp_transport": "tcp"}, timeout=10) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets.append((packet.pts, packet.is_keyframe, parse_pscs_sei(bytes(packet)), time.time()))
            for frame in packet.decode():
                if len(grid_errors) < 3:
                    noise = loop_noise_band(640, 360)
                    decoded = frame.to_ndarray(format="rgb24")
                    grid_errors.append(scene_region_error(decoded, render_grid(640, 360), [(noise.y0, noise.y1)]))
            if len(packets) >= 2 * gop + 10:
                break

    assert max(grid_errors) < 6
    assert packets[0][1], "playback starts on an IDR"
    timed = [p for p in packets if p[0] is not None]  # ffmpeg's parser leaves the very first pts unset
    assert len(timed) >= len(packets) - 1
    steps = {b[0] - a[0] for a, b in zip(timed, timed[1:], strict=False)}
    assert steps == {90_000 // fps}, f"RTP timestamps advance one frame at a time, not {steps}"

    keyframe_indexes = [index for index, packet in enumerate(packets) if packet[1]]
    assert {b - a for a, b in zip(keyframe_indexes, keyframe_indexes[1:], strict=False)} == {gop}
    assert len(keyframe_indexes) >= 2

    sei_times = [packet[2] for packet in packets]
    assert all(value is not None for value in sei_times), "every access unit carries the pscs SEI"
    assert all(b > a for a, b in zip(sei_times, sei_times[1:], strict=False))  # type: ignore[operator]
    # Capture times are real wall-clock times.  The first packets wait in ffmpeg's probe buffer;
    # once it is drained, a picture arrives within a fraction of a second of its capture.
    latest = packets[-5:]
    assert all(0 <= arrival - sei / 1e6 < 1.0 for _, _, sei, arrival in latest)  # type: ignore[operator]
    # ... and they tick with the RTP clock.
    span_sei = (sei_times[-1] - sei_times[1]) / 1e6  # type: ignore[operator]
    span_rtp = (timed[-1][0] - timed[0][0]) / 90_000  # type: ignore[operator]
    assert abs(span_sei - span_rtp) < 0.1


def test_clock_picture_shows_the_time_the_sei_carries(sim: SimulatorServer) -> None:
    """The whole clock picture is known: name and capture time are what the SEI says."""
    width, height = CLOCK_MAIN.width, CLOCK_MAIN.height
    band = caption_band(width, height)
    checked = 0
    with av.open(sim.url("cam1"), options={"rtsp_transport": "tcp"}, timeout=10) as container:
        stream = container.streams.video[0]
        sei_by_pts: dict[int | None, int | None] = {}
        for packet in container.demux(stream):
            sei_by_pts[packet.pts] = parse_pscs_sei(bytes(packet))
            for frame in packet.decode():
                capture_us = sei_by_pts.get(frame.pts)
                if capture_us is None:
                    continue
                decoded = frame.to_ndarray(format="rgb24")[band.slices()].astype(np.int16)
                right = render_clock_frame("cam1", width, height, capture_us / 1e6)[band.slices()].astype(np.int16)
                wrong = render_clock_frame("cam1", width, height, capture_us / 1e6 + 3.3)[band.slices()]
                glyphs = np.any(right != wrong, axis=2)  # pixels where the digits differ
                assert glyphs.sum() > 50
                error_right = np.abs(decoded - right)[glyphs].mean()
                error_wrong = np.abs(decoded - wrong.astype(np.int16))[glyphs].mean()
                assert error_right < error_wrong / 3, (error_right, error_wrong)
                checked += 1
            if checked >= 5:
                break
    assert checked >= 5


# -- RTP and RTSP on the wire -------------------------------------------------------------------


def test_rtp_packetization_and_rtcp_sender_report(sim: SimulatorServer) -> None:
    client = RawRtspClient(sim.port)
    try:
        headers = client.play(sim.url("loop1"))
        frames = client.read_frames_for(1.5)
    finally:
        client.close()
    assert headers["transport"].startswith("RTP/AVP/TCP;unicast;interleaved=0-1")
    ssrc = int(headers["transport"].split("ssrc=")[1].split(";")[0], 16)
    rtp_info = dict(part.split("=", 1) for part in headers["rtp-info"].split(";"))
    assert rtp_info["url"].endswith("/loop1/main/trackID=0")

    rtp = [rtp_fields(payload) for channel, payload in frames if channel == 0]
    rtcp = [payload for channel, payload in frames if channel == 1]
    assert {channel for channel, _ in frames} <= {0, 1}
    assert all(len(payload) <= 1400 for channel, payload in frames if channel == 0)
    assert {fields[1] for fields in rtp} == {96}
    assert {fields[4] for fields in rtp} == {ssrc}
    seqs = [fields[2] for fields in rtp]
    assert seqs[0] == int(rtp_info["seq"])
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False)), "no gaps, no repeats"

    # Group into access units by the marker bit; each has one timestamp, 3600 ticks apart.
    units: list[list[tuple[bool, int, int, int, int, bytes]]] = [[]]
    for fields in rtp:
        units[-1].append(fields)
        if fields[0]:
            units.append([])
    units = [unit for unit in units if unit]
    complete = units if rtp[-1][0] else units[:-1]  # the last one may be cut off mid-picture
    assert len(complete) >= 30
    for unit in complete:
        assert len({fields[3] for fields in unit}) == 1
    stamps = [unit[0][3] for unit in complete]
    assert {(b - a) % (1 << 32) for a, b in zip(stamps, stamps[1:], strict=False)} == {3600}
    # RTP-Info's rtptime is the clock at PLAY; the first picture follows within a GOP.
    assert (stamps[0] - int(rtp_info["rtptime"])) % (1 << 32) <= 90_000

    first = depacketize([fields[5] for fields in complete[0]])
    assert [nal[0] & 0x1F for nal in first][:2] == [NAL_SPS, NAL_PPS], "SPS and PPS in-band before the IDR"
    types = [nal[0] & 0x1F for nal in first]
    assert types.index(NAL_SEI) < types.index(NAL_IDR)
    assert any(fields[5][0] & 0x1F == 28 for fields in complete[0]), "the IDR is fragmented (FU-A)"
    annexb = b"".join(b"\x00\x00\x00\x01" + nal for nal in first)
    first_capture = parse_pscs_sei(annexb)
    assert first_capture is not None and abs(first_capture / 1e6 - time.time()) < 5
    # SPS/PPS in-band equal the SDP's sprop-parameter-sets.
    client = RawRtspClient(sim.port)
    try:
        _, _, sdp = client.request("DESCRIBE", sim.url("loop1"))
    finally:
        client.close()
    sprop = sdp.decode().split("sprop-parameter-sets=")[1].split()[0]
    assert [base64.b64decode(part) for part in sprop.split(",")] == first[:2]

    # The sender report maps the RTP clock to wall-clock time.
    assert rtcp, "an RTCP sender report follows the first picture"
    report = rtcp[0]
    version, packet_type, _, report_ssrc, ntp_seconds, ntp_fraction, report_rtp = struct.unpack(">BBHIIII", report[:20])
    assert (version >> 6, packet_type, report_ssrc) == (2, 200, ssrc)
    report_time = ntp_seconds - 2_208_988_800 + ntp_fraction / 2**32
    assert abs(report_time - time.time()) < 5
    # Picture 0's capture time, carried in its SEI, fits the mapping to within a frame or two.
    mapped = report_time + ((stamps[0] - report_rtp + (1 << 31)) % (1 << 32) - (1 << 31)) / 90_000
    assert abs(mapped - first_capture / 1e6) < 0.005


def test_rtsp_errors_and_keepalive(sim: SimulatorServer) -> None:
    client = RawRtspClient(sim.port)
    base = f"rtsp://127.0.0.1:{sim.port}"
    try:
        status, headers, _ = client.request("OPTIONS", f"{base}/cam1/main")
        assert status == 200
        assert set(headers["public"].replace(" ", "").split(",")) >= {
            "OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER",
        }  # fmt: skip
        assert client.request("DESCRIBE", f"{base}/nosuchcamera/main")[0] == 404
        assert client.request("DESCRIBE", f"{base}/cam1/third")[0] == 404
        assert client.request("SETUP", f"{base}/nope/main/trackID=0", Transport="RTP/AVP/TCP;interleaved=0-1")[0] == 404
        assert client.request("PLAY", f"{base}/cam1/main/", Session="0123456789abcdef")[0] == 454
        assert client.request("RECORD", f"{base}/cam1/main")[0] == 501
        udp_only = "RTP/AVP;unicast;client_port=5000-5001"
        assert client.request("SETUP", f"{base}/cam1/main/trackID=0", Transport=udp_only)[0] == 461

        status, headers, _ = client.request(
            "SETUP", f"{base}/cam1/main/trackID=0", Transport=f"{udp_only},RTP/AVP/TCP;unicast;interleaved=4-5"
        )
        assert status == 200
        assert "interleaved=4-5" in headers["transport"]
        session, timeout = headers["session"].split(";")
        assert timeout == "timeout=60"
        assert client.request("GET_PARAMETER", f"{base}/cam1/main/", Session=session)[0] == 200
        assert client.request("PLAY", f"{base}/cam1/main/", Session=session)[0] == 200
        frames = client.read_frames_for(0.5)
        assert frames and {channel for channel, _ in frames} <= {4, 5}
        assert client.request("PAUSE", f"{base}/cam1/main/", Session=session)[0] == 200
        assert client.request("TEARDOWN", f"{base}/cam1/main/", Session=session)[0] == 200
        assert client.request("GET_PARAMETER", f"{base}/cam1/main/", Session=session)[0] == 454
    finally:
        client.close()


def test_session_times_out_without_keepalive(sim: SimulatorServer) -> None:
    """A silent paused client times out; a silent client that reads its stream stays (like rtspsrc)."""
    cameras = [CameraSpec("loop1", scene="loop", main=LOOP_MAIN, sub=LOOP_SUB, loop_seconds=2)]
    with SimulatorServer(cameras, cache_dir=sim.cache_dir, session_timeout_s=1) as short:
        paused, reading = RawRtspClient(short.port), RawRtspClient(short.port)
        try:
            headers = paused.play(short.url("loop1"))
            assert headers["session"].endswith(";timeout=1")
            assert paused.request("PAUSE", short.url("loop1") + "/", Session=paused.session)[0] == 200
            reading.play(short.url("loop1"))
            started = time.monotonic()
            with pytest.raises(ConnectionError):
                paused.read_frames_for(6)
            assert time.monotonic() - started < 4
            frames = reading.read_frames_for(2.5)  # well past the timeout, without a keep-alive
            assert sum(channel == 0 for channel, _ in frames) > 100
            assert short.viewers("loop1") == 1
        finally:
            paused.close()
            reading.close()


def test_clients_come_and_go_without_disturbing_each_other(sim: SimulatorServer) -> None:
    url = sim.url("loop1")
    survivor = RawRtspClient(sim.port)
    vanishing = RawRtspClient(sim.port)
    decoders = [ffmpeg_read_frames(url, 60, "-rtsp_transport", "tcp") for _ in range(3)]
    try:
        survivor.play(url)
        vanishing.play(url)
        survivor.read_frames_for(0.7)
        vanishing.read_frames_for(0.3)
        os.kill(decoders[0].pid, signal.SIGKILL)  # ffmpeg killed mid-stream
        vanishing.close(abort=True)  # a client that resets its connection
        frames = survivor.read_frames_for(1.0)
        for decoder in decoders[1:]:
            out, err = decoder.communicate(timeout=30)
            assert decoder.returncode == 0, err.decode()
            assert err.decode().strip() == ""
            assert len(out) == 60 * 640 * 360 * 3
    finally:
        for decoder in decoders:
            with contextlib.suppress(ProcessLookupError):
                decoder.kill()
            decoder.wait()
        survivor.close()
    seqs = [rtp_fields(payload)[2] for channel, payload in frames if channel == 0]
    assert len(seqs) > 50
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    deadline = time.monotonic() + 5
    while sim.viewers("loop1") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.viewers("loop1") == 0, "every departed client was dropped"


def test_a_client_that_reads_too_slowly_loses_pictures_and_the_simulator_says_how_many(
    sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Like a camera, the simulator never buffers without bound; the count it logs per
    client is what the recording benchmark reports as the recorder's loss."""
    monkeypatch.setattr(streams, "MAX_CLIENT_BACKLOG_BYTES", 16 * 1024)
    caplog.set_level(logging.INFO, logger="pscs.sim.streams")
    slow = RawRtspClient(sim.port)
    try:
        slow.play(sim.url("loop1"))
        # Small kernel buffers on both ends (loopback would otherwise absorb megabytes), so
        # that what the client does not read piles up in the simulator within seconds.
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ours = slow.sock.getsockname()
        deadline = time.monotonic() + 2
        while not (
            mine := [k for k in sim.streams["loop1/main"].sinks if k.transport.get_extra_info("peername") == ours]
        ):
            assert time.monotonic() < deadline, "the simulator did not start sending to the client"
            time.sleep(0.01)
        [sink] = mine
        sink.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        time.sleep(3)  # reads nothing: ~375 kB offered
    finally:
        slow.close()
    pattern = re.compile(r"client of loop1/main left: (\d+) pictures sent, (\d+) dropped \(slow reader\)")
    deadline = time.monotonic() + 5
    while not (found := [m for r in caplog.records if (m := pattern.search(r.getMessage()))]):
        assert time.monotonic() < deadline, "the simulator did not log the client's departure"
        time.sleep(0.05)
    sent, dropped = int(found[0][1]), int(found[0][2])
    assert sent > 0 and dropped > 0 and sent + dropped <= 3.5 * 25


# -- PTZ ------------------------------------------------------------------------------------------


def test_ptz_move_changes_the_picture(sim: SimulatorServer) -> None:
    ptz = sim.ptz("ptz1")
    width, height = 640, 360
    home = ptz.move_to(pan=0.0, tilt=0.0, zoom=1.0)
    target = PtzPosition(pan=PRIVATE_WINDOW.center[0] - 3, tilt=PRIVATE_WINDOW.center[1], zoom=2.0)
    window = project_rect(target, PRIVATE_WINDOW, width, height)
    assert window is not None and window.width > 100 and window.height > 50
    assert project_rect(home, PRIVATE_WINDOW, width, height) is None, "the window is out of view at home"

    expected_home = render_panorama_view(home, width, height)
    expected_target = render_panorama_view(target, width, height)
    assert scene_region_error(expected_home, expected_target, []) > 20
    seen_home = seen_target = False
    with av.open(sim.url("ptz1"), options={"rtsp_transport": "tcp"}, timeout=10) as container:
        deadline = time.monotonic() + 8
        for frame in container.decode(video=0):
            picture = frame.to_ndarray(format="rgb24")
            if not seen_home:
                seen_home = scene_region_error(picture, expected_home, []) < 8
                if seen_home:
                    assert ptz.move_to(target.pan, target.tilt, target.zoom) == target
            elif scene_region_error(picture, expected_target, []) < 8:
                seen_target = True
                inside = picture[window.y0 + 4 : window.y1 - 4, window.x0 + 4 : window.x1 - 4].reshape(-1, 3)
                assert np.abs(inside.mean(axis=0) - PRIVATE_WINDOW_COLOR).max() < 12
                break
            assert time.monotonic() < deadline, (seen_home, seen_target)
    assert seen_home and seen_target


def test_garbage_and_half_requests_do_not_hurt_the_server(sim: SimulatorServer) -> None:
    junk = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    junk.sendall(b"\x16\x03\x01 this is not RTSP\r\n\r\n")  # e.g. a TLS client or a port scanner
    assert junk.recv(1000).startswith(b"RTSP/1.0 400")
    assert junk.recv(1000) == b"", "the server closes a connection it cannot parse"
    junk.close()
    half = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    half.sendall(b"DESCRIBE rtsp://127.0.0.1/cam1/main RTSP/1.0\r\nCSeq: 1\r\n")  # ...and never finishes
    huge = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
    with contextlib.suppress(OSError):
        huge.sendall(b"OPTIONS * RTSP/1.0\r\nX-Filler: " + b"a" * 200_000)
    client = RawRtspClient(sim.port)
    try:
        client.play(sim.url("cam1", "sub"))
        assert any(channel == 0 for channel, _ in client.read_frames_for(0.5))
    finally:
        client.close()
        half.close()
        huge.close()


def test_runs_inside_the_callers_event_loop(sim: SimulatorServer) -> None:
    import asyncio

    async def describe_once() -> bytes:
        cameras = [CameraSpec("loop1", scene="loop", main=LOOP_MAIN, sub=LOOP_SUB, loop_seconds=2)]
        async with SimulatorServer(cameras, cache_dir=sim.cache_dir) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"DESCRIBE {server.url('loop1')} RTSP/1.0\r\nCSeq: 7\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            return head

    head = asyncio.run(describe_once())
    assert head.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n")


def test_camera_reboot_drops_clients_and_comes_back_on_the_same_port(sim: SimulatorServer) -> None:
    cameras = [CameraSpec("loop1", scene="loop", main=LOOP_MAIN, sub=LOOP_SUB, loop_seconds=2)]
    server = SimulatorServer(cameras, cache_dir=sim.cache_dir).start()
    try:
        client = RawRtspClient(server.port)
        client.play(server.url("loop1"))
        client.read_frames_for(0.2)
        assert server.disconnect_clients("nosuchcamera") == 0
        assert server.disconnect_clients("loop1") == 1
        with pytest.raises(ConnectionError):
            client.read_frames_for(3)
        client.close()
        port = server.port
        server.stop()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        server.start()
        assert server.port == port
        client = RawRtspClient(port)
        client.play(server.url("loop1"))
        assert client.read_frames_for(0.3)
        client.close()
    finally:
        server.stop()
