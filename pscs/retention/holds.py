"""Holds (S1, FOI, litigation): footage of some cameras over a time range that retention and
disk pressure must not destroy.

A hold names its reason (criminal investigation, prosecution, pending public records
request, litigation or preservation order) and the case, docket or request number.  Its
owner re-affirms it every ``retention.hold_review_days``; a hold not re-affirmed lapses,
with a notice to the owner and the records commander.  Placing, changing, re-affirming,
releasing and lapsing are audited with clause S1.  Storage requests (S2) place
*provisional* holds that end with the request (:mod:`pscs.requests.service`).

Storage requests build on retention, not the other way round: the number a provisional
hold shows for its request comes from a lookup that the requests package registers at
start-up (:func:`name_requests_with`, called by :func:`pscs.startup.prepare`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pscs.audit.events import Actor
from pscs.auth.models import User
from pscs.auth.principal import Principal
from pscs.cameras.service import require_cameras
from pscs.clock import iso_ms, utcnow
from pscs.errors import InvalidInput, NotFound
from pscs.policy import decisions
from pscs.retention.models import HOLD_REASONS, REFERENCE_LABELS, Hold, HoldCamera, HoldStatus, Notice, NoticeKind
from pscs.runtime import Runtime
from pscs.storage.models import PendingDelete


@dataclass(frozen=True)
class HoldView:
    id: int
    reason: str
    reason_label: str
    reference_label: str
    reference: str
    description: str
    camera_ids: tuple[int, ...]
    start_ms: int
    end_ms: int
    status: str
    provisional: bool
    storage_request: str | None
    owner: str
    created_by: str
    created_at: datetime
    last_reviewed_at: datetime
    review_due_at: datetime | None
    review: str
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    at_risk_segments: int

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["camera_ids"] = list(self.camera_ids)
        d["start"] = iso_ms(self.start_ms)
        d["end"] = iso_ms(self.end_ms)
        for key in ("created_at", "last_reviewed_at", "review_due_at", "ended_at"):
            d[key] = d[key].isoformat() if d[key] else None
        return d


RequestNumber = Callable[[Session, int], str | None]  # a storage request's id -> its number
_request_number: RequestNumber | None = None


def name_requests_with(lookup: RequestNumber) -> None:
    """How a provisional hold names its storage request (registered by the requests package)."""
    global _request_number
    _request_number = lookup


def _storage_request_number(s: Session, storage_request_id: int | None) -> str | None:
    if storage_request_id is None:
        return None
    if _request_number is None:
        raise RuntimeError("no storage-request lookup registered: call pscs.startup.prepare() at start-up")
    return _request_number(s, storage_request_id)


def _view(s: Session, hold: Hold, now: datetime | None = None) -> HoldView:
    cameras = tuple(sorted(s.scalars(select(HoldCamera.camera_id).where(HoldCamera.hold_id == hold.id))))
    number = _storage_request_number(s, hold.storage_request_id)
    review = (
        decisions.hold_review(hold.review_due_at, now or utcnow()) if hold.status == HoldStatus.ACTIVE else hold.status
    )
    return HoldView(
        hold.id,
        hold.reason,
        HOLD_REASONS.get(hold.reason, hold.reason),
        REFERENCE_LABELS.get(hold.reason, "reference"),
        hold.reference,
        hold.description,
        cameras,
        hold.start_ms,
        hold.end_ms,
        hold.status,
        hold.provisional,
        number,
        hold.owner_username,
        hold.created_by,
        hold.created_at,
        hold.last_reviewed_at,
        hold.review_due_at,
        str(review),
        hold.ended_at,
        hold.ended_by,
        hold.end_reason,
        hold.at_risk_segments,
    )


def _check_fields(s: Session, camera_ids: set[int], start_ms: int, end_ms: int, reason: str, reference: str) -> None:
    decision = decisions.valid_hold(reason, reference, start_ms, end_ms, frozenset(camera_ids), frozenset(HOLD_REASONS))
    if not decision.allowed:
        raise InvalidInput(decision.reason)
    require_cameras(s, camera_ids)


def _at_risk(s: Session, camera_ids: set[int], start_ms: int, end_ms: int) -> int:
    """Segments in the range that a deletion has already decided on (they may be gone)."""
    return len(
        s.scalars(
            select(PendingDelete.id).where(
                PendingDelete.camera_id.in_(camera_ids),
                PendingDelete.start_ms < end_ms,
                PendingDelete.end_ms > start_ms,
            )
        ).all()
    )


def insert_hold(
    s: Session,
    rt: Runtime,
    actor: Actor,
    *,
    camera_ids: set[int],
    start_ms: int,
    end_ms: int,
    reason: str,
    reference: str,
    description: str,
    now: datetime,
    storage_request_id: int | None = None,
) -> Hold:
    """Validate and add a hold inside the caller's write transaction (which also sees the
    deletions in flight for its range: see pscs.storage.protection)."""
    _check_fields(s, camera_ids, start_ms, end_ms, reason, reference)
    provisional = storage_request_id is not None
    hold = Hold(
        reason=reason,
        reference=reference.strip(),
        description=description.strip(),
        start_ms=start_ms,
        end_ms=end_ms,
        status=HoldStatus.ACTIVE,
        provisional=provisional,
        storage_request_id=storage_request_id,
        owner_username=actor.username,
        owner_id=actor.user_id,
        created_by=actor.username,
        created_at=now,
        last_reviewed_at=now,
        review_due_at=None if provisional else decisions.next_review_due(now, rt.profile),
        at_risk_segments=_at_risk(s, camera_ids, start_ms, end_ms),
    )
    s.add(hold)
    s.flush()
    s.add_all(HoldCamera(hold_id=hold.id, camera_id=c) for c in sorted(camera_ids))
    return hold


def place_hold(
    rt: Runtime,
    caller: Principal,
    *,
    camera_ids: list[int] | set[int],
    start_ms: int,
    end_ms: int,
    reason: str,
    reference: str,
    description: str = "",
    now: datetime | None = None,
) -> HoldView:
    now = now or rt.clock.now()
    actor = caller.actor
    decision = decisions.may_place_hold(caller.roles, rt.profile)
    if not decision.allowed:
        _denied(rt, actor, "hold.create", None, decision)
    with rt.db.write() as s:
        hold = insert_hold(
            s,
            rt,
            actor,
            camera_ids=set(camera_ids),
            start_ms=start_ms,
            end_ms=end_ms,
            reason=reason,
            reference=reference,
            description=description,
            now=now,
        )
        view = _view(s, hold, now)
    rt.audit.record(
        "hold.create", actor, object_type="hold", object_id=view.id, clauses=("S1",), details=_audit_details(view)
    )
    return view


def _audit_details(view: HoldView) -> dict[str, Any]:
    return {
        "reason": view.reason,
        "reference": view.reference,
        "cameras": list(view.camera_ids),
        "start_ms": view.start_ms,
        "end_ms": view.end_ms,
        "provisional": view.provisional,
        "storage_request": view.storage_request,
        "owner": view.owner,
        "review_due_at": view.review_due_at.isoformat() if view.review_due_at else None,
        "at_risk_segments": view.at_risk_segments,
    }


def _denied(rt: Runtime, actor: Actor, action: str, hold_id: int | None, decision: decisions.Decision) -> None:
    raise rt.audit.refusal(action, actor, decision, object_type="hold", object_id=hold_id)


def _load(s: Session, hold_id: int) -> Hold:
    hold = s.get(Hold, hold_id)
    if hold is None:
        raise NotFound(f"no hold {hold_id}")
    return hold


def get_hold(rt: Runtime, caller: Principal, hold_id: int) -> HoldView:
    """One hold; the reading is audited (M1)."""
    with rt.db.session() as s:
        view = _view(s, _load(s, hold_id))
    rt.audit.record("hold.read", caller.actor, object_type="hold", object_id=hold_id, clauses=("M1",))
    return view


def list_holds(
    rt: Runtime,
    caller: Principal,
    *,
    status: str | None = None,
    camera_id: int | None = None,
    owner: str | None = None,
) -> list[HoldView]:
    """Holds, newest first; the reading is audited, once for the whole list (M1)."""
    q = select(Hold).order_by(Hold.id.desc())
    if status:
        q = q.where(Hold.status == status)
    if owner:
        q = q.where(Hold.owner_username == owner)
    if camera_id is not None:
        q = q.where(Hold.id.in_(select(HoldCamera.hold_id).where(HoldCamera.camera_id == camera_id)))
    with rt.db.session() as s:
        now = rt.clock.now()
        views = [_view(s, h, now) for h in s.scalars(q)]
    filters = {"status": status, "camera_id": camera_id, "owner": owner}
    rt.audit.record(
        "hold.read",
        caller.actor,
        object_type="hold",
        clauses=("M1",),
        details={"listed": len(views)} | {k: v for k, v in filters.items() if v is not None},
    )
    return views


def _managed(rt: Runtime, caller: Principal, s: Session, hold_id: int, action: str) -> Hold:
    hold = _load(s, hold_id)
    decision = decisions.may_manage_hold(
        caller.username, caller.roles, hold.owner_username, hold.provisional, rt.profile
    )
    if not decision.allowed:
        s.rollback()
        _denied(rt, caller.actor, action, hold_id, decision)
    if hold.status != HoldStatus.ACTIVE:
        raise InvalidInput(f"hold {hold_id} is {hold.status}; place a new hold instead")
    return hold


def change_hold(
    rt: Runtime,
    caller: Principal,
    hold_id: int,
    *,
    reference: str | None = None,
    description: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    camera_ids: list[int] | set[int] | None = None,
    owner: str | None = None,
    now: datetime | None = None,
) -> HoldView:
    """Change an active hold; the audit event records the values before and after."""
    now = now or rt.clock.now()
    actor = caller.actor
    with rt.db.write() as s:
        hold = _managed(rt, caller, s, hold_id, "hold.change")
        before = _audit_details(_view(s, hold, now))
        cams = set(camera_ids) if camera_ids is not None else set(before["cameras"])
        new_start = hold.start_ms if start_ms is None else start_ms
        new_end = hold.end_ms if end_ms is None else end_ms
        new_ref = hold.reference if reference is None else reference
        _check_fields(s, cams, new_start, new_end, hold.reason, new_ref)
        if owner is not None and owner != hold.owner_username:
            user = s.scalar(select(User).where(User.username == owner))
            if user is None or user.disabled:
                raise InvalidInput(f"no active user {owner!r} to own the hold")
            if not decisions.may_place_hold(frozenset(user.role_names), rt.profile).allowed:
                raise InvalidInput(f"{owner} has no role that may hold footage")
            hold.owner_username, hold.owner_id = user.username, user.id
        hold.reference, hold.start_ms, hold.end_ms = new_ref.strip(), new_start, new_end
        if description is not None:
            hold.description = description.strip()
        if camera_ids is not None:
            s.execute(delete(HoldCamera).where(HoldCamera.hold_id == hold.id))
            s.add_all(HoldCamera(hold_id=hold.id, camera_id=c) for c in sorted(cams))
        hold.at_risk_segments = max(hold.at_risk_segments, _at_risk(s, cams, new_start, new_end))
        s.flush()
        view = _view(s, hold, now)
    rt.audit.record(
        "hold.change",
        actor,
        object_type="hold",
        object_id=hold_id,
        clauses=("S1",),
        details={"before": before, "after": _audit_details(view)},
    )
    return view


def reaffirm_hold(
    rt: Runtime, caller: Principal, hold_id: int, note: str = "", *, now: datetime | None = None
) -> HoldView:
    """S1 review: the owner confirms the hold is still needed; the next review is due in
    ``hold_review_days``."""
    now = now or rt.clock.now()
    actor = caller.actor
    with rt.db.write() as s:
        hold = _managed(rt, caller, s, hold_id, "hold.reaffirm")
        if actor.username != hold.owner_username:
            s.rollback()
            _denied(
                rt,
                actor,
                "hold.reaffirm",
                hold_id,
                decisions.Decision.deny(
                    "S1", "only the hold's owner re-affirms it (the records commander can reassign it)"
                ),
            )
        hold.last_reviewed_at = now
        hold.review_due_at = decisions.next_review_due(now, rt.profile)
        hold.reminder_sent_at = None
        view = _view(s, hold, now)
    rt.audit.record(
        "hold.reaffirm",
        actor,
        object_type="hold",
        object_id=hold_id,
        clauses=("S1",),
        details={"note": note[:500], "review_due_at": view.review_due_at.isoformat()},
    )
    return view


def release_hold(rt: Runtime, caller: Principal, hold_id: int, reason: str, *, now: datetime | None = None) -> HoldView:
    """End a hold: the footage it kept is then subject to retention again."""
    if not reason.strip():
        raise InvalidInput("say why the hold is released (e.g. the case was closed)")
    now = now or rt.clock.now()
    actor = caller.actor
    with rt.db.write() as s:
        hold = _managed(rt, caller, s, hold_id, "hold.release")
        _end(hold, HoldStatus.RELEASED, actor.username, reason, now)
        view = _view(s, hold, now)
    rt.audit.record(
        "hold.release",
        actor,
        object_type="hold",
        object_id=hold_id,
        clauses=("S1",),
        details={"reason": reason[:500], **_audit_details(view)},
    )
    return view


def _end(hold: Hold, status: HoldStatus, by: str, reason: str, now: datetime) -> None:
    hold.status = status
    hold.ended_at = now
    hold.ended_by = by
    hold.end_reason = reason.strip()[:500]


def end_provisional_hold(s: Session, storage_request_id: int, by: str, reason: str, now: datetime) -> int | None:
    """Inside the request's transaction: end the provisional hold of a decided request."""
    hold = s.scalar(select(Hold).where(Hold.storage_request_id == storage_request_id, Hold.status == HoldStatus.ACTIVE))
    if hold is None:
        return None
    _end(hold, HoldStatus.RELEASED, by, reason, now)
    return hold.id


