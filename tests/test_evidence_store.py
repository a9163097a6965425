"""The evidence store (S3): content-addressed read-only copies, signed manifests, chain of
custody tied to the audit trail, two-person disposal — and tampering caught."""

from __future__ import annotations

import json
import os
import stat
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from pscs.auth.principal import Principal, principal_of_actor
from pscs.compliance.check import run_compliance_check
from pscs.errors import PolicyDenied
from pscs.evidence import service as evidence
from pscs.evidence.models import EvidenceFile
from pscs.requests import service as requests
from pscs.retention.sweeper import RetentionSweeper
from pscs.runtime import EVIDENCE_KEY, Runtime
from pscs.signing import load_public_key, public_key_path, verify_signature
from pscs.storage.pressure import DiskUsage, relieve_disk_pressure
from tests.test_retention_sweeper import DAY, T0, T0_MS, add_cameras, add_segments, clock, full_name, user_actor


def approved_item(rt: Runtime, n_segments: int = 4) -> tuple[evidence.ItemView, list]:
    cams = add_cameras(rt, 1)
    add_segments(rt, cams[0], [T0_MS + i * DAY // 4 for i in range(n_segments)])
    inv = user_actor(rt, "erin", ["investigator"])
    boss = user_actor(rt, "rick", ["records_commander"])
    req = requests.file_request(
        rt,
        principal_of_actor(rt, inv),
        unit="Detectives",
        case_number="2026-777",
        camera_ids=cams,
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="prosecution",
        narrative="Assault, Main St",
        attestation_name=full_name("erin"),
        now=T0 + timedelta(days=1),
    )
    done = requests.decide_request(
        rt, principal_of_actor(rt, boss), req.number, approve=True, now=T0 + timedelta(days=1)
    )
    return evidence.get_item(rt, Principal.system(), done.evidence_item_id), [inv, boss]


def test_S3_intake_copies_named_by_hash_read_only_with_a_signed_manifest(runtime: Runtime) -> None:
    item, _ = approved_item(runtime)
    root = runtime.settings.evidence_path
    with runtime.db.session() as s:
        files = list(s.scalars(select(EvidenceFile).where(EvidenceFile.item_id == item.id)))
    assert len(files) == 4  # the four quarter-day segments that overlap the day
    for f in files:
        path = root / f.store_path
        assert path.name == f"{f.sha256}.mp4" and evidence.file_sha256(path) == f.sha256 == f.index_sha256
        assert stat.S_IMODE(path.stat().st_mode) == 0o440
    manifest = (root / "manifests" / f"{item.number}.json").read_bytes()
    signature = (root / "manifests" / f"{item.number}.json.sig").read_text()
    key = load_public_key(public_key_path(runtime.settings.keys_dir, EVIDENCE_KEY).read_bytes())
    assert verify_signature(key, manifest, signature)
    assert not verify_signature(key, manifest.replace(b"2026-777", b"2026-778"), signature)
    body = json.loads(manifest)
    assert body["case_number"] == "2026-777" and {f["sha256"] for f in body["files"]} == {f.sha256 for f in files}
    # Chain of custody: the intake event names the audit event that records it.
    [intake] = item.custody
    [audit_event] = runtime.audit.search(action_prefix="evidence.intake")
    assert intake.audit_seq == audit_event.seq and audit_event.clauses == "S3"
    assert evidence.verify_item(runtime, None, item.id).ok


def test_S3_retention_and_disk_pressure_never_touch_evidence(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    item, _ = approved_item(rt)
    root = rt.settings.evidence_path
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    RetentionSweeper(rt, clock=clock(T0 + timedelta(days=400))).run_once()
    rt.settings.min_free_bytes = 10**15
    relieve_disk_pressure(rt, usage=lambda _p: DiskUsage(10**6, 10**6, 0))
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert evidence.verify_item(rt, None, item.id).ok
    assert not list(rt.settings.recordings_path.rglob("*.mp4"))  # the originals went on schedule


def test_S3_tampering_with_one_byte_fails_the_compliance_check(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    item, _ = approved_item(rt)
    assert run_compliance_check(rt, now=T0 + timedelta(days=2)).ok
    with rt.db.session() as s:
        victim = s.scalars(select(EvidenceFile).where(EvidenceFile.item_id == item.id)).first()
    path = rt.settings.evidence_path / victim.store_path
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.chmod(path, 0o440)
    report = run_compliance_check(rt, now=T0 + timedelta(days=2))
    assert not report.ok
    [finding] = report.violations
    assert finding.clause == "S3" and victim.store_path in finding.what and "SHA-256" in finding.what
    [event] = rt.audit.search(action_prefix="compliance.check", outcome="error")
    assert "S3" in event.details
    assert rt.audit.search(action_prefix="evidence.verify", outcome="error")


def test_S3_custody_records_views_exports_and_transfers(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    item, (inv, _boss) = approved_item(rt, n_segments=1)
    with rt.db.session() as s:
        sha = s.scalar(select(EvidenceFile.sha256).where(EvidenceFile.item_id == item.id))
    path = evidence.open_evidence_file(rt, inv, item.id, sha, action="view", purpose="case review")
    assert path.exists()
    evidence.open_evidence_file(rt, inv, item.id, sha, action="export", purpose="for the State's Attorney")
    evidence.transfer(rt, inv, item.id, to="State's Attorney, New London JD", method="sealed USB, receipt 12")
    custody = evidence.get_item(rt, Principal.system(), item.id).custody
    assert [c.action for c in custody] == ["intake", "view", "export", "transfer"]
    seqs = {e.seq: e.action for e in rt.audit.search(action_prefix="evidence.")}
    assert [seqs[c.audit_seq] for c in custody] == [f"evidence.{c.action}" for c in custody]


def test_S3_disposal_needs_a_closed_case_the_records_commander_and_a_second_approver(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    item, (inv, boss) = approved_item(rt)
    sup = user_actor(rt, "sue", ["supervisor"])
    kwargs = dict(
        case_reference="2026-777",
        case_closed_on=date(2026, 6, 1),
        authority="Nolle entered 2026-06-01, docket K21N-CR26-0001; appeal period expired",
    )
    with pytest.raises(PolicyDenied):
        evidence.propose_disposal(rt, principal_of_actor(rt, inv), item.id, **kwargs)
    with pytest.raises(PolicyDenied, match="closed"):
        evidence.propose_disposal(rt, principal_of_actor(rt, boss), item.id, **(kwargs | {"authority": " "}))
    with pytest.raises(PolicyDenied, match="already be closed"):
        evidence.propose_disposal(rt, principal_of_actor(rt, boss), item.id, **kwargs, today=date(2026, 5, 1))
    proposal = evidence.propose_disposal(rt, principal_of_actor(rt, boss), item.id, **kwargs, today=date(2026, 7, 1))
    with pytest.raises(PolicyDenied, match="second"):
        evidence.approve_disposal(rt, principal_of_actor(rt, boss), proposal["id"])
    with pytest.raises(PolicyDenied):
        evidence.approve_disposal(rt, principal_of_actor(rt, inv), proposal["id"])
    assert evidence.verify_item(rt, None, item.id).ok  # still intact
    done = evidence.approve_disposal(rt, principal_of_actor(rt, sup), proposal["id"])
    assert done["status"] == "executed" and done["approved_by"] == "sue" and done["files_removed"] == 4
    after = evidence.get_item(rt, Principal.system(), item.id)
    assert after.status == "disposed" and after.custody[-1].action == "disposal"
    assert after.disposals[0]["authority"].startswith("Nolle")  # recorded forever
    assert not list((rt.settings.evidence_path / "objects").rglob("*.mp4"))
    assert run_compliance_check(rt, now=T0 + timedelta(days=2)).ok


def test_S3_a_refused_withdrawal_is_audited_and_the_proposal_stays(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    item, (inv, boss) = approved_item(rt)
    proposal = evidence.propose_disposal(
        rt,
        principal_of_actor(rt, boss),
        item.id,
        case_reference="2026-777",
        case_closed_on=date(2026, 6, 1),
        authority="Nolle entered 2026-06-01",
        today=date(2026, 7, 1),
    )
    with pytest.raises(PolicyDenied, match="proposer"):
        evidence.withdraw_disposal(rt, principal_of_actor(rt, inv), proposal["id"], "not mine to withdraw")
    [refusal] = rt.audit.search(action_prefix="evidence.disposal.withdraw")
    assert (refusal.actor, refusal.outcome, refusal.object_id) == ("erin", "denied", str(item.id))
    assert evidence.get_item(rt, Principal.system(), item.id).disposals[0]["status"] == "proposed"
    withdrawn = evidence.withdraw_disposal(rt, principal_of_actor(rt, boss), proposal["id"], "case reopened")
    assert withdrawn["status"] == "withdrawn"
