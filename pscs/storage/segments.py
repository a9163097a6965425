"""The segment index: step 5 of a segment's write (:mod:`pscs.storage.segment_files` has
steps 1-4 and the invariant).  In the recorder the supervisor indexes what its workers
finish; :class:`SegmentStore` does both in one process (synthetic footage, tests)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pscs.clock import utcnow
from pscs.db.engine import Database
from pscs.storage.layout import Stream
from pscs.storage.models import RecordingGap, Segment
from pscs.storage.ranges import note_segment
from pscs.storage.segment_files import FinishedSegment, SegmentFile, SegmentWriter

log = logging.getLogger(__name__)


# A recording gap as the recorder reports it: camera id, start ms, end ms, reason.
Gap = tuple[int, int, int, str]


class SegmentIndex:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, finished: FinishedSegment) -> Segment | None:
        """Index a finished file; None when it already is (reconcile can index a file whose
        row was still on its way, after a worker crash or while the database was down)."""
        with self.db.write_connection() as conn:
            return _add_segment(conn, finished)

    def add_batch(self, items: Sequence[FinishedSegment | Gap]) -> None:
        """Index finished files and record gaps, in order, in one transaction: a recorder
        with many cameras reports several a second, and a transaction costs more than the
        rows in it."""
        with self.db.write_connection() as conn:
            for item in items:
                if isinstance(item, FinishedSegment):
                    _add_segment(conn, item)
                else:
                    _add_gap(conn, *item)

    def last_end_ms(self, camera_ids: list[int], stream: str = Stream.MAIN) -> dict[int, int]:
        """The end of each camera's last indexed segment (cameras with none are left out)."""
        with self.db.session() as s:
            rows = s.execute(
                select(Segment.camera_id, func.max(Segment.end_ms))
                .where(Segment.camera_id.in_(camera_ids), Segment.stream == stream)
                .group_by(Segment.camera_id)
            )
            return {camera_id: end_ms for camera_id, end_ms in rows}


# Core, not the ORM: every camera commits a segment every ten seconds.
_SEGMENTS = Segment.__table__
_GAPS = RecordingGap.__table__
# The name is the camera, stream and start (unique): a row already there is this file's.
_INSERT_SEGMENT = {
    dialect: insert_for(_SEGMENTS).on_conflict_do_nothing().returning(_SEGMENTS.c.id)
    for dialect, insert_for in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


def _add_segment(conn: Connection, finished: FinishedSegment) -> Segment | None:
    values = asdict(finished) | {"end_ms": finished.end_ms, "created_at": utcnow()}
    segment_id = conn.execute(_INSERT_SEGMENT[conn.dialect.name], values).scalar()
    if segment_id is None:
        return None
    note_segment(conn, finished.camera_id, finished.stream, finished.start_ms, finished.end_ms)
    return Segment(id=segment_id, **values)


def _add_gap(conn: Connection, camera_id: int, start_ms: int, end_ms: int, reason: str) -> None:
    if end_ms <= start_ms:
        return
    conn.execute(
        insert(_GAPS),
        {
            "camera_id": camera_id,
            "stream": Stream.MAIN,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "reason": reason[:300],
            "created_at": utcnow(),
        },
    )


class SegmentStore:
    """Write and index in one go, in one process."""

    def __init__(self, root: Path, db: Database) -> None:
        self.files = SegmentWriter(root)
        self.index = SegmentIndex(db)

    def open_segment(self, camera_id: int, stream: str, start_ms: int) -> SegmentFile:
        return self.files.open_segment(camera_id, stream, start_ms)

    def commit(self, seg: SegmentFile, *, duration_ms: int, frames: int) -> Segment:
        row = self.index.add(self.files.finish(seg, duration_ms=duration_ms, frames=frames))
        assert row is not None, "a file just written cannot have been indexed already"
        return row

    def discard(self, seg: SegmentFile) -> None:
        self.files.discard(seg)
