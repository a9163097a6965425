"""Purpose sessions (U1) and designated crime locations (U2).

No video leaves pscs outside a purpose session: the egress service
(:mod:`pscs.video.egress`) asks for the caller's session before every view and again
while it plays.  A purpose session
belongs to the sign-in session that opened it; at most one is open per sign-in session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from pscs.auth.principal import Principal
from pscs.cameras.models import Camera
from pscs.cameras.service import require_cameras
from pscs.clock import utcnow
from pscs.errors import InvalidInput, NotFound
from pscs.policy import decisions
from pscs.purposes.models import DesignatedCamera, LocationDesignation, PurposeSession
from pscs.runtime import Runtime


@dataclass(frozen=True)
class PurposeView:
    id: int
    purpose_id: str
    label: str
    clause: str
    case_number: str | None
    incident_number: str | None
    designation_id: int | None
    designation_location: str | None
    designated_cameras: frozenset[int] | None
    designation_until: datetime | None
    opened_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    end_reason: str | None

    @property
    def state(self) -> decisions.PurposeState:
        return decisions.PurposeState(
            self.clause, self.expires_at, self.ended_at is not None, self.designated_cameras, self.designation_until
        )

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        return {
            "id": self.id,
            "purpose": self.purpose_id,
            "label": self.label,
            "clause": self.clause,
            "case_number": self.case_number,
            "incident_number": self.incident_number,
            "designation_id": self.designation_id,
            "designation_location": self.designation_location,
            "designated_cameras": sorted(self.designated_cameras) if self.designated_cameras is not None else None,
            "opened_at": self.opened_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "seconds_left": max(0, int((self.expires_at - now).total_seconds())),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "end_reason": self.end_reason,
        }


@dataclass(frozen=True)
class DesignationView:
    id: int
    location: str
    reason: str
    designated_by: str
    created_at: datetime
    valid_until: datetime
    camera_ids: frozenset[int]
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    camera_names: dict[int, str] = field(default_factory=dict)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.valid_until

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        return {
            "id": self.id,
            "location": self.location,
            "reason": self.reason,
            "designated_by": self.designated_by,
            "created_at": self.created_at.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "camera_ids": sorted(self.camera_ids),
            "cameras": [{"id": c, "name": self.camera_names.get(c, str(c))} for c in sorted(self.camera_ids)],
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
            "active": self.active(now),
        }


def _designation_view(d: LocationDesignation, names: dict[int, str] | None = None) -> DesignationView:
    return DesignationView(
        d.id,
        d.location,
        d.reason,
        d.designated_by,
        d.created_at,
        d.valid_until,
        d.camera_ids,
        d.revoked_at,
        d.revoked_by,
        d.revoke_reason,
        names or {},
    )


def _purpose_view(p: PurposeSession, d: LocationDesignation | None) -> PurposeView:
    until = None
    if d is not None:
        until = d.valid_until if d.revoked_at is None else min(d.valid_until, d.revoked_at)
    return PurposeView(
        p.id,
        p.purpose_id,
        p.purpose_label,
        p.clause,
        p.case_number,
        p.incident_number,
        p.designation_id,
        d.location if d else None,
        d.camera_ids if d else None,
        until,
        p.opened_at,
        p.expires_at,
        p.ended_at,
        p.end_reason,
    )


def _clean(value: str | None, name: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return value or None


# Purpose sessions ----------------------------------------------------------------------------
def purposes(rt: Runtime) -> list[dict[str, Any]]:
    return [p.model_dump() for p in rt.profile.purposes]


def open_session(
    rt: Runtime,
    caller: Principal,
    *,
    purpose_id: str,
    case_number: str | None = None,
    incident_number: str | None = None,
    designation_id: int | None = None,
    note: str | None = None,
) -> PurposeView:
    """Open a purpose session for the caller's sign-in session (ending any open one)."""
    case_number = _clean(case_number, "case number", 100)
    incident_number = _clean(incident_number, "incident number", 100)
    note = _clean(note, "note", 500)
    purpose = rt.profile.purpose(purpose_id)
    now = rt.clock.now()
    designation: LocationDesignation | None = None
    if purpose is not None and purpose.requires_designated_location:
        if designation_id is None:
            designation_active = False
        else:
            with rt.db.session() as s:
                designation = s.get(LocationDesignation, designation_id)
            designation_active = designation is not None and _designation_view(designation).active(now)
    else:
        designation_active = None
        designation_id = None  # only the crime-location purpose is tied to a designation
    decision = decisions.may_open_purpose(
        caller.roles,
        purpose_id,
        rt.profile,
        case_number=case_number,
        incident_number=incident_number,
        designation_active=designation_active,
    )
    details = {
        "purpose": purpose_id,
        "case_number": case_number,
        "incident_number": incident_number,
        "designation_id": designation_id,
        "note": note,
    }
    if not decision.allowed:
        raise rt.audit.refusal(
            "purpose.open",
            caller.actor,
            decision,
            object_type="purpose_session",
            details=details,
        )
    assert purpose is not None
    _end_open(rt, caller, "replaced by a new purpose", now)
    with rt.db.write() as s:
        row = PurposeSession(
            user_id=caller.user_id,
            username=caller.username,
            web_session_id=caller.web_session_id,
            purpose_id=purpose.id,
            purpose_label=purpose.label,
            clause=purpose.clause,
            case_number=case_number,
            incident_number=incident_number,
            designation_id=designation_id,
            note=note,
            opened_at=now,
            expires_at=now + timedelta(minutes=rt.profile.purpose_session_minutes),
        )
        s.add(row)
        s.flush()
        view = _purpose_view(row, designation)
    rt.audit.record(
        "purpose.open",
        caller.actor,
        object_type="purpose_session",
        object_id=view.id,
        clauses=(decision.clause,),
        purpose_session_id=view.id,
        details=details | {"label": purpose.label, "expires_at": view.expires_at.isoformat()},
    )
    return view


