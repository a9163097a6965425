"""Writing segment files crash-safely and indexing them.

The order of a write is the invariant everything else leans on (docs/design/storage.md):

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
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, insert, select

from pscs.db.base import utcnow
from pscs.db.engine import Database
from pscs.storage.layout import PARTIAL_SUFFIX, segment_relpath
from pscs.storage.models import RecordingGap, Segment
from pscs.storage.ranges import note_segment

log = logging.getLogger(__name__)

# Fragmented MP4: the file is only ever appended to, one fragment per GOP, so the hash can
# be taken as it is written and a crash leaves a prefix that plays (docs/design/storage.md).
MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


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
            child.mkdir(exist_ok=True)
            fsync_dir(current)
        current = child
    return current


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


class SegmentStore:
    """The recordings root and its index.  Used by recorder workers (one per process)."""

    def __init__(self, root: Path, db: Database) -> None:
        self.root = root
        self.db = db

    def open_segment(self, camera_id: int, stream: str, start_ms: int) -> SegmentFile:
        relpath = segment_relpath(camera_id, start_ms, stream)
        folder = ensure_dir(self.root, str(Path(relpath).parent))
        final = folder / Path(relpath).name
        partial = final.with_name(final.name + PARTIAL_SUFFIX)
        fh = open(partial, "wb")  # noqa: SIM115 - closed by commit()/discard()
        return SegmentFile(camera_id, stream, start_ms, relpath, final, partial, fh)

    def commit(self, seg: SegmentFile, *, duration_ms: int, frames: int) -> Segment:
        """Make the file durable, move it into place and index it (in that order)."""
        if duration_ms <= 0 or frames <= 0:
            raise ValueError("a segment needs at least one frame and a positive duration")
        seg._sync_and_close()
        os.rename(seg.partial_path, seg.final_path)
        fsync_dir(seg.final_path.parent)
        values = {
            "camera_id": seg.camera_id,
            "stream": seg.stream,
            "start_ms": seg.start_ms,
            "end_ms": seg.start_ms + duration_ms,
            "duration_ms": duration_ms,
            "frames": frames,
            "bytes": seg.bytes_written,
            "path": seg.relpath,
            "sha256": seg.sha256,
            "created_at": utcnow(),
        }
        # Core, not the ORM: every camera commits a segment every ten seconds.
        with self.db.write_connection() as conn:
            segment_id = conn.execute(insert(Segment.__table__), values).inserted_primary_key[0]
            note_segment(conn, seg.camera_id, seg.stream, values["start_ms"], values["end_ms"])
        return Segment(id=segment_id, **values)

    def discard(self, seg: SegmentFile) -> None:
        """Drop a segment that holds nothing worth keeping (no complete frame)."""
        seg._discard()

    def last_end_ms(self, camera_id: int, stream: str = "main") -> int | None:
        with self.db.session() as s:
            return s.scalar(
                select(func.max(Segment.end_ms)).where(Segment.camera_id == camera_id, Segment.stream == stream)
            )

    def record_gap(self, camera_id: int, start_ms: int, end_ms: int, reason: str, stream: str = "main") -> None:
        if end_ms <= start_ms:
            return
        with self.db.write() as s:
            s.add(
                RecordingGap(
                    camera_id=camera_id,
                    stream=stream,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    reason=reason[:300],
                    created_at=utcnow(),
                )
            )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
