"""The evidence store (S3): items, their chain of custody, verification, and the two-person
disposal of items whose case is closed.  A form posts to the same service call as its API
route (it calls that route)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from pscs.evidence import service as evidence
from pscs.web import pages
from pscs.web.access import permits, principal_of, requires, runtime_of
from pscs.web.defs.common import Id
from pscs.web.defs.evidence import DisposalProposal, DisposalProposalForm, Transfer, Withdrawal
from pscs.web.routes.records import (
    CUSTODY,
    DISPOSAL_PROPOSERS,
    DISPOSAL_SECOND,
    HOLD_VIEW,
    LOG_READERS,
    camera_names,
    see_other,
)

router = APIRouter(tags=["evidence"])


@router.get("/api/v1/evidence")
@requires(HOLD_VIEW)
def list_evidence(request: Request) -> dict[str, Any]:
    return {"items": [i.as_dict() for i in evidence.list_items(runtime_of(request), principal_of(request))]}


@router.get("/api/v1/evidence/{item_id}")
@requires(HOLD_VIEW)
def get_evidence(request: Request, item_id: Id) -> dict[str, Any]:
    """The item, its chain of custody and its disposal authorisations."""
    return evidence.get_item(runtime_of(request), principal_of(request), item_id).as_dict()


@router.post("/api/v1/evidence/{item_id}/verify")
@requires(LOG_READERS)
def verify_evidence(request: Request, item_id: Id) -> dict[str, Any]:
    result = evidence.verify_item(runtime_of(request), request.state.actor, item_id)
    return {"item_id": item_id, "ok": result.ok, "files_checked": result.files_checked, "problems": result.problems}


@router.post("/api/v1/evidence/{item_id}/transfer")
@requires(CUSTODY)
def transfer_evidence(request: Request, item_id: Id, body: Transfer) -> dict[str, Any]:
    event = evidence.transfer(
        runtime_of(request), request.state.actor, item_id, to=body.to, method=body.method, note=body.note
    )
    return {"item_id": item_id, "custody_event": event}


@router.post("/api/v1/evidence/{item_id}/disposal", status_code=201)
@requires(DISPOSAL_PROPOSERS)
def propose_disposal(request: Request, item_id: Id, body: DisposalProposal) -> dict[str, Any]:
    """Propose destroying an item whose case is closed (S3); a second person approves."""
    return evidence.propose_disposal(
        runtime_of(request),
        principal_of(request),
        item_id,
        case_reference=body.case_reference,
        case_closed_on=body.case_closed_on,
        authority=body.authority,
    )


@router.post("/api/v1/evidence/disposals/{disposal_id}/approve")
@requires(DISPOSAL_SECOND)
def approve_disposal(request: Request, disposal_id: Id) -> dict[str, Any]:
    return evidence.approve_disposal(runtime_of(request), principal_of(request), disposal_id)


@router.post("/api/v1/evidence/disposals/{disposal_id}/withdraw")
@requires(DISPOSAL_PROPOSERS)
def withdraw_disposal(request: Request, disposal_id: Id, body: Withdrawal) -> dict[str, Any]:
    return evidence.withdraw_disposal(runtime_of(request), principal_of(request), disposal_id, body.reason)


# Pages and forms ----------------------------------------------------------------------------------
@router.get("/records/evidence", include_in_schema=False)
@requires(HOLD_VIEW)
def evidence_page(request: Request) -> Response:
    items = evidence.list_items(runtime_of(request), principal_of(request))
    return pages.render(request, "evidence.html", {"items": items})


@router.get("/records/evidence/{item_id}", include_in_schema=False)
@requires(HOLD_VIEW)
def evidence_item_page(request: Request, item_id: Id) -> Response:
    rt = runtime_of(request)
    return pages.render(
        request,
        "evidence_detail.html",
        {
            "item": evidence.get_item(rt, principal_of(request), item_id),
            "cameras": camera_names(rt),
            "may_propose": permits(request, DISPOSAL_PROPOSERS),
            "may_approve": permits(request, DISPOSAL_SECOND),
            "username": request.state.user.username,
        },
    )


@router.post("/records/evidence/{item_id}/disposal", include_in_schema=False)
@requires(DISPOSAL_PROPOSERS)
def disposal_form(request: Request, item_id: Id, form: Annotated[DisposalProposalForm, Form()]) -> Response:
    propose_disposal(request, item_id, form)
    return see_other(f"/records/evidence/{item_id}")


@router.post("/records/evidence/disposals/{disposal_id}/approve", include_in_schema=False)
@requires(DISPOSAL_SECOND)
def disposal_approve_form(request: Request, disposal_id: Id) -> Response:
    return see_other(f"/records/evidence/{approve_disposal(request, disposal_id)['item_id']}")
