"""The records office's and the auditor's reads — the disposal report (S1), the storage
request log export (S2), the audit export and the audit verification (M1) — are one service
each: the web console and the command line give the same content, each read is audited, and
a caller without the role is refused with the refusal audited."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner, Result

from pscs.audit.models import AuditEventRow
from pscs.auth import service as auth
from pscs.auth.principal import Principal, principal_of_actor
from pscs.cli.common import cli_actor
from pscs.cli.main import app as cli_app
from pscs.config import get_settings
from pscs.errors import PolicyDenied
from pscs.oversight.audit_trail import export_events, verify_trail
from pscs.policy import decisions
from pscs.requests import service as requests
from pscs.requests.log import export_request_log
from pscs.retention.report import read_disposal_report
from pscs.retention.sweeper import RetentionSweeper
from pscs.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD
from tests.test_evidence_store import approved_item
from tests.test_retention_sweeper import DAY, T0, T0_MS, add_cameras, add_segments, user_actor
from tests.web_helpers import client_for, csrf_of, make_user, sign_in

Cli = Callable[..., Result]
WIDE = ("--since", "2000-01-01T00:00:00", "--until", "2100-01-01T00:00:00")


@pytest.fixture
def cli(sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """``pscs …`` in this process, on the test's installation (as an administrator runs it)."""
    monkeypatch.setenv("PSCS_DATA_DIR", str(sqlite_runtime.settings.data_dir))
    monkeypatch.delenv("PSCS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, list(args))
    get_settings.cache_clear()


def events(rt: Runtime, action: str) -> list[AuditEventRow]:
    return [e for e in rt.audit.search(action_prefix=action, limit=1000) if e.action == action]


def by_cli(rows: list[AuditEventRow]) -> list[AuditEventRow]:
    return [e for e in rows if e.actor == cli_actor().username]


def assert_refused_and_audited(rt: Runtime, action: str, read: Callable[[Principal], object], who: Principal) -> None:
    before = len(events(rt, action))
    with pytest.raises(PolicyDenied):
        read(who)
    after = events(rt, action)  # newest first
    refusals = [e for e in after[: len(after) - before] if e.outcome == "denied"]
    assert [(e.actor, e.actor_id) for e in refusals] == [(who.username, who.user_id)]
    assert json.loads(refusals[0].details)["reason"]


def test_S1_disposal_report_web_and_cli_alike_audited_and_refused_without_the_role(
    sqlite_runtime: Runtime, cli: Cli
) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    add_segments(rt, cam, [T0_MS, T0_MS + DAY // 2])
    RetentionSweeper(rt, clock=lambda: T0 + timedelta(days=40)).run_once()
    make_user(rt, "rita", ["records_commander"])
    commander = sign_in(client_for(rt), "rita")

    web = commander.get(
        "/api/v1/retention/disposals",
        params={"format": "csv", "since": "2000-01-01T00:00:00", "until": "2100-01-01T00:00:00"},
    )
    assert web.status_code == 200, web.text
    by_command = cli("retention", "report", "--format", "csv", *WIDE)
    assert by_command.exit_code == 0, by_command.output
    rows = list(csv.DictReader(io.StringIO(web.text)))
    assert len(rows) == 1 and rows[0]["segments"] == "2"
    assert by_command.stdout_bytes == web.content
    table = cli("retention", "report", *WIDE)
    assert table.exit_code == 0 and "total: 2 recordings" in table.stdout

    reads = events(rt, "retention.report")
    assert {(e.actor, e.outcome) for e in reads} == {("rita", "allowed"), (cli_actor().username, "allowed")}
    assert {json.loads(e.details)["format"] for e in reads} == {"csv", "table"}
    assert {json.loads(e.details)["since"] for e in reads} == {"2000-01-01T00:00:00+00:00"}

    operator = principal_of_actor(rt, user_actor(rt, "otto", ["operator"]))
    assert_refused_and_audited(rt, "retention.report", lambda who: read_disposal_report(rt, who, fmt="json"), operator)
    # The console's gate refuses them first (and audits that), before the service is asked.
    otto = sign_in(client_for(rt), "otto")
    assert otto.get("/api/v1/retention/disposals").status_code == 403
    assert any(e.object_id == "GET /api/v1/retention/disposals" for e in events(rt, "access.denied"))


def test_S2_request_log_export_web_and_cli_alike_audited_and_refused_without_the_role(
    sqlite_runtime: Runtime, cli: Cli
) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    add_segments(rt, cam, [T0_MS])
    make_user(rt, "iris", ["investigator"])
    make_user(rt, "rory", ["records_commander"])
    investigator = sign_in(client_for(rt), "iris")
    filed = investigator.post(
        "/api/v1/storage-requests",
        headers={"x-csrf-token": csrf_of(investigator)},
        json={
            "unit": "Detective Division",
            "case_number": "2026-000321",
            "camera_ids": [cam],
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-03-01T06:00:00Z",
            "reason": "criminal_investigation",
            "narrative": "Burglary, 12 Main St",
            "attestation_name": "Iris Tester",
        },
    )
    assert filed.status_code == 201, filed.text
    commander = sign_in(client_for(rt), "rory")

    web = commander.get("/records/requests/log.csv")
    assert web.status_code == 200
    by_command = cli("request", "log", "--format", "csv")
    assert by_command.exit_code == 0, by_command.output
    rows = list(csv.DictReader(io.StringIO(web.text)))
    assert [(r["number"], r["requester"], r["status"]) for r in rows] == [(filed.json()["number"], "iris", "submitted")]
    assert by_command.stdout_bytes == web.content

    exports = events(rt, "storage_request.log_export")
    assert {(e.actor, e.outcome) for e in exports} == {("rory", "allowed"), (cli_actor().username, "allowed")}
    assert all(json.loads(e.details) == {"format": "csv", "requests": 1} for e in exports)

    # The requester reads their own requests, never the whole log.
    requester = principal_of_actor(rt, user_actor(rt, "ivan", ["investigator"]))
    assert_refused_and_audited(
        rt, "storage_request.log_export", lambda who: export_request_log(rt, who, fmt="csv"), requester
    )
    assert investigator.get("/records/requests/log.pdf").status_code == 403


def test_M1_audit_export_web_and_cli_alike_audited_and_refused_without_the_role(
    sqlite_runtime: Runtime, cli: Cli
) -> None:
    rt = sqlite_runtime
    make_user(rt, "audrey", ["auditor"])
    auditor = sign_in(client_for(rt), "audrey")
    # A closed range, so that the exports' own events (recorded as each begins) fall after it.
    until = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.01)
    bound = until.replace(tzinfo=None).isoformat()

    web = auditor.get("/api/v1/audit/export", params={"format": "jsonl", "until": bound})
    assert web.status_code == 200
    by_command = cli("audit", "export", "--format", "jsonl", "--until", bound)
    assert by_command.exit_code == 0, by_command.output
    lines = [json.loads(line) for line in web.text.splitlines()]
    assert lines and {"system.init", "auth.login.password"} <= {e["action"] for e in lines}
    assert by_command.stdout_bytes == web.content

    exports = events(rt, "audit.export")
    assert {(e.actor, e.outcome) for e in exports} == {("audrey", "allowed"), (cli_actor().username, "allowed")}
    assert {json.loads(e.details)["until"] for e in exports} == {str(until)}
    assert json.loads(by_cli(exports)[0].details)["output"] == "-"

    commander = principal_of_actor(rt, user_actor(rt, "rex", ["records_commander"]))
    assert_refused_and_audited(rt, "audit.export", lambda who: export_events(rt, who, fmt="csv"), commander)
    rex = sign_in(client_for(rt), "rex")
    assert rex.get("/api/v1/audit/export").status_code == 403


def test_M1_audit_verification_web_and_cli_alike_audited_and_refused_without_the_role(
    sqlite_runtime: Runtime, cli: Cli
) -> None:
    rt = sqlite_runtime
    make_user(rt, "audrey", ["auditor"])
    auditor = sign_in(client_for(rt), "audrey")

    web = auditor.post("/api/v1/audit/verify", headers={"x-csrf-token": csrf_of(auditor)})
    assert web.status_code == 200 and web.json()["ok"] is True
    by_command = cli("audit", "verify")
    assert by_command.exit_code == 0, by_command.output
    # The same chain, one event longer: the web's verification recorded itself after checking.
    assert f"audit trail intact: {web.json()['events_checked'] + 1} events" in by_command.stdout

    checks = events(rt, "audit.verify")
    assert {(e.actor, e.outcome) for e in checks} == {("audrey", "allowed"), (cli_actor().username, "allowed")}
    assert all(json.loads(e.details)["ok"] is True for e in checks)

    operator = principal_of_actor(rt, user_actor(rt, "olga", ["operator", "admin"]))
    assert_refused_and_audited(rt, "audit.verify", lambda who: verify_trail(rt, who), operator)
    olga = sign_in(client_for(rt), "olga")
    assert olga.post("/api/v1/audit/verify", headers={"x-csrf-token": csrf_of(olga)}).status_code == 403


def test_the_command_line_reads_as_the_installation_and_users_by_their_roles(sqlite_runtime: Runtime) -> None:
    profile = sqlite_runtime.profile
    assert decisions.may_read_audit_trail(frozenset(), system=True).allowed
    assert not decisions.may_read_audit_trail(frozenset({"admin", "records_commander"})).allowed
    assert decisions.may_read_audit_trail(frozenset({"auditor"})).allowed
    for decide in (decisions.may_read_disposal_report, decisions.may_export_request_log):
        assert decide(frozenset(), profile, system=True).allowed
        assert decide(frozenset({"auditor"}), profile).allowed
        assert decide(frozenset({"records_commander"}), profile).allowed
        assert not decide(frozenset({"investigator", "supervisor", "operator", "admin"}), profile).allowed
    # A user's principal is never the system's, whatever roles it holds.
    assert not Principal(cli_actor()).roles and Principal(cli_actor()).is_system
    assert not principal_of_actor(sqlite_runtime, user_actor(sqlite_runtime, "sam", ["auditor"])).is_system


def test_M1_reads_of_records_are_audited_once_each_web_and_cli_alike(sqlite_runtime: Runtime, cli: Cli) -> None:
    """Viewing an evidence item, a storage request, a hold or the accounts leaves one audit
    event; a list is one event for the whole list, not one per row."""
    rt = sqlite_runtime
    item, _people = approved_item(rt)
    number = item.request_number
    hold_id = requests.requests_seen_by(rt, Principal.system())[0].hold_id
    make_user(rt, "audrey", ["auditor"])
    auditor = sign_in(client_for(rt), "audrey")
    admin = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)

    def reads_by(actor: str) -> list[tuple[str, str | None, int | None]]:
        rows = [e for e in rt.audit.search(actor=actor, limit=1000) if e.action.endswith(".read")]
        return [(e.action, e.object_id, json.loads(e.details).get("listed")) for e in reversed(rows)]

    reads_before = len(reads_by("audrey"))
    for path in (
        "/api/v1/evidence",
        f"/api/v1/evidence/{item.id}",
        "/records/evidence",
        "/api/v1/storage-requests",
        f"/api/v1/storage-requests/{number}",
        "/api/v1/holds",
        f"/api/v1/holds/{hold_id}",
        f"/records/holds/{hold_id}",
    ):
        assert auditor.get(path).status_code == 200, path
    assert reads_by("audrey")[reads_before:] == [
        ("evidence.read", None, 1),
        ("evidence.read", str(item.id), None),
        ("evidence.read", None, 1),
        ("storage_request.read", None, 1),
        ("storage_request.read", number, None),
        ("hold.read", None, 1),
        ("hold.read", str(hold_id), None),
        ("hold.read", str(hold_id), None),
    ]
    audrey_id = str(auth.find_user(rt, "audrey").id)
    reads_before = len(reads_by("admin"))
    assert admin.get("/api/v1/users").status_code == 200
    shown = admin.get("/api/v1/users/audrey")
    assert shown.status_code == 200 and shown.json()["roles"] == ["auditor"]
    assert admin.get("/api/v1/users/nobody").status_code == 404
    users = len(auth.list_users(rt, Principal.system()))
    assert reads_by("admin")[reads_before:] == [("user.read", None, users), ("user.read", audrey_id, None)]

    for command in (("evidence", "list"), ("hold", "list"), ("request", "list"), ("user", "list")):
        assert cli(*command).exit_code == 0, command
    shown_by_cli = cli("user", "show", "audrey")
    assert shown_by_cli.exit_code == 0 and "auditor" in shown_by_cli.stdout
    assert [(a, o) for a, o, _ in reads_by(cli_actor().username)] == [
        ("evidence.read", None),
        ("hold.read", None),
        ("storage_request.read", None),
        ("user.read", None),
        ("user.read", audrey_id),
    ]