def _end_open(rt: Runtime, caller: Principal, reason: str, now: datetime) -> list[int]:
    """End the caller's open purpose sessions (an expired one is closed as "expired") and
    audit each that was still running; returns their ids."""
    with rt.db.write() as s:
        rows = list(
            s.scalars(
                select(PurposeSession).where(
                    PurposeSession.web_session_id == caller.web_session_id, PurposeSession.ended_at.is_(None)
                )
            )
        )
        ended = []
        for row in rows:
            row.ended_at = min(now, row.expires_at)
            row.end_reason = reason if now < row.expires_at else "expired"
            if now < row.expires_at:
                ended.append(row.id)
    for old in ended:
        rt.audit.record(
            "purpose.end",
            caller.actor,
            object_type="purpose_session",
            object_id=old,
            clauses=("U1",),
            purpose_session_id=old,
            details={"reason": reason},
        )
    return ended


def current_session(rt: Runtime, web_session_id: int, now: datetime | None = None) -> PurposeView | None:
    """The open, unexpired purpose session of a sign-in session, if any."""
    now = now or rt.clock.now()
    with rt.db.session() as s:
        row = s.scalar(
            select(PurposeSession)
            .where(
                PurposeSession.web_session_id == web_session_id,
                PurposeSession.ended_at.is_(None),
                PurposeSession.expires_at > now,
            )
            .order_by(PurposeSession.id.desc())
            .limit(1)
        )
        if row is None:
            return None
        designation = s.get(LocationDesignation, row.designation_id) if row.designation_id else None
        return _purpose_view(row, designation)


def get_session(rt: Runtime, purpose_session_id: int) -> PurposeView:
    with rt.db.session() as s:
        row = s.get(PurposeSession, purpose_session_id)
        if row is None:
            raise NotFound(f"no purpose session {purpose_session_id}")
        designation = s.get(LocationDesignation, row.designation_id) if row.designation_id else None
        return _purpose_view(row, designation)


def end_session(rt: Runtime, caller: Principal, reason: str = "ended by the user") -> int | None:
    """End the caller's open purpose session early; returns its id (None if none was open)."""
    ended = _end_open(rt, caller, reason, rt.clock.now())
    return ended[0] if ended else None


# U2: designated locations ---------------------------------------------------------------------
def designate_location(
    rt: Runtime, caller: Principal, *, location: str, reason: str, camera_ids: list[int], valid_until: datetime
) -> DesignationView:
    decision = decisions.may_designate_location(caller.roles, rt.profile)
    details = {
        "location": location,
        "reason": reason,
        "camera_ids": sorted(set(camera_ids)),
        "valid_until": valid_until.isoformat() if valid_until.tzinfo else str(valid_until),
    }
    if not decision.allowed:
        raise rt.audit.refusal(
            "designation.create",
            caller.actor,
            decision,
            object_type="designation",
            details=details,
        )
    location = _clean(location, "location", 300) or ""
    reason = _clean(reason, "reason", 1000) or ""
    if not location:
        raise InvalidInput("say which location is designated")
    if not reason:
        raise InvalidInput("say why the location is designated (known or suspected criminal activity)")
    if not camera_ids:
        raise InvalidInput("choose at least one camera that sees the location")
    if valid_until.tzinfo is None:
        raise InvalidInput("valid_until needs a time zone (UTC)")
    now = rt.clock.now()
    if valid_until <= now:
        raise InvalidInput("valid_until must be in the future")
    with rt.db.write() as s:
        require_cameras(s, camera_ids)
        row = LocationDesignation(
            location=location,
            reason=reason,
            designated_by_id=caller.user_id,
            designated_by=caller.username,
            created_at=now,
            valid_until=valid_until,
            cameras=[DesignatedCamera(camera_id=c) for c in sorted(set(camera_ids))],
        )
        s.add(row)
        s.flush()
        view = _designation_view(row)
    rt.audit.record(
        "designation.create",
        caller.actor,
        object_type="designation",
        object_id=view.id,
        clauses=("U2",),
        details=details,
    )
    return view


def revoke_designation(rt: Runtime, caller: Principal, designation_id: int, reason: str) -> DesignationView:
    decision = decisions.may_designate_location(caller.roles, rt.profile)
    if not decision.allowed:
        raise rt.audit.refusal(
            "designation.revoke",
            caller.actor,
            decision,
            object_type="designation",
            object_id=designation_id,
        )
    reason = _clean(reason, "reason", 500) or ""
    if not reason:
        raise InvalidInput("say why the designation is revoked")
    with rt.db.write() as s:
        row = s.get(LocationDesignation, designation_id)
        if row is None:
            raise NotFound(f"no designation {designation_id}")
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by, row.revoke_reason = rt.clock.now(), caller.username, reason
        s.flush()
        view = _designation_view(row)
    rt.audit.record(
        "designation.revoke",
        caller.actor,
        object_type="designation",
        object_id=designation_id,
        clauses=("U2",),
        details={"reason": reason},
    )
    return view


def list_designations(rt: Runtime, *, active_only: bool = False) -> list[DesignationView]:
    now = rt.clock.now()
    with rt.db.session() as s:
        names = {cid: name for cid, name in s.execute(select(Camera.id, Camera.name))}
        rows = s.scalars(select(LocationDesignation).order_by(LocationDesignation.id.desc())).all()
        views = [_designation_view(d, names) for d in rows]
    return [v for v in views if v.active(now)] if active_only else views
