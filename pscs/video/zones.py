"""Privacy zones (U4): proposals, approvals, versions, and the zones in force; mask lifts.

A change to a camera's zones is a new *version*: an administrator proposes it, a second
person with the approving role approves (or rejects) it.  The newest approved version is
in force, and footage is always masked with the zones in force *when it is shown* (live,
playback, snapshot, export), not with those of when it was recorded.

A mask lift (U4) lets one person see one camera unmasked: it needs a warrant reference,
the approval of a second authorised person, and ends by itself after a limited time.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from pscs.auth.principal import Principal
from pscs.cameras.models import Camera
from pscs.clock import utcnow
from pscs.errors import Conflict, InvalidInput, NotFound
from pscs.policy import decisions
from pscs.runtime import Runtime
from pscs.video.models import MaskLift, MaskLiftStatus, PrivacyZoneVersion, ZoneSpace, ZoneVersionStatus

MAX_ZONES = 32
MAX_POINTS = 64
SPACES = tuple(ZoneSpace)

Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ZoneSet:
    """The zones in force for a camera.  ``key`` identifies the version (masks are cached
    per key and picture size)."""

    key: str
    version_id: int
    version: int
    space: str
    polygons: tuple[Polygon, ...]

    @property
    def empty(self) -> bool:
        return not self.polygons

    def image_polygons(self) -> tuple[Polygon, ...]:
        """The polygons in normalised picture coordinates.

        PTZ zones (``space == "ptz"``) live in pan/tilt space and must be projected for the
        camera's current position; until the PTZ work provides positions, the whole picture
        is masked (fail closed: unmasked private pixels must never leave)."""
        if self.space == ZoneSpace.IMAGE:
            return self.polygons
        return (((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)),) if self.polygons else ()


def validate_zones(zones: Any, space: str = ZoneSpace.IMAGE) -> list[dict[str, Any]]:
    if space not in SPACES:
        raise InvalidInput(f"space must be one of {', '.join(SPACES)}")
    if not isinstance(zones, list):
        raise InvalidInput("zones must be a list of polygons")
    if len(zones) > MAX_ZONES:
        raise InvalidInput(f"at most {MAX_ZONES} zones per camera")
    clean = []
    for i, zone in enumerate(zones, 1):
        if not isinstance(zone, dict):
            raise InvalidInput(f"zone {i}: must be an object with points")
        points = zone.get("points")
        if not isinstance(points, list) or not 3 <= len(points) <= MAX_POINTS:
            raise InvalidInput(f"zone {i}: a polygon needs 3 to {MAX_POINTS} points")
        out = []
        for p in points:
            if not (isinstance(p, list | tuple) and len(p) == 2):
                raise InvalidInput(f"zone {i}: each point is [x, y]")
            x, y = p
            if not all(isinstance(v, int | float) and math.isfinite(v) for v in (x, y)):
                raise InvalidInput(f"zone {i}: coordinates must be numbers")
            if space == ZoneSpace.IMAGE and not (0 <= x <= 1 and 0 <= y <= 1):
                raise InvalidInput(f"zone {i}: image coordinates are normalised, 0 to 1")
            out.append([round(float(x), 6), round(float(y), 6)])
        label = str(zone.get("label") or f"zone {i}")[:100]
        clean.append({"label": label, "points": out})
    return clean


def _version_dict(v: PrivacyZoneVersion) -> dict[str, Any]:
    return {
        "id": v.id,
        "camera_id": v.camera_id,
        "version": v.version,
        "space": v.space,
        "zones": v.zones,
        "note": v.note,
        "status": v.status,
        "proposed_by": v.proposed_by,
        "proposed_at": v.proposed_at.isoformat(),
        "decided_by": v.decided_by,
        "decided_at": v.decided_at.isoformat() if v.decided_at else None,
        "decision_note": v.decision_note,
        "superseded_at": v.superseded_at.isoformat() if v.superseded_at else None,
    }


def _camera_exists(s: Any, camera_id: int, *, lock: bool = False) -> None:
    """With ``lock``, the camera's row is locked until the write ends: changes to one
    camera's zone versions (numbering, approval) are then decided one at a time."""
    if s.get(Camera, camera_id, with_for_update=lock, populate_existing=lock) is None:
        raise NotFound(f"no camera {camera_id}")


