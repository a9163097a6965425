"""An RTSP 1.0 client for recording: H.264 over RTP, interleaved on the RTSP connection (TCP).

Why pscs reads cameras itself rather than through FFmpeg's RTSP demuxer: FFmpeg reads an
interleaved RTP packet in three reads (the ``$`` header, the length, the packet), each a
``poll`` and a ``recv``, so a 2 Mbit/s camera costs about a thousand system calls a second
whether or not anything else is done with the bytes (docs/design/storage.md,
"Scale").  This client drains the socket in one large ``recv_into`` and splits frames
in memory, so a camera costs a few reads a second.  It does only what recording needs:
OPTIONS, DESCRIBE (Basic or Digest authentication), SETUP of the first video stream over
TCP, PLAY, keep-alive, TEARDOWN; depacketization of H.264 (RFC 6184: single NAL units,
STAP-A, FU-A) into access units; sequence-number accounting for lost packets.  FFmpeg
(PyAV) still does the muxing.

Credentials in the URL are used for authentication and never appear in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from pscs.media.h264 import NAL_IDR, nal_type, to_annexb

DEFAULT_PORT = 554
USER_AGENT = "pscs-recorder"
# More than a connection's receive window, so one read drains it; pages that no read
# reaches (a camera's backlog rarely passes 100 KiB) are never resident.
READ_BUFFER_BYTES = 512 * 1024
MAX_HEADER_BYTES = 8192  # an RTSP message's head; more without an end is not RTSP
_POLL_S = 0.25  # how often a blocked read looks up to see whether it should stop

STAP_A = 24
FU_A = 28

# RFC 3551 static payload types a camera may offer instead of H.264, by FFmpeg's codec names.
_STATIC_PAYLOAD_CODECS = {26: "mjpeg", 32: "mpeg1video", 34: "h263"}
_ENCODING_CODECS = {"h264": "h264", "h265": "hevc", "jpeg": "mjpeg", "mp4v-es": "mpeg4", "h263-1998": "h263"}


class RtspError(Exception):
    """Base of this module's errors; messages never contain the URL or credentials."""


class RtspStatusError(RtspError):
    """The camera answered a request with a status other than 200."""

    def __init__(self, method: str, status: int, reason: str) -> None:
        super().__init__(f"{method}: {status} {reason}")
        self.method = method
        self.status = status
        self.reason = reason


class RtspProtocolError(RtspError):
    """The camera sent something that is not RTSP, or an SDP we cannot use."""


class NotH264Error(RtspError):
    def __init__(self, codec: str) -> None:
        super().__init__(f"not H.264 (camera sends {codec})")
        self.codec = codec


@dataclass(slots=True)
class AccessUnit:
    """One picture: its NAL units in decoding order, the RTP timestamp extended to 64 bits."""

    timestamp: int
    nals: list[bytes]
    keyframe: bool

    def annex_b(self) -> bytes:
        return to_annexb(self.nals)


@dataclass
class VideoTrack:
    """The SDP's first video stream."""

    control_url: str  # what SETUP names
    session_url: str  # what PLAY names: the session's (aggregate) control URL
    payload_type: int
    codec: str  # FFmpeg's name: "h264", "hevc", "mjpeg", ...
    clock_rate: int
    parameter_sets: list[bytes] = field(default_factory=list)  # SPS and PPS from sprop-parameter-sets


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without user:password, user, password)``; the default port made explicit."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "rtsp":
        raise RtspProtocolError(f"not an rtsp:// URL (scheme {parts.scheme!r})")
    host = parts.hostname or ""
    if not host:
        raise RtspProtocolError("the URL has no host")
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port or DEFAULT_PORT}"
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return urlunsplit(("rtsp", netloc, parts.path or "/", parts.query, "")), user, password


