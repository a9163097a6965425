"""The one place the deletion path asks whether footage may be deleted (S1, S3).

:func:`pscs.storage.deletion.delete_segments` — the only code that removes recordings —
calls :func:`is_protected` for every segment, inside the same transaction that records
the deletion as pending, and again just before the file is unlinked.  Retention (S1) and
disk pressure both go through it, so a hold or evidence record that answers here is
never deleted by either.

Protection comes from *sources*: functions that, given a session, a camera and a time
range, return the protected ranges that overlap it.  The built-in sources are the active
holds (investigation, prosecution, pending FOI request, litigation or preservation order,
and the provisional holds of storage requests) and the storage requests still pending
(``pscs.retention.sources``).  A segment is protected if any protected range overlaps it
at all: a file is deleted whole or not at all.  :func:`protected_segment_ids` asks the
same question for a whole batch with one query per camera and source.

Contract for whoever creates holds: create the hold in a transaction that also looks at
``pending_deletes`` for the range (segments listed there may already be gone), so that a
hold and a deletion racing each other leave an honest record.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class ProtectedRange:
    camera_id: int
    start_ms: int
    end_ms: int  # exclusive
    reason: str  # e.g. "hold 12 (case 2024-000123)", shown in disposal records


ProtectionSource = Callable[[Session, int, int, int], Iterable[ProtectedRange]]


def _holds(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[ProtectedRange]:
    from pscs.retention.sources import hold_ranges

    return [ProtectedRange(camera_id, lo, hi, why) for lo, hi, why in hold_ranges(session, camera_id, start_ms, end_ms)]


def _pending_requests(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[ProtectedRange]:
    from pscs.retention.sources import request_ranges

    return [
        ProtectedRange(camera_id, lo, hi, why) for lo, hi, why in request_ranges(session, camera_id, start_ms, end_ms)
    ]


# Holds (S1: criminal investigation or prosecution; FOI requests; litigation and
# preservation orders; storage requests' provisional holds) and pending storage requests (S2).
_BUILTIN_SOURCES: list[ProtectionSource] = [_holds, _pending_requests]
_extra_sources: list[ProtectionSource] = []


def protected_ranges(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[ProtectedRange]:
    """Every protected range that overlaps ``[start_ms, end_ms)`` of ``camera_id``."""
    found: list[ProtectedRange] = []
    for source in (*_BUILTIN_SOURCES, *_extra_sources):
        found.extend(
            r
            for r in source(session, camera_id, start_ms, end_ms)
            if r.camera_id == camera_id and r.start_ms < end_ms and r.end_ms > start_ms
        )
    return sorted(found, key=lambda r: (r.start_ms, r.end_ms))


def is_protected(session: Session, camera_id: int, start_ms: int, end_ms: int) -> bool:
    return bool(protected_ranges(session, camera_id, start_ms, end_ms))


def protected_segment_ids(session: Session, segments: Iterable[tuple[int, int, int, int]]) -> set[int]:
    """The ids among ``(segment_id, camera_id, start_ms, end_ms)`` that are protected.

    The same answer as :func:`is_protected` for each, with one query per camera and source
    over the batch's span: the ranges found are merged and each segment is looked up by
    bisection, so a batch of thousands costs a few queries."""
    by_camera: dict[int, list[tuple[int, int, int]]] = {}
    for segment_id, camera_id, start_ms, end_ms in segments:
        by_camera.setdefault(camera_id, []).append((segment_id, start_ms, end_ms))
    protected: set[int] = set()
    for camera_id, items in by_camera.items():
        lo = min(start for _, start, _ in items)
        hi = max(end for _, _, end in items)
        merged = _merge(protected_ranges(session, camera_id, lo, hi))
        if not merged:
            continue
        starts = [r[0] for r in merged]
        for segment_id, start_ms, end_ms in items:
            # the last merged range starting before the segment ends is the only candidate
            i = bisect_left(starts, end_ms) - 1
            if i >= 0 and merged[i][1] > start_ms:
                protected.add(segment_id)
    return protected


def _merge(ranges: list[ProtectedRange]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for r in sorted(ranges, key=lambda r: r.start_ms):
        if merged and r.start_ms <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], r.end_ms))
        else:
            merged.append((r.start_ms, r.end_ms))
    return merged


def register_protection_source(source: ProtectionSource) -> Callable[[], None]:
    """Add a source at run time (for a plug-in, or a test); returns its removal."""
    _extra_sources.append(source)
    return lambda: _extra_sources.remove(source)


@contextmanager
def protection_source(source: ProtectionSource) -> Iterator[None]:
    remove = register_protection_source(source)
    try:
        yield
    finally:
        remove()
