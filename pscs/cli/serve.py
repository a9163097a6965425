"""``pscs serve`` and ``pscs up``: the long-running service, the web app plus background work
(audit checkpoints, the recorders, the retention sweeper), started and stopped together.

It composes the edges and the domains into one process, so it lives with the CLI that
starts it: nothing below the edges may import the web app."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn

from pscs import startup
from pscs.errors import Conflict
from pscs.runtime import Runtime

if TYPE_CHECKING:
    from pscs.sim.server import SimulatorServer

log = logging.getLogger("pscs.service")


@dataclass
class PeriodicTask:
    name: str
    every_seconds: float
    work: Callable[[], object]
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                self.work()
            except Conflict as exc:  # e.g. a sweep started from the CLI is still running
                log.info("%s skipped this round: %s", self.name, exc)
            except Exception:  # a failed round is logged and retried next round
                log.exception("%s failed", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


class BackgroundServices:
    """Everything that runs beside the web app, started and stopped with it."""

    def __init__(self, runtime: Runtime, *, record: bool = True) -> None:
        from pscs.recording.camera import RecorderConfig
        from pscs.recording.supervisor import RecorderSupervisor
        from pscs.retention.sweeper import RetentionSweeper

        startup.prepare()  # the sweeper and disk pressure delete: protection sources first
        self.runtime = runtime
        config = RecorderConfig(
            segment_seconds=runtime.settings.segment_seconds, workers=runtime.settings.recorder_workers
        )
        self.recorder = RecorderSupervisor(runtime, config) if record else None
        sweeper = RetentionSweeper(runtime)
        self.tasks = [
            PeriodicTask("audit-checkpoint", runtime.profile.audit.checkpoint_every_seconds, runtime.audit.checkpoint),
            PeriodicTask("retention-sweep", sweeper.interval_seconds, sweeper.run_once),  # S1
        ]

    def start(self) -> None:
        if self.recorder is not None:
            self.recorder.start()
        for task in self.tasks:
            task.start()

    def stop(self) -> None:
        for task in reversed(self.tasks):
            task.stop()
        if self.recorder is not None:
            self.recorder.stop()
        self.runtime.audit.checkpoint()


def run_server(runtime: Runtime, host: str, port: int, *, record: bool = True) -> None:
    from contextlib import asynccontextmanager

    from pscs.web.app import create_app

    app = create_app(runtime)
    services = BackgroundServices(runtime, record=record)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        services.start()
        try:
            yield
        finally:
            hub = getattr(app.state, "live_hub", None)
            if hub is not None:
                hub.close()  # ends the camera connections behind the live views
            services.stop()

    app.router.lifespan_context = lifespan
    logging.basicConfig(level=runtime.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level=runtime.settings.log_level.lower()))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once it has shut down
        server.run()


def uvicorn_config(app: object, host: str, port: int, *, log_level: str) -> uvicorn.Config:
    """The web server's settings.  uvicorn's own proxy-header handling stays off (by default
    it believes X-Forwarded-* from any loopback peer): the app applies them itself, and only
    from ``Settings.trusted_proxies``, whatever server runs it."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=False)  # type: ignore[arg-type]


# Simulated cameras for `pscs up` --------------------------------------------------------------
# Where the demo cameras "stand": around Norwich, Connecticut, so the map and records look real.
_DEMO_SITES = {
    "cam1": ("Main St & Broadway, Norwich, CT", 41.5243, -72.0759),
    "cam2": ("Chelsea Harbor Dr, Norwich, CT", 41.5215, -72.0787),
    "cam3": ("Franklin Sq, Norwich, CT", 41.5265, -72.0742),
    "ptz1": ("Howard T. Brown Memorial Park, Norwich, CT", 41.5201, -72.0776),
}


def register_simulated_cameras(runtime: Runtime, sim: SimulatorServer) -> list[str]:
    """Register the simulator's cameras (first run only); returns the names added."""
    from pscs.audit.events import Actor
    from pscs.cameras import service as cameras
    from pscs.cameras.models import CameraKind

    known = {c.name: c for c in cameras.list_cameras(runtime)}
    actor = Actor.system("pscs-up")
    added = []
    for spec in sim.cameras:
        address, lat, lon = _DEMO_SITES.get(spec.name, (f"Simulated camera {spec.name}", 41.52, -72.07))
        main, sub = sim.url(spec.name, "main"), sim.url(spec.name, "sub")
        if spec.name in known:
            if known[spec.name].main_url != main:  # the simulator's port changed since last run
                cameras.update_camera(runtime, actor, spec.name, public_area_attested=True, main_url=main, sub_url=sub)
            continue
        cameras.add_camera(
            runtime,
            actor,
            name=spec.name,
            street_address=address,
            latitude=lat,
            longitude=lon,
            main_url=main,
            sub_url=sub,
            kind=CameraKind.PTZ if spec.scene == "ptz" else CameraKind.FIXED,
            public_area_attested=True,
        )
        added.append(spec.name)
    return added