def propose_zones(
    rt: Runtime, caller: Principal, camera_id: int, zones: Any, *, note: str | None = None, space: str = ZoneSpace.IMAGE
) -> dict[str, Any]:
    decision = decisions.may_propose_zones(caller.roles, rt.profile)
    if not decision.allowed:
        raise rt.audit.refusal(
            "zones.propose",
            caller.actor,
            decision,
            object_type="camera",
            object_id=camera_id,
        )
    clean = validate_zones(zones, space)
    with rt.db.write() as s:
        _camera_exists(s, camera_id, lock=True)
        latest = (
            s.scalar(select(func.max(PrivacyZoneVersion.version)).where(PrivacyZoneVersion.camera_id == camera_id)) or 0
        )
        row = PrivacyZoneVersion(
            camera_id=camera_id,
            version=latest + 1,
            space=space,
            zones=clean,
            note=(note or "").strip()[:500] or None,
            status=ZoneVersionStatus.PROPOSED,
            proposed_by_id=caller.user_id,
            proposed_by=caller.username,
            proposed_at=rt.clock.now(),
        )
        s.add(row)
        s.flush()
        result = _version_dict(row)
    rt.audit.record(
        "zones.propose",
        caller.actor,
        object_type="privacy_zone_version",
        object_id=result["id"],
        clauses=("U4",),
        details={
            "camera_id": camera_id,
            "version": result["version"],
            "space": space,
            "zones": clean,
            "note": result["note"],
        },
    )
    return result


def decide_zones(
    rt: Runtime, caller: Principal, version_id: int, *, approve: bool, note: str | None = None
) -> dict[str, Any]:
    action = "zones.approve" if approve else "zones.reject"
    with rt.db.session() as s:
        row = s.get(PrivacyZoneVersion, version_id)
        if row is None:
            raise NotFound(f"no privacy-zone version {version_id}")
        proposer_id, proposer, camera_id, status = row.proposed_by_id, row.proposed_by, row.camera_id, row.status
    decision = decisions.may_decide_zones(caller.roles, proposer_id, caller.user_id, rt.profile)
    if not decision.allowed:
        raise rt.audit.refusal(
            action,
            caller.actor,
            decision,
            object_type="privacy_zone_version",
            object_id=version_id,
            details={"camera_id": camera_id},
        )
    if status != ZoneVersionStatus.PROPOSED:
        raise Conflict(f"version {version_id} is {status}, not awaiting a decision")
    now = rt.clock.now()
    with rt.db.write() as s:
        _camera_exists(s, camera_id, lock=True)
        row = s.get(PrivacyZoneVersion, version_id, with_for_update=True, populate_existing=True)
        assert row is not None
        if row.status != ZoneVersionStatus.PROPOSED:
            raise Conflict(f"version {version_id} is {row.status}, not awaiting a decision")
        superseded = []
        if approve:
            for old in s.scalars(
                select(PrivacyZoneVersion).where(
                    PrivacyZoneVersion.camera_id == row.camera_id,
                    PrivacyZoneVersion.status == ZoneVersionStatus.APPROVED,
                )
            ):
                old.status, old.superseded_at = ZoneVersionStatus.SUPERSEDED, now
                superseded.append(old.version)
        row.status = ZoneVersionStatus.APPROVED if approve else ZoneVersionStatus.REJECTED
        row.decided_by_id, row.decided_by, row.decided_at = caller.user_id, caller.username, now
        row.decision_note = (note or "").strip()[:500] or None
        s.flush()
        result = _version_dict(row)
    rt.audit.record(
        action,
        caller.actor,
        object_type="privacy_zone_version",
        object_id=version_id,
        clauses=("U4",),
        details={
            "camera_id": camera_id,
            "version": result["version"],
            "proposed_by": proposer,
            "decided_by": caller.username,
            "superseded_versions": superseded,
            "note": result["decision_note"],
        },
    )
    ZONES.invalidate(camera_id)
    return result


