"""The evidence store (S3).  Approved storage requests become evidence items here: the
request log (:mod:`pscs.requests.service`) hands :func:`intake` what the request names.

Layout under ``settings.evidence_path``::

    objects/<sha[:2]>/<sha256>.mp4     each file named by its SHA-256, mode 0444
    manifests/<number>.json            the item's manifest (canonical JSON), mode 0444
    manifests/<number>.json.sig        its Ed25519 signature (hex), evidence key, mode 0444
    tmp/                               copies being made (fsynced, then renamed into objects/)

Every intake, view, export, transfer, verification and disposal is a custody event tied to
the audit-trail event that records it.  Nothing in the retention sweeper or the disk
pressure path can reach this tree (they delete only through pscs.storage.deletion, inside
the recordings root).  An item is destroyed only by :func:`approve_disposal`, on a
documented authorisation with two people.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pscs.audit.events import Actor, Outcome
from pscs.auth.principal import Principal
from pscs.clock import iso_ms
from pscs.errors import Conflict, InvalidInput, NotFound
from pscs.evidence.models import (
    CustodyAction,
    CustodyEvent,
    DisposalStatus,
    EvidenceDisposal,
    EvidenceFile,
    EvidenceItem,
    EvidenceStatus,
)
from pscs.filemodes import FILE_MODE, READ_ONLY_MODE
from pscs.policy import decisions
from pscs.runtime import EVIDENCE_KEY, Runtime
from pscs.signing import load_public_key, load_signer, public_key_path, verify_signature
from pscs.storage.layout import Stream
from pscs.storage.models import RecordingGap, Segment

log = logging.getLogger(__name__)
READ_ONLY = READ_ONLY_MODE  # owner and group may read; nobody writes in place; others nothing
CUSTODY_ACTIONS = tuple(CustodyAction)


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def object_relpath(sha256: str) -> str:
    return f"objects/{sha256[:2]}/{sha256}.mp4"


def item_number(request_number: str) -> str:
    return f"EV-{request_number}"


def request_number_of(item: EvidenceItem) -> str | None:
    """The number of the storage request an item preserves (its own number says it)."""
    return item.number.removeprefix("EV-") if item.storage_request_id is not None else None


# Views -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CustodyView:
    id: int
    action: str
    actor: str
    at: datetime
    details: dict[str, Any]
    audit_seq: int


@dataclass(frozen=True)
class ItemView:
    id: int
    number: str
    request_number: str | None
    case_number: str
    description: str
    start_ms: int
    end_ms: int
    status: str
    created_by: str
    created_at: datetime
    files: int
    bytes: int
    camera_ids: tuple[int, ...]
    key_id: str
    manifest_sha256: str
    disposed_at: datetime | None
    custody: list[CustodyView] = field(default_factory=list)
    disposals: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["camera_ids"] = list(self.camera_ids)
        d["created_at"] = self.created_at.isoformat()
        d["disposed_at"] = self.disposed_at.isoformat() if self.disposed_at else None
        d["custody"] = [c.__dict__ | {"at": c.at.isoformat()} for c in self.custody]
        return d


def _view(s: Session, item: EvidenceItem, *, full: bool = False) -> ItemView:
    count, size = s.execute(
        select(func.count(EvidenceFile.id), func.coalesce(func.sum(EvidenceFile.bytes), 0)).where(
            EvidenceFile.item_id == item.id
        )
    ).one()
    cameras = tuple(sorted(set(s.scalars(select(EvidenceFile.camera_id).where(EvidenceFile.item_id == item.id)))))
    number = request_number_of(item)
    custody: list[CustodyView] = []
    disposals: list[dict[str, Any]] = []
    if full:
        custody = [
            CustodyView(c.id, c.action, c.actor, c.at, json.loads(c.details), c.audit_seq)
            for c in s.scalars(select(CustodyEvent).where(CustodyEvent.item_id == item.id).order_by(CustodyEvent.id))
        ]
        disposals = [
            _disposal_dict(d)
            for d in s.scalars(
                select(EvidenceDisposal).where(EvidenceDisposal.item_id == item.id).order_by(EvidenceDisposal.id)
            )
        ]
    return ItemView(
        item.id,
        item.number,
        number,
        item.case_number,
        item.description,
        item.start_ms,
        item.end_ms,
        item.status,
        item.created_by,
        item.created_at,
        int(count),
        int(size),
        cameras,
        item.key_id,
        item.manifest_sha256,
        item.disposed_at,
        custody,
        disposals,
    )


def _disposal_dict(d: EvidenceDisposal) -> dict[str, Any]:
    return {
        "id": d.id,
        "item_id": d.item_id,
        "case_reference": d.case_reference,
        "case_closed_on": d.case_closed_on.isoformat(),
        "authority": d.authority,
        "status": d.status,
        "proposed_by": d.proposed_by,
        "proposed_at": d.proposed_at.isoformat(),
        "approved_by": d.approved_by,
        "approved_at": d.approved_at.isoformat() if d.approved_at else None,
        "files_removed": d.files_removed,
    }


def list_items(rt: Runtime, caller: Principal) -> list[ItemView]:
    """Every item, newest first; the reading is audited, once for the whole list (M1)."""
    with rt.db.session() as s:
        views = [_view(s, i) for i in s.scalars(select(EvidenceItem).order_by(EvidenceItem.id.desc()))]
    listed = {"listed": len(views)}
    rt.audit.record("evidence.read", caller.actor, object_type="evidence", clauses=("M1",), details=listed)
    return views


def _load(s: Session, item_id: int) -> EvidenceItem:
    item = s.get(EvidenceItem, item_id)
    if item is None:
        raise NotFound(f"no evidence item {item_id}")
    return item


def get_item(rt: Runtime, caller: Principal, item_id: int) -> ItemView:
    """The item with its custody record (reading the record is not an access to the footage);
    the reading is audited (M1)."""
    view = _item(rt, item_id)
    rt.audit.record("evidence.read", caller.actor, object_type="evidence", object_id=item_id, clauses=("M1",))
    return view


def _item(rt: Runtime, item_id: int) -> ItemView:
    with rt.db.session() as s:
        return _view(s, _load(s, item_id), full=True)


# Custody -----------------------------------------------------------------------------------------
def record_custody(
    rt: Runtime,
    actor: Actor,
    item_id: int,
    action: CustodyAction | str,
    details: dict[str, Any] | None = None,
    *,
    outcome: Outcome = Outcome.ALLOWED,
) -> int:
    """Append a custody event, tied to the audit event that records the same act; returns its id."""
    if action not in CUSTODY_ACTIONS:
        raise ValueError(f"unknown custody action {action!r}")
    details = details or {}
    seq = rt.audit.record(
        f"evidence.{action}",
        actor,
        outcome,
        object_type="evidence",
        object_id=item_id,
        clauses=("S3",),
        details=details,
    )
    with rt.db.write() as s:
        event = CustodyEvent(
            item_id=item_id,
            action=action,
            actor=actor.username,
            actor_id=actor.user_id,
            at=rt.clock.now(),
            details=canonical(details).decode(),
            audit_seq=seq,
        )
        s.add(event)
        s.flush()
        return event.id


def open_evidence_file(
    rt: Runtime,
    actor: Actor,
    item_id: int,
    sha256: str,
    *,
    action: CustodyAction | str = CustodyAction.VIEW,
    purpose: str = "",
) -> Path:
    """The path of one evidence file for a viewer or an exporter, after recording the access
    in the chain of custody.  (Whoever shows or exports the pixels applies the privacy masks,
    U4; this module never serves video itself.)"""
    if action not in (CustodyAction.VIEW, CustodyAction.EXPORT):
        raise ValueError("action is 'view' or 'export'")
    with rt.db.session() as s:
        item = _load(s, item_id)
        if item.status != EvidenceStatus.PRESERVED:
            raise Conflict(f"evidence item {item.number} was disposed of")
        row = s.scalar(select(EvidenceFile).where(EvidenceFile.item_id == item_id, EvidenceFile.sha256 == sha256))
        if row is None:
            raise NotFound(f"evidence item {item.number} has no file {sha256}")
        path = rt.settings.evidence_path / row.store_path
    record_custody(rt, actor, item_id, action, {"file": sha256, "purpose": purpose[:300]})
    return path


def transfer(rt: Runtime, actor: Actor, item_id: int, *, to: str, method: str, note: str = "") -> int:
    """Record a hand-over of the item (e.g. a copy on sealed media to the prosecutor)."""
    if not to.strip() or not method.strip():
        raise InvalidInput("a transfer names who received the evidence and how it was handed over")
    with rt.db.session() as s:
        item = _load(s, item_id)
        if item.status != EvidenceStatus.PRESERVED:
            raise Conflict(f"evidence item {item.number} was disposed of")
    return record_custody(
        rt,
        actor,
        item_id,
        CustodyAction.TRANSFER,
        {"to": to.strip()[:200], "method": method.strip()[:200], "note": note.strip()[:1000]},
    )


# Intake ------------------------------------------------------------------------------------------
def _copy_into_store(root: Path, source: Path) -> tuple[str, int, str]:
    """Copy ``source`` into the store (hash while copying; fsync; rename to its hash)."""
    tmp_dir = root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{secrets.token_hex(8)}.part"
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    sha = digest.hexdigest()
    rel = object_relpath(sha)
    final = root / rel
    if final.exists() and file_sha256(final) == sha:
        tmp.unlink()  # the same recording is already evidence (another item): keep one copy
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, READ_ONLY)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    return sha, size, rel


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_read_only(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        os.chmod(path, FILE_MODE)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, READ_ONLY)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class IntakeOrder:
    """What an approved storage request (S2) asks the store to preserve."""

    request_id: int
    number: str
    case_number: str
    narrative: str
    start_ms: int
    end_ms: int
    camera_ids: tuple[int, ...]


def intake(rt: Runtime, actor: Actor, order: IntakeOrder) -> ItemView:
    """Copy an approved request's footage into the evidence store, sign its manifest and
    record the intake.  Idempotent: a request already taken in returns its item.  The
    caller (the request log) has checked that the request is approved."""
    root = rt.settings.evidence_path
    recordings = rt.settings.recordings_path
    request_id = order.request_id
    cameras = sorted(set(order.camera_ids))
    number, case_number, narrative = order.number, order.case_number, order.narrative
    start_ms, end_ms = order.start_ms, order.end_ms
    with rt.db.session() as s:
        existing = s.scalar(select(EvidenceItem).where(EvidenceItem.storage_request_id == request_id))
        if existing is not None:
            return _view(s, existing)
        segments = list(
            s.execute(
                select(
                    Segment.id,
                    Segment.camera_id,
                    Segment.stream,
                    Segment.start_ms,
                    Segment.end_ms,
                    Segment.path,
                    Segment.sha256,
                )
                .where(
                    Segment.camera_id.in_(cameras),
                    Segment.stream == Stream.MAIN,
                    Segment.start_ms < end_ms,
                    Segment.end_ms > start_ms,
                )
                .order_by(Segment.camera_id, Segment.start_ms)
            )
        )
        gaps = [
            {"camera_id": g.camera_id, "from": iso_ms(g.start_ms), "to": iso_ms(g.end_ms), "reason": g.reason}
            for g in s.scalars(
                select(RecordingGap)
                .where(
                    RecordingGap.camera_id.in_(cameras),
                    RecordingGap.start_ms < end_ms,
                    RecordingGap.end_ms > start_ms,
                )
                .order_by(RecordingGap.camera_id, RecordingGap.start_ms)
            )
        ]

    files: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for seg in segments:
        source = recordings / seg.path
        try:
            sha, size, rel = _copy_into_store(root, source)
        except FileNotFoundError:
            missing.append(
                {"camera_id": seg.camera_id, "from": iso_ms(seg.start_ms), "to": iso_ms(seg.end_ms), "path": seg.path}
            )
            continue
        if sha != seg.sha256:
            log.error("evidence intake: %s hashes to %s but the index says %s", seg.path, sha, seg.sha256)
        files.append(
            {
                "sha256": sha,
                "bytes": size,
                "camera_id": seg.camera_id,
                "stream": seg.stream,
                "start_ms": seg.start_ms,
                "end_ms": seg.end_ms,
                "original_path": seg.path,
                "store_path": rel,
                "index_sha256": seg.sha256,
            }
        )
    seen: set[str] = set()
    files = [f for f in files if not (f["sha256"] in seen or seen.add(f["sha256"]))]

    signer = load_signer(rt.settings.keys_dir, EVIDENCE_KEY)
    created_at = rt.clock.now()
    manifest = {
        "format": "pscs-evidence-manifest/1",
        "item": item_number(number),
        "storage_request": number,
        "case_number": case_number,
        "department": rt.profile.department,
        "cameras": cameras,
        "from": iso_ms(start_ms),
        "to": iso_ms(end_ms),
        "created_at": created_at.isoformat(),
        "created_by": actor.username,
        "hash": "sha256",
        "files": [
            {
                k: f[k]
                for k in ("sha256", "bytes", "camera_id", "stream", "start_ms", "end_ms", "original_path", "store_path")
            }
            | {"hash_matches_index": f["sha256"] == f["index_sha256"]}
            for f in files
        ],
        "recording_gaps": gaps,
        "missing_at_intake": missing,
        "key_id": signer.key_id,
    }
    body = canonical(manifest)
    signature = signer.sign(body)
    _write_read_only(root / "manifests" / f"{item_number(number)}.json", body)
    _write_read_only(root / "manifests" / f"{item_number(number)}.json.sig", signature.encode())
    pub = root / "manifests" / "evidence_ed25519.pub.pem"
    if not pub.exists():
        _write_read_only(pub, signer.public_pem())

    with rt.db.write() as s:
        if s.scalar(select(EvidenceItem.id).where(EvidenceItem.storage_request_id == request_id)) is not None:
            raise Conflict(f"storage request {number} was taken in concurrently")
        item = EvidenceItem(
            number=item_number(number),
            storage_request_id=request_id,
            case_number=case_number,
            description=narrative,
            start_ms=start_ms,
            end_ms=end_ms,
            status=EvidenceStatus.PRESERVED,
            created_by=actor.username,
            created_at=created_at,
            manifest_json=body.decode(),
            manifest_sha256=hashlib.sha256(body).hexdigest(),
            signature=signature,
            key_id=signer.key_id,
        )
        s.add(item)
        s.flush()
        s.add_all(EvidenceFile(item_id=item.id, **f) for f in files)
        item_id = item.id
    record_custody(
        rt,
        actor,
        item_id,
        CustodyAction.INTAKE,
        {
            "storage_request": number,
            "files": len(files),
            "bytes": sum(f["bytes"] for f in files),
            "manifest_sha256": hashlib.sha256(body).hexdigest(),
            "missing_at_intake": len(missing),
            "hash_mismatches": sum(1 for f in files if f["sha256"] != f["index_sha256"]),
        },
    )
    return _item(rt, item_id)


# Verification ------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    item_id: int
    number: str
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_item(rt: Runtime, actor: Actor | None, item_id: int) -> VerifyReport:
    """Recompute every file's SHA-256 and check the manifest's signature; recorded in the
    chain of custody when ``actor`` is given."""
    root = rt.settings.evidence_path
    with rt.db.session() as s:
        item = _load(s, item_id)
        files = list(s.scalars(select(EvidenceFile).where(EvidenceFile.item_id == item_id)))
        report = VerifyReport(item.id, item.number)
        if item.status != EvidenceStatus.PRESERVED:
            return report
        body = item.manifest_json.encode()
        if hashlib.sha256(body).hexdigest() != item.manifest_sha256:
            report.problems.append(f"{item.number}: the stored manifest does not match its recorded hash")
        key = load_public_key(public_key_path(rt.settings.keys_dir, EVIDENCE_KEY).read_bytes())
        if not verify_signature(key, body, item.signature):
            report.problems.append(f"{item.number}: the manifest's Ed25519 signature does not verify")
        on_disk = root / "manifests" / f"{item.number}.json"
        if not on_disk.exists() or on_disk.read_bytes() != body:
            report.problems.append(f"{item.number}: manifest file {on_disk.name} is missing or differs")
        listed = {f["sha256"] for f in json.loads(body).get("files", [])}
        if listed != {f.sha256 for f in files}:
            report.problems.append(f"{item.number}: the files recorded differ from the signed manifest")
    for f in files:
        path = root / f.store_path
        report.files_checked += 1
        try:
            mode = path.stat().st_mode
            actual = file_sha256(path)
        except FileNotFoundError:
            report.problems.append(f"{item.number}: evidence file {f.store_path} is missing")
            continue
        if actual != f.sha256:
            report.problems.append(
                f"{item.number}: evidence file {f.store_path} no longer matches its SHA-256 "
                f"(camera {f.camera_id}, {iso_ms(f.start_ms)})"
            )
        if mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            report.problems.append(f"{item.number}: evidence file {f.store_path} is writable (should be 0444)")
    if actor is not None:
        record_custody(
            rt,
            actor,
            item_id,
            CustodyAction.VERIFY,
            {"ok": report.ok, "files": report.files_checked, "problems": report.problems[:20]},
            outcome=Outcome.ALLOWED if report.ok else Outcome.ERROR,
        )
    return report


def verify_all(rt: Runtime, actor: Actor | None) -> list[VerifyReport]:
    with rt.db.session() as s:
        ids = list(
            s.scalars(
                select(EvidenceItem.id).where(EvidenceItem.status == EvidenceStatus.PRESERVED).order_by(EvidenceItem.id)
            )
        )
    return [verify_item(rt, actor, i) for i in ids]


# Disposal (case closed; records commander + a second approver) ----------------------------------
def _deny(rt: Runtime, actor: Actor, action: str, item_id: int, decision: decisions.Decision) -> None:
    raise rt.audit.refusal(action, actor, decision, object_type="evidence", object_id=item_id)


def propose_disposal(
    rt: Runtime,
    caller: Principal,
    item_id: int,
    *,
    case_reference: str,
    case_closed_on: date | None,
    authority: str,
    today: date | None = None,
) -> dict[str, Any]:
    with rt.db.session() as s:
        item = _load(s, item_id)
        status = item.status
        open_proposal = s.scalar(
            select(EvidenceDisposal.id).where(
                EvidenceDisposal.item_id == item_id, EvidenceDisposal.status == DisposalStatus.PROPOSED
            )
        )
    actor = caller.actor
    decision = decisions.may_propose_evidence_disposal(
        caller.roles, status, case_reference, authority, case_closed_on, today or rt.clock.now().date(), rt.profile
    )
    if not decision.allowed:
        _deny(rt, actor, "evidence.disposal.propose", item_id, decision)
    if open_proposal is not None:
        raise Conflict(f"a disposal of this item is already proposed (authorisation {open_proposal})")
    with rt.db.write() as s:
        # Decided again with the item's row locked: one open proposal per item.
        item = s.get(EvidenceItem, item_id, with_for_update=True, populate_existing=True)
        assert item is not None
        open_proposal = s.scalar(
            select(EvidenceDisposal.id).where(
                EvidenceDisposal.item_id == item_id, EvidenceDisposal.status == DisposalStatus.PROPOSED
            )
        )
        if open_proposal is not None:
            raise Conflict(f"a disposal of this item is already proposed (authorisation {open_proposal})")
        if item.status != status:
            raise Conflict(f"the item became {item.status} meanwhile; look again before proposing")
        d = EvidenceDisposal(
            item_id=item_id,
            case_reference=case_reference.strip(),
            case_closed_on=case_closed_on,
            authority=authority.strip(),
            status=DisposalStatus.PROPOSED,
            proposed_by=actor.username,
            proposed_by_id=actor.user_id,
            proposed_at=rt.clock.now(),
        )
        s.add(d)
        s.flush()
        result = _disposal_dict(d)
    rt.audit.record(
        "evidence.disposal.propose", actor, object_type="evidence", object_id=item_id, clauses=("S3",), details=result
    )
    return result


def withdraw_disposal(rt: Runtime, caller: Principal, disposal_id: int, reason: str) -> dict[str, Any]:
    actor = caller.actor
    with rt.db.write() as s:
        d = s.get(EvidenceDisposal, disposal_id, with_for_update=True, populate_existing=True)
        if d is None:
            raise NotFound(f"no disposal authorisation {disposal_id}")
        if d.status != DisposalStatus.PROPOSED:
            raise Conflict(f"disposal authorisation {disposal_id} is {d.status}")
        decision = decisions.may_withdraw_evidence_disposal(caller.username, caller.roles, d.proposed_by, rt.profile)
        if decision.allowed:
            d.status = DisposalStatus.WITHDRAWN
        result = _disposal_dict(d)
    if not decision.allowed:  # audited once the write above has ended
        _deny(rt, actor, "evidence.disposal.withdraw", result["item_id"], decision)
    rt.audit.record(
        "evidence.disposal.withdraw",
        actor,
        object_type="evidence",
        object_id=result["item_id"],
        clauses=("S3",),
        details={"disposal": disposal_id, "reason": reason[:500]},
    )
    return result


def approve_disposal(rt: Runtime, caller: Principal, disposal_id: int) -> dict[str, Any]:
    """The second approver's signature: the item's files are destroyed (those no other
    preserved item also holds), the item is marked disposed; every record stays."""
    with rt.db.session() as s:
        d = s.get(EvidenceDisposal, disposal_id)
        if d is None:
            raise NotFound(f"no disposal authorisation {disposal_id}")
        item_id, proposer, status = d.item_id, d.proposed_by, d.status
    actor = caller.actor
    decision = decisions.may_approve_evidence_disposal(caller.username, caller.roles, proposer, rt.profile)
    if not decision.allowed:
        _deny(rt, actor, "evidence.disposal.approve", item_id, decision)
    if status != DisposalStatus.PROPOSED:
        raise Conflict(f"disposal authorisation {disposal_id} is {status}")
    root = rt.settings.evidence_path
    with rt.db.write() as s:
        # The item's row, then the authorisation's, locked until the write ends: one
        # approval executes, a second finds it executed (or withdrawn meanwhile).
        s.get(EvidenceItem, item_id, with_for_update=True, populate_existing=True)
        d = s.get(EvidenceDisposal, disposal_id, with_for_update=True, populate_existing=True)
        assert d is not None
        if d.status != DisposalStatus.PROPOSED:
            raise Conflict(f"disposal authorisation {disposal_id} is {d.status}")
        item = _load(s, item_id)
        files = list(s.scalars(select(EvidenceFile).where(EvidenceFile.item_id == item_id)))
        shared = set(
            s.scalars(
                select(EvidenceFile.sha256)
                .join(EvidenceItem, EvidenceItem.id == EvidenceFile.item_id)
                .where(
                    EvidenceFile.sha256.in_([f.sha256 for f in files]),
                    EvidenceItem.id != item_id,
                    EvidenceItem.status == EvidenceStatus.PRESERVED,
                )
            )
        )
        removed = 0
        for f in files:
            if f.sha256 in shared:
                continue
            path = root / f.store_path
            if path.exists():
                os.chmod(path, 0o600)
                path.unlink()
                _fsync_dir(path.parent)
                removed += 1
        now = rt.clock.now()
        d.status, d.approved_by, d.approved_by_id, d.approved_at, d.files_removed = (
            DisposalStatus.EXECUTED,
            actor.username,
            actor.user_id,
            now,
            removed,
        )
        item.status, item.disposed_at = EvidenceStatus.DISPOSED, now
        result = _disposal_dict(d)
    record_custody(
        rt,
        actor,
        item_id,
        CustodyAction.DISPOSAL,
        {
            "authorisation": disposal_id,
            "proposed_by": proposer,
            "approved_by": actor.username,
            "files_removed": removed,
            "case_reference": result["case_reference"],
        },
    )
    return result
