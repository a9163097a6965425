"""A camera on a real socket that answers RTSP 1.0 by a script and then streams the H.264
pictures it was given as RTP over the RTSP connection (RFC 2326 10.12, RFC 6184: single
NAL unit packets and FU-A), in a loop, one every ``interval_s``.  It keeps the requests it
received, so a test can check what the client asked.

For what the simulator and GStreamer's server do not do on demand: a camera that is
reconfigured mid-stream, one that sends its parameter sets only in the SDP, one that
refuses DESCRIBE, a short session time-out.
"""

from __future__ import annotations

import base64
import socket
import struct
import threading
from collections.abc import Sequence

MTU = 1400


def sdp_for(sps: bytes, pps: bytes, *, control: str = "trackID=1") -> str:
    sprops = f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=scripted camera\r\na=control:*\r\n"
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        f"a=fmtp:96 packetization-mode=1;sprop-parameter-sets={sprops}\r\na=control:{control}\r\n"
    )


def rtp_payloads(nal: bytes) -> list[bytes]:
    # Not the simulator's packetizer: that one adds SPS, PPS and its SEI to what it is
    # given, and these tests need the camera to send exactly the pictures they chose.
    if len(nal) <= MTU:
        return [nal]
    indicator, kind, body = (nal[0] & 0xE0) | 28, nal[0] & 0x1F, nal[1:]
    size = MTU - 2
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        bytes([indicator, kind | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)]) + chunk
        for i, chunk in enumerate(chunks)
    ]


class ScriptedCamera:
    def __init__(
        self,
        pictures: Sequence[Sequence[bytes]],
        *,
        sdp: str,
        interval_s: float = 0.05,
        frame_ticks: int = 4500,
        jitter_ticks: Sequence[int] = (0,),
        session_timeout_s: int = 60,
        describe_status: int = 200,
    ) -> None:
        self.pictures = [list(p) for p in pictures]
        self.sdp = sdp
        self.interval_s = interval_s
        self.frame_ticks = frame_ticks
        self.jitter_ticks = list(jitter_ticks)  # added to the pictures' timestamps in turn (capture-clock jitter)
        self.session_timeout_s = session_timeout_s
        self.describe_status = describe_status
        self.requests: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # closed before anyone connected
        conn.settimeout(self.interval_s)  # the receive time-out paces the pictures
        pending, seq, picture, playing = b"", 0, 0, False
        with conn:
            while not self.stop.is_set():
                try:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    pending += chunk
                except TimeoutError:
                    pass
                except OSError:
                    return  # the client went away
                while b"\r\n\r\n" in pending:
                    head, pending = pending.split(b"\r\n\r\n", 1)
                    request = head.decode()
                    self.requests.append(request)
                    playing = self._answer(conn, request) or playing
                if playing:
                    nals = self.pictures[picture % len(self.pictures)]
                    payloads = [p for nal in nals for p in rtp_payloads(nal)]
                    jitter = self.jitter_ticks[picture % len(self.jitter_ticks)]
                    timestamp = (picture * self.frame_ticks + jitter) & 0xFFFFFFFF
                    data = b""
                    for i, payload in enumerate(payloads):
                        marker = 0x80 if i == len(payloads) - 1 else 0
                        packet = struct.pack(">BBHII", 0x80, marker | 96, seq & 0xFFFF, timestamp, 1234) + payload
                        data += struct.pack(">cBH", b"$", 0, len(packet)) + packet
                        seq += 1
                    try:
                        conn.sendall(data)
                    except OSError:
                        return
                    picture += 1

    def _answer(self, conn: socket.socket, request: str) -> bool:
        method = request.split(" ", 1)[0]
        cseq = next(line.split(":", 1)[1].strip() for line in request.split("\r\n") if line.startswith("CSeq"))
        headers, body, status = [f"CSeq: {cseq}"], b"", "200 OK"
        if method == "OPTIONS":
            headers.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")
        elif method == "DESCRIBE":
            if self.describe_status != 200:
                status = f"{self.describe_status} Refused"
            body = self.sdp.encode()
            headers += ["Content-Type: application/sdp", f"Content-Base: {self.url()}/"]
        elif method == "SETUP":
            headers += [
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1",
                f"Session: 77;timeout={self.session_timeout_s}",
            ]
        headers.append(f"Content-Length: {len(body)}")
        try:
            conn.sendall(f"RTSP/1.0 {status}\r\n".encode() + "\r\n".join(headers).encode() + b"\r\n\r\n" + body)
        except OSError:
            return False
        return method == "PLAY"

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(5)
