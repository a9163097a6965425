"""Privacy zones and mask lifts (U4): proposals, decisions, versions; the zone editor."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from pscs.errors import NotFound
from pscs.purposes import service as purposes
from pscs.video import zones as zone_service
from pscs.web import pages
from pscs.web.access import principal_of, roles, runtime_of
from pscs.web.defs.common import Id

router = APIRouter(tags=["privacy zones"])

# The widest sets a profile may use; the service checks the profile's own lists.
zone_roles = roles(profile=("approvals.privacy_zone_propose", "approvals.privacy_zone_approve"))
zone_proposers = roles(profile=("approvals.privacy_zone_propose",))
zone_approvers = roles(profile=("approvals.privacy_zone_approve",))
lift_roles = roles(profile=("approvals.mask_lift_request", "approvals.mask_lift_approve"))


class Zone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: Annotated[str | None, Field(max_length=100)] = None
    points: Annotated[list[tuple[float, float]], Field(min_length=3, max_length=zone_service.MAX_POINTS)]


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zones: Annotated[list[Zone], Field(max_length=zone_service.MAX_ZONES)]
    space: Literal["image", "ptz"] = "image"
    note: Annotated[str | None, Field(max_length=500)] = None


class ZoneDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str | None, Field(max_length=500)] = None


class LiftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warrant_reference: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(min_length=1, max_length=1000)]
    minutes: Annotated[int, Field(ge=1, le=24 * 60)]


@router.get("/api/v1/cameras/{camera_id}/zones")
@zone_roles
def camera_zones(request: Request, camera_id: Id) -> dict[str, Any]:
    """Every version of a camera's privacy zones, newest first, and the one in force."""
    rt = runtime_of(request)
    versions = zone_service.list_versions(rt, camera_id)
    in_force = next((v for v in versions if v["status"] == "approved"), None)
    return {"camera_id": camera_id, "in_force": in_force, "versions": versions}


@router.post("/api/v1/cameras/{camera_id}/zones", status_code=201)
@zone_proposers
def propose_zones(request: Request, camera_id: Id, body: Proposal) -> dict[str, Any]:
    zones = [{"label": z.label, "points": [list(p) for p in z.points]} for z in body.zones]
    return {
        "version": zone_service.propose_zones(
            runtime_of(request), principal_of(request), camera_id, zones, note=body.note, space=body.space
        )
    }


@router.get("/api/v1/zones/pending")
@zone_roles
def pending_zones(request: Request) -> dict[str, Any]:
    return {"versions": zone_service.list_versions(runtime_of(request), status="proposed")}


@router.post("/api/v1/zones/{version_id}/approve")
@zone_approvers
def approve_zones(request: Request, version_id: Id, body: ZoneDecision) -> dict[str, Any]:
    return {
        "version": zone_service.decide_zones(
            runtime_of(request), principal_of(request), version_id, approve=True, note=body.note
        )
    }


@router.post("/api/v1/zones/{version_id}/reject")
@zone_approvers
def reject_zones(request: Request, version_id: Id, body: ZoneDecision) -> dict[str, Any]:
    return {
        "version": zone_service.decide_zones(
            runtime_of(request), principal_of(request), version_id, approve=False, note=body.note
        )
    }


@router.get("/api/v1/mask-lifts")
@lift_roles
def list_lifts(request: Request) -> dict[str, Any]:
    return {"mask_lifts": [lift.as_dict() for lift in zone_service.list_lifts(runtime_of(request))]}


@router.post("/api/v1/cameras/{camera_id}/mask-lifts", status_code=201)
@lift_roles
def request_lift(request: Request, camera_id: Id, body: LiftRequest) -> dict[str, Any]:
    lift = zone_service.request_lift(
        runtime_of(request),
        principal_of(request),
        camera_id,
        warrant_reference=body.warrant_reference,
        reason=body.reason,
        minutes=body.minutes,
    )
    return {"mask_lift": lift.as_dict()}


@router.post("/api/v1/mask-lifts/{lift_id}/approve")
@lift_roles
def approve_lift(request: Request, lift_id: Id) -> dict[str, Any]:
    return {
        "mask_lift": zone_service.decide_lift(
            runtime_of(request), principal_of(request), lift_id, approve=True
        ).as_dict()
    }


@router.post("/api/v1/mask-lifts/{lift_id}/reject")
@lift_roles
def reject_lift(request: Request, lift_id: Id) -> dict[str, Any]:
    return {
        "mask_lift": zone_service.decide_lift(
            runtime_of(request), principal_of(request), lift_id, approve=False
        ).as_dict()
    }


@router.post("/api/v1/mask-lifts/{lift_id}/end")
@lift_roles
def end_lift(request: Request, lift_id: Id) -> dict[str, Any]:
    return {"mask_lift": zone_service.end_lift(runtime_of(request), principal_of(request), lift_id).as_dict()}


# Pages ------------------------------------------------------------------------------------------
@router.get("/console/zones", include_in_schema=False)
@zone_roles
def zones_index(request: Request) -> Response:
    from pscs.cameras.service import list_cameras

    rt = runtime_of(request)
    in_force = {v["camera_id"]: v for v in zone_service.list_versions(rt, status="approved")}
    return pages.render(
        request,
        "zones.html",
        {
            "cameras": list_cameras(rt),
            "in_force": in_force,
            "pending": zone_service.list_versions(rt, status="proposed"),
        },
    )


@router.get("/console/zones/{camera_id}", include_in_schema=False)
@zone_roles
def zone_editor(request: Request, camera_id: Id) -> Response:
    from pscs.cameras.service import CameraNotFound, get_camera

    rt = runtime_of(request)
    try:
        camera = get_camera(rt, camera_id)
    except CameraNotFound as exc:
        raise NotFound(str(exc)) from exc
    versions = zone_service.list_versions(rt, camera_id)
    user = request.state.user
    can_snapshot = bool(purposes.current_session(rt, user.session_id))
    return pages.render(
        request,
        "zones_editor.html",
        {
            "camera": camera,
            "versions": versions,
            "in_force": next((v for v in versions if v["status"] == "approved"), None),
            "can_snapshot": can_snapshot,
            "may_propose": bool(user.roles & set(rt.profile.approvals.privacy_zone_propose)),
            "may_approve": bool(user.roles & set(rt.profile.approvals.privacy_zone_approve)),
        },
    )


@router.get("/console/mask-lifts", include_in_schema=False)
@lift_roles
def lifts_page(request: Request) -> Response:
    from pscs.cameras.service import list_cameras

    rt = runtime_of(request)
    user = request.state.user
    return pages.render(
        request,
        "console_mask_lifts.html",
        {
            "lifts": [lift.as_dict() for lift in zone_service.list_lifts(rt)],
            "cameras": list_cameras(rt),
            "max_minutes": rt.profile.mask_lift_max_minutes,
            "may_request": bool(user.roles & set(rt.profile.approvals.mask_lift_request)),
            "may_approve": bool(user.roles & set(rt.profile.approvals.mask_lift_approve)),
        },
    )
