"""Records: holds (S1), storage requests and the Records Commander's log (S2), the evidence
store (S3), disposal reports and the compliance check.  Thin routes over the services in
pscs.retention, pscs.requests, pscs.evidence and pscs.compliance: every rule is enforced
(and audited) there; the route declarations below only admit the roles that may try."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from pscs.cameras.models import Camera
from pscs.compliance.check import run_compliance_check
from pscs.errors import InvalidInput
from pscs.evidence import service as evidence
from pscs.policy.decisions import epoch_ms
from pscs.requests import pdf
from pscs.requests import service as requests
from pscs.requests.log import export_request_log, log_csv
from pscs.retention import holds
from pscs.retention.disposal import report_csv
from pscs.retention.models import HOLD_REASONS
from pscs.retention.report import read_disposal_report
from pscs.runtime import Runtime
from pscs.web import pages
from pscs.web.access import any_role, permits, principal_of, requires, role_rule, runtime_of

router = APIRouter(tags=["records"])


def _ms_utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


pages.templates.env.filters["ms_utc"] = _ms_utc  # footage times (epoch ms) as UTC in the records pages

# Who may reach each group of routes.  Where the policy profile names the roles, the rule
# reads them from it (the services behind the routes decide from the same entries).
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
Reason = Literal["criminal_investigation", "prosecution", "foi_request", "litigation"]


def _ms(value: datetime) -> int:
    return epoch_ms(value if value.tzinfo else value.replace(tzinfo=UTC))


def _cameras(rt: Runtime) -> dict[int, str]:
    with rt.db.session() as s:
        return {c.id: c.name for c in s.scalars(select(Camera).order_by(Camera.name))}


def _attachment(data: bytes | str, media: str, name: str) -> Response:
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# Holds --------------------------------------------------------------------------------------------
class NewHold(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_ids: Annotated[list[int], Field(min_length=1)]
    start: datetime
    end: datetime
    reason: Reason
    reference: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str, Field(max_length=5000)] = ""


class HoldChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_ids: Annotated[list[int] | None, Field(min_length=1)] = None
    start: datetime | None = None
    end: datetime | None = None
    reference: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    description: Annotated[str | None, Field(max_length=5000)] = None
    owner: Annotated[str | None, Field(min_length=1, max_length=64)] = None


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Annotated[str, Field(max_length=2000)] = ""


class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500)]


@router.get("/api/v1/holds")
@requires(HOLD_VIEW)
def list_holds(
    request: Request, status: Literal["active", "released", "lapsed"] | None = None, camera_id: int | None = None
) -> dict[str, Any]:
    return {"holds": [h.as_dict() for h in holds.list_holds(runtime_of(request), status=status, camera_id=camera_id)]}


@router.post("/api/v1/holds", status_code=201)
@requires(HOLD_PLACE)
def create_hold(request: Request, body: NewHold) -> dict[str, Any]:
    """Place a hold (S1): reason, case / docket / request number, cameras, time range."""
    return holds.place_hold(
        runtime_of(request),
        request.state.actor,
        camera_ids=body.camera_ids,
        start_ms=_ms(body.start),
        end_ms=_ms(body.end),
        reason=body.reason,
        reference=body.reference,
        description=body.description,
    ).as_dict()


@router.get("/api/v1/holds/{hold_id}")
@requires(HOLD_VIEW)
def get_hold(request: Request, hold_id: int) -> dict[str, Any]:
    return holds.get_hold(runtime_of(request), hold_id).as_dict()


@router.patch("/api/v1/holds/{hold_id}")
@requires(HOLD_MANAGE)
def change_hold(request: Request, hold_id: int, body: HoldChange) -> dict[str, Any]:
    return holds.change_hold(
        runtime_of(request),
        request.state.actor,
        hold_id,
        camera_ids=body.camera_ids,
        start_ms=None if body.start is None else _ms(body.start),
        end_ms=None if body.end is None else _ms(body.end),
        reference=body.reference,
        description=body.description,
        owner=body.owner,
    ).as_dict()


@router.post("/api/v1/holds/{hold_id}/reaffirm")
@requires(HOLD_MANAGE)
def reaffirm_hold(request: Request, hold_id: int, body: Note) -> dict[str, Any]:
    return holds.reaffirm_hold(runtime_of(request), request.state.actor, hold_id, body.note).as_dict()


@router.post("/api/v1/holds/{hold_id}/release")
@requires(HOLD_MANAGE)
def release_hold(request: Request, hold_id: int, body: ReleaseBody) -> dict[str, Any]:
    return holds.release_hold(runtime_of(request), request.state.actor, hold_id, body.reason).as_dict()


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


# Storage requests ---------------------------------------------------------------------------------
class NewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: Annotated[str, Field(min_length=1, max_length=200)]
    case_number: Annotated[str, Field(min_length=1, max_length=100)]
    camera_ids: Annotated[list[int], Field(min_length=1)]
    start: datetime
    end: datetime
    reason: Reason
    narrative: Annotated[str, Field(min_length=1, max_length=5000)]
    attestation_name: Annotated[str, Field(min_length=1, max_length=200)]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: bool
    reason: Annotated[str, Field(max_length=2000)] = ""


@router.get("/api/v1/storage-requests")
@requires(READERS)
def list_requests(
    request: Request,
    status: Literal["submitted", "approved", "denied", "fulfilled"] | None = None,
    year: int | None = None,
) -> dict[str, Any]:
    """The log for the records commander and auditors; anyone else sees their own requests."""
    views = requests.list_requests(runtime_of(request), request.state.actor, status=status, year=year)
    return {"requests": [v.as_dict() for v in views]}


@router.post("/api/v1/storage-requests", status_code=201)
@requires(VIDEO)
def submit_request(request: Request, body: NewRequest) -> dict[str, Any]:
    """File the storage request form (S2); a provisional hold is placed at once."""
    return requests.file_request(
        runtime_of(request),
        request.state.actor,
        unit=body.unit,
        case_number=body.case_number,
        camera_ids=body.camera_ids,
        start_ms=_ms(body.start),
        end_ms=_ms(body.end),
        reason=body.reason,
        narrative=body.narrative,
        attestation_name=body.attestation_name,
    ).as_dict()


@router.get("/api/v1/storage-requests/{number}")
@requires(READERS)
def get_request(request: Request, number: str) -> dict[str, Any]:
    return requests.get_request(runtime_of(request), request.state.actor, number).as_dict()


@router.post("/api/v1/storage-requests/{number}/decision")
@requires(REQUEST_DECIDERS)
def decide_request(request: Request, number: str, body: Decision) -> dict[str, Any]:
    """Approve (the footage becomes evidence, S3) or deny with a reason."""
    return requests.decide_request(
        runtime_of(request), request.state.actor, number, approve=body.approve, reason=body.reason
    ).as_dict()


@router.post("/api/v1/storage-requests/{number}/fulfil")
@requires(REQUEST_DECIDERS)
def fulfil_request(request: Request, number: str) -> dict[str, Any]:
    """Retry the evidence intake of an approved request."""
    return requests.fulfil_request(runtime_of(request), request.state.actor, number).as_dict()


# Evidence -----------------------------------------------------------------------------------------
class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Annotated[str, Field(min_length=1, max_length=200)]
    method: Annotated[str, Field(min_length=1, max_length=200)]
    note: Annotated[str, Field(max_length=1000)] = ""


class DisposalProposal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_reference: Annotated[str, Field(min_length=1, max_length=100)]
    case_closed_on: date
    authority: Annotated[str, Field(min_length=1, max_length=5000)]


@router.get("/api/v1/evidence")
@requires(HOLD_VIEW)
def list_evidence(request: Request) -> dict[str, Any]:
    return {"items": [i.as_dict() for i in evidence.list_items(runtime_of(request))]}


@router.get("/api/v1/evidence/{item_id}")
@requires(HOLD_VIEW)
def get_evidence(request: Request, item_id: int) -> dict[str, Any]:
    """The item, its chain of custody and its disposal authorisations."""
    return evidence.get_item(runtime_of(request), item_id).as_dict()


@router.post("/api/v1/evidence/{item_id}/verify")
@requires(LOG_READERS)
def verify_evidence(request: Request, item_id: int) -> dict[str, Any]:
    result = evidence.verify_item(runtime_of(request), request.state.actor, item_id)
    return {"item_id": item_id, "ok": result.ok, "files_checked": result.files_checked, "problems": result.problems}


@router.post("/api/v1/evidence/{item_id}/transfer")
@requires(CUSTODY)
def transfer_evidence(request: Request, item_id: int, body: Transfer) -> dict[str, Any]:
    event = evidence.transfer(
        runtime_of(request), request.state.actor, item_id, to=body.to, method=body.method, note=body.note
    )
    return {"item_id": item_id, "custody_event": event}


@router.post("/api/v1/evidence/{item_id}/disposal", status_code=201)
@requires(DISPOSAL_PROPOSERS)
def propose_disposal(request: Request, item_id: int, body: DisposalProposal) -> dict[str, Any]:
    """Propose destroying an item whose case is closed (S3); a second person approves."""
    return evidence.propose_disposal(
        runtime_of(request),
        request.state.actor,
        item_id,
        case_reference=body.case_reference,
        case_closed_on=body.case_closed_on,
        authority=body.authority,
    )


@router.post("/api/v1/evidence/disposals/{disposal_id}/approve")
@requires(DISPOSAL_SECOND)
def approve_disposal(request: Request, disposal_id: int) -> dict[str, Any]:
    return evidence.approve_disposal(runtime_of(request), request.state.actor, disposal_id)


@router.post("/api/v1/evidence/disposals/{disposal_id}/withdraw")
@requires(DISPOSAL_PROPOSERS)
def withdraw_disposal(request: Request, disposal_id: int, body: ReleaseBody) -> dict[str, Any]:
    return evidence.withdraw_disposal(runtime_of(request), request.state.actor, disposal_id, body.reason)


# Disposal report and compliance -------------------------------------------------------------------
@router.get("/api/v1/retention/disposals")
@requires(LOG_READERS)
def disposals(
    request: Request,
    since: datetime | None = None,
    until: datetime | None = None,
    fmt: Annotated[Literal["json", "csv", "pdf"], Query(alias="format")] = "json",
) -> Any:
    """The periodic disposal report (S1; cf. CT form RC-075), as JSON, CSV or PDF."""
    report = read_disposal_report(runtime_of(request), principal_of(request), since=since, until=until, fmt=fmt)
    if fmt == "csv":
        return _attachment("".join(report_csv(report)), "text/csv", "pscs-disposals.csv")
    if fmt == "pdf":
        return _attachment(pdf.disposal_report_pdf(report), "application/pdf", "pscs-disposals.pdf")
    return {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "segments": report.segments,
        "bytes": report.bytes,
        "lines": [
            line.__dict__
            | {"first_disposed": line.first_disposed.isoformat(), "last_disposed": line.last_disposed.isoformat()}
            for line in report.lines
        ],
    }


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


# Pages ---------------------------------------------------------------------------------------------
def _back(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def _form_ms(value: str, label: str) -> int:
    try:
        return _ms(datetime.fromisoformat(value))
    except ValueError as exc:
        raise InvalidInput(f"{label}: give a date and time (UTC)") from exc


@router.get("/records", include_in_schema=False)
@requires(READERS)
def records_page(request: Request) -> Response:
    rt = runtime_of(request)
    user = request.state.user
    mine = requests.list_requests(rt, request.state.actor)
    return pages.render(
        request,
        "records.html",
        {
            "notices": holds.notices_for(rt, user.username, user.roles),
            "requests": mine[:20],
            "holds": holds.list_holds(
                rt, status="active", owner=None if permits(request, LOG_READERS) else user.username
            )
            if permits(request, HOLD_VIEW)
            else [],
            "can_hold": permits(request, HOLD_VIEW),
            "can_log": permits(request, LOG_READERS),
            "cameras": _cameras(rt),
        },
    )


@router.get("/records/holds", include_in_schema=False)
@requires(HOLD_VIEW)
def holds_page(request: Request, status: Literal["active", "released", "lapsed", ""] = "active") -> Response:
    rt = runtime_of(request)
    return pages.render(
        request,
        "holds.html",
        {
            "holds": holds.list_holds(rt, status=status or None),
            "status": status,
            "reasons": HOLD_REASONS,
            "cameras": _cameras(rt),
            "can_edit": permits(request, HOLD_MANAGE),
            "review_days": rt.profile.retention.hold_review_days,
        },
    )


@router.post("/records/holds", include_in_schema=False)
@requires(HOLD_PLACE)
def holds_form(
    request: Request,
    camera_ids: Annotated[list[int], Form()],
    start: Annotated[str, Form()],
    end: Annotated[str, Form()],
    reason: Annotated[Reason, Form()],
    reference: Annotated[str, Form()],
    description: Annotated[str, Form()] = "",
) -> Response:
    hold = holds.place_hold(
        runtime_of(request),
        request.state.actor,
        camera_ids=camera_ids,
        start_ms=_form_ms(start, "from"),
        end_ms=_form_ms(end, "to"),
        reason=reason,
        reference=reference,
        description=description,
    )
    return _back(f"/records/holds/{hold.id}")


@router.get("/records/holds/{hold_id}", include_in_schema=False)
@requires(HOLD_VIEW)
def hold_page(request: Request, hold_id: int) -> Response:
    rt = runtime_of(request)
    return pages.render(
        request,
        "holds_detail.html",
        {
            "hold": holds.get_hold(rt, hold_id),
            "cameras": _cameras(rt),
            "can_edit": permits(request, HOLD_MANAGE),
        },
    )


@router.post("/records/holds/{hold_id}/reaffirm", include_in_schema=False)
@requires(HOLD_MANAGE)
def hold_reaffirm_form(request: Request, hold_id: int, note: Annotated[str, Form()] = "") -> Response:
    holds.reaffirm_hold(runtime_of(request), request.state.actor, hold_id, note)
    return _back(f"/records/holds/{hold_id}")


@router.post("/records/holds/{hold_id}/release", include_in_schema=False)
@requires(HOLD_MANAGE)
def hold_release_form(request: Request, hold_id: int, reason: Annotated[str, Form()]) -> Response:
    holds.release_hold(runtime_of(request), request.state.actor, hold_id, reason)
    return _back(f"/records/holds/{hold_id}")


@router.get("/records/requests", include_in_schema=False)
@requires(READERS)
def requests_page(request: Request, status: str = "") -> Response:
    rt = runtime_of(request)
    views = requests.list_requests(rt, request.state.actor, status=status or None)
    return pages.render(
        request,
        "requests.html",
        {
            "requests": views,
            "status": status,
            "cameras": _cameras(rt),
            "is_log": permits(request, LOG_READERS),
            "can_file": permits(request, VIDEO),
        },
    )


@router.get("/records/requests/new", include_in_schema=False)
@requires(VIDEO)
def request_form_page(
    request: Request,
    camera_id: Annotated[int | None, Query(ge=1)] = None,
    start_ms: Annotated[int | None, Query(ge=0)] = None,
    end_ms: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The S2 form; playback's "request storage for this range" fills camera and range in."""
    rt = runtime_of(request)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = datetime.fromtimestamp(start_ms / 1000, UTC) if start_ms is not None else now - timedelta(hours=1)
    end = datetime.fromtimestamp(end_ms / 1000, UTC) if end_ms is not None else now
    return pages.render(
        request,
        "request_form.html",
        {
            "cameras": _cameras(rt),
            "selected_camera": camera_id,
            "reasons": HOLD_REASONS,
            "attestation": requests.ATTESTATION,
            "default_start": start.strftime("%Y-%m-%dT%H:%M"),
            # Rounded up so that the whole marked range is inside the request.
            "default_end": (end + timedelta(seconds=59)).strftime("%Y-%m-%dT%H:%M"),
        },
    )


