"""The periodic disposal report (S1; cf. CT form RC-075), as JSON, CSV or PDF and as a page.
The service decides who may read it and audits every read; these routes only format it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from pscs.requests import pdf
from pscs.retention.disposal import DisposalReport, report_csv
from pscs.retention.report import read_disposal_report
from pscs.web import pages
from pscs.web.access import principal_of, requires, runtime_of
from pscs.web.defs.common import Day, Instant
from pscs.web.openapi import answers_in
from pscs.web.routes.records import LOG_READERS, attachment

router = APIRouter(tags=["retention"])


def report_dict(report: DisposalReport) -> dict[str, Any]:
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


@router.get("/api/v1/retention/disposals", responses=answers_in("application/json", "text/csv", "application/pdf"))
@requires(LOG_READERS)
def disposals(
    request: Request,
    since: Instant | None = None,
    until: Instant | None = None,
    fmt: Annotated[Literal["json", "csv", "pdf"], Query(alias="format")] = "json",
) -> Any:
    """The periodic disposal report (S1; cf. CT form RC-075), as JSON, CSV or PDF."""
    report = read_disposal_report(runtime_of(request), principal_of(request), since=since, until=until, fmt=fmt)
    if fmt == "csv":
        return attachment("".join(report_csv(report)), "text/csv", "pscs-disposals.csv")
    if fmt == "pdf":
        return attachment(pdf.disposal_report_pdf(report), "application/pdf", "pscs-disposals.pdf")
    return report_dict(report)


@router.get("/records/disposals", include_in_schema=False)
@requires(LOG_READERS)
def disposals_page(request: Request, since: Day | None = None, until: Day | None = None) -> Response:
    """The report on screen, by whole days (``until`` included)."""
    report = read_disposal_report(
        runtime_of(request),
        principal_of(request),
        since=datetime.combine(since, datetime.min.time(), UTC) if since else None,
        until=datetime.combine(until, datetime.min.time(), UTC) + timedelta(days=1) if until else None,
        fmt="html",
    )
    return pages.render(request, "records_disposals.html", {"report": report})
