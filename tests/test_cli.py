"""The ``pscs`` command line, run as an administrator would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def pscs(data_dir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ["PATH"], "PSCS_DATA_DIR": str(data_dir), "HOME": str(data_dir.parent)} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "pscs.cli.main", *args], env=full_env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


def test_init_prints_one_time_password_and_refuses_to_overwrite(data_dir):
    first = pscs(data_dir, "init")
    assert first.returncode == 0, first.stderr
    assert "one-time password" in first.stdout
    assert (data_dir / "pscs.db").exists() and (data_dir / "keys" / "audit_ed25519.pem").exists()
    assert oct((data_dir / "keys" / "audit_ed25519.pem").stat().st_mode & 0o777) == "0o600"
    again = pscs(data_dir, "init")
    assert again.returncode != 0 and "--force" in again.stderr
    forced = pscs(data_dir, "init", "--force", env={"PSCS_ADMIN_PASSWORD": "another-long-password"})
    assert forced.returncode == 0, forced.stderr


def test_commands_before_init_say_what_to_do(data_dir):
    result = pscs(data_dir, "user", "list")
    assert result.returncode == 1 and "pscs init" in result.stderr


def test_user_lifecycle(data_dir):
    assert pscs(data_dir, "init").returncode == 0
    added = pscs(
        data_dir, "user", "add", "ingrid", "--name", "Ingrid Case", "--role", "investigator", "--role", "supervisor"
    )
    assert added.returncode == 0, added.stderr
    assert "one-time password" in added.stdout
    duplicate = pscs(data_dir, "user", "add", "ingrid", "--name", "X", "--role", "operator")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    bad_role = pscs(data_dir, "user", "add", "zed", "--name", "Zed", "--role", "sheriff")
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr
    assert pscs(data_dir, "user", "disable", "ingrid").returncode == 0
    assert pscs(data_dir, "user", "reset-mfa", "ingrid").returncode == 0
    listing = pscs(data_dir, "user", "list")
    assert "ingrid" in listing.stdout and "disabled" in listing.stdout and "zed" not in listing.stdout
    # Every change is in the audit trail, under the operating-system user who ran it.
    export = pscs(data_dir, "audit", "export", "--format", "jsonl")
    events = [json.loads(line) for line in export.stdout.splitlines()]
    actions = [e["action"] for e in events]
    assert {"user.create", "user.disable", "user.mfa.reset"} <= set(actions)
    assert all(e["actor"].startswith("cli:") for e in events if e["action"] == "user.disable")
    assert pscs(data_dir, "audit", "verify").returncode == 0


def test_policy_show_prints_profile_and_rejects_bad_one(data_dir, tmp_path):
    shown = pscs(data_dir, "policy", "show")
    assert shown.returncode == 0 and "recording_days: 30" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile_id: x\nretention: {recording_days: -1}\n")
    result = pscs(data_dir, "policy", "show", "--profile", str(bad))
    assert result.returncode == 1 and "retention.recording_days" in result.stderr


def test_bad_profile_stops_the_service_at_start(data_dir, tmp_path):
    assert pscs(data_dir, "init").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile_id: x\n")
    result = pscs(data_dir, "serve", env={"PSCS_POLICY_PROFILE": str(bad)})
    assert result.returncode == 1 and "policy profile" in result.stderr and "retention" in result.stderr


def test_audit_export_csv_to_file(data_dir, tmp_path):
    assert pscs(data_dir, "init").returncode == 0
    out = tmp_path / "case-file.csv"
    result = pscs(data_dir, "audit", "export", "--format", "csv", "--since", "2000-01-01T00:00:00", "-o", str(out))
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("seq,ts_us,time_utc,actor_id,actor")
    assert any(",system.init," in line for line in lines[1:])
    bad = pscs(data_dir, "audit", "export", "--format", "xml")
    assert bad.returncode == 2