@router.post("/records/requests", include_in_schema=False)
@requires(VIDEO)
def request_submit_form(
    request: Request,
    unit: Annotated[str, Form()],
    case_number: Annotated[str, Form()],
    camera_ids: Annotated[list[int], Form()],
    start: Annotated[str, Form()],
    end: Annotated[str, Form()],
    reason: Annotated[Reason, Form()],
    narrative: Annotated[str, Form()],
    attestation_name: Annotated[str, Form()],
) -> Response:
    view = requests.file_request(
        runtime_of(request),
        request.state.actor,
        unit=unit,
        case_number=case_number,
        camera_ids=camera_ids,
        start_ms=_form_ms(start, "from"),
        end_ms=_form_ms(end, "to"),
        reason=reason,
        narrative=narrative,
        attestation_name=attestation_name,
    )
    return _back(f"/records/requests/{view.number}")


@router.get("/records/requests/blank-form.pdf", include_in_schema=False)
@requires(READERS)
def blank_form(request: Request) -> Response:
    """The department's storage request form, blank, to print."""
    return _attachment(
        pdf.blank_form_pdf(runtime_of(request).profile.department), "application/pdf", "storage-request-form.pdf"
    )


def _log_export(request: Request, fmt: Literal["csv", "pdf"], year: int | None) -> Response:
    """The whole log leaves through the service, which decides who may and audits it."""
    rt = runtime_of(request)
    views = export_request_log(rt, principal_of(request), year=year, fmt=fmt)
    if fmt == "csv":
        return _attachment(log_csv(views), "text/csv", "storage-request-log.csv")
    return _attachment(pdf.log_pdf(views, rt.profile.department), "application/pdf", "storage-request-log.pdf")