def list_versions(rt: Runtime, camera_id: int | None = None, status: str | None = None) -> list[dict[str, Any]]:
    q = select(PrivacyZoneVersion).order_by(PrivacyZoneVersion.camera_id, PrivacyZoneVersion.version.desc())
    if camera_id is not None:
        q = q.where(PrivacyZoneVersion.camera_id == camera_id)
    if status is not None:
        q = q.where(PrivacyZoneVersion.status == status)
    with rt.db.session() as s:
        return [_version_dict(v) for v in s.scalars(q)]


def load_zones_in_force(rt: Runtime, camera_id: int) -> ZoneSet | None:
    """The newest approved version's zones, or None when the camera has no zones."""
    with rt.db.session() as s:
        row = s.scalar(
            select(PrivacyZoneVersion)
            .where(PrivacyZoneVersion.camera_id == camera_id, PrivacyZoneVersion.status == ZoneVersionStatus.APPROVED)
            .order_by(PrivacyZoneVersion.version.desc())
            .limit(1)
        )
        if row is None or not row.zones:
            return None
        polygons = tuple(tuple((float(x), float(y)) for x, y in z["points"]) for z in row.zones)
        return ZoneSet(f"{camera_id}:{row.version}:{row.id}", row.id, row.version, row.space, polygons)


class ZoneCache:
    """Zones in force per (runtime, camera), re-read at most every ``ttl_s`` seconds and at
    once after an approval in this process.  Streams ask every second, so an approval
    reaches pictures already being shown within about a second."""

    def __init__(self, ttl_s: float = 1.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, int], tuple[float, ZoneSet | None]] = {}

    def get(self, rt: Runtime, camera_id: int) -> ZoneSet | None:
        key = (id(rt), camera_id)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = load_zones_in_force(rt, camera_id)
        with self._lock:
            self._entries[key] = (now, value)
        return value

    def invalidate(self, camera_id: int | None = None) -> None:
        with self._lock:
            if camera_id is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if k[1] == camera_id]:
                    del self._entries[key]


ZONES = ZoneCache()


# Mask lifts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiftView:
    id: int
    camera_id: int
    warrant_reference: str
    reason: str
    minutes: int
    status: str
    requested_by: str
    requested_by_id: int
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None

    def active(self, now: datetime) -> bool:
        return (
            self.status == MaskLiftStatus.APPROVED
            and self.ended_at is None
            and self.expires_at is not None
            and now < self.expires_at
        )

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}
        out["active"] = self.active(now)
        out["seconds_left"] = max(0, int((self.expires_at - now).total_seconds())) if self.active(now) else 0
        return out


def _lift_view(r: MaskLift) -> LiftView:
    return LiftView(
        r.id,
        r.camera_id,
        r.warrant_reference,
        r.reason,
        r.minutes,
        r.status,
        r.requested_by,
        r.requested_by_id,
        r.requested_at,
        r.decided_by,
        r.decided_at,
        r.expires_at,
        r.ended_at,
        r.ended_by,
    )


def request_lift(
    rt: Runtime, caller: Principal, camera_id: int, *, warrant_reference: str, reason: str, minutes: int
) -> LiftView:
    decision = decisions.may_request_mask_lift(caller.roles, warrant_reference or "", minutes, rt.profile)
    details = {"camera_id": camera_id, "warrant_reference": warrant_reference, "reason": reason, "minutes": minutes}
    if not decision.allowed:
        raise rt.audit.refusal(
            "mask_lift.request",
            caller.actor,
            decision,
            object_type="camera",
            object_id=camera_id,
            details=details,
        )
    if not (reason or "").strip():
        raise InvalidInput("say why the mask must be lifted")
    with rt.db.write() as s:
        _camera_exists(s, camera_id)
        row = MaskLift(
            camera_id=camera_id,
            warrant_reference=warrant_reference.strip()[:200],
            reason=reason.strip()[:1000],
            minutes=minutes,
            status=MaskLiftStatus.REQUESTED,
            requested_by_id=caller.user_id,
            requested_by=caller.username,
            requested_at=rt.clock.now(),
        )
        s.add(row)
        s.flush()
        view = _lift_view(row)
    rt.audit.record(
        "mask_lift.request", caller.actor, object_type="mask_lift", object_id=view.id, clauses=("U4",), details=details
    )
    return view


