"""Storage requests (S2), decided in the Records Service Division Commander's log.

    submitted --approve--> approved --intake--> fulfilled     (footage now evidence, S3)
        \\--deny (with reason)--> denied

Filing a request places a provisional hold on its cameras and time range in the same
transaction, so nothing it names can expire while it is pending; the hold ends when the
request is denied or fulfilled.  Only the roles in ``approvals.storage_request`` decide,
never on their own request.  Nothing is preserved without an approved request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pscs.audit.events import Outcome
from pscs.auth.models import User
from pscs.auth.principal import Principal
from pscs.cameras.service import require_cameras
from pscs.clock import iso_ms, utc_to_ms
from pscs.errors import InvalidInput, NotFound
from pscs.evidence.models import EvidenceItem
from pscs.evidence.service import IntakeOrder, intake
from pscs.policy import decisions
from pscs.requests.models import RequestStatus, StorageRequest, StorageRequestCamera
from pscs.retention.holds import end_provisional_hold, insert_hold
from pscs.retention.models import HOLD_REASONS, Hold
from pscs.runtime import Runtime

ATTESTATION = (
    "I request that the images described above be stored. The information on this form is true and "
    "complete to the best of my knowledge, and the images are needed for the purpose stated."
)


@dataclass(frozen=True)
class RequestView:
    id: int
    number: str
    status: str
    requester: str
    requester_name: str
    unit: str
    case_number: str
    reason: str
    reason_label: str
    narrative: str
    camera_ids: tuple[int, ...]
    start_ms: int
    end_ms: int
    attestation_name: str
    submitted_at: datetime
    decided_by: str | None
    decided_by_name: str | None
    decided_at: datetime | None
    decision_reason: str | None
    fulfilled_at: datetime | None
    intake_error: str | None
    hold_id: int | None
    hold_status: str | None
    evidence_item_id: int | None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["camera_ids"] = list(self.camera_ids)
        d["start"] = iso_ms(self.start_ms)
        d["end"] = iso_ms(self.end_ms)
        for key in ("submitted_at", "decided_at", "fulfilled_at"):
            d[key] = d[key].isoformat() if d[key] else None
        return d


def _view(s: Session, r: StorageRequest) -> RequestView:
    cameras = tuple(
        sorted(s.scalars(select(StorageRequestCamera.camera_id).where(StorageRequestCamera.request_id == r.id)))
    )
    hold = s.execute(
        select(Hold.id, Hold.status).where(Hold.storage_request_id == r.id).order_by(Hold.id.desc())
    ).first()
    item = s.scalar(select(EvidenceItem.id).where(EvidenceItem.storage_request_id == r.id))
    return RequestView(
        r.id,
        r.number,
        r.status,
        r.requester_username,
        r.requester_name,
        r.unit,
        r.case_number,
        r.reason,
        HOLD_REASONS.get(r.reason, r.reason),
        r.narrative,
        cameras,
        r.start_ms,
        r.end_ms,
        r.attestation_name,
        r.submitted_at,
        r.decided_by,
        r.decided_by_name,
        r.decided_at,
        r.decision_reason,
        r.fulfilled_at,
        r.intake_error,
        hold[0] if hold else None,
        hold[1] if hold else None,
        item,
    )


def _deny(rt: Runtime, caller: Principal, action: str, number: str | None, decision: decisions.Decision) -> None:
    raise rt.audit.refusal(action, caller.actor, decision, object_type="storage_request", object_id=number)


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def file_request(
    rt: Runtime,
    caller: Principal,
    *,
    unit: str,
    case_number: str,
    camera_ids: list[int] | set[int],
    start_ms: int,
    end_ms: int,
    reason: str,
    narrative: str,
    attestation_name: str,
    now: datetime | None = None,
) -> RequestView:
    """Submit the form: numbered in the log, with a provisional hold placed at once."""
    now = now or rt.clock.now()
    actor = caller.actor
    decision = decisions.may_file_storage_request(caller.roles, rt.profile)
    if not decision.allowed:
        _deny(rt, caller, "storage_request.submit", None, decision)
    for label, value in (("unit", unit), ("case number", case_number), ("reason for the request", narrative)):
        if not value.strip():
            raise InvalidInput(f"the form needs the {label}")
    if reason not in HOLD_REASONS:
        raise InvalidInput(f"the reason must be one of: {', '.join(HOLD_REASONS)}")
    if start_ms >= utc_to_ms(now):
        raise InvalidInput("the time range must start in the past (footage that exists)")
    if end_ms <= start_ms:
        raise InvalidInput("the time range must end after it starts")
    with rt.db.session() as s:
        user = s.get(User, actor.user_id) if actor.user_id is not None else None
        require_cameras(s, camera_ids)
    if user is None:
        _deny(
            rt,
            caller,
            "storage_request.submit",
            None,
            decisions.Decision.deny("S2", "a storage request is filed by a signed-in user"),
        )
    if _norm(attestation_name) != _norm(user.full_name):
        raise InvalidInput(f"type your full name ({user.full_name}) to sign the attestation")

    for _attempt in range(5):
        try:
            with rt.db.write() as s:
                year = now.year
                rt.db.take_turns(s, f"storage_request.number.{year}")
                seq = (s.scalar(select(func.max(StorageRequest.seq)).where(StorageRequest.year == year)) or 0) + 1
                req = StorageRequest(
                    year=year,
                    seq=seq,
                    number=f"{year}-{seq:04d}",
                    requester_username=user.username,
                    requester_id=user.id,
                    requester_name=user.full_name,
                    unit=unit.strip(),
                    case_number=case_number.strip(),
                    reason=reason,
                    narrative=narrative.strip(),
                    start_ms=start_ms,
                    end_ms=end_ms,
                    attestation_name=attestation_name.strip(),
                    submitted_at=now,
                    status=RequestStatus.SUBMITTED,
                )
                s.add(req)
                s.flush()
                s.add_all(StorageRequestCamera(request_id=req.id, camera_id=c) for c in sorted(set(camera_ids)))
                hold = insert_hold(
                    s,
                    rt,
                    actor,
                    camera_ids=set(camera_ids),
                    start_ms=start_ms,
                    end_ms=end_ms,
                    reason=reason,
                    reference=case_number,
                    description=f"Provisional hold for storage request {req.number}",
                    now=now,
                    storage_request_id=req.id,
                )
                s.flush()
                view = _view(s, req)
                hold_id, at_risk = hold.id, hold.at_risk_segments
            break
        except IntegrityError:
            continue  # another request took the number: take the next
    else:
        raise InvalidInput("could not number the request; try again")
    rt.audit.record(
        "storage_request.submit",
        actor,
        object_type="storage_request",
        object_id=view.number,
        clauses=("S2",),
        details=_summary(view),
    )
    rt.audit.record(
        "hold.create",
        actor,
        object_type="hold",
        object_id=hold_id,
        clauses=("S1", "S2"),
        details={
            "provisional": True,
            "storage_request": view.number,
            "cameras": list(view.camera_ids),
            "start_ms": start_ms,
            "end_ms": end_ms,
            "at_risk_segments": at_risk,
        },
    )
    return view


def _summary(view: RequestView) -> dict[str, Any]:
    return {
        "number": view.number,
        "requester": view.requester,
        "unit": view.unit,
        "case_number": view.case_number,
        "reason": view.reason,
        "cameras": list(view.camera_ids),
        "start": iso_ms(view.start_ms),
        "end": iso_ms(view.end_ms),
    }


def _by_number(s: Session, number: str, *, lock: bool = False) -> StorageRequest:
    """The request; with ``lock``, its row is locked until the write ends (the status read
    decides what is written)."""
    q = select(StorageRequest).where(StorageRequest.number == number)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)
    req = s.scalar(q)
    if req is None:
        raise NotFound(f"no storage request {number}")
    return req


def _get(rt: Runtime, number: str) -> RequestView:
    with rt.db.session() as s:
        return _view(s, _by_number(s, number))


def get_request(rt: Runtime, caller: Principal, number: str) -> RequestView:
    """One request, for its requester, the log's readers and the system (CLI, compliance)."""
    view = _get(rt, number)
    decision = decisions.may_see_request(
        caller.username, caller.roles, view.requester, rt.profile, system=caller.is_system
    )
    if not decision.allowed:
        _deny(rt, caller, "storage_request.read", number, decision)
    rt.audit.record(
        "storage_request.read", caller.actor, object_type="storage_request", object_id=number, clauses=("M1",)
    )
    return view


