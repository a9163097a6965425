"""Reading the audit trail (M1) — exporting events for a case file and verifying the chain —
for the web console and the command line alike: who may is decided, and every read,
allowed or refused, is itself audited, here.  The edges only write out what is returned
(:func:`pscs.audit.export.export_lines` formats the events)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from pscs.audit.chain import Checkpoint, VerifyResult
from pscs.audit.export import FORMATS
from pscs.audit.models import AuditEventRow
from pscs.auth.principal import Principal
from pscs.clock import as_utc
from pscs.errors import InvalidInput
from pscs.policy import decisions
from pscs.runtime import Runtime


def _decide(rt: Runtime, principal: Principal, action: str) -> decisions.Decision:
    decision = decisions.may_read_audit_trail(principal.roles, system=principal.is_system)
    if not decision.allowed:
        raise rt.audit.refusal(action, principal.actor, decision, object_type="audit_trail", object_id=None)
    return decision


def export_events(
    rt: Runtime,
    principal: Principal,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    fmt: str,
    destination: str | None = None,
) -> Iterator[AuditEventRow]:
    """Every event in [since, until), oldest first.  ``fmt`` (csv, jsonl) and ``destination``
    (a file the command line writes) go into the export's own event, which is recorded
    before the rows are read: an open-ended export includes it."""
    decision = _decide(rt, principal, "audit.export")
    if fmt not in FORMATS:
        raise InvalidInput(f"the format must be one of {', '.join(FORMATS)}")
    since, until = as_utc(since), as_utc(until)
    rt.audit.record(
        "audit.export",
        principal.actor,
        object_type="audit_trail",
        clauses=(decision.clause,),
        details={"since": str(since), "until": str(until), "format": fmt}
        | ({"output": destination} if destination else {}),
    )
    return rt.audit.iter_range(since, until)


def verify_trail(
    rt: Runtime,
    principal: Principal,
    *,
    public_key_pem: bytes | None = None,
    anchors: Mapping[str, list[Checkpoint]] | None = None,
) -> VerifyResult:
    """Recompute the hash chain and the signed checkpoints, with this installation's key
    unless another is given (an auditor's own copy); hold the checkpoints to the profile's
    cadence; and match the chain against the heads the signer recorded and any ``anchors``
    (signed heads kept elsewhere, by where they were read from)."""
    decision = _decide(rt, principal, "audit.verify")
    key = public_key_pem if public_key_pem is not None else rt.audit_public_key_path.read_bytes()
    result = rt.audit.verify(key, anchors)
    rt.audit.record(
        "audit.verify",
        principal.actor,
        object_type="audit_trail",
        clauses=(decision.clause,),
        details={"ok": result.ok, "first_bad_seq": result.first_bad_seq, "events": result.events_checked},
    )
    return result
