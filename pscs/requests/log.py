"""The Records Commander's log of storage requests (S2), exported: who may take the whole
log away is decided, and every export — allowed or refused — audited, here, for the web
console and the command line alike; :func:`log_csv` and :mod:`pscs.requests.pdf` format it."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from pscs import csvsafe
from pscs.auth.principal import Principal
from pscs.clock import iso_ms
from pscs.policy import decisions
from pscs.requests.service import RequestView, requests_seen_by
from pscs.runtime import Runtime

LOG_COLUMNS = (
    "number",
    "status",
    "submitted_at",
    "requester",
    "requester_name",
    "unit",
    "case_number",
    "reason",
    "cameras",
    "footage_from_utc",
    "footage_to_utc",
    "decided_by",
    "decided_at",
    "decision_reason",
    "fulfilled_at",
    "evidence_item_id",
)


def export_request_log(rt: Runtime, principal: Principal, *, year: int | None = None, fmt: str) -> list[RequestView]:
    """Every request in the log (of ``year``); ``fmt`` is how it leaves (``csv``, ``pdf``)."""
    decision = decisions.may_export_request_log(principal.roles, rt.profile, system=principal.is_system)
    if not decision.allowed:
        raise rt.audit.refusal(
            "storage_request.log_export", principal.actor, decision, object_type="storage_request_log", object_id=year
        )
    views = requests_seen_by(rt, principal, year=year)  # the whole log: only its readers get this far
    rt.audit.record(
        "storage_request.log_export",
        principal.actor,
        clauses=(decision.clause,),
        details={"format": fmt, "requests": len(views)} | ({"year": year} if year else {}),
    )
    return views


def log_rows(views: Iterable[RequestView]) -> Iterator[list[str]]:
    for v in sorted(views, key=lambda v: v.number):
        yield [
            v.number,
            v.status,
            v.submitted_at.isoformat(),
            v.requester,
            v.requester_name,
            v.unit,
            v.case_number,
            v.reason_label,
            " ".join(map(str, v.camera_ids)),
            iso_ms(v.start_ms),
            iso_ms(v.end_ms),
            v.decided_by or "",
            v.decided_at.isoformat() if v.decided_at else "",
            v.decision_reason or "",
            v.fulfilled_at.isoformat() if v.fulfilled_at else "",
            "" if v.evidence_item_id is None else str(v.evidence_item_id),
        ]


def log_csv(views: Iterable[RequestView]) -> str:
    buf = io.StringIO()
    writer = csvsafe.Writer(buf)
    writer.writerow(LOG_COLUMNS)
    writer.writerows(log_rows(views))
    return buf.getvalue()
