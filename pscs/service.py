"""The long-running service: the web app plus background work (checkpoints, and the
recorder and retention services as they are added), started and stopped together."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from pscs.runtime import Runtime

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
            except Exception:  # a failed round is logged and retried next round
                log.exception("%s failed", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


class BackgroundServices:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.tasks = [
            PeriodicTask("audit-checkpoint", runtime.profile.audit.checkpoint_every_seconds, runtime.audit.checkpoint),
        ]

    def start(self) -> None:
        for task in self.tasks:
            task.start()

    def stop(self) -> None:
        for task in reversed(self.tasks):
            task.stop()
        self.runtime.audit.checkpoint()


def run_server(runtime: Runtime, host: str, port: int) -> None:
    from contextlib import asynccontextmanager

    from pscs.web.app import create_app

    app = create_app(runtime)
    services = BackgroundServices(runtime)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        services.start()
        try:
            yield
        finally:
            services.stop()

    app.router.lifespan_context = lifespan
    logging.basicConfig(level=runtime.settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=host, port=port, log_level=runtime.settings.log_level.lower(), proxy_headers=False)
