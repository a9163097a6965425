"""``pscs compliance check`` (S1-S3, M1): what fails it, and the command line around it."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text, update

from pscs.auth.principal import principal_of_actor
from pscs.compliance.check import run_compliance_check
from pscs.config import Settings
from pscs.install import init_installation
from pscs.policy.decisions import epoch_ms
from pscs.requests import service as requests
from pscs.retention import holds
from pscs.retention.models import Hold
from pscs.retention.sweeper import RetentionSweeper
from pscs.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD
from tests.test_retention_sweeper import DAY, MIN, T0, T0_MS, add_cameras, add_segments, full_name, user_actor


def test_S1_unheld_footage_past_the_limit_plus_one_sweep_fails_and_names_it(runtime: Runtime) -> None:
    cams = add_cameras(runtime, 2)
    add_segments(runtime, cams[0], [T0_MS, T0_MS + 60 * MIN])
    add_segments(runtime, cams[1], [T0_MS])
    inv = user_actor(runtime, "hal", ["investigator"])
    holds.place_hold(
        runtime,
        principal_of_actor(runtime, inv),
        camera_ids=[cams[1]],
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="litigation",
        reference="KNL-CV26-6001234-S",
        now=T0,
    )
    # Within the limit plus one sweep interval: not yet a violation.
    edge = T0 + timedelta(days=30, minutes=60 + 10 + 60)
    assert run_compliance_check(runtime, now=edge - timedelta(minutes=61)).ok
    report = run_compliance_check(runtime, now=edge)
    assert not report.ok and report.stats["overdue_recordings"] == 2
    [finding] = report.violations
    assert finding.clause == "S1" and f"camera {cams[0]}" in finding.what and "2026-03-01 00:00:00Z" in finding.what
    RetentionSweeper(runtime, clock=lambda: edge).run_once()
    assert run_compliance_check(runtime, now=edge).ok  # the held one is fine


def test_S1_S2_holds_and_evidence_without_their_request_or_case_fail(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    cams = add_cameras(rt, 1)
    inv = user_actor(rt, "gil", ["investigator"])
    boss = user_actor(rt, "rhea", ["records_commander"])
    hold = holds.place_hold(
        rt,
        principal_of_actor(rt, inv),
        camera_ids=cams,
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="criminal_investigation",
        reference="2026-1",
    )
    req = requests.file_request(
        rt,
        principal_of_actor(rt, inv),
        unit="Patrol",
        case_number="2026-2",
        camera_ids=cams,
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="criminal_investigation",
        narrative="x",
        attestation_name=full_name("gil"),
        now=T0 + timedelta(days=1),
    )
    assert run_compliance_check(rt).ok
    with rt.db.write() as s:
        s.execute(update(Hold).where(Hold.id == hold.id).values(reference=""))
        # A request decided behind the log's back leaves its provisional hold dangling.
        s.execute(text("UPDATE storage_requests SET status = 'denied' WHERE number = :n"), {"n": req.number})
    report = run_compliance_check(rt)
    found = {(f.clause, f.what.split(" ")[0]) for f in report.violations}
    assert ("S1", "hold") in found and ("S2", "provisional") in found
    assert boss.username == "rhea"


def test_M1_a_broken_audit_trail_fails_the_check(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    assert run_compliance_check(rt).ok
    with rt.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
        conn.execute(text("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2"))
    report = run_compliance_check(rt)
    assert [f.clause for f in report.violations] == ["M1"]


def pscs(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "PSCS_DATA_DIR": str(data_dir), "HOME": str(data_dir.parent)}
    return subprocess.run(
        [sys.executable, "-m", "pscs.cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_S1_S2_cli_retention_run_report_request_log_and_compliance_check(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    rt = init_installation(Settings(data_dir=data_dir), admin_password=ADMIN_PASSWORD).runtime
    cams = add_cameras(rt, 1)
    now_ms = epoch_ms(T0.now(T0.tzinfo))
    add_segments(rt, cams[0], [now_ms - 40 * DAY, now_ms - 35 * DAY, now_ms - DAY])
    rt.close()

    check = pscs(data_dir, "compliance", "check")
    assert check.returncode == 1 and f"camera {cams[0]}" in check.stderr and "VIOLATION S1" in check.stderr
    dry = pscs(data_dir, "retention", "run", "--dry-run", "--quiet")
    assert dry.returncode == 0 and "would destroy 2 recordings" in dry.stdout, dry.stderr
    run = pscs(data_dir, "retention", "run")
    assert run.returncode == 0 and "destroyed 2 recordings" in run.stdout, run.stderr
    assert pscs(data_dir, "compliance", "check").returncode == 0
    report = pscs(data_dir, "retention", "report", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert report.returncode == 0 and [r["segments"] for r in rows] == ["2"]
    pdf = tmp_path / "form.pdf"
    assert pscs(data_dir, "request", "form", "-o", str(pdf)).returncode == 0 and pdf.read_bytes()[:5] == b"%PDF-"
    log = pscs(data_dir, "request", "log", "--format", "csv")
    assert log.returncode == 0 and log.stdout.startswith("number,status")
