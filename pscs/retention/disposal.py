"""The periodic disposal report (S1; Connecticut form RC-075 in spirit) that the records
office files: what recordings were destroyed, when and under which rule, read from the
disposal ledger that the deletion path writes (:mod:`pscs.storage.disposals`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pscs import csvsafe
from pscs.cameras.models import Camera
from pscs.clock import format_utc
from pscs.storage.models import DisposalRecord


# The periodic report ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportLine:
    camera_id: int
    camera_name: str
    location: str
    rule: str
    from_ms: int
    to_ms: int
    segments: int
    bytes: int
    first_disposed: datetime
    last_disposed: datetime


@dataclass(frozen=True)
class DisposalReport:
    department: str
    since: datetime
    until: datetime
    retention_days: int
    lines: list[ReportLine]

    @property
    def segments(self) -> int:
        return sum(line.segments for line in self.lines)

    @property
    def bytes(self) -> int:
        return sum(line.bytes for line in self.lines)


def _rule_family(rule: str) -> str:
    """Group "retention: ... before <date>" records of many sweeps under one rule."""
    return rule.split(":", 1)[0].strip() or rule


def disposal_report(
    session: Session, department: str, retention_days: int, since: datetime, until: datetime
) -> DisposalReport:
    q = (
        select(
            DisposalRecord.camera_id,
            DisposalRecord.rule,
            func.min(DisposalRecord.from_ms),
            func.max(DisposalRecord.to_ms),
            func.sum(DisposalRecord.segments),
            func.sum(DisposalRecord.bytes),
            func.min(DisposalRecord.disposed_at),
            func.max(DisposalRecord.disposed_at),
        )
        .where(DisposalRecord.disposed_at >= since, DisposalRecord.disposed_at < until)
        .group_by(DisposalRecord.camera_id, DisposalRecord.rule)
    )
    cameras = {c.id: c for c in session.scalars(select(Camera))}
    merged: dict[tuple[int, str], list] = {}
    for camera_id, rule, lo, hi, count, size, first, last in session.execute(q):
        key = (camera_id, _rule_family(rule))
        first, last = _aware(first), _aware(last)
        m = merged.get(key)
        if m is None:
            merged[key] = [lo, hi, int(count), int(size), first, last]
        else:
            m[0], m[1] = min(m[0], lo), max(m[1], hi)
            m[2] += int(count)
            m[3] += int(size)
            m[4], m[5] = min(m[4], first), max(m[5], last)
    lines = []
    for (camera_id, rule), (lo, hi, count, size, first, last) in sorted(merged.items()):
        cam = cameras.get(camera_id)
        lines.append(
            ReportLine(
                camera_id,
                cam.name if cam else f"camera {camera_id} (removed)",
                cam.street_address if cam else "",
                rule,
                lo,
                hi,
                count,
                size,
                first,
                last,
            )
        )
    return DisposalReport(department, since, until, retention_days, lines)


def _aware(value: datetime) -> datetime:
    # Aggregates bypass the column type on SQLite: they come back naive (UTC) or as text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


REPORT_COLUMNS = (
    "camera_id",
    "camera",
    "location",
    "rule",
    "footage_from_utc",
    "footage_to_utc",
    "segments",
    "bytes",
    "first_disposed_utc",
    "last_disposed_utc",
)


def report_csv(report: DisposalReport) -> Iterator[str]:
    buf = io.StringIO()
    writer = csvsafe.Writer(buf)
    writer.writerow(REPORT_COLUMNS)
    for line in report.lines:
        writer.writerow(
            [
                line.camera_id,
                line.camera_name,
                line.location,
                line.rule,
                format_utc(line.from_ms),
                format_utc(line.to_ms),
                line.segments,
                line.bytes,
                line.first_disposed.isoformat(),
                line.last_disposed.isoformat(),
            ]
        )
    yield buf.getvalue()