def parse_sdp_video(sdp: str, base_url: str) -> VideoTrack:
    """The first ``m=video`` section of a session description (RFC 4566), its control URL
    resolved against ``base_url`` (RFC 2326 C.1.1)."""
    session_control: str | None = None
    media: list[list[str]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        elif line.startswith("a=control:"):
            session_control = line[len("a=control:") :]
    video = next((m for m in media if m[0].startswith("m=video")), None)
    if video is None:
        raise RtspProtocolError("no video stream")
    fields = video[0].split()
    if len(fields) < 4:
        raise RtspProtocolError("malformed m=video line in the SDP")
    payload_type = int(fields[3])
    encoding, clock_rate, control, fmtp = None, 90_000, None, ""
    for line in video[1:]:
        if line.startswith(f"a=rtpmap:{payload_type} "):
            spec = line.split(" ", 1)[1].split("/")
            encoding = spec[0].strip().lower()
            clock_rate = int(spec[1]) if len(spec) > 1 and spec[1].strip().isdigit() else clock_rate
        elif line.startswith(f"a=fmtp:{payload_type} "):
            fmtp = line.split(" ", 1)[1]
        elif line.startswith("a=control:"):
            control = line[len("a=control:") :]
    if encoding is None:
        codec = _STATIC_PAYLOAD_CODECS.get(payload_type, f"RTP payload type {payload_type}")
    else:
        codec = _ENCODING_CODECS.get(encoding, encoding)
    track = VideoTrack(
        _resolve_control(base_url, session_control, control),
        _resolve_control(base_url, session_control, None),
        payload_type,
        codec,
        clock_rate,
    )
    for parameter in fmtp.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "sprop-parameter-sets" and value:
            try:
                track.parameter_sets = [base64.b64decode(p) for p in value.split(",") if p]
            except ValueError:
                track.parameter_sets = []  # in-band parameter sets will do
    return track


def _resolve_control(base_url: str, session_control: str | None, control: str | None) -> str:
    base = base_url
    if session_control and session_control != "*":
        base = session_control if "://" in session_control else _join(base_url, session_control)
    if not control or control == "*":
        return base
    return control if "://" in control else _join(base, control)


def _join(base: str, relative: str) -> str:
    return base if not relative else base.rstrip("/") + "/" + relative.lstrip("/")


class _Authenticator:
    """Basic or Digest (RFC 2617, MD5, with or without qop=auth), from a 401's challenge."""

    def __init__(self, user: str, password: str, challenge: str) -> None:
        self.user, self.password = user, password
        scheme, _, rest = challenge.strip().partition(" ")
        self.scheme = scheme.lower()
        self.params = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"?([^",]*)"?', rest)}
        self.nonce_count = 0
        self.new_cnonce: Callable[[], str] = lambda: os.urandom(8).hex()

    def header(self, method: str, uri: str) -> str:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return f"Basic {token}"
        realm, nonce = self.params.get("realm", ""), self.params.get("nonce", "")
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"{method}:{uri}")
        value = f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
        if "auth" in [q.strip() for q in self.params.get("qop", "").split(",")]:
            self.nonce_count += 1
            nc, cnonce = f"{self.nonce_count:08x}", self.new_cnonce()
            value += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        value += f', response="{response}"'
        if "opaque" in self.params:
            value += f', opaque="{self.params["opaque"]}"'
        return value + ", algorithm=MD5"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _pick_challenge(values: list[str]) -> str | None:
    digest = [v for v in values if v.lower().startswith("digest")]
    basic = [v for v in values if v.lower().startswith("basic")]
    return (digest or basic or [None])[0]