def list_requests(
    rt: Runtime, caller: Principal, *, status: str | None = None, year: int | None = None
) -> list[RequestView]:
    """The log (for the records commander and auditors); anyone else sees their own requests.
    The reading is audited, once for the whole list (M1)."""
    views = requests_seen_by(rt, caller, status=status, year=year)
    filters = {"status": status, "year": year}
    rt.audit.record(
        "storage_request.read",
        caller.actor,
        object_type="storage_request",
        clauses=("M1",),
        details={"listed": len(views)} | {k: v for k, v in filters.items() if v},
    )
    return views


def requests_seen_by(
    rt: Runtime, caller: Principal, *, status: str | None = None, year: int | None = None
) -> list[RequestView]:
    """What :func:`list_requests` shows, unaudited: for a service that audits its own use of it."""
    q = select(StorageRequest).order_by(StorageRequest.year.desc(), StorageRequest.seq.desc())
    if status:
        q = q.where(StorageRequest.status == status)
    if year:
        q = q.where(StorageRequest.year == year)
    if not decisions.reads_whole_request_log(caller.roles, rt.profile, system=caller.is_system):
        q = q.where(StorageRequest.requester_username == caller.username)
    with rt.db.session() as s:
        return [_view(s, r) for r in s.scalars(q)]