# Review: reminders and lapses (run by the sweeper, every round) ---------------------------------
@dataclass(frozen=True)
class ReviewResult:
    lapsed: list[int]
    reminded: list[int]


def review_holds(rt: Runtime, *, now: datetime | None = None, actor: Actor | None = None) -> ReviewResult:
    """Lapse the holds whose review is overdue and remind the owners of those due soon; each
    sends a notice to the owner and the records commander and is audited."""
    now = now or rt.clock.now()
    actor = actor or Actor.system("retention")
    lapsed: list[tuple[int, dict[str, Any]]] = []
    reminded: list[int] = []
    with rt.db.write() as s:
        due = s.scalars(
            select(Hold).where(
                Hold.status == HoldStatus.ACTIVE, Hold.provisional.is_(False), Hold.review_due_at.is_not(None)
            )
        ).all()
        for hold in due:
            state = decisions.hold_review(hold.review_due_at, now)
            label = f"Hold {hold.id} ({HOLD_REASONS.get(hold.reason, hold.reason)}, {hold.reference})"
            if state is decisions.HoldReview.LAPSED:
                _end(
                    hold,
                    HoldStatus.LAPSED,
                    actor.username,
                    f"not re-affirmed by {hold.review_due_at:%Y-%m-%d} ({rt.profile.retention.hold_review_days}-day "
                    "review)",
                    now,
                )
                body = (
                    f"{label} was not re-affirmed by its owner by {hold.review_due_at:%Y-%m-%d %H:%M} UTC and "
                    "has lapsed. The footage it kept is subject to the retention schedule again (S1). If it is "
                    "still needed, place a new hold now."
                )
                _notify(s, hold, NoticeKind.HOLD_LAPSED, f"{label} has lapsed", body, now)
                lapsed.append(
                    (
                        hold.id,
                        {
                            "owner": hold.owner_username,
                            "reference": hold.reference,
                            "review_due_at": hold.review_due_at.isoformat(),
                        },
                    )
                )
            elif state is decisions.HoldReview.DUE_SOON and (
                hold.reminder_sent_at is None or hold.reminder_sent_at < hold.last_reviewed_at
            ):
                hold.reminder_sent_at = now
                body = (
                    f"{label} must be re-affirmed by its owner by {hold.review_due_at:%Y-%m-%d %H:%M} UTC, "
                    "or it lapses and the footage it keeps is destroyed on the retention schedule (S1)."
                )
                _notify(s, hold, NoticeKind.HOLD_REVIEW_DUE, f"{label}: review due", body, now)
                reminded.append(hold.id)
    for hold_id, details in lapsed:
        rt.audit.record(
            "hold.lapse",
            actor,
            object_type="hold",
            object_id=hold_id,
            clauses=("S1",),
            details=details | {"notified": [details["owner"], "role:records_commander"]},
        )
    for hold_id in reminded:
        rt.audit.record("hold.review_reminder", actor, object_type="hold", object_id=hold_id, clauses=("S1",))
    return ReviewResult([h for h, _ in lapsed], reminded)


def _notify(s: Session, hold: Hold, kind: NoticeKind, subject: str, body: str, now: datetime) -> None:
    common = {
        "kind": kind,
        "subject": subject[:300],
        "body": body,
        "object_type": "hold",
        "object_id": str(hold.id),
        "created_at": now,
    }
    s.add(Notice(recipient=hold.owner_username, **common))
    s.add(Notice(recipient_role="records_commander", **common))


def notices_for(rt: Runtime, username: str, roles: frozenset[str], *, unread_only: bool = False) -> list[Notice]:
    q = select(Notice).where((Notice.recipient == username) | Notice.recipient_role.in_(roles or {""}))
    if unread_only:
        q = q.where(Notice.read_at.is_(None))
    with rt.db.session() as s:
        return list(s.scalars(q.order_by(Notice.id.desc()).limit(200)))
