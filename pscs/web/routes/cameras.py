"""Camera registry and health (P0).  Administrators register cameras; everyone who works
with cameras sees their health and the open alerts.  No video here: that needs a purpose."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from pscs.cameras import service as cameras
from pscs.clock import iso_ms
from pscs.recording.alerts import open_alerts
from pscs.recording.models import CameraHealth
from pscs.web import pages
from pscs.web.access import roles, runtime_of
from pscs.web.defs.common import Id

router = APIRouter(tags=["cameras"])
admin_only = roles("admin")
camera_staff = roles("operator", "investigator", "supervisor", "records_commander", "admin")


class NewCamera(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    street_address: Annotated[str, Field(min_length=1, max_length=200)]
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    kind: Literal["fixed", "ptz"] = "fixed"
    main_url: Annotated[str, Field(min_length=8, max_length=500)]
    sub_url: Annotated[str | None, Field(max_length=500)] = None
    onvif_url: Annotated[str | None, Field(max_length=500)] = None
    onvif_username: Annotated[str | None, Field(max_length=200)] = None
    onvif_password: Annotated[str | None, Field(max_length=200)] = None
    public_area_attested: Annotated[bool, Field(description="P0: the camera overtly views public areas only")] = False


class CameraChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    street_address: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    latitude: Annotated[float | None, Field(ge=-90, le=90)] = None
    longitude: Annotated[float | None, Field(ge=-180, le=180)] = None
    main_url: Annotated[str | None, Field(min_length=8, max_length=500)] = None
    sub_url: Annotated[str | None, Field(max_length=500)] = None
    enabled: bool | None = None
    public_area_attested: Annotated[bool, Field(description="P0: needed again when a camera moves")] = False


def health_by_camera(request: Request) -> dict[int, dict[str, Any]]:
    with runtime_of(request).db.session() as s:
        rows = s.scalars(select(CameraHealth)).all()
    return {
        h.camera_id: {
            "state": h.state,
            "since": iso_ms(h.state_since_ms, "milliseconds"),
            "fps": round(h.fps, 1),
            "bitrate_kbps": round(h.bitrate_bps / 1000),
            "last_frame": iso_ms(h.last_frame_ms, "milliseconds"),
            "dropped_packets": h.dropped_packets,
            "reconnects": h.reconnects,
            "last_error": h.last_error,
        }
        for h in rows
    }


def _with_health(request: Request) -> list[dict[str, Any]]:
    health = health_by_camera(request)
    unknown = {"state": "unknown", "last_error": "the recorder has not reported on this camera yet"}
    return [c.as_dict() | {"health": health.get(c.id, unknown)} for c in cameras.list_cameras(runtime_of(request))]


@router.get("/api/v1/cameras")
@camera_staff
def list_cameras(request: Request) -> dict[str, Any]:
    """Cameras with their health; stream credentials are never shown."""
    return {"cameras": _with_health(request)}


@router.post("/api/v1/cameras", status_code=201)
@admin_only
def add_camera(request: Request, body: NewCamera) -> dict[str, Any]:
    view = cameras.add_camera(runtime_of(request), request.state.actor, **body.model_dump())
    return view.as_dict()


@router.patch("/api/v1/cameras/{camera_id}")
@admin_only
def change_camera(request: Request, camera_id: Id, body: CameraChange) -> dict[str, Any]:
    rt = runtime_of(request)
    changes = body.model_dump(exclude_unset=True)
    enabled = changes.pop("enabled", None)
    attested = changes.pop("public_area_attested", False)
    view = cameras.get_camera(rt, camera_id)
    if changes:
        view = cameras.update_camera(rt, request.state.actor, camera_id, public_area_attested=attested, **changes)
    if enabled is not None and enabled != view.enabled:
        toggle = cameras.enable_camera if enabled else cameras.disable_camera
        view = toggle(rt, request.state.actor, camera_id)
    return view.as_dict()


@router.get("/api/v1/alerts")
@camera_staff
def alerts(request: Request) -> dict[str, Any]:
    """Open alerts (camera offline for more than a minute, storage full, ...)."""
    return {
        "alerts": [
            {
                "id": a.id,
                "kind": a.kind,
                "severity": a.severity,
                "camera_id": a.camera_id,
                "message": a.message,
                "raised_at": a.raised_at.isoformat(),
            }
            for a in open_alerts(runtime_of(request))
        ]
    }


@router.get("/cameras", include_in_schema=False)
@camera_staff
def cameras_page(request: Request) -> Response:
    rt = runtime_of(request)
    return pages.render(
        request,
        "cameras.html",
        {
            "cameras": _with_health(request),
            "alerts": open_alerts(rt),
            "is_admin": "admin" in request.state.user.roles,
        },
    )
