#!/usr/bin/python3
"""An independent RTSP camera for tests: GStreamer's RTSP server (gst-rtsp-server).

Runs under Debian's ``/usr/bin/python3`` (which has ``gi`` and the GstRtspServer
typelib; the project's virtualenv does not).  It serves a synthetic test pattern,
encoded live, on ``rtsp://127.0.0.1:PORT/PATH`` over RTP/RTSP (TCP interleaved or UDP,
as the client asks), prints ``READY <port>`` once it listens and exits on SIGTERM/SIGINT.

    /usr/bin/python3 tests/peers/gst_rtsp_server.py --port 8554 --path /cam1/main \
        [--codec h264|mjpeg] [--fps 10] [--gop 10] [--size 320x240] [--user u --password p]

``--codec mjpeg`` serves Motion JPEG (RFC 2435), i.e. a camera that is *not* H.264.
``--user/--password`` require RTSP Basic authentication, with ``--digest`` Digest
authentication (RFC 2617) instead, as most IP cameras do (wrong or no credentials: 401).

Tests (in the project's virtualenv) drive it through :class:`GstCamera`; ``gi`` is only
imported when this file runs as the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DEBIAN_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GstCamera:
    """A GStreamer RTSP camera in a child process: ``start()``, ``stop()``, ``url``."""

    def __init__(
        self,
        path: str = "/cam/main",
        *,
        port: int | None = None,
        codec: str = "h264",
        fps: int = 10,
        gop: int = 10,
        user: str | None = None,
        password: str | None = None,
        digest: bool = False,
    ) -> None:
        self.path = path if path.startswith("/") else "/" + path
        self.port = port or free_port()
        self.args = [
            "--port",
            str(self.port),
            "--path",
            self.path,
            "--codec",
            codec,
            "--fps",
            str(fps),
            "--gop",
            str(gop),
        ]
        if user:
            self.args += ["--user", user, "--password", password or ""]
        if digest:
            self.args.append("--digest")
        self.process: subprocess.Popen[str] | None = None

    def url(self, credentials: str | None = None) -> str:
        auth = f"{credentials}@" if credentials else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{self.path}"

    def start(self, timeout_s: float = 15.0) -> GstCamera:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.process = subprocess.Popen(
            [DEBIAN_PYTHON, str(Path(__file__).resolve()), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + timeout_s
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("READY"):
                return self
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"GStreamer RTSP server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def __enter__(self) -> GstCamera:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def pipeline(codec: str, fps: int, gop: int, width: int, height: int) -> str:
    source = (
        f"videotestsrc is-live=true pattern=ball ! "
        f"video/x-raw,width={width},height={height},framerate={fps}/1 ! "
        "timeoverlay ! videoconvert ! video/x-raw,format=I420"
    )
    if codec == "h264":
        encoder = (
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate=300 "
            "threads=1 ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
        )
    else:
        encoder = "jpegenc quality=50 ! rtpjpegpay name=pay0 pt=26"
    return f"( {source} ! {encoder} )"


def main() -> int:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", action="append", default=None, help="mount path; repeatable")
    parser.add_argument("--codec", choices=("h264", "mjpeg"), default="h264")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--gop", type=int, default=10, help="frames between keyframes")
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--digest", action="store_true", help="Digest authentication instead of Basic")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for path in args.path or ["/test"]:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(pipeline(args.codec, args.fps, args.gop, width, height))
        factory.set_stop_on_disconnect(True)
        factory.set_shared(True)  # one encoder however many clients
        if args.user:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_role_from_structure(
                Gst.Structure.new_from_string(
                    "camera-user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )
            )
            factory.set_permissions(permissions)
        mounts.add_factory(path if path.startswith("/") else "/" + path, factory)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "camera-user")
        if args.digest:
            auth.add_digest(args.user, args.password or "", token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)

    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 2
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, loop.quit)
    # Never outlive the test that started us (a crashed test run must not leave cameras behind).
    parent = os.getppid()

    def parent_gone() -> bool:
        if os.getppid() != parent:
            loop.quit()
            return False
        return True

    GLib.timeout_add(500, parent_gone)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
