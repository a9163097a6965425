"""Disk pressure: keep enough free space by deleting the oldest *unprotected* recordings,
through the single deletion path.  Protected footage is never touched; when nothing
deletable is left the caller stops writing and raises an alert."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pscs.audit.events import Actor
from pscs.runtime import Runtime
from pscs.storage.deletion import delete_segments, oldest_segment_ids
from pscs.storage.protection import require_sources


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


UsageProbe = Callable[[Path], DiskUsage]


def disk_usage(path: Path) -> DiskUsage:
    total, used, free = shutil.disk_usage(path)
    return DiskUsage(total, used, free)


def required_free_bytes(rt: Runtime, total: int) -> int:
    """The larger of the absolute floor (settings) and the profile's percentage."""
    return max(rt.settings.min_free_bytes, int(total * rt.profile.retention.disk_min_free_percent / 100))


@dataclass(frozen=True)
class PressureResult:
    free_before: int
    free_after: int
    required: int
    deleted: int
    bytes_freed: int
    protected_skipped: int

    @property
    def ok(self) -> bool:
        """False: below the threshold with nothing left that may be deleted."""
        return self.free_after >= self.required


def relieve_disk_pressure(
    rt: Runtime,
    actor: Actor | None = None,
    *,
    usage: UsageProbe = disk_usage,
    batch: int = 50,
) -> PressureResult:
    """Delete oldest-first, ``batch`` at a time, until free space is back above the
    threshold or no unprotected segment is left."""
    require_sources()  # fail loudly on every check, not only once space runs short
    actor = actor or Actor.system("recorder")
    root = rt.settings.recordings_path
    first = usage(root)
    required = required_free_bytes(rt, first.total)
    free = first.free
    deleted = freed = skipped = 0
    cursor: tuple[int, int] | None = None  # keyset: protected ones are stepped over, not re-read
    while free < required:
        page = oldest_segment_ids(rt, batch, after=cursor)
        if not page:
            break
        cursor = page[-1]
        result = delete_segments(
            rt,
            actor,
            [segment_id for _, segment_id in page],
            reason=f"disk pressure: {free} bytes free, {required} required",
            clauses=("S1",),
        )
        deleted += len(result.deleted)
        freed += result.bytes_freed
        skipped += len(result.protected)
        free = usage(root).free
    return PressureResult(first.free, free, required, deleted, freed, skipped)
