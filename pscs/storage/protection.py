"""The one place the deletion path asks whether footage may be deleted (S1, S3).

:func:`pscs.storage.deletion.delete_segments` — the only code that removes recordings —
calls :func:`is_protected` for every segment, inside the same transaction that records
the deletion as pending, and again just before the file is unlinked.  Retention (S1) and
disk pressure both go through it, so a hold or evidence record that answers here is
never deleted by either.

Protection comes from *sources*: functions that, given a session, a camera and a time
range, return the protected ranges that overlap it.  There is no holds table yet; the
holds/evidence engineer adds the query over it to ``_BUILTIN_SOURCES`` below.  A
segment is protected if any protected range overlaps it at all: a file is deleted whole
or not at all.

Contract for whoever creates holds: create the hold in a transaction that also looks at
``pending_deletes`` for the range (segments listed there may already be gone), so that a
hold and a deletion racing each other leave an honest record.
"""

from __future__ import annotations

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

# Holds (S1: criminal investigation or prosecution), storage requests (S2/S3), FOI
# requests and preservation orders register here.
_BUILTIN_SOURCES: list[ProtectionSource] = []
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