class RtspSession:
    """One camera connection: ``open()`` sets up and starts the stream, ``read()`` returns
    the access units that have arrived.  Not thread-safe; one thread per camera uses it."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        self.url, self._user, self._password = split_credentials(url)
        self.timeout_s = timeout_s
        self.lost_packets = 0
        self.bytes_received = 0
        self._sock: socket.socket | None = None
        self._cseq = 0
        self._auth: _Authenticator | None = None
        self._session_id: str | None = None
        self._keepalive_s = 30.0
        self._keepalive_method = "OPTIONS"
        self._next_keepalive = 0.0
        self._buffer = bytearray(READ_BUFFER_BYTES)
        self._view = memoryview(self._buffer)
        self._filled = 0
        self._rtp_channel = 0
        self._last_data = 0.0
        # Depacketizer state.
        self._expected_seq: int | None = None
        self._au_timestamp32: int | None = None
        self._au_nals: list[bytes] = []
        self._au_keyframe = False
        self._fragments: list[bytes] | None = None  # FU-A fragments of the NAL unit being rebuilt
        self._extended: int | None = None  # the last access unit's timestamp, extended

    # Setting up ---------------------------------------------------------------------------
    def open(self) -> VideoTrack:
        parts = urlsplit(self.url)
        self._sock = socket.create_connection((parts.hostname, parts.port), timeout=self.timeout_s)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            options = self._request("OPTIONS", self.url)
            if "GET_PARAMETER" in (options.header("public") or "").upper():
                self._keepalive_method = "GET_PARAMETER"
        except RtspStatusError as exc:
            if exc.status in (401, 403):
                raise
            self._keepalive_method = "GET_PARAMETER"  # OPTIONS is optional (RFC 2326 10.1)
        describe = self._request("DESCRIBE", self.url, {"Accept": "application/sdp"})
        base = describe.header("content-base") or describe.header("content-location") or self.url
        track = parse_sdp_video(describe.body.decode("utf-8", "replace"), base)
        if track.codec != "h264":
            raise NotH264Error(track.codec)
        setup = self._request("SETUP", track.control_url, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        transport = setup.header("transport") or ""
        channels = re.search(r"interleaved=(\d+)", transport)
        if "TCP" not in transport.upper() or channels is None:
            raise RtspProtocolError("the camera did not accept RTP over the RTSP connection (TCP)")
        self._rtp_channel = int(channels.group(1))
        session = setup.header("session")
        if not session:
            raise RtspProtocolError("SETUP answered without a session")
        self._session_id, _, params = session.partition(";")
        timeout = re.search(r"timeout\s*=\s*(\d+)", params)
        self._keepalive_s = max(int(timeout.group(1)) / 2, 1.0) if timeout else 30.0
        self._request("PLAY", track.session_url, {"Range": "npt=0.000-"})
        self._sock.settimeout(_POLL_S)
        self._last_data = time.monotonic()
        self._next_keepalive = self._last_data + self._keepalive_s
        return track

    def _request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> Response:
        response = self._send_and_receive(method, uri, headers)
        if response.status == 401 and self._auth is None and self._user is not None:
            challenge = _pick_challenge(response.headers.get("www-authenticate", "").split("\x00"))
            if challenge is not None:
                self._auth = _Authenticator(self._user, self._password or "", challenge)
                response = self._send_and_receive(method, uri, headers)
        if response.status != 200:
            raise RtspStatusError(method, response.status, response.reason)
        return response

    def _send_and_receive(self, method: str, uri: str, headers: dict[str, str] | None) -> Response:
        self._send(method, uri, headers)
        return self._read_response()

    def _send(self, method: str, uri: str, headers: dict[str, str] | None = None) -> None:
        assert self._sock is not None
        self._cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self._cseq}", f"User-Agent: {USER_AGENT}"]
        if self._session_id:
            lines.append(f"Session: {self._session_id}")
        if self._auth is not None:
            lines.append(f"Authorization: {self._auth.header(method, uri)}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _read_response(self) -> Response:
        """Read until a complete response (the socket's time-out bounds each wait)."""
        while True:
            head_end = self._buffer.find(b"\r\n\r\n", 0, self._filled)
            if head_end >= 0:
                response, used = self._parse_response(0, head_end)
                if response is not None:
                    self._consume(used)
                    return response
            self._fill()

    def _parse_response(self, start: int, head_end: int) -> tuple[Response | None, int]:
        head = bytes(self._buffer[start:head_end]).decode("latin-1").split("\r\n")
        status_line = head[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("RTSP/") or not status_line[1].isdigit():
            raise RtspProtocolError("the camera's answer is not RTSP")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            # A repeated header (several WWW-Authenticate challenges) is kept, NUL-separated.
            headers[key] = f"{headers[key]}\x00{value.strip()}" if key in headers else value.strip()
        body_start = head_end + 4
        length = int(headers.get("content-length", "0") or 0)
        if self._filled < body_start + length:
            return None, 0
        body = bytes(self._buffer[body_start : body_start + length])
        reason = status_line[2] if len(status_line) > 2 else ""
        return Response(int(status_line[1]), reason, headers, body), body_start + length

    def _fill(self) -> int:
        assert self._sock is not None
        if self._filled == len(self._buffer):
            raise RtspProtocolError("an RTSP message larger than the read buffer")
        n = self._sock.recv_into(self._view[self._filled :])
        if n == 0:
            raise ConnectionResetError("the camera closed the connection")
        self._filled += n
        return n

    def _consume(self, used: int) -> None:
        remaining = self._filled - used
        if remaining:
            self._buffer[:remaining] = self._buffer[used : self._filled]
        self._filled = remaining

    # Streaming ----------------------------------------------------------------------------
    def read(self, should_stop: Callable[[], bool] | None = None) -> tuple[list[AccessUnit], bool]:
        """Wait for data, then return ``(complete access units, drained)``: ``drained`` is
        true when the read emptied the socket (the camera has nothing more for us yet)."""
        assert self._sock is not None
        self._maybe_keepalive()
        free = len(self._buffer) - self._filled
        while True:
            try:
                n = self._fill()
                break
            except TimeoutError:
                if should_stop is not None and should_stop():
                    return [], True
                if time.monotonic() - self._last_data > self.timeout_s:
                    raise TimeoutError("no data from the camera") from None
        self._last_data = time.monotonic()
        self.bytes_received += n
        units: list[AccessUnit] = []
        self._split(units)
        return units, n < free

    def _maybe_keepalive(self) -> None:
        now = time.monotonic()
        if now >= self._next_keepalive:
            self._next_keepalive = now + self._keepalive_s
            self._send(self._keepalive_method, self.url)  # the answer is skipped in _split

    def _split(self, units: list[AccessUnit]) -> None:
        buf, view, filled, pos = self._buffer, self._view, self._filled, 0
        while filled - pos >= 4:
            if buf[pos] == 0x24:
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                end = pos + 4 + length
                if end > filled:
                    break
                if buf[pos + 1] == self._rtp_channel:
                    self._on_rtp(view[pos + 4 : end], units)
                pos = end
            else:  # an answer to a keep-alive, or a request the camera sends (not answered)
                end = self._text_message_end(pos, filled)
                if end is None:
                    break
                pos = end
        self._consume(pos)

    def _text_message_end(self, pos: int, filled: int) -> int | None:
        """Where the RTSP message at ``pos`` ends; None if it has not all arrived."""
        head_end = self._buffer.find(b"\r\n\r\n", pos, filled)
        if head_end < 0:
            if filled - pos > MAX_HEADER_BYTES or not self._buffer[pos : pos + 1].isalpha():
                raise RtspProtocolError("the camera's stream lost framing")
            return None
        head = bytes(self._buffer[pos:head_end]).decode("latin-1")
        if not head[:1].isalpha():
            raise RtspProtocolError("the camera's stream lost framing")
        length = re.search(r"(?im)^content-length\s*:\s*(\d+)", head)
        end = head_end + 4 + (int(length.group(1)) if length else 0)
        return end if end <= filled else None

    def _on_rtp(self, packet: memoryview, units: list[AccessUnit]) -> None:
        if len(packet) < 12 or packet[0] >> 6 != 2:
            return
        first = packet[0]
        header = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension
            if len(packet) < header + 4:
                return
            header += 4 + 4 * ((packet[header + 2] << 8) | packet[header + 3])
        end = len(packet)
        if first & 0x20:  # padding
            end -= packet[-1]
        if header >= end:
            return
        marker = packet[1] & 0x80
        seq = (packet[2] << 8) | packet[3]
        timestamp = int.from_bytes(packet[4:8], "big")
        if self._expected_seq is not None and seq != self._expected_seq:
            lost = (seq - self._expected_seq) & 0xFFFF
            if lost < 0x8000:  # else a late duplicate over TCP: nothing lost
                self.lost_packets += lost
                self._fragments = None  # a NAL unit with a hole is not kept
        self._expected_seq = (seq + 1) & 0xFFFF
        if timestamp != self._au_timestamp32 and self._au_nals:
            units.append(self._finish_unit())  # the camera did not set the marker bit
        self._au_timestamp32 = timestamp
        payload = packet[header:end]
        kind = payload[0] & 0x1F
        if kind < STAP_A and kind:
            self._add_nal(bytes(payload))
        elif kind == FU_A and len(payload) > 2:
            fu_header = payload[1]
            if fu_header & 0x80:  # start
                self._fragments = [bytes(((payload[0] & 0xE0) | (fu_header & 0x1F),)), bytes(payload[2:])]
            elif self._fragments is not None:
                self._fragments.append(bytes(payload[2:]))
            if fu_header & 0x40 and self._fragments is not None:  # end
                self._add_nal(b"".join(self._fragments))
                self._fragments = None
        elif kind == STAP_A:
            offset = 1
            while offset + 2 <= len(payload):
                size = (payload[offset] << 8) | payload[offset + 1]
                offset += 2
                if size == 0 or offset + size > len(payload):
                    break
                self._add_nal(bytes(payload[offset : offset + size]))
                offset += size
        if marker and self._au_nals:
            units.append(self._finish_unit())

    def _add_nal(self, nal: bytes) -> None:
        self._au_nals.append(nal)
        if nal_type(nal) == NAL_IDR:
            self._au_keyframe = True

    def _finish_unit(self) -> AccessUnit:
        assert self._au_timestamp32 is not None
        ts32 = self._au_timestamp32
        if self._extended is None:
            extended = ts32
        else:
            delta = (ts32 - self._extended) & 0xFFFFFFFF
            extended = self._extended + (delta - 0x1_0000_0000 if delta >= 0x8000_0000 else delta)
        self._extended = extended
        unit = AccessUnit(extended, self._au_nals, self._au_keyframe)
        self._au_nals, self._au_keyframe = [], False
        return unit

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            if self._session_id:
                sock.settimeout(0.2)
                self._sock = sock
                self._send("TEARDOWN", self.url)
        except OSError:
            pass
        finally:
            self._sock = None
            sock.close()
