"""Purpose sessions (U1) and designated crime locations (U2): the API and the console's
purpose picker.  No video is served without an open purpose session (see video.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pscs.errors import InvalidInput, PolicyDenied
from pscs.purposes import service as purposes
from pscs.web import pages
from pscs.web.access import principal_of, roles, runtime_of
from pscs.web.defs.common import Id, Instant

router = APIRouter(tags=["purposes"])

video_roles = roles(profile=("video_roles",))
designators = roles(profile=("approvals.location_designation",))


class OpenPurpose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: Annotated[str, Field(min_length=1, max_length=60)]
    case_number: Annotated[str | None, Field(max_length=100)] = None
    incident_number: Annotated[str | None, Field(max_length=100)] = None
    designation_id: Id | None = None
    note: Annotated[str | None, Field(max_length=500)] = None


class NewDesignation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location: Annotated[str, Field(min_length=1, max_length=300)]
    reason: Annotated[str, Field(min_length=1, max_length=1000)]
    camera_ids: Annotated[list[Id], Field(min_length=1, max_length=200)]
    valid_until: Instant


class Revocation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500)]


@router.get("/api/v1/purposes")
@video_roles
def list_purposes(request: Request) -> dict[str, Any]:
    """The permitted purposes (from the policy profile) and the designated locations in force."""
    rt = runtime_of(request)
    return {
        "purposes": purposes.purposes(rt),
        "session_minutes": rt.profile.purpose_session_minutes,
        "designations": [d.as_dict() for d in purposes.list_designations(rt, active_only=True)],
    }


@router.get("/api/v1/purpose-sessions/current")
@video_roles
def current_purpose(request: Request) -> dict[str, Any]:
    view = purposes.current_session(runtime_of(request), request.state.user.session_id)
    return {"purpose_session": view.as_dict() if view else None}


@router.post("/api/v1/purpose-sessions", status_code=201)
@video_roles
def open_purpose(request: Request, body: OpenPurpose) -> dict[str, Any]:
    """Open a purpose session (ends the one open in this sign-in session, if any)."""
    view = purposes.open_session(
        runtime_of(request),
        principal_of(request),
        purpose_id=body.purpose,
        case_number=body.case_number,
        incident_number=body.incident_number,
        designation_id=body.designation_id,
        note=body.note,
    )
    return {"purpose_session": view.as_dict()}


@router.post("/api/v1/purpose-sessions/current/end")
@video_roles
def end_purpose(request: Request) -> dict[str, Any]:
    ended = purposes.end_session(runtime_of(request), principal_of(request))
    return {"ended": ended}


@router.get("/api/v1/designations")
@video_roles
def list_designations(request: Request) -> dict[str, Any]:
    return {"designations": [d.as_dict() for d in purposes.list_designations(runtime_of(request))]}


@router.post("/api/v1/designations", status_code=201)
@designators
def create_designation(request: Request, body: NewDesignation) -> dict[str, Any]:
    view = purposes.designate_location(
        runtime_of(request),
        principal_of(request),
        location=body.location,
        reason=body.reason,
        camera_ids=body.camera_ids,
        valid_until=body.valid_until,
    )
    return {"designation": view.as_dict()}


@router.post("/api/v1/designations/{designation_id}/revoke")
@designators
def revoke_designation(request: Request, designation_id: Id, body: Revocation) -> dict[str, Any]:
    view = purposes.revoke_designation(runtime_of(request), principal_of(request), designation_id, body.reason)
    return {"designation": view.as_dict()}


# Pages ------------------------------------------------------------------------------------------
def _picker(
    request: Request,
    error: str | None = None,
    clause: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    from pscs.cameras.service import list_cameras

    rt = runtime_of(request)
    current = purposes.current_session(rt, request.state.user.session_id)
    return pages.render(
        request,
        "console.html",
        {
            "purposes": rt.profile.purposes,
            "session_minutes": rt.profile.purpose_session_minutes,
            "designations": [d.as_dict() for d in purposes.list_designations(rt, active_only=True)],
            "current": current.as_dict() if current else None,
            "error": error,
            "clause": clause,
            "form": form or {},
            "cameras": list_cameras(rt, include_disabled=False),
            "next": request.query_params.get("next", ""),
        },
        status_code=status_code,
    )


@router.get("/console", include_in_schema=False)
@video_roles
def console_page(request: Request) -> Response:
    return _picker(request)


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/console") and "//" not in target else "/console/live"


@router.post("/console/purpose", include_in_schema=False)
@video_roles
def console_open_purpose(
    request: Request,
    purpose: Annotated[str, Form(max_length=60)],
    case_number: Annotated[str, Form(max_length=100)] = "",
    incident_number: Annotated[str, Form(max_length=100)] = "",
    designation_id: Annotated[str, Form(max_length=12)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=300)] = "",  # noqa: A002 - the form field's name
) -> Response:
    form = {
        "purpose": purpose,
        "case_number": case_number,
        "incident_number": incident_number,
        "designation_id": designation_id,
        "note": note,
    }
    try:
        purposes.open_session(
            runtime_of(request),
            principal_of(request),
            purpose_id=purpose,
            case_number=case_number or None,
            incident_number=incident_number or None,
            designation_id=int(designation_id) if designation_id.isdigit() else None,
            note=note or None,
        )
    except (PolicyDenied, InvalidInput) as exc:
        return _picker(request, exc.message, getattr(exc, "clause", None), form, status_code=exc.status)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/console/purpose/end", include_in_schema=False)
@video_roles
def console_end_purpose(request: Request) -> Response:
    purposes.end_session(runtime_of(request), principal_of(request))
    return RedirectResponse("/console", status_code=303)


@router.get("/console/designations", include_in_schema=False)
@designators
def designations_page(request: Request) -> Response:
    from pscs.cameras.service import list_cameras

    rt = runtime_of(request)
    return pages.render(
        request,
        "purpose_designations.html",
        {
            "designations": [d.as_dict() for d in purposes.list_designations(rt)],
            "cameras": list_cameras(rt, include_disabled=False),
        },
    )