def decide_lift(rt: Runtime, caller: Principal, lift_id: int, *, approve: bool) -> LiftView:
    action = "mask_lift.approve" if approve else "mask_lift.reject"
    with rt.db.session() as s:
        row = s.get(MaskLift, lift_id)
        if row is None:
            raise NotFound(f"no mask lift {lift_id}")
        requester_id, requester, camera_id = row.requested_by_id, row.requested_by, row.camera_id
    decision = decisions.may_approve_mask_lift(caller.roles, requester_id, caller.user_id, rt.profile)
    if not decision.allowed:
        raise rt.audit.refusal(
            action,
            caller.actor,
            decision,
            object_type="mask_lift",
            object_id=lift_id,
            details={"camera_id": camera_id, "requested_by": requester},
        )
    now = rt.clock.now()
    with rt.db.write() as s:
        row = s.get(MaskLift, lift_id, with_for_update=True, populate_existing=True)
        assert row is not None
        if row.status != MaskLiftStatus.REQUESTED:
            raise Conflict(f"mask lift {lift_id} is {row.status}, not awaiting a decision")
        row.status = MaskLiftStatus.APPROVED if approve else MaskLiftStatus.REJECTED
        row.decided_by_id, row.decided_by, row.decided_at = caller.user_id, caller.username, now
        if approve:
            row.expires_at = now + timedelta(minutes=row.minutes)
        s.flush()
        view = _lift_view(row)
    rt.audit.record(
        action,
        caller.actor,
        object_type="mask_lift",
        object_id=lift_id,
        clauses=("U4",),
        details={
            "camera_id": camera_id,
            "warrant_reference": view.warrant_reference,
            "requested_by": requester,
            "approved_by" if approve else "rejected_by": caller.username,
            "expires_at": view.expires_at.isoformat() if view.expires_at else None,
        },
    )
    return view


def end_lift(rt: Runtime, caller: Principal, lift_id: int) -> LiftView:
    with rt.db.session() as s:
        row = s.get(MaskLift, lift_id)
        if row is None:
            raise NotFound(f"no mask lift {lift_id}")
        requester_id, approver_id, camera_id = row.requested_by_id, row.decided_by_id, row.camera_id
    decision = decisions.may_end_mask_lift(caller.user_id, caller.roles, requester_id, approver_id, rt.profile)
    if not decision.allowed:
        raise rt.audit.refusal(
            "mask_lift.end",
            caller.actor,
            decision,
            object_type="mask_lift",
            object_id=lift_id,
            details={"camera_id": camera_id},
        )
    with rt.db.write() as s:
        row = s.get(MaskLift, lift_id, with_for_update=True, populate_existing=True)
        assert row is not None
        if row.status in (MaskLiftStatus.REQUESTED, MaskLiftStatus.APPROVED) and row.ended_at is None:
            row.status = MaskLiftStatus.ENDED if row.status == MaskLiftStatus.APPROVED else MaskLiftStatus.WITHDRAWN
            row.ended_at, row.ended_by = rt.clock.now(), caller.username
        s.flush()
        view = _lift_view(row)
    rt.audit.record(
        "mask_lift.end",
        caller.actor,
        object_type="mask_lift",
        object_id=lift_id,
        clauses=("U4",),
        details={"camera_id": view.camera_id, "requested_by": view.requested_by, "approved_by": view.decided_by},
    )
    return view


def active_lift(rt: Runtime, camera_id: int, user_id: int, now: datetime | None = None) -> LiftView | None:
    """The caller's own approved, unexpired lift for this camera (lifts are personal)."""
    now = now or rt.clock.now()
    with rt.db.session() as s:
        row = s.scalar(
            select(MaskLift)
            .where(
                MaskLift.camera_id == camera_id,
                MaskLift.requested_by_id == user_id,
                MaskLift.status == MaskLiftStatus.APPROVED,
                MaskLift.ended_at.is_(None),
                MaskLift.expires_at > now,
            )
            .order_by(MaskLift.id.desc())
            .limit(1)
        )
        return _lift_view(row) if row else None


def list_lifts(rt: Runtime) -> list[LiftView]:
    with rt.db.session() as s:
        return [_lift_view(r) for r in s.scalars(select(MaskLift).order_by(MaskLift.id.desc()).limit(200))]
