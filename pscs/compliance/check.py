"""``pscs compliance check``: S1-S3 as they stand right now, the audit chain (M1), and who
may read the data files.

A *violation* (the check fails) is:

* S1 — an unprotected recording older than the retention limit plus one sweep interval
  (the sweeper should have destroyed it);
* S3 — an evidence file that is missing or no longer matches its SHA-256, or a manifest
  whose signature does not verify;
* S1/S2/S3 — an active hold without its case / docket / request number, a provisional
  hold whose storage request is missing or no longer pending, an evidence item without an
  approved request or a case number;
* M1 — the audit trail fails verification;
* CJIS-5.5.2 — something in the data folder, the recordings or the evidence store that
  other local users may read (or the group may write): the database and the keys, and
  unmasked video, are for the service account only.

*Warnings* do not fail the check: deletions left in flight, holds due for review soon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from pscs.audit.events import Actor, Outcome
from pscs.cameras.models import Camera
from pscs.clock import format_utc
from pscs.evidence.models import EvidenceItem, EvidenceStatus
from pscs.evidence.service import verify_all
from pscs.filemodes import too_open
from pscs.policy import decisions
from pscs.requests.models import PENDING_STATES, RequestStatus, StorageRequest
from pscs.retention.models import Hold, HoldCamera, HoldStatus
from pscs.runtime import Runtime
from pscs.storage.models import PendingDelete, Segment
from pscs.storage.protection import protected_segment_ids

_PAGE = 5000


@dataclass(frozen=True)
class Finding:
    clause: str
    what: str


@dataclass
class ComplianceReport:
    checked_at: datetime
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations


def check_overdue_recordings(rt: Runtime, now: datetime, report: ComplianceReport) -> None:
    deadline = decisions.compliance_deadline_ms(now, rt.profile)
    limit = f"{rt.profile.retention.recording_days} days + {rt.profile.retention.sweep_interval_minutes} min"
    total = 0
    with rt.db.session() as s:
        cameras = {c.id: c.name for c in s.scalars(select(Camera))}
        for camera_id, name in sorted(cameras.items()):
            overdue: list[tuple[int, int]] = []
            after: tuple[int, int] | None = None
            while True:
                q = (
                    select(Segment.id, Segment.camera_id, Segment.start_ms, Segment.end_ms)
                    .where(Segment.camera_id == camera_id, Segment.end_ms <= deadline)
                    .order_by(Segment.end_ms, Segment.id)
                    .limit(_PAGE)
                )
                if after is not None:
                    q = q.where((Segment.end_ms > after[0]) | ((Segment.end_ms == after[0]) & (Segment.id > after[1])))
                page = s.execute(q).all()
                if not page:
                    break
                after = (page[-1].end_ms, page[-1].id)
                held = protected_segment_ids(s, ((r.id, r.camera_id, r.start_ms, r.end_ms) for r in page))
                overdue.extend((r.start_ms, r.end_ms) for r in page if r.id not in held)
            if overdue:
                total += len(overdue)
                report.violations.append(
                    Finding(
                        "S1",
                        f"camera {camera_id} ({name}): {len(overdue)} unheld recording(s) from "
                        f"{format_utc(min(a for a, _ in overdue))} to {format_utc(max(b for _, b in overdue))} "
                        "are older than "
                        f"the limit ({limit}) and were not destroyed",
                    )
                )
    report.stats["overdue_recordings"] = total


def check_holds(rt: Runtime, now: datetime, report: ComplianceReport) -> None:
    with rt.db.session() as s:
        holds = list(s.scalars(select(Hold).where(Hold.status == HoldStatus.ACTIVE)))
        requests = {r.id: r for r in s.scalars(select(StorageRequest))}
        cams = dict(s.execute(select(HoldCamera.hold_id, func.count()).group_by(HoldCamera.hold_id)).all())
    report.stats["active_holds"] = len(holds)
    for h in holds:
        if not h.reference.strip():
            report.violations.append(Finding("S1", f"hold {h.id} has no case, docket or request number"))
        if not cams.get(h.id):
            report.violations.append(Finding("S1", f"hold {h.id} covers no camera"))
        if h.provisional:
            req = requests.get(h.storage_request_id) if h.storage_request_id else None
            if req is None:
                report.violations.append(Finding("S2", f"provisional hold {h.id} has no storage request"))
            elif req.status not in PENDING_STATES:
                report.violations.append(
                    Finding("S2", f"provisional hold {h.id} outlived storage request {req.number} ({req.status})")
                )
        else:
            state = decisions.hold_review(h.review_due_at, now)
            if state is decisions.HoldReview.LAPSED:
                report.warnings.append(Finding("S1", f"hold {h.id} is past its review date; the next sweep lapses it"))
            elif state is decisions.HoldReview.DUE_SOON:
                report.warnings.append(Finding("S1", f"hold {h.id} is due for review by {h.review_due_at:%Y-%m-%d}"))


def check_evidence(rt: Runtime, actor: Actor, report: ComplianceReport) -> None:
    with rt.db.session() as s:
        items = list(s.scalars(select(EvidenceItem)))
        requests = {r.id: r for r in s.scalars(select(StorageRequest))}
    report.stats["evidence_items"] = sum(1 for i in items if i.status == EvidenceStatus.PRESERVED)
    for item in items:
        req = requests.get(item.storage_request_id) if item.storage_request_id else None
        if req is None:
            report.violations.append(Finding("S2", f"evidence item {item.number} has no storage request"))
        elif req.status not in (RequestStatus.APPROVED, RequestStatus.FULFILLED):
            report.violations.append(
                Finding(
                    "S2", f"evidence item {item.number}: its storage request {req.number} is {req.status}, not approved"
                )
            )
        if not item.case_number.strip():
            report.violations.append(Finding("S3", f"evidence item {item.number} has no case number"))
    files = 0
    for result in verify_all(rt, actor):
        files += result.files_checked
        report.violations.extend(Finding("S3", p) for p in result.problems)
    report.stats["evidence_files_verified"] = files
    evidence = rt.settings.evidence_path.resolve()
    recordings = rt.settings.recordings_path.resolve()
    if evidence == recordings or recordings in evidence.parents:
        report.violations.append(Finding("S3", f"the evidence store {evidence} lies inside the recordings root"))


def check_pending_deletes(rt: Runtime, now: datetime, report: ComplianceReport) -> None:
    with rt.db.session() as s:
        count, oldest = s.execute(select(func.count(PendingDelete.id), func.min(PendingDelete.created_at))).one()
    if count:
        report.warnings.append(
            Finding("S1", f"{count} deletion(s) in flight since {oldest}; the next sweep or reconcile finishes them")
        )


def check_audit(rt: Runtime, report: ComplianceReport) -> None:
    result = rt.audit.verify(rt.audit_public_key_path.read_bytes())
    report.stats["audit_events_verified"] = result.events_checked
    if not result.ok:
        report.violations.append(Finding("M1", f"audit trail broken at seq {result.first_bad_seq}: {result.reason}"))


FILE_ACCESS = "CJIS-5.5.2"


def check_file_modes(rt: Runtime, report: ComplianceReport) -> None:
    settings = rt.settings
    roots = [settings.data_dir, settings.keys_dir, settings.recordings_path, settings.evidence_path]
    found, count = too_open(roots)
    report.stats["files_too_open"] = count
    report.violations.extend(Finding(FILE_ACCESS, entry.describe()) for entry in found)
    if count > len(found):
        report.violations.append(Finding(FILE_ACCESS, f"... and {count - len(found)} more entries too open"))


def run_compliance_check(rt: Runtime, actor: Actor | None = None, *, now: datetime | None = None) -> ComplianceReport:
    actor = actor or Actor.system("compliance")
    now = now or rt.clock.now()
    report = ComplianceReport(checked_at=now)
    check_overdue_recordings(rt, now, report)
    check_holds(rt, now, report)
    check_evidence(rt, actor, report)
    check_pending_deletes(rt, now, report)
    check_audit(rt, report)
    check_file_modes(rt, report)
    rt.audit.record(
        "compliance.check",
        actor,
        Outcome.ALLOWED if report.ok else Outcome.ERROR,
        clauses=("S1", "S2", "S3", "M1", FILE_ACCESS),
        details={
            "ok": report.ok,
            "violations": [f"{f.clause}: {f.what}" for f in report.violations][:50],
            "warnings": len(report.warnings),
            **report.stats,
        },
    )
    return report