@router.get("/records/requests/log.csv", include_in_schema=False)
@requires(LOG_READERS)
def log_csv_export(request: Request, year: int | None = None) -> Response:
    return _log_export(request, "csv", year)


@router.get("/records/requests/log.pdf", include_in_schema=False)
@requires(LOG_READERS)
def log_pdf_export(request: Request, year: int | None = None) -> Response:
    return _log_export(request, "pdf", year)


@router.get("/records/requests/{number}", include_in_schema=False)
@requires(READERS)
def request_page(request: Request, number: str) -> Response:
    rt = runtime_of(request)
    view = requests.get_request(rt, request.state.actor, number)
    return pages.render(
        request,
        "request_detail.html",
        {
            "r": view,
            "cameras": _cameras(rt),
            "may_decide": requests.may_decide(rt, request.state.actor, view).allowed,
        },
    )


@router.get("/records/requests/{number}/form.pdf", include_in_schema=False)
@requires(READERS)
def filled_form(request: Request, number: str) -> Response:
    rt = runtime_of(request)
    view = requests.get_request(rt, request.state.actor, number)
    rt.audit.record(
        "storage_request.print", request.state.actor, object_type="storage_request", object_id=number, clauses=("S2",)
    )
    return _attachment(
        pdf.filled_form_pdf(view, rt.profile.department, _cameras(rt)),
        "application/pdf",
        f"storage-request-{number}.pdf",
    )


