"""Recorded ranges: the segment index summarised for the playback timeline.

Invariant (docs/design/storage.md): for every camera and stream, the ``recorded_ranges``
rows are exactly that stream's indexed segments merged wherever one ends no more than
``MERGE_TOLERANCE_MS`` before the next begins.  Whatever adds or removes segment rows calls
:func:`note_segment` or :func:`forget_segments` in the same transaction, so the invariant
holds after every commit and survives any crash.  A 30-day timeline then reads a handful
of rows instead of 259,200 segments.

Segments of one stream never overlap, so a prefix or a suffix of a merged run is itself a
run: removing segments only touches the ranges that overlap their time window.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import Connection, delete, insert, select, text
from sqlalchemy.orm import Session

from pscs.storage.models import RecordedRange, Segment

MERGE_TOLERANCE_MS = 1500  # segments closer than this are one recorded range


class Span(NamedTuple):
    camera_id: int
    stream: str
    start_ms: int
    end_ms: int


def merge(intervals: Iterable[tuple[int, int]], tolerance_ms: int = MERGE_TOLERANCE_MS) -> list[tuple[int, int]]:
    """Merge intervals (sorted by start) whose gap is at most ``tolerance_ms``."""
    merged: list[list[int]] = []
    for start, end in intervals:
        if merged and start - merged[-1][1] <= tolerance_ms:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


# Plain statements: this runs with every segment the recorders commit.
_TOUCHING = text(
    "SELECT id, start_ms, end_ms FROM recorded_ranges "
    "WHERE camera_id = :camera_id AND stream = :stream AND end_ms >= :low AND start_ms <= :high"
)
_EXTEND = text("UPDATE recorded_ranges SET start_ms = :start_ms, end_ms = :end_ms WHERE id = :id")
# Nearly every new segment extends the one range that ends where it begins: one statement.
_GROW = text(
    "UPDATE recorded_ranges SET "
    "start_ms = CASE WHEN start_ms < :start_ms THEN start_ms ELSE :start_ms END, "
    "end_ms = CASE WHEN end_ms > :end_ms THEN end_ms ELSE :end_ms END "
    "WHERE camera_id = :camera_id AND stream = :stream AND end_ms >= :low AND start_ms <= :high"
)
_START = text(
    "INSERT INTO recorded_ranges (camera_id, stream, start_ms, end_ms) VALUES (:camera_id, :stream, :start_ms, :end_ms)"
)
_DROP = text("DELETE FROM recorded_ranges WHERE id = :id")


def note_segment(s: Session | Connection, camera_id: int, stream: str, start_ms: int, end_ms: int) -> None:
    """A segment row was added: extend (and join) the ranges it touches, or start one."""
    key = {"camera_id": camera_id, "stream": stream}
    window = key | {"low": start_ms - MERGE_TOLERANCE_MS, "high": end_ms + MERGE_TOLERANCE_MS}
    grown = s.execute(_GROW, window | {"start_ms": start_ms, "end_ms": end_ms}).rowcount
    if grown == 1:
        return
    if grown == 0:
        s.execute(_START, key | {"start_ms": start_ms, "end_ms": end_ms})
        return
    # It joins two or more ranges (each now covers it): keep one, spanning them all.
    keep, *joined = touching = s.execute(_TOUCHING, window).all()
    span = {
        "start_ms": min(start_ms, *(r.start_ms for r in touching)),
        "end_ms": max(end_ms, *(r.end_ms for r in touching)),
    }
    s.execute(_EXTEND, span | {"id": keep.id})
    for r in joined:
        s.execute(_DROP, {"id": r.id})


def forget_segments(s: Session, removed: Iterable[Span]) -> None:
    """Segment rows were removed (already, in this transaction): cut the ranges they were in."""
    windows: dict[tuple[int, str], list[int]] = {}
    for span in removed:
        window = windows.setdefault((span.camera_id, span.stream), [span.start_ms, span.end_ms])
        window[0], window[1] = min(window[0], span.start_ms), max(window[1], span.end_ms)
    for (camera_id, stream), (low, high) in windows.items():
        _rebuild_window(s, camera_id, stream, low, high)


def _rebuild_window(s: Session, camera_id: int, stream: str, low: int, high: int) -> None:
    """Replace the ranges overlapping [low, high] by what the index now holds there.  Every
    segment that starts before ``low`` or at/after ``high`` is untouched, so the part of a
    range on either side is summarised by one indexed lookup; only the inside is listed."""
    same_stream = (Segment.camera_id == camera_id, Segment.stream == stream)
    overlapping = list(
        s.execute(
            select(RecordedRange.id, RecordedRange.start_ms, RecordedRange.end_ms).where(
                RecordedRange.camera_id == camera_id,
                RecordedRange.stream == stream,
                RecordedRange.end_ms >= low,
                RecordedRange.start_ms <= high,
            )
        )
    )
    if not overlapping:
        return
    first = min(r.start_ms for r in overlapping)
    last = max(r.end_ms for r in overlapping)
    pieces: list[tuple[int, int]] = []
    if first < low:
        before_end = s.scalar(
            select(Segment.end_ms)
            .where(*same_stream, Segment.start_ms >= first, Segment.start_ms < low)
            .order_by(Segment.start_ms.desc())
            .limit(1)
        )
        if before_end is not None:
            pieces.append((first, before_end))
    pieces.extend(
        (a, b)
        for a, b in s.execute(
            select(Segment.start_ms, Segment.end_ms)
            .where(*same_stream, Segment.start_ms >= low, Segment.start_ms < high)
            .order_by(Segment.start_ms)
        )
    )
    after_start = s.scalar(
        select(Segment.start_ms)
        .where(*same_stream, Segment.start_ms >= high, Segment.start_ms <= last)
        .order_by(Segment.start_ms)
        .limit(1)
    )
    if after_start is not None:
        pieces.append((after_start, last))
    s.execute(delete(RecordedRange).where(RecordedRange.id.in_([r.id for r in overlapping])))
    merged = merge(pieces)
    if merged:
        s.execute(
            insert(RecordedRange),
            [{"camera_id": camera_id, "stream": stream, "start_ms": a, "end_ms": b} for a, b in merged],
        )


def ranges_between(s: Session, camera_id: int, stream: str, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The recorded ranges of one stream that overlap [start_ms, end_ms), oldest first."""
    return [
        (a, b)
        for a, b in s.execute(
            select(RecordedRange.start_ms, RecordedRange.end_ms)
            .where(
                RecordedRange.camera_id == camera_id,
                RecordedRange.stream == stream,
                RecordedRange.end_ms > start_ms,
                RecordedRange.start_ms < end_ms,
            )
            .order_by(RecordedRange.start_ms)
        )
    ]