def may_decide(rt: Runtime, caller: Principal, view: RequestView) -> decisions.Decision:
    return decisions.may_decide_request(caller.username, caller.roles, view.requester, view.status, rt.profile)


def decide_request(
    rt: Runtime, caller: Principal, number: str, *, approve: bool, reason: str = "", now: datetime | None = None
) -> RequestView:
    """The records commander's decision.  Approval takes the footage into the evidence store
    at once (the request is then fulfilled); denial needs a reason and ends the hold."""
    now = now or rt.clock.now()
    actor = caller.actor
    current = _get(rt, number)
    decision = may_decide(rt, caller, current)
    if not decision.allowed:
        _deny(rt, caller, "storage_request.approve" if approve else "storage_request.deny", number, decision)
    if not approve and not reason.strip():
        raise InvalidInput("a denial needs its reason")
    with rt.db.session() as s:
        decider = s.get(User, actor.user_id)
        decider_name = decider.full_name if decider else actor.username
    with rt.db.write() as s:
        req = _by_number(s, number, lock=True)
        if req.status != RequestStatus.SUBMITTED:  # decided concurrently
            raise InvalidInput(f"storage request {number} is already {req.status}")
        req.status = RequestStatus.APPROVED if approve else RequestStatus.DENIED
        req.decided_by, req.decided_by_name, req.decided_at = actor.username, decider_name, now
        req.decision_reason = reason.strip() or None
        hold_id = None
        if not approve:
            hold_id = end_provisional_hold(s, req.id, actor.username, f"storage request {number} denied", now)
        request_id = req.id
    rt.audit.record(
        "storage_request.approve" if approve else "storage_request.deny",
        actor,
        object_type="storage_request",
        object_id=number,
        clauses=("S2",),
        details={"reason": reason.strip()[:1000], "requester": current.requester},
    )
    if hold_id is not None:
        rt.audit.record(
            "hold.release",
            actor,
            object_type="hold",
            object_id=hold_id,
            clauses=("S1", "S2"),
            details={"reason": f"storage request {number} denied", "provisional": True},
        )
    if approve:
        return fulfil_request(rt, caller, number, now=now, request_id=request_id)
    return _get(rt, number)


def fulfil_request(
    rt: Runtime, caller: Principal, number: str, *, now: datetime | None = None, request_id: int | None = None
) -> RequestView:
    """Take an approved request's footage into the evidence store (S3) and mark it fulfilled.
    A failure leaves the request approved, its hold in place, and the error on the request
    (``pscs request fulfil`` retries)."""
    now = now or rt.clock.now()
    actor = caller.actor
    with rt.db.session() as s:
        req = _by_number(s, number)
        if req.status != RequestStatus.APPROVED:
            raise InvalidInput(f"storage request {number} is {req.status}, not approved")
        order = IntakeOrder(
            request_id=req.id,
            number=req.number,
            case_number=req.case_number,
            narrative=req.narrative,
            start_ms=req.start_ms,
            end_ms=req.end_ms,
            camera_ids=tuple(
                s.scalars(select(StorageRequestCamera.camera_id).where(StorageRequestCamera.request_id == req.id))
            ),
        )
    try:
        item = intake(rt, actor, order)
    except OSError as exc:
        with rt.db.write() as s:
            _by_number(s, number).intake_error = f"{type(exc).__name__}: {exc}"[:500]
        rt.audit.record(
            "storage_request.fulfil",
            actor,
            Outcome.ERROR,
            object_type="storage_request",
            object_id=number,
            clauses=("S2", "S3"),
            details={"error": str(exc)[:500]},
        )
        raise
    with rt.db.write() as s:
        req = _by_number(s, number, lock=True)
        req.status, req.fulfilled_at, req.intake_error = RequestStatus.FULFILLED, now, None
        hold_id = end_provisional_hold(
            s,
            req.id,
            actor.username,
            f"storage request {number} fulfilled: footage preserved as evidence {item.number}",
            now,
        )
    rt.audit.record(
        "storage_request.fulfil",
        actor,
        object_type="storage_request",
        object_id=number,
        clauses=("S2", "S3"),
        details={"evidence_item": item.number, "files": item.files},
    )
    if hold_id is not None:
        rt.audit.record(
            "hold.release",
            actor,
            object_type="hold",
            object_id=hold_id,
            clauses=("S1", "S2"),
            details={"reason": f"fulfilled as evidence {item.number}", "provisional": True},
        )
    return _get(rt, number)
