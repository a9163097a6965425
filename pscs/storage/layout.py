"""Where segment files live under the recordings root.

    <root>/<camera_id>/<YYYY-MM-DD>/<HH>/<start_ms>.mp4        main stream
    <root>/<camera_id>/<YYYY-MM-DD>/<HH>/<start_ms>.sub.mp4    sub stream (if recorded)
    ...<name>.partial                                          being written (never indexed)
    <root>/.quarantine/<the same path>                         set aside by reconcile

Day and hour are the UTC day and hour of ``start_ms``, so everything older than a cut-off
sits in whole folders; a file's name alone says which camera, stream and start time it
holds, which is what lets reconcile rebuild index rows from the disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from pscs.clock import ms_to_utc

PARTIAL_SUFFIX = ".partial"
QUARANTINE_DIR = ".quarantine"  # files reconcile could not index; still recordings (S1)
_NAME = re.compile(r"^(?P<start>\d{1,16})(?:\.(?P<stream>sub))?\.mp4(?P<partial>\.partial)?$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{2}$")


class Stream(StrEnum):
    """Which of a camera's streams a recording is of."""

    MAIN = "main"
    SUB = "sub"


STREAMS = tuple(Stream)


@dataclass(frozen=True)
class SegmentPath:
    camera_id: int
    stream: str
    start_ms: int
    partial: bool

    @property
    def relpath(self) -> str:
        return segment_relpath(self.camera_id, self.start_ms, self.stream)


def segment_relpath(camera_id: int, start_ms: int, stream: str = Stream.MAIN) -> str:
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    when = ms_to_utc(start_ms)
    name = f"{start_ms}.mp4" if stream == Stream.MAIN else f"{start_ms}.{stream}.mp4"
    return f"{camera_id}/{when:%Y-%m-%d}/{when:%H}/{name}"


def parse_relpath(relpath: str) -> SegmentPath | None:
    """The segment a relative path names, or None for anything that is not ours."""
    parts = PurePosixPath(relpath).parts
    if len(parts) != 4 or not parts[0].isdigit() or not _DAY.match(parts[1]) or not _HOUR.match(parts[2]):
        return None
    m = _NAME.match(parts[3])
    if not m:
        return None
    parsed = SegmentPath(int(parts[0]), m["stream"] or Stream.MAIN, int(m["start"]), m["partial"] is not None)
    # The folders must agree with the name, else the file is not where retention looks.
    if segment_relpath(parsed.camera_id, parsed.start_ms, parsed.stream).split("/")[:3] != list(parts[:3]):
        return None
    return parsed
