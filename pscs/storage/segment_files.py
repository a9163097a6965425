"""Segment files on disk, written crash-safely and hashed as they are written.

No database here: recorder worker processes import this module, and every module they
import is memory in every worker.  A worker finishes a file (steps 1-4 below) and hands
the supervisor a :class:`FinishedSegment`; the supervisor inserts the index row (step 5,
:class:`pscs.storage.segments.SegmentIndex`).  The order is the invariant everything else
leans on (docs/design/storage.md):

1. write ``<name>.partial`` (append-only; SHA-256 computed on the bytes as they go out),
2. fsync the file,
3. rename it to ``<name>``,
4. fsync the directory,
5. insert the index row.

So an index row always names a complete, durable file; a crash leaves at worst a
``.partial`` (salvaged or removed by reconcile) or an un-indexed complete file (indexed
by reconcile).  Nothing is ever lost silently.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pscs.filemodes import DIR_MODE, private_file_opener
from pscs.storage.layout import PARTIAL_SUFFIX, segment_relpath

# Fragmented MP4: the file is only ever appended to, one fragment per GOP or per second
# (whichever comes first), so the hash can be taken as it is written, a crash leaves a
# prefix that plays, and the muxer holds at most a second of video (docs/design/storage.md).
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "1000000"}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(root: Path, relative_dir: str) -> Path:
    """Create the folders down to ``relative_dir``, fsyncing each parent whose entries changed."""
    current = root
    for part in Path(relative_dir).parts:
        child = current / part
        if not child.is_dir():
            child.mkdir(exist_ok=True, mode=DIR_MODE)
            fsync_dir(current)
        current = child
    return current


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class SegmentFile:
    """An open ``.partial`` file.  It is a write-only, non-seekable file object, which makes
    the MP4 muxer stream (no seeking back), so the running hash is the file's hash."""

    camera_id: int
    stream: str
    start_ms: int
    relpath: str
    final_path: Path
    partial_path: Path
    _fh: BinaryIO = field(repr=False)
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)
    bytes_written: int = 0
    closed: bool = False

    def write(self, data: bytes) -> int:
        self._fh.write(data)
        self._hash.update(data)
        self.bytes_written += len(data)
        return len(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self._fh.flush()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _sync_and_close(self) -> None:
        if not self.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self.closed = True

    def _discard(self) -> None:
        if not self.closed:
            self._fh.close()
            self.closed = True
        self.partial_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class FinishedSegment:
    """A complete, durable segment file in its final place: everything its index row holds."""

    camera_id: int
    stream: str
    start_ms: int
    duration_ms: int
    frames: int
    bytes: int
    path: str  # relative to the recordings root
    sha256: str

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


class SegmentWriter:
    """Segment files under the recordings root (steps 1-4 of the write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open_segment(self, camera_id: int, stream: str, start_ms: int) -> SegmentFile:
        relpath = segment_relpath(camera_id, start_ms, stream)
        folder = ensure_dir(self.root, str(Path(relpath).parent))
        final = folder / Path(relpath).name
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        # Unmasked video: never readable by other local users, whatever the umask.
        fh = open(partial, "wb", opener=private_file_opener)  # noqa: SIM115 - closed by finish()/discard()
        return SegmentFile(camera_id, stream, start_ms, relpath, final, partial, fh)

    def finish(self, seg: SegmentFile, *, duration_ms: int, frames: int) -> FinishedSegment:
        """Make the file durable and move it into place (in that order)."""
        if duration_ms <= 0 or frames <= 0:
            raise ValueError("a segment needs at least one frame and a positive duration")
        seg._sync_and_close()
        os.rename(seg.partial_path, seg.final_path)
        fsync_dir(seg.final_path.parent)
        return FinishedSegment(
            camera_id=seg.camera_id,
            stream=seg.stream,
            start_ms=seg.start_ms,
            duration_ms=duration_ms,
            frames=frames,
            bytes=seg.bytes_written,
            path=seg.relpath,
            sha256=seg.sha256,
        )

    def discard(self, seg: SegmentFile) -> None:
        """Drop a segment that holds nothing worth keeping (no complete frame)."""
        seg._discard()
