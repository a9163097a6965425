"""The records office (S1 holds, S2 storage requests, S3 evidence): who may reach each group
of its routes, what those routes share, and its home page and compliance check.

The routes of each domain are in :mod:`.holds`, :mod:`.requests`, :mod:`.evidence` and
:mod:`.retention`, their bodies in :mod:`pscs.web.defs`.  Every rule is enforced (and
audited) in the services behind them; the declarations here only admit the roles that may
try.  Where the policy profile names the roles, a rule reads them from it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from pscs.cameras.models import Camera
from pscs.compliance.check import run_compliance_check
from pscs.requests import service as requests
from pscs.retention import holds
from pscs.runtime import Runtime
from pscs.web import pages
from pscs.web.access import permits, principal_of, requires, role_rule, runtime_of

router = APIRouter(tags=["records"])

VIDEO = role_rule(profile=("video_roles",))
READERS = role_rule("auditor", profile=("video_roles",))
HOLD_PLACE = role_rule(profile=("approvals.hold_place",))
HOLD_MANAGE = role_rule(profile=("approvals.hold_place", "approvals.hold_manage"))  # owners, and hold_manage
HOLD_VIEW = role_rule("auditor", profile=("approvals.hold_place", "approvals.hold_manage"))
REQUEST_DECIDERS = role_rule(profile=("approvals.storage_request",))
LOG_READERS = role_rule("auditor", profile=("approvals.storage_request",))
DISPOSAL_PROPOSERS = role_rule(profile=("approvals.evidence_disposal",))
DISPOSAL_SECOND = role_rule(profile=("approvals.evidence_disposal_second",))
CUSTODY = role_rule("investigator", "supervisor", "records_commander")  # hand-overs of evidence
COMPLIANCE = role_rule("records_commander", "auditor", "admin")


def camera_names(rt: Runtime) -> dict[int, str]:
    with rt.db.session() as s:
        return {c.id: c.name for c in s.scalars(select(Camera).order_by(Camera.name))}


def attachment(data: bytes | str, media: str, name: str) -> Response:
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def see_other(location: str) -> RedirectResponse:
    """After a form's POST, the browser GETs the page that shows the result."""
    return RedirectResponse(location, status_code=303)


@router.get("/records", include_in_schema=False)
@requires(READERS)
def records_page(request: Request) -> Response:
    rt = runtime_of(request)
    user = request.state.user
    mine = requests.list_requests(rt, principal_of(request))
    return pages.render(
        request,
        "records.html",
        {
            "notices": holds.notices_for(rt, user.username, user.roles),
            "requests": mine[:20],
            "holds": holds.list_holds(
                rt,
                principal_of(request),
                status="active",
                owner=None if permits(request, LOG_READERS) else user.username,
            )
            if permits(request, HOLD_VIEW)
            else [],
            "can_hold": permits(request, HOLD_VIEW),
            "can_log": permits(request, LOG_READERS),
            "cameras": camera_names(rt),
        },
    )


@router.post("/api/v1/compliance/check")
@requires(COMPLIANCE)
def compliance_check(request: Request) -> dict[str, Any]:
    """S1-S3 and the audit chain, now."""
    report = run_compliance_check(runtime_of(request), request.state.actor)
    return {
        "ok": report.ok,
        "checked_at": report.checked_at.isoformat(),
        "stats": report.stats,
        "violations": [f.__dict__ for f in report.violations],
        "warnings": [f.__dict__ for f in report.warnings],
    }
