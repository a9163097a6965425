"""The recorder's answer to a full disk, run as a periodic task of the supervisor.

``relieve_disk_pressure`` (pscs.storage.pressure) deletes the oldest unprotected segments
through the single deletion path.  When that cannot bring free space back above the
threshold (everything left is protected), every camera's writing pauses (each records a
gap that says why) and a critical ``storage_full`` alert is raised; both end once space is
back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from pscs.audit.events import Actor
from pscs.recording.alerts import clear_alert, raise_alert
from pscs.recording.models import AlertKind, AlertSeverity
from pscs.runtime import Runtime
from pscs.storage.pressure import UsageProbe, relieve_disk_pressure, required_free_bytes
from pscs.storage.protection import require_sources

STORAGE_FULL = AlertKind.STORAGE_FULL
log = logging.getLogger(__name__)


class DiskGuard:
    def __init__(
        self,
        rt: Runtime,
        actor: Actor,
        usage: UsageProbe,
        pause_writes: Callable[[bool], None],
    ) -> None:
        self.rt = rt
        self.actor = actor
        self._usage = usage
        self._pause_writes = pause_writes  # tells every worker, now and as it starts
        self.paused = False
        self._checking: threading.Thread | None = None

    def check_soon(self) -> None:
        """The periodic task.  Enough free space (nearly always) is one ``statvfs`` here;
        otherwise :meth:`check` runs on a thread of its own, one at a time: a large deletion
        (a big shortfall at start-up) takes a while, and the supervisor's watch loop must
        keep reading what the workers send meanwhile, or their sockets fill and their
        cameras' threads wait."""
        if self._checking is not None and self._checking.is_alive():
            return
        usage = self._usage(self.rt.settings.recordings_path)
        if not self.paused and usage.free >= required_free_bytes(self.rt, usage.total):
            require_sources()  # as every check: a process that cannot protect footage says so
            return
        self._checking = threading.Thread(target=self._check_logged, name="recorder-disk", daemon=True)
        self._checking.start()

    def _check_logged(self) -> None:
        try:
            self.check()
        except Exception:
            log.exception("recorder: the disk pressure check failed")

    def join(self, timeout: float) -> None:
        if self._checking is not None:
            self._checking.join(timeout)

    def resume_from(self, open_kinds: set[str]) -> None:
        """A ``storage_full`` alert left open by the previous run: writing stays paused
        until the first check says otherwise."""
        if STORAGE_FULL in open_kinds:
            self.paused = True
            self._pause_writes(True)

    def check(self) -> bool:
        """Free space if needed; pause every camera's writing when nothing deletable is left.
        Returns whether writing may go on."""
        result = relieve_disk_pressure(self.rt, self.actor, usage=self._usage)
        if not result.ok and not self.paused:
            self.paused = True
            self._pause_writes(True)
            raise_alert(
                self.rt,
                STORAGE_FULL,
                f"recording stopped: {result.free_after} bytes free, {result.required} required, and every "
                f"remaining recording is protected ({result.protected_skipped} protected segments skipped)",
                severity=AlertSeverity.CRITICAL,
                actor=self.actor,
            )
        elif result.ok and self.paused:
            self.paused = False
            self._pause_writes(False)
            clear_alert(self.rt, STORAGE_FULL, actor=self.actor)
        return result.ok
