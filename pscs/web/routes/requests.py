"""Storage requests and the Records Commander's log (S2): the API, the console's pages and
forms, the log's exports and the printed form.  A form posts to the same service call as
its API route (it calls that route)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from pscs.clock import utc_to_ms
from pscs.requests import pdf
from pscs.requests import service as requests
from pscs.requests.log import export_request_log, log_csv
from pscs.retention.models import HOLD_REASONS
from pscs.web import pages
from pscs.web.access import permits, principal_of, requires, runtime_of
from pscs.web.defs.common import EpochMs, Id, Year
from pscs.web.defs.requests import NewRequest, NewRequestForm, RequestDecision, RequestDecisionForm, RequestStatus
from pscs.web.routes.records import LOG_READERS, READERS, REQUEST_DECIDERS, VIDEO, attachment, camera_names, see_other

router = APIRouter(tags=["storage requests"])


@router.get("/api/v1/storage-requests")
@requires(READERS)
def list_requests(request: Request, status: RequestStatus | None = None, year: Year | None = None) -> dict[str, Any]:
    """The log for the records commander and auditors; anyone else sees their own requests."""
    views = requests.list_requests(runtime_of(request), principal_of(request), status=status, year=year)
    return {"requests": [v.as_dict() for v in views]}


@router.post("/api/v1/storage-requests", status_code=201)
@requires(VIDEO)
def submit_request(request: Request, body: NewRequest) -> dict[str, Any]:
    """File the storage request form (S2); a provisional hold is placed at once."""
    return requests.file_request(
        runtime_of(request),
        principal_of(request),
        unit=body.unit,
        case_number=body.case_number,
        camera_ids=body.camera_ids,
        start_ms=utc_to_ms(body.start),
        end_ms=utc_to_ms(body.end),
        reason=body.reason,
        narrative=body.narrative,
        attestation_name=body.attestation_name,
    ).as_dict()


@router.get("/api/v1/storage-requests/{number}")
@requires(READERS)
def get_request(request: Request, number: str) -> dict[str, Any]:
    return requests.get_request(runtime_of(request), principal_of(request), number).as_dict()


@router.post("/api/v1/storage-requests/{number}/decision")
@requires(REQUEST_DECIDERS)
def decide_request(request: Request, number: str, body: RequestDecision) -> dict[str, Any]:
    """Approve (the footage becomes evidence, S3) or deny with a reason."""
    return requests.decide_request(
        runtime_of(request), principal_of(request), number, approve=body.approve, reason=body.reason
    ).as_dict()


@router.post("/api/v1/storage-requests/{number}/fulfil")
@requires(REQUEST_DECIDERS)
def fulfil_request(request: Request, number: str) -> dict[str, Any]:
    """Retry the evidence intake of an approved request."""
    return requests.fulfil_request(runtime_of(request), principal_of(request), number).as_dict()


# Pages, forms and exports ------------------------------------------------------------------------
@router.get("/records/requests", include_in_schema=False)
@requires(READERS)
def requests_page(request: Request, status: str = "") -> Response:
    rt = runtime_of(request)
    views = requests.list_requests(rt, principal_of(request), status=status or None)
    return pages.render(
        request,
        "requests.html",
        {
            "requests": views,
            "status": status,
            "cameras": camera_names(rt),
            "is_log": permits(request, LOG_READERS),
            "can_file": permits(request, VIDEO),
        },
    )


@router.get("/records/requests/new", include_in_schema=False)
@requires(VIDEO)
def request_form_page(
    request: Request,
    camera_id: Id | None = None,
    start_ms: EpochMs | None = None,
    end_ms: EpochMs | None = None,
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
            "cameras": camera_names(rt),
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
def request_submit_form(request: Request, form: Annotated[NewRequestForm, Form()]) -> Response:
    return see_other(f"/records/requests/{submit_request(request, form)['number']}")


@router.get("/records/requests/blank-form.pdf", include_in_schema=False)
@requires(READERS)
def blank_form(request: Request) -> Response:
    """The department's storage request form, blank, to print."""
    return attachment(
        pdf.blank_form_pdf(runtime_of(request).profile.department), "application/pdf", "storage-request-form.pdf"
    )


def _log_export(request: Request, fmt: Literal["csv", "pdf"], year: Year | None) -> Response:
    """The whole log leaves through the service, which decides who may and audits it."""
    rt = runtime_of(request)
    views = export_request_log(rt, principal_of(request), year=year, fmt=fmt)
    if fmt == "csv":
        return attachment(log_csv(views), "text/csv", "storage-request-log.csv")
    return attachment(pdf.log_pdf(views, rt.profile.department), "application/pdf", "storage-request-log.pdf")


@router.get("/records/requests/log.csv", include_in_schema=False)
@requires(LOG_READERS)
def log_csv_export(request: Request, year: Year | None = None) -> Response:
    return _log_export(request, "csv", year)


@router.get("/records/requests/log.pdf", include_in_schema=False)
@requires(LOG_READERS)
def log_pdf_export(request: Request, year: Year | None = None) -> Response:
    return _log_export(request, "pdf", year)


@router.get("/records/requests/{number}", include_in_schema=False)
@requires(READERS)
def request_page(request: Request, number: str) -> Response:
    rt = runtime_of(request)
    caller = principal_of(request)
    view = requests.get_request(rt, caller, number)
    return pages.render(
        request,
        "request_detail.html",
        {
            "r": view,
            "cameras": camera_names(rt),
            "may_decide": requests.may_decide(rt, caller, view).allowed,
        },
    )


@router.get("/records/requests/{number}/form.pdf", include_in_schema=False)
@requires(READERS)
def filled_form(request: Request, number: str) -> Response:
    rt = runtime_of(request)
    view = requests.get_request(rt, principal_of(request), number)
    rt.audit.record(
        "storage_request.print", request.state.actor, object_type="storage_request", object_id=number, clauses=("S2",)
    )
    return attachment(
        pdf.filled_form_pdf(view, rt.profile.department, camera_names(rt)),
        "application/pdf",
        f"storage-request-{number}.pdf",
    )


@router.post("/records/requests/{number}/decision", include_in_schema=False)
@requires(REQUEST_DECIDERS)
def decision_form(request: Request, number: str, form: Annotated[RequestDecisionForm, Form()]) -> Response:
    decide_request(request, number, form.as_body())
    return see_other(f"/records/requests/{number}")
