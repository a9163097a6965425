"""``SimulatorServer``: simulated cameras behind one RTSP server, from a test, a service or the CLI.

Run it inside an event loop you own::

    server = SimulatorServer(default_cameras(), port=0)
    await server.start_async()
    ...  # server.url("cam1"), server.ptz("ptz1").move_to(pan=44)
    await server.stop_async()

or in its own background thread (what tests do)::

    with SimulatorServer([CameraSpec("cam1")]) as server:
        url = server.url("cam1", "sub")
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pscs.sim.encoder import StreamSettings, default_cache_dir, load_or_encode_loop
from pscs.sim.ptz import PtzPosition, VirtualPtz, render_ptz_frame
from pscs.sim.rtsp import DEFAULT_SESSION_TIMEOUT_S, RtspServer
from pscs.sim.scenes import render_clock_frame
from pscs.sim.streams import FramePacer, FrameSource, LiveSource, LoopSource, MediaStream, PacketizedLoop

log = logging.getLogger(__name__)

Scene = Literal["clock", "loop", "ptz"]
SCENES: tuple[Scene, ...] = ("clock", "loop", "ptz")
STREAM_NAMES = ("main", "sub")
_CAMERA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

#: Defaults per scene.  Live scenes (clock, ptz) encode in real time, so they stay small;
#: the loop scene is encoded once and costs almost nothing to send, so it is camera-sized.
DEFAULT_STREAMS: dict[Scene, tuple[StreamSettings, StreamSettings]] = {
    "clock": (StreamSettings(640, 360, 15, 800), StreamSettings(320, 180, 10, 200)),
    "ptz": (StreamSettings(640, 360, 15, 800), StreamSettings(320, 180, 10, 200)),
    "loop": (StreamSettings(1280, 720, 25, 2000), StreamSettings(640, 360, 15, 500)),
}
DEFAULT_LOOP_SECONDS = 4.0


@dataclass(frozen=True)
class CameraSpec:
    """One simulated camera: ``rtsp://HOST:PORT/<name>/main`` and ``.../<name>/sub``."""

    name: str
    scene: Scene = "clock"
    main: StreamSettings | None = None  # None: DEFAULT_STREAMS[scene]
    sub: StreamSettings | None = None
    loop_seconds: float = DEFAULT_LOOP_SECONDS  # loop scene only
    ptz_home: PtzPosition = field(default_factory=PtzPosition)  # ptz scene only

    def __post_init__(self) -> None:
        if not _CAMERA_NAME.match(self.name):
            raise ValueError(f"camera name {self.name!r}: use letters, digits, '-' and '_' (URL path segment)")
        if self.scene not in SCENES:
            raise ValueError(f"scene must be one of {SCENES}, not {self.scene!r}")

    def stream_settings(self, stream: str) -> StreamSettings:
        main, sub = DEFAULT_STREAMS[self.scene]
        if stream == "main":
            return self.main or main
        return self.sub or sub


def default_cameras() -> list[CameraSpec]:
    """The developer demo: three fixed clock cameras and one PTZ camera."""
    return [CameraSpec("cam1"), CameraSpec("cam2"), CameraSpec("cam3"), CameraSpec("ptz1", scene="ptz")]


def make_cameras(count: int, scene: Scene = "clock", prefix: str | None = None) -> list[CameraSpec]:
    """``count`` cameras of one scene, named ``<prefix>01``... (prefix: ``cam``, or ``ptz`` for PTZ)."""
    prefix = prefix or ("ptz" if scene == "ptz" else "cam")
    width = max(2, len(str(count)))
    return [CameraSpec(f"{prefix}{index:0{width}d}", scene=scene) for index in range(1, count + 1)]


