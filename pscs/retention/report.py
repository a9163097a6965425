"""Reading the periodic disposal report (S1; cf. CT form RC-075), for the web console and
the command line alike: who may read it is decided, and every read — allowed or refused —
audited, here.  The edges only format what :func:`read_disposal_report` returns."""

from __future__ import annotations

from datetime import datetime, timedelta

from pscs.auth.principal import Principal
from pscs.clock import as_utc
from pscs.policy import decisions
from pscs.retention.disposal import DisposalReport, disposal_report
from pscs.runtime import Runtime

DEFAULT_PERIOD = timedelta(days=30)


def read_disposal_report(
    rt: Runtime, principal: Principal, *, since: datetime | None = None, until: datetime | None = None, fmt: str
) -> DisposalReport:
    """The recordings destroyed in [since, until) (default: the last 30 days); ``fmt`` is
    how the report leaves (``json``, ``csv``, ``pdf``, ``html``, ``table``), for the trail."""
    decision = decisions.may_read_disposal_report(principal.roles, rt.profile, system=principal.is_system)
    if not decision.allowed:
        raise rt.audit.refusal(
            "retention.report", principal.actor, decision, object_type="disposal_report", object_id=None
        )
    until = as_utc(until) or rt.clock.now()
    since = as_utc(since) or until - DEFAULT_PERIOD
    with rt.db.session() as s:
        report = disposal_report(s, rt.profile.department, rt.profile.retention.recording_days, since, until)
    rt.audit.record(
        "retention.report",
        principal.actor,
        clauses=(decision.clause,),
        details={"since": since.isoformat(), "until": until.isoformat(), "format": fmt},
    )
    return report