# Gaps and islands over the whole index, in one statement (SQLite >= 3.25 and PostgreSQL):
# a segment starts a new range when it begins more than the tolerance after the previous one
# ends (segments of a stream never overlap, so the previous end is the running maximum).
REBUILD_SQL = """
INSERT INTO recorded_ranges (camera_id, stream, start_ms, end_ms)
SELECT camera_id, stream, MIN(start_ms), MAX(end_ms) FROM (
    SELECT camera_id, stream, start_ms, end_ms,
           SUM(starts_range) OVER (PARTITION BY camera_id, stream ORDER BY start_ms ROWS UNBOUNDED PRECEDING) AS run
    FROM (
        SELECT camera_id, stream, start_ms, end_ms,
               CASE WHEN start_ms - LAG(end_ms) OVER (PARTITION BY camera_id, stream ORDER BY start_ms)
                         <= :tolerance THEN 0 ELSE 1 END AS starts_range
        FROM segments
    ) AS marked
) AS numbered
GROUP BY camera_id, stream, run
"""


def rebuild_all(s: Session) -> None:
    """Recompute every range from the index (bulk loads, and checks of the invariant)."""
    s.execute(delete(RecordedRange))
    s.execute(text(REBUILD_SQL), {"tolerance": MERGE_TOLERANCE_MS})
