"""The retention sweeper (S1): every recording older than the profile's limit that no hold,
pending storage request or FOI request protects is destroyed — through the single
crash-safe deletion path (:mod:`pscs.storage.deletion`), which verifies that each file is
gone and writes the disposal record in the transaction that forgets it.

One round (:meth:`RetentionSweeper.run_once`), one at a time:

1. record the round as ``running`` in ``retention_sweeps`` (a unique index admits one; a
   round whose process is gone is closed as ``interrupted``; while another round is alive,
   refuse with a clear message);
2. review holds: lapse the overdue ones (with notice), remind owners of those due soon;
3. finish deletions an interrupted round left behind (``PendingDelete`` rows);
4. for each camera, walk its expired segments oldest first in keyset pages (a page is a
   run of consecutive time-bucket folders), and hand each page to the deletion path;
   protected segments are refused there and stepped over here; after each page, renew
   the round's heartbeat and counts;
5. destroy the expired files of ``.quarantine/`` (recordings reconcile could not index)
   under the same protection check, with their own disposal records;
6. close the round's record and audit one ``retention.sweep`` event.

A ``kill -9`` at any point leaves either untouched segments, ``PendingDelete`` rows
(finished by step 3 of the next round, or by reconcile), or a round marked ``running``
(closed as ``interrupted`` by the next round, once its process is gone).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from pscs.audit.events import Actor, Outcome
from pscs.cameras.models import Camera
from pscs.clock import format_utc, ms_to_utc, utcnow
from pscs.errors import Conflict
from pscs.policy import decisions
from pscs.retention.holds import review_holds
from pscs.retention.models import RetentionSweep, SweepStatus
from pscs.runtime import Runtime
from pscs.storage.deletion import (
    QuarantineResult,
    delete_segments,
    destroy_quarantined,
    expired_quarantine,
    finish_pending_deletes,
    unlinking_in_a_process,
)
from pscs.storage.models import PendingDelete, Segment
from pscs.storage.protection import protected_segment_ids, require_sources

log = logging.getLogger(__name__)
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
STALE_AFTER = timedelta(minutes=15)  # a round renews its heartbeat after every page (seconds)
Progress = Callable[[int, int], None]  # (segments handled so far, segments expected)


@dataclass
class CameraTally:
    deleted: int = 0
    bytes: int = 0
    protected: int = 0
    from_ms: int | None = None
    to_ms: int | None = None

    def add(self, start_ms: int, end_ms: int, size: int) -> None:
        self.deleted += 1
        self.bytes += size
        self.from_ms = start_ms if self.from_ms is None else min(self.from_ms, start_ms)
        self.to_ms = end_ms if self.to_ms is None else max(self.to_ms, end_ms)


@dataclass
class SweepReport:
    sweep_id: int | None
    cutoff_ms: int
    dry_run: bool
    deleted: int = 0
    bytes: int = 0
    protected: int = 0
    resumed: int = 0
    holds_lapsed: list[int] = field(default_factory=list)
    reminders: list[int] = field(default_factory=list)
    cameras: dict[int, CameraTally] = field(default_factory=dict)
    quarantine: QuarantineResult = field(default_factory=QuarantineResult)

    @property
    def cutoff(self) -> datetime:
        return ms_to_utc(self.cutoff_ms)


class RetentionSweeper:
    """Run by the service every ``retention.sweep_interval_minutes`` and by
    ``pscs retention run``.  ``clock`` is for tests (simulated time)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        actor: Actor | None = None,
        clock: Callable[[], datetime] = utcnow,
        page_size: int = 20_000,
    ) -> None:
        self.rt = runtime
        self.actor = actor or Actor.system("retention")
        self.clock = clock
        self.page_size = page_size

    @property
    def interval_seconds(self) -> float:
        return self.rt.profile.retention.sweep_interval_minutes * 60.0

    def reason(self, cutoff_ms: int) -> str:
        days = self.rt.profile.retention.recording_days
        when = format_utc(cutoff_ms, seconds=False)
        return f"retention: older than {days} days (ended before {when}), S1"

    # ---------------------------------------------------------------------------------------
    def run_once(self, *, dry_run: bool = False, progress: Progress | None = None) -> SweepReport:
        require_sources()  # a process that cannot tell held footage apart sweeps nothing
        now = self.clock()
        cutoff = decisions.retention_cutoff_ms(now, self.rt.profile)
        if dry_run:
            return self._dry_run(cutoff, progress)
        report = SweepReport(self._start_round(cutoff), cutoff, False)
        try:
            review = review_holds(self.rt, now=now, actor=self.actor)
            report.holds_lapsed, report.reminders = review.lapsed, review.reminded
            report.resumed = self._finish_interrupted()
            with unlinking_in_a_process():
                self._sweep(cutoff, report, progress)
            report.quarantine = self._quarantine(cutoff, dry_run=False)
        except BaseException as exc:
            self._finish_record(report, SweepStatus.FAILED, f"{type(exc).__name__}: {exc}")
            self.rt.audit.record(
                "retention.sweep",
                self.actor,
                Outcome.ERROR,
                object_type="retention_sweep",
                object_id=report.sweep_id,
                clauses=("S1",),
                details=self._details(report) | {"error": str(exc)[:300]},
            )
            raise
        self._finish_record(report, SweepStatus.FINISHED)
        self.rt.audit.record(
            "retention.sweep",
            self.actor,
            object_type="retention_sweep",
            object_id=report.sweep_id,
            clauses=("S1",),
            details=self._details(report),
        )
        if report.deleted:
            log.info(
                "retention: destroyed %d segments (%d bytes) older than %s; %d protected",
                report.deleted,
                report.bytes,
                report.cutoff.isoformat(),
                report.protected,
            )
        return report

    def _details(self, report: SweepReport) -> dict[str, object]:
        return {
            "cutoff": report.cutoff.isoformat(),
            "recording_days": self.rt.profile.retention.recording_days,
            "deleted": report.deleted,
            "bytes": report.bytes,
            "protected": report.protected,
            "resumed": report.resumed,
            "holds_lapsed": report.holds_lapsed,
            "cameras": {
                str(c): {"deleted": t.deleted, "bytes": t.bytes, "protected": t.protected}
                for c, t in report.cameras.items()
            },
            "quarantined_files": {
                "deleted": len(report.quarantine.deleted),
                "bytes": report.quarantine.bytes_freed,
                "protected": len(report.quarantine.protected),
            },
        }

    def _start_round(self, cutoff: int) -> int:
        """Record this round as the one running; a round left running by a process that is
        gone is marked ``interrupted`` first.  Raises Conflict while another round runs."""
        try:
            with self.rt.db.write() as s:
                running = s.scalar(select(RetentionSweep).where(RetentionSweep.status == SweepStatus.RUNNING))
                if running is not None:
                    if _still_running(running, utcnow()):
                        raise Conflict(
                            f"retention round {running.id} is still running (started "
                            f"{running.started_at:%Y-%m-%d %H:%M:%S} UTC by {running.actor} on {running.holder}); "
                            "try again when it has finished"
                        )
                    running.status, running.finished_at = SweepStatus.INTERRUPTED, utcnow()
                    s.flush()
                sweep = RetentionSweep(
                    started_at=utcnow(),
                    cutoff_ms=cutoff,
                    dry_run=False,
                    status=SweepStatus.RUNNING,
                    actor=self.actor.username,
                    holder=HOLDER,
                    heartbeat_at=utcnow(),
                )
                s.add(sweep)
                s.flush()
                return sweep.id
        except IntegrityError as exc:  # another process started a round between our look and insert
            raise Conflict("another retention round has just started; try again when it has finished") from exc

    def _heartbeat(self, report: SweepReport) -> None:
        with self.rt.db.write() as s:
            s.execute(
                update(RetentionSweep)
                .where(RetentionSweep.id == report.sweep_id)
                .values(heartbeat_at=utcnow(), deleted=report.deleted, bytes=report.bytes, protected=report.protected)
            )

    def _finish_interrupted(self) -> int:
        """Deletions a killed round had decided on: carried out now (and recorded as disposed
        by the deletion path itself), or cancelled if a hold arrived meanwhile."""
        with self.rt.db.session() as s:
            if s.scalar(select(func.count(PendingDelete.id))) == 0:
                return 0
        finished, cancelled = finish_pending_deletes(self.rt)
        if finished or cancelled:
            log.warning(
                "retention: finished %d deletions an interrupted run left (%d cancelled: now held)", finished, cancelled
            )
        return finished

    def _finish_record(self, report: SweepReport, status: SweepStatus, error: str | None = None) -> None:
        with self.rt.db.write() as s:
            sweep = s.get(RetentionSweep, report.sweep_id)
            sweep.status, sweep.finished_at, sweep.error = status, utcnow(), error
            sweep.holds_lapsed = len(report.holds_lapsed)
            sweep.deleted, sweep.bytes, sweep.protected, sweep.resumed = (
                report.deleted,
                report.bytes,
                report.protected,
                report.resumed,
            )

    def _cameras(self) -> list[int]:
        with self.rt.db.session() as s:
            return list(s.scalars(select(Camera.id).order_by(Camera.id)))

    def _expected(self, cameras: list[int], cutoff: int) -> int:
        with self.rt.db.session() as s:
            return sum(
                s.scalar(
                    select(func.count()).select_from(Segment).where(Segment.camera_id == c, Segment.end_ms <= cutoff)
                )
                or 0
                for c in cameras
            )

    def _pages(self, camera_id: int, cutoff: int):  # noqa: ANN202 - generator of id lists
        """Keyset pages of (end_ms, id) over the camera's expired segments, oldest first."""
        after: tuple[int, int] | None = None
        while True:
            q = (
                select(Segment.end_ms, Segment.id)
                .where(Segment.camera_id == camera_id, Segment.end_ms <= cutoff)
                .order_by(Segment.end_ms, Segment.id)
                .limit(self.page_size)
            )
            if after is not None:
                q = q.where((Segment.end_ms > after[0]) | ((Segment.end_ms == after[0]) & (Segment.id > after[1])))
            with self.rt.db.session() as s:
                page = s.execute(q).all()
            if not page:
                return
            after = (page[-1][0], page[-1][1])
            yield [segment_id for _, segment_id in page]

    def _sweep(self, cutoff: int, report: SweepReport, progress: Progress | None) -> None:
        cameras = self._cameras()
        expected = self._expected(cameras, cutoff) if progress else 0
        handled = 0
        reason = self.reason(cutoff)
        for camera_id in cameras:
            tally = report.cameras.setdefault(camera_id, CameraTally())
            for ids in self._pages(camera_id, cutoff):
                result = delete_segments(self.rt, self.actor, ids, reason=reason, clauses=("S1",))
                for d in result.deleted:
                    tally.add(d.start_ms, d.end_ms, d.bytes)
                tally.protected += len(result.protected)
                report.deleted += len(result.deleted)
                report.bytes += result.bytes_freed
                report.protected += len(result.protected)
                handled += len(ids)
                self._heartbeat(report)
                if progress:
                    progress(handled, max(expected, handled))
            if not tally.deleted and not tally.protected:
                del report.cameras[camera_id]

    def _quarantine(self, cutoff: int, *, dry_run: bool) -> QuarantineResult:
        reason = self.reason(cutoff).replace(", S1", ", quarantined file, S1")
        files = expired_quarantine(self.rt, cutoff)
        return destroy_quarantined(self.rt, self.actor, files, reason=reason, clauses=("S1",), dry_run=dry_run)

    def _dry_run(self, cutoff: int, progress: Progress | None) -> SweepReport:
        """What a round would destroy now, and what holds keep; changes nothing."""
        report = SweepReport(None, cutoff, True)
        cameras = self._cameras()
        expected = self._expected(cameras, cutoff) if progress else 0
        handled = 0
        for camera_id in cameras:
            tally = CameraTally()
            after: tuple[int, int] | None = None
            while True:
                q = (
                    select(Segment.id, Segment.camera_id, Segment.start_ms, Segment.end_ms, Segment.bytes)
                    .where(Segment.camera_id == camera_id, Segment.end_ms <= cutoff)
                    .order_by(Segment.end_ms, Segment.id)
                    .limit(self.page_size)
                )
                if after is not None:
                    q = q.where((Segment.end_ms > after[0]) | ((Segment.end_ms == after[0]) & (Segment.id > after[1])))
                with self.rt.db.session() as s:
                    page = s.execute(q).all()
                    if not page:
                        break
                    held = protected_segment_ids(s, ((r.id, r.camera_id, r.start_ms, r.end_ms) for r in page))
                after = (page[-1].end_ms, page[-1].id)
                for r in page:
                    if r.id in held:
                        tally.protected += 1
                    else:
                        tally.add(r.start_ms, r.end_ms, r.bytes)
                handled += len(page)
                if progress:
                    progress(handled, max(expected, handled))
            if tally.deleted or tally.protected:
                report.cameras[camera_id] = tally
                report.deleted += tally.deleted
                report.bytes += tally.bytes
                report.protected += tally.protected
        report.quarantine = self._quarantine(cutoff, dry_run=True)
        self.rt.audit.record(
            "retention.sweep.dry_run",
            self.actor,
            object_type="retention_sweep",
            clauses=("S1",),
            details=self._details(report),
        )
        return report


def _still_running(round_: RetentionSweep, now: datetime) -> bool:
    """Whether the process recorded as running ``round_`` is alive: asked directly when it is
    on this host, judged by its heartbeat otherwise (another machine sharing the database)."""
    host, _, pid = (round_.holder or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # it exists, as another user
        if int(pid) == os.getpid():
            return False  # this process, after a failed round that could not close its record
    return round_.heartbeat_at is not None and now - round_.heartbeat_at < STALE_AFTER