class SimulatorServer:
    """Simulated cameras served over RTSP (see the module docstring for both ways to run it).

    ``port=0`` binds an ephemeral port; ``port`` holds the bound one after start, so a
    ``stop()`` then ``start()`` comes back on the same port (a camera that rebooted).
    ``cache_dir`` keeps encoded loops between runs (default ``~/.cache/pscs-sim``).
    """

    def __init__(
        self,
        cameras: Sequence[CameraSpec] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cache_dir: Path | str | None = None,
        session_timeout_s: int = DEFAULT_SESSION_TIMEOUT_S,
    ) -> None:
        self.cameras = list(cameras) if cameras is not None else default_cameras()
        names = [camera.name for camera in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique: {names}")
        self.host = host
        self.port = port
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.session_timeout_s = session_timeout_s
        self.streams: dict[str, MediaStream] = {}
        self._ptz: dict[str, VirtualPtz] = {
            camera.name: VirtualPtz(camera.ptz_home) for camera in self.cameras if camera.scene == "ptz"
        }
        self._rtsp: RtspServer | None = None
        self._pacer: FramePacer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None

    # -- addresses -----------------------------------------------------------------------

    def url(self, camera: str, stream: str = "main") -> str:
        if camera not in {spec.name for spec in self.cameras}:
            raise KeyError(f"no simulated camera {camera!r}")
        if stream not in STREAM_NAMES:
            raise KeyError(f"stream must be main or sub, not {stream!r}")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"rtsp://{host}:{self.port}/{camera}/{stream}"

    def urls(self) -> dict[str, dict[str, str]]:
        """``{camera: {"main": url, "sub": url}}``."""
        return {
            camera.name: {stream: self.url(camera.name, stream) for stream in STREAM_NAMES} for camera in self.cameras
        }

    def ptz(self, camera: str) -> VirtualPtz:
        """The pan/tilt/zoom control of a PTZ-scene camera (thread-safe)."""
        try:
            return self._ptz[camera]
        except KeyError:
            raise KeyError(f"{camera!r} is not a PTZ camera") from None

    @property
    def running(self) -> bool:
        return self._rtsp is not None

    # -- running in the caller's event loop ---------------------------------------------------

    async def start_async(self) -> None:
        """Prepare every stream (encoding or loading loops, off the loop thread) and listen."""
        if self._rtsp is not None:
            raise RuntimeError("already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._pacer = FramePacer(loop)
        sources = await loop.run_in_executor(None, self._build_sources)
        for (camera, stream_name), (settings, source) in sources.items():
            stream = MediaStream(camera.name, stream_name, settings, source, camera.scene)
            self.streams[stream.path] = stream
        for stream in self.streams.values():
            stream.source.bind(stream, loop)
        self._rtsp = RtspServer(self.streams, session_timeout_s=self.session_timeout_s)
        try:
            self.port = await self._rtsp.start(self.host, self.port)
        except BaseException:
            await self.stop_async()
            raise
        log.info("camera simulator listening on %s:%d with %d cameras", self.host, self.port, len(self.cameras))

    async def stop_async(self) -> None:
        if self._rtsp is not None:
            await self._rtsp.close()
            self._rtsp = None
        if self._pacer is not None:
            self._pacer.close()
        streams = list(self.streams.values())
        # Live encoders stop their threads; joining them must not block the loop.
        await asyncio.get_running_loop().run_in_executor(None, lambda: [s.source.close() for s in streams])
        self.streams.clear()

    async def serve_forever(self) -> None:
        """Start, run until cancelled (e.g. Ctrl-C in ``asyncio.run``), stop."""
        await self.start_async()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop_async()

    async def __aenter__(self) -> SimulatorServer:
        await self.start_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_async()

    def _build_sources(self) -> dict[tuple[CameraSpec, str], tuple[StreamSettings, FrameSource]]:
        assert self._pacer is not None
        loops: dict[tuple[StreamSettings, float], PacketizedLoop] = {}
        sources: dict[tuple[CameraSpec, str], tuple[StreamSettings, FrameSource]] = {}
        for camera in self.cameras:
            for stream_name in STREAM_NAMES:
                settings = camera.stream_settings(stream_name)
                source: FrameSource
                if camera.scene == "loop":
                    key = (settings, camera.loop_seconds)
                    if key not in loops:  # cameras with equal settings share one loop
                        encoded = load_or_encode_loop(settings, camera.loop_seconds, self.cache_dir)
                        loops[key] = PacketizedLoop(encoded)
                    source = LoopSource(loops[key], self._pacer)
                elif camera.scene == "ptz":
                    source = LiveSource(
                        settings, _ptz_renderer(camera.name, self._ptz[camera.name], settings), camera.name
                    )
                else:
                    source = LiveSource(settings, _clock_renderer(camera.name, settings), camera.name)
                sources[(camera, stream_name)] = (settings, source)
        return sources

    # -- running in a background thread ------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> SimulatorServer:
        """Run in a daemon thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("already started")
        started: Future[None] = Future()

        async def main() -> None:
            self._thread_stop = asyncio.Event()
            try:
                await self.start_async()
            except BaseException as error:
                started.set_exception(error)
                return
            started.set_result(None)
            try:
                await self._thread_stop.wait()
            finally:
                await self.stop_async()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="pscs-sim", daemon=True)
        self._thread.start()
        try:
            started.result(timeout=timeout_s)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            raise
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the background thread started by ``start``."""
        thread, loop, stop_event = self._thread, self._loop, self._thread_stop
        if thread is None:
            return
        if loop is not None and stop_event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout=timeout_s)
        self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observation (for tests and metrics) ---------------------------------------------------

    def viewers(self, camera: str, stream: str = "main") -> int:
        """Clients playing a stream now.  Thread-safe enough for polling from tests."""
        media = self.streams.get(f"{camera}/{stream}")
        return media.viewers if media is not None else 0

    # -- faults (for the recorder's reconnection tests) ----------------------------------------

    def disconnect_clients(self, camera: str | None = None) -> int:
        """Drop the connections of every client of ``camera`` (None: of all cameras), as a camera
        that reboots would.  Returns how many connections were dropped.  Callable from any thread.
        """
        rtsp, loop = self._rtsp, self._loop
        if rtsp is None or loop is None:
            return 0
        try:
            running_here = asyncio.get_running_loop() is loop
        except RuntimeError:
            running_here = False
        if running_here:
            return rtsp.disconnect(camera)
        call: Future[int] = Future()

        def disconnect() -> None:
            call.set_result(rtsp.disconnect(camera))

        loop.call_soon_threadsafe(disconnect)
        return call.result(timeout=5)


def _clock_renderer(name: str, settings: StreamSettings) -> Callable[[float], np.ndarray]:
    return functools.partial(render_clock_frame, name, settings.width, settings.height)


def _ptz_renderer(name: str, ptz: VirtualPtz, settings: StreamSettings) -> Callable[[float], np.ndarray]:
    def render(unix_time: float) -> np.ndarray:
        # Read the position once per picture: a concurrent move shows from the next one.
        return render_ptz_frame(name, ptz.position, settings.width, settings.height, unix_time)

    return render
