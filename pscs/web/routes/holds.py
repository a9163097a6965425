"""Holds on footage (S1): the API, the console's pages and forms, and the user's notices.
A form posts to the same service call as its API route (it calls that route)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from pscs.clock import utc_to_ms
from pscs.retention import holds
from pscs.retention.models import HOLD_REASONS
from pscs.web import pages
from pscs.web.access import any_role, permits, principal_of, requires, runtime_of
from pscs.web.defs.common import Id
from pscs.web.defs.holds import (
    HoldChange,
    NewHold,
    NewHoldForm,
    Reaffirmation,
    ReaffirmationForm,
    Release,
    ReleaseForm,
)
from pscs.web.routes.records import HOLD_MANAGE, HOLD_PLACE, HOLD_VIEW, camera_names, see_other

router = APIRouter(tags=["holds"])
HoldStatus = Literal["active", "released", "lapsed"]


@router.get("/api/v1/holds")
@requires(HOLD_VIEW)
def list_holds(request: Request, status: HoldStatus | None = None, camera_id: Id | None = None) -> dict[str, Any]:
    views = holds.list_holds(runtime_of(request), principal_of(request), status=status, camera_id=camera_id)
    return {"holds": [h.as_dict() for h in views]}


@router.post("/api/v1/holds", status_code=201)
@requires(HOLD_PLACE)
def create_hold(request: Request, body: NewHold) -> dict[str, Any]:
    """Place a hold (S1): reason, case / docket / request number, cameras, time range."""
    return holds.place_hold(
        runtime_of(request),
        principal_of(request),
        camera_ids=body.camera_ids,
        start_ms=utc_to_ms(body.start),
        end_ms=utc_to_ms(body.end),
        reason=body.reason,
        reference=body.reference,
        description=body.description,
    ).as_dict()


@router.get("/api/v1/holds/{hold_id}")
@requires(HOLD_VIEW)
def get_hold(request: Request, hold_id: Id) -> dict[str, Any]:
    return holds.get_hold(runtime_of(request), principal_of(request), hold_id).as_dict()


@router.patch("/api/v1/holds/{hold_id}")
@requires(HOLD_MANAGE)
def change_hold(request: Request, hold_id: Id, body: HoldChange) -> dict[str, Any]:
    return holds.change_hold(
        runtime_of(request),
        principal_of(request),
        hold_id,
        camera_ids=body.camera_ids,
        start_ms=None if body.start is None else utc_to_ms(body.start),
        end_ms=None if body.end is None else utc_to_ms(body.end),
        reference=body.reference,
        description=body.description,
        owner=body.owner,
    ).as_dict()


@router.post("/api/v1/holds/{hold_id}/reaffirm")
@requires(HOLD_MANAGE)
def reaffirm_hold(request: Request, hold_id: Id, body: Reaffirmation) -> dict[str, Any]:
    return holds.reaffirm_hold(runtime_of(request), principal_of(request), hold_id, body.note).as_dict()


@router.post("/api/v1/holds/{hold_id}/release")
@requires(HOLD_MANAGE)
def release_hold(request: Request, hold_id: Id, body: Release) -> dict[str, Any]:
    return holds.release_hold(runtime_of(request), principal_of(request), hold_id, body.reason).as_dict()


@router.get("/api/v1/notices")
@any_role
def my_notices(request: Request) -> dict[str, Any]:
    user = request.state.user
    return {
        "notices": [
            {
                "id": n.id,
                "kind": n.kind,
                "subject": n.subject,
                "body": n.body,
                "object_type": n.object_type,
                "object_id": n.object_id,
                "created_at": n.created_at.isoformat(),
            }
            for n in holds.notices_for(runtime_of(request), user.username, user.roles)
        ]
    }


# Pages and forms ----------------------------------------------------------------------------------
@router.get("/records/holds", include_in_schema=False)
@requires(HOLD_VIEW)
def holds_page(request: Request, status: HoldStatus | Literal[""] = "active") -> Response:
    rt = runtime_of(request)
    return pages.render(
        request,
        "holds.html",
        {
            "holds": holds.list_holds(rt, principal_of(request), status=status or None),
            "status": status,
            "reasons": HOLD_REASONS,
            "cameras": camera_names(rt),
            "can_edit": permits(request, HOLD_MANAGE),
            "review_days": rt.profile.retention.hold_review_days,
        },
    )


@router.post("/records/holds", include_in_schema=False)
@requires(HOLD_PLACE)
def holds_form(request: Request, form: Annotated[NewHoldForm, Form()]) -> Response:
    return see_other(f"/records/holds/{create_hold(request, form)['id']}")


@router.get("/records/holds/{hold_id}", include_in_schema=False)
@requires(HOLD_VIEW)
def hold_page(request: Request, hold_id: Id) -> Response:
    rt = runtime_of(request)
    return pages.render(
        request,
        "holds_detail.html",
        {
            "hold": holds.get_hold(rt, principal_of(request), hold_id),
            "cameras": camera_names(rt),
            "can_edit": permits(request, HOLD_MANAGE),
        },
    )


@router.post("/records/holds/{hold_id}/reaffirm", include_in_schema=False)
@requires(HOLD_MANAGE)
def hold_reaffirm_form(request: Request, hold_id: Id, form: Annotated[ReaffirmationForm, Form()]) -> Response:
    reaffirm_hold(request, hold_id, form)
    return see_other(f"/records/holds/{hold_id}")


@router.post("/records/holds/{hold_id}/release", include_in_schema=False)
@requires(HOLD_MANAGE)
def hold_release_form(request: Request, hold_id: Id, form: Annotated[ReleaseForm, Form()]) -> Response:
    release_hold(request, hold_id, form)
    return see_other(f"/records/holds/{hold_id}")
