"""The one place the deletion path asks whether footage may be deleted (S1, S3).

:func:`pscs.storage.deletion.delete_segments` — the only code that removes recordings —
calls :func:`is_protected` for every segment, inside the same transaction that records
the deletion as pending, and again just before the file is unlinked.  Retention (S1) and
disk pressure both go through it, so a hold or evidence record that answers here is
never deleted by either.

Protection comes from *sources*: functions that, given a session, a camera and a time
range, return the protected ranges that overlap it.  The code that knows what protects
footage lives above storage and registers its source here by name at start-up
(:func:`pscs.startup.prepare`): the active holds (``"holds"``, :mod:`pscs.retention.protection`:
investigation, prosecution, pending FOI request, litigation or preservation order, and
the provisional holds of storage requests) and the storage requests still pending
(``"pending storage requests"``, :mod:`pscs.requests.registrations`).  Until every source
in :data:`REQUIRED_SOURCES` is registered, every question here raises
:class:`ProtectionUnavailable`: a process that forgot to register deletes nothing.

A segment is protected if any protected range overlaps it at all: a file is deleted
whole or not at all.  :func:`protected_segment_ids` asks the same question for a whole
batch with one query per camera and source.

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


# What S1 and S2 say protects footage; the sources answering for them register by these names.
REQUIRED_SOURCES = ("holds", "pending storage requests")
_sources: dict[str, ProtectionSource] = {}


class ProtectionUnavailable(RuntimeError):
    """A required protection source is not registered in this process: nothing may be
    deleted, since held footage could not be told apart."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            "protection sources not registered in this process: "
            + ", ".join(missing)
            + " (call pscs.startup.prepare() at start-up); refusing to judge or delete footage"
        )
        self.missing = missing


def require_sources() -> None:
    """Raise :class:`ProtectionUnavailable` unless every required source is registered
    (called on every question, and up front by whoever is about to delete)."""
    missing = [name for name in REQUIRED_SOURCES if name not in _sources]
    if missing:
        raise ProtectionUnavailable(missing)


def protected_ranges(session: Session, camera_id: int, start_ms: int, end_ms: int) -> list[ProtectedRange]:
    """Every protected range that overlaps ``[start_ms, end_ms)`` of ``camera_id``."""
    require_sources()
    found: list[ProtectedRange] = []
    for source in list(_sources.values()):
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


def register_source(name: str, source: ProtectionSource) -> Callable[[], None]:
    """Register (or replace) the source called ``name``; returns its removal."""
    _sources[name] = source

    def remove() -> None:
        if _sources.get(name) is source:
            del _sources[name]

    return remove


def registered_sources() -> tuple[str, ...]:
    return tuple(_sources)


@contextmanager
def protection_source(source: ProtectionSource, name: str | None = None) -> Iterator[None]:
    """A source for the length of a block (a plug-in's test, or a test's extra hold)."""
    remove = register_source(name or f"{source.__qualname__} at {id(source):#x}", source)
    try:
        yield
    finally:
        remove()