@router.post("/records/requests/{number}/decision", include_in_schema=False)
@requires(REQUEST_DECIDERS)
def decision_form(
    request: Request,
    number: str,
    decision: Annotated[Literal["approve", "deny"], Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    requests.decide_request(
        runtime_of(request), request.state.actor, number, approve=decision == "approve", reason=reason
    )
    return _back(f"/records/requests/{number}")


@router.get("/records/evidence", include_in_schema=False)
@requires(HOLD_VIEW)
def evidence_page(request: Request) -> Response:
    return pages.render(request, "evidence.html", {"items": evidence.list_items(runtime_of(request))})


@router.get("/records/evidence/{item_id}", include_in_schema=False)
@requires(HOLD_VIEW)
def evidence_item_page(request: Request, item_id: int) -> Response:
    rt = runtime_of(request)
    return pages.render(
        request,
        "evidence_detail.html",
        {
            "item": evidence.get_item(rt, item_id),
            "cameras": _cameras(rt),
            "may_propose": permits(request, DISPOSAL_PROPOSERS),
            "may_approve": permits(request, DISPOSAL_SECOND),
            "username": request.state.user.username,
        },
    )


@router.post("/records/evidence/{item_id}/disposal", include_in_schema=False)
@requires(DISPOSAL_PROPOSERS)
def disposal_form(
    request: Request,
    item_id: int,
    case_reference: Annotated[str, Form()],
    case_closed_on: Annotated[date, Form()],
    authority: Annotated[str, Form()],
) -> Response:
    evidence.propose_disposal(
        runtime_of(request),
        request.state.actor,
        item_id,
        case_reference=case_reference,
        case_closed_on=case_closed_on,
        authority=authority,
    )
    return _back(f"/records/evidence/{item_id}")


@router.post("/records/evidence/disposals/{disposal_id}/approve", include_in_schema=False)
@requires(DISPOSAL_SECOND)
def disposal_approve_form(request: Request, disposal_id: int) -> Response:
    result = evidence.approve_disposal(runtime_of(request), request.state.actor, disposal_id)
    return _back(f"/records/evidence/{result['item_id']}")


@router.get("/records/disposals", include_in_schema=False)
@requires(LOG_READERS)
def disposals_page(request: Request, since: date | None = None, until: date | None = None) -> Response:
    report = read_disposal_report(
        runtime_of(request),
        principal_of(request),
        since=datetime.combine(since, datetime.min.time(), UTC) if since else None,
        until=datetime.combine(until, datetime.min.time(), UTC) + timedelta(days=1) if until else None,
        fmt="html",
    )
    return pages.render(request, "records_disposals.html", {"report": report})
