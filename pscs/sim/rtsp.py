"""An RTSP 1.0 server (RFC 2326) on asyncio that serves ``MediaStream``s over interleaved TCP.

Methods: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER (keep-alive).
Transport: RTP/AVP/TCP interleaved only.  A SETUP that offers only UDP (or multicast)
gets 461 Unsupported Transport, on which ffmpeg and GStreamer's rtspsrc retry over TCP.

Sessions: a SETUP creates one (``Session: <id>;timeout=<s>``).  Any request naming it,
any RTCP the client sends on the connection, and, while it plays, the client reading its
stream keep it alive; it ends on TEARDOWN, on timeout (a silent client that is paused,
never played, or stopped reading), or when its connection closes.  Every error stays
inside its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from pscs.sim.streams import MAX_CLIENT_BACKLOG_BYTES, MediaStream, RtpSink

log = logging.getLogger(__name__)

SERVER_NAME = "pscs-sim/1.0"
SUPPORTED_METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER")
TRACK_CONTROL = "trackID=0"
DEFAULT_SESSION_TIMEOUT_S = 60
MAX_REQUEST_HEAD_BYTES = 16 * 1024
MAX_REQUEST_BODY_BYTES = 64 * 1024
HOUSEKEEPING_INTERVAL_S = 1.0

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    413: "Request Entity Too Large",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "RTSP Version Not Supported",
    551: "Option not supported",
}

_INTERLEAVED = re.compile(r"^interleaved=(\d{1,3})(?:-(\d{1,3}))?$", re.IGNORECASE)


class RtspProtocolError(Exception):
    """A request we cannot even answer sensibly: reply 400 and close the connection."""


@dataclass
class RtspRequest:
    method: str
    url: str
    version: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def session_id(self) -> str | None:
        value = self.header("Session")
        return value.split(";", 1)[0].strip() if value else None


@dataclass
class RtspResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: Runs right after the response is written (PLAY starts sending only then).
    after_send: Callable[[], None] | None = None
    close_connection: bool = False

    def encode(self, cseq: str | None) -> bytes:
        lines = [f"RTSP/1.0 {self.status} {REASONS.get(self.status, 'Error')}"]
        if cseq is not None:
            lines.append(f"CSeq: {cseq}")
        lines.append(f"Server: {SERVER_NAME}")
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        if self.body:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def stream_path_of(url: str) -> str:
    """``rtsp://host:port/cam1/main/trackID=0?x`` -> ``cam1/main``."""
    segments = [segment for segment in unquote(urlsplit(url).path).split("/") if segment]
    if segments and segments[-1].lower().startswith("trackid="):
        segments.pop()
    return "/".join(segments)


def presentation_url(url: str) -> str:
    """The request URL without query, track part and trailing slash: base of Content-Base and RTP-Info."""
    parts = urlsplit(url)
    path = "/" + stream_path_of(url)
    return f"{parts.scheme or 'rtsp'}://{parts.netloc}{path}"


