"""The auditor's view of the audit trail (M1).  Every read is itself audited."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from pscs.audit.export import event_dict, export_lines
from pscs.oversight import audit_trail as audit
from pscs.policy.decisions import AUDIT_READERS
from pscs.web import pages
from pscs.web.access import principal_of, roles, runtime_of
from pscs.web.defs.common import MAX_INT, Instant
from pscs.web.openapi import answers_in

router = APIRouter(tags=["audit"])
auditor = roles(*AUDIT_READERS)


def _filters(
    since: Instant | None,
    until: Instant | None,
    actor: str | None,
    action: str | None,
    outcome: str | None,
    object_type: str | None,
    object_id: str | None,
) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "since": since,
            "until": until,
            "actor": actor,
            "action_prefix": action,
            "outcome": outcome,
            "object_type": object_type,
            "object_id": object_id,
        }.items()
        if v not in (None, "")
    }


Since = Annotated[Instant | None, Query(description="UTC, ISO 8601")]
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/api/v1/audit/events")
@auditor
def search_events(
    request: Request,
    since: Since = None,
    until: Since = None,
    actor: Text = None,
    action: Text = None,
    outcome: Literal["allowed", "denied", "error"] | None = None,
    object_type: Text = None,
    object_id: Text = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before_seq: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> dict[str, Any]:
    """Search events, newest first; page with ``before_seq``."""
    rt = runtime_of(request)
    filters = _filters(since, until, actor, action, outcome, object_type, object_id)
    rows = rt.audit.search(**filters, limit=limit, before_seq=before_seq)
    rt.audit.record(
        "audit.search",
        request.state.actor,
        clauses=("M1",),
        details={k: str(v) for k, v in filters.items()} | {"results": len(rows)},
    )
    return {"events": [event_dict(r) for r in rows]}


@router.get("/api/v1/audit/export", responses=answers_in("text/csv", "application/x-ndjson"))
@auditor
def export_events(
    request: Request,
    since: Since = None,
    until: Since = None,
    fmt: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "csv",
) -> StreamingResponse:
    """All events in a time range, oldest first, for the case file."""
    rows = audit.export_events(runtime_of(request), principal_of(request), since=since, until=until, fmt=fmt)
    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(
        export_lines(rows, fmt),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="pscs-audit.{fmt}"'},
    )


@router.post("/api/v1/audit/verify")
@auditor
def verify(request: Request) -> dict[str, Any]:
    """Recompute the chain, the signed checkpoints and their cadence, and match the signer's record."""
    result = audit.verify_trail(runtime_of(request), principal_of(request))
    return {
        "ok": result.ok,
        "events_checked": result.events_checked,
        "checkpoints_checked": result.checkpoints_checked,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
        "problems": [{"seq": seq, "reason": reason} for seq, reason in result.problems],
    }


@router.get("/api/v1/audit/public-key", response_class=PlainTextResponse)
@auditor
def public_key(request: Request) -> str:
    """The Ed25519 key that signs checkpoints, for verification away from the server."""
    return runtime_of(request).audit_public_key_path.read_text()


@router.get("/audit", include_in_schema=False)
@auditor
def audit_page(
    request: Request,
    since: Since = None,
    until: Since = None,
    actor: Text = None,
    action: Text = None,
    outcome: Literal["allowed", "denied", "error", ""] | None = None,
    object_type: Text = None,
    object_id: Text = None,
) -> Response:
    rt = runtime_of(request)
    filters = _filters(since, until, actor, action, outcome or None, object_type, object_id)
    rows = rt.audit.search(**filters, limit=200)
    rt.audit.record(
        "audit.search",
        request.state.actor,
        clauses=("M1",),
        details={k: str(v) for k, v in filters.items()} | {"results": len(rows), "via": "console"},
    )
    return pages.render(
        request, "audit.html", {"events": [event_dict(r) for r in rows], "filters": filters, "query": request.url.query}
    )