class RtspConnection:
    """One client's TCP connection and the sessions set up on it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.transport: asyncio.WriteTransport = writer.transport  # type: ignore[assignment]
        self.sessions: dict[str, RtspSession] = {}
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sockname = writer.get_extra_info("sockname")
        self.local_address = sockname[0] if isinstance(sockname, tuple) else "127.0.0.1"

    def used_channels(self) -> set[int]:
        used: set[int] = set()
        for session in self.sessions.values():
            used.update((session.sink.rtp_channel, session.sink.rtcp_channel))
        return used

    def touch(self) -> None:
        now = time.monotonic()
        for session in self.sessions.values():
            session.last_seen = now


@dataclass
class RtspSession:
    id: str
    stream: MediaStream
    connection: RtspConnection
    sink: RtpSink
    timeout_s: int
    playing: bool = False
    last_seen: float = field(default_factory=time.monotonic)


class RtspServer:
    """Serves ``streams`` (keyed by path, e.g. ``cam1/main``) to RTSP clients."""

    def __init__(
        self, streams: Mapping[str, MediaStream], *, session_timeout_s: int = DEFAULT_SESSION_TIMEOUT_S
    ) -> None:
        self.streams = streams
        self.session_timeout_s = session_timeout_s
        self.sessions: dict[str, RtspSession] = {}
        self._connections: set[RtspConnection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with ``port=0``)."""
        self._server = await asyncio.start_server(self._serve_connection, host, port, limit=MAX_REQUEST_BODY_BYTES)
        self._housekeeping = asyncio.get_running_loop().create_task(self._keep_house())
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            self._end_connection(connection)
            connection.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    def disconnect(self, camera: str | None = None) -> int:
        """Abort the connections with a session on ``camera``'s streams (None: every connection)."""
        dropped = 0
        for connection in list(self._connections):
            if camera is None or any(s.stream.camera == camera for s in connection.sessions.values()):
                self._end_connection(connection)
                connection.transport.abort()
                dropped += 1
        return dropped

    # -- connections ---------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        connection = RtspConnection(writer)
        self._connections.add(connection)
        try:
            while True:
                try:
                    request = await self._read_request(reader, connection)
                except RtspProtocolError as error:
                    log.info("bad request from %s: %s", connection.peer, error)
                    writer.write(RtspResponse(400).encode(None))
                    break
                if request is None:
                    break
                try:
                    response = self._dispatch(request, connection)
                except Exception:
                    log.exception("%s %s failed", request.method, request.url)
                    response = RtspResponse(500)
                if connection.transport.is_closing():
                    break
                log.debug("%s %s %s -> %d", connection.peer, request.method, request.url, response.status)
                writer.write(response.encode(request.header("CSeq")))
                if response.after_send is not None:
                    response.after_send()
                if response.close_connection:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass  # the client went away, possibly abruptly: its sessions end below
        except asyncio.CancelledError:
            pass
        finally:
            self._end_connection(connection)
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._handlers.discard(task)

    def _end_connection(self, connection: RtspConnection) -> None:
        for session in list(connection.sessions.values()):
            self._end_session(session)
        self._connections.discard(connection)

    async def _read_request(self, reader: asyncio.StreamReader, connection: RtspConnection) -> RtspRequest | None:
        while True:
            first = await reader.read(1)
            if not first:
                return None
            if first == b"$":  # interleaved data from the client: RTCP receiver reports
                header = await reader.readexactly(3)
                await reader.readexactly(int.from_bytes(header[1:3], "big"))
                connection.touch()
                continue
            if first in (b"\r", b"\n"):
                continue
            head = first + await reader.readuntil(b"\r\n\r\n")
            break
        if len(head) > MAX_REQUEST_HEAD_BYTES:
            raise RtspProtocolError("request head too large")
        try:
            lines = head.decode("utf-8").split("\r\n")
            method, url, version = lines[0].split(" ")
        except (UnicodeDecodeError, ValueError) as error:
            raise RtspProtocolError(f"malformed request line {head[:80]!r}") from error
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise RtspProtocolError(f"malformed header {line[:80]!r}")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        body = b""
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit() or int(length_text) > MAX_REQUEST_BODY_BYTES:
            raise RtspProtocolError(f"bad Content-Length {length_text!r}")
        if int(length_text):
            body = await reader.readexactly(int(length_text))
        return RtspRequest(method.upper(), url, version, headers, body)

    # -- requests ------------------------------------------------------------------------

    def _dispatch(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        if request.version != "RTSP/1.0":
            return RtspResponse(505)
        if request.header("CSeq") is None:
            return RtspResponse(400)
        if request.header("Require"):
            return RtspResponse(551, [("Unsupported", request.header("Require") or "")])
        session = self.sessions.get(request.session_id or "")
        if session is not None:
            session.last_seen = time.monotonic()
        handler = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._get_parameter,
        }.get(request.method)
        if handler is None:
            return RtspResponse(501, [("Public", ", ".join(SUPPORTED_METHODS))])
        return handler(request, connection)

    def _options(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        return RtspResponse(200, [("Public", ", ".join(SUPPORTED_METHODS))])

    def _describe(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        stream = self.streams.get(stream_path_of(request.url))
        if stream is None:
            return RtspResponse(404)
        return RtspResponse(
            200,
            [("Content-Type", "application/sdp"), ("Content-Base", presentation_url(request.url) + "/")],
            stream.sdp(connection.local_address).encode(),
        )

    def _session_header(self, session: RtspSession) -> tuple[str, str]:
        return ("Session", f"{session.id};timeout={session.timeout_s}")

    def _setup(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        stream = self.streams.get(stream_path_of(request.url))
        if stream is None:
            return RtspResponse(404)
        existing: RtspSession | None = None
        if request.session_id is not None:
            existing = self.sessions.get(request.session_id)
            if existing is None:
                return RtspResponse(454)
            if existing.connection is not connection:
                return RtspResponse(455)  # interleaved channels belong to the connection that set them up
            if existing.stream is not stream:
                return RtspResponse(459)  # one track per presentation
            if existing.playing:
                return RtspResponse(455)
        used = connection.used_channels()
        if existing is not None:
            used -= {existing.sink.rtp_channel, existing.sink.rtcp_channel}
        channels = choose_interleaved_channels(request.header("Transport") or "", used)
        if channels is None:
            return RtspResponse(461)
        rtp_channel, rtcp_channel = channels
        if existing is not None:
            existing.sink.rtp_channel, existing.sink.rtcp_channel = rtp_channel, rtcp_channel
            session = existing
        else:
            session = RtspSession(
                id=secrets.token_hex(8),
                stream=stream,
                connection=connection,
                sink=RtpSink(connection.transport, rtp_channel, rtcp_channel),
                timeout_s=self.session_timeout_s,
            )
            self.sessions[session.id] = session
            connection.sessions[session.id] = session
        transport = f"RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={stream.ssrc:08X}"
        return RtspResponse(200, [("Transport", transport), self._session_header(session)])

    def _session_for(self, request: RtspRequest, connection: RtspConnection) -> RtspSession | RtspResponse:
        if request.session_id is None:
            return RtspResponse(454)
        session = self.sessions.get(request.session_id)
        if session is None:
            return RtspResponse(454)
        if session.connection is not connection:
            return RtspResponse(455)  # interleaved data flows on the connection that set it up
        return session

    def _play(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        session = self._session_for(request, connection)
        if isinstance(session, RtspResponse):
            return session
        stream, sink = session.stream, session.sink
        rtp_info = (
            f"url={presentation_url(request.url)}/{TRACK_CONTROL};"
            f"seq={sink.next_seq};rtptime={stream.rtp_timestamp_at(time.monotonic())}"
        )
        headers = [("Range", "npt=now-"), ("RTP-Info", rtp_info), self._session_header(session)]

        def start_sending() -> None:
            if not session.playing and session.id in self.sessions:
                session.playing = True
                stream.add_sink(sink)

        return RtspResponse(200, headers, after_send=start_sending)

    def _pause(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        session = self._session_for(request, connection)
        if isinstance(session, RtspResponse):
            return session
        if session.playing:
            session.playing = False
            session.stream.remove_sink(session.sink)
        return RtspResponse(200, [self._session_header(session)])

    def _teardown(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        session = self._session_for(request, connection)
        if isinstance(session, RtspResponse):
            return session
        self._end_session(session)
        return RtspResponse(200)

    def _get_parameter(self, request: RtspRequest, connection: RtspConnection) -> RtspResponse:
        if request.session_id is not None and request.session_id not in self.sessions:
            return RtspResponse(454)
        return RtspResponse(200)

    # -- sessions ------------------------------------------------------------------------

    def _end_session(self, session: RtspSession) -> None:
        if session.playing:
            session.playing = False
            session.stream.remove_sink(session.sink)
        self.sessions.pop(session.id, None)
        session.connection.sessions.pop(session.id, None)

    async def _keep_house(self) -> None:
        """Once a second: end sessions that timed out, send due RTCP sender reports."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.playing and session.sink.transport.get_write_buffer_size() < MAX_CLIENT_BACKLOG_BYTES:
                    # A client that keeps reading its interleaved stream is alive: GStreamer's
                    # rtspsrc over TCP may send no keep-alive request within a short timeout.
                    session.last_seen = now
                elif now - session.last_seen > session.timeout_s:
                    log.info("session %s of %s timed out", session.id, session.stream.path)
                    connection = session.connection
                    self._end_session(session)
                    if not connection.sessions:
                        connection.transport.close()
            for stream in self.streams.values():
                try:
                    stream.send_due_reports()
                except Exception:
                    log.exception("RTCP reports for %s failed", stream.path)


def choose_interleaved_channels(transport_header: str, used: set[int]) -> tuple[int, int] | None:
    """The (RTP, RTCP) channels for the first acceptable offer in a Transport header, or None.

    Acceptable: ``RTP/AVP/TCP`` unicast.  The client's ``interleaved=`` channels are kept
    unless this connection already uses them; then (or if absent) the lowest free pair.
    """
    for offer in transport_header.split(","):
        parameters = [part.strip() for part in offer.split(";") if part.strip()]
        if not parameters or parameters[0].upper() != "RTP/AVP/TCP":
            continue
        if any(parameter.lower() == "multicast" for parameter in parameters[1:]):
            continue
        requested: tuple[int, int] | None = None
        for parameter in parameters[1:]:
            match = _INTERLEAVED.match(parameter)
            if match:
                first = int(match.group(1))
                second = int(match.group(2)) if match.group(2) else first + 1
                if first <= 255 and second <= 255:
                    requested = (first, second)
        if requested is not None and not (set(requested) & used):
            return requested
        for first in range(0, 255, 2):
            if first not in used and first + 1 not in used:
                return first, first + 1
        return None
    return None
