"""Numbers and times at the edge: out-of-range input is a 422 naming the field, and a stored
row out of range (a hold in year 1) never breaks a page or an API response."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from pscs.clock import EARLIEST_MS, LATEST_MS, format_utc, iso_ms, iso_us
from pscs.retention.models import Hold, HoldCamera
from pscs.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD
from tests.test_retention_sweeper import add_cameras
from tests.web_helpers import HTML, client_for, csrf_of, make_user, sign_in

YEAR_ONE_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
HUGE = 2**64  # past every database integer


def fields_of(response) -> set[str]:  # noqa: ANN001
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    return {f["field"] for f in error["fields"]}


def test_formatters_show_the_raw_value_of_an_impossible_time() -> None:
    assert iso_ms(YEAR_ONE_MS - 1) == str(YEAR_ONE_MS - 1)
    assert iso_ms(2**62) == str(2**62)
    assert format_utc(2**62) == str(2**62)
    assert format_utc(-(2**62), seconds=False) == str(-(2**62))
    assert format_utc(EARLIEST_MS) == "2000-01-01 00:00:00Z"
    assert iso_ms(LATEST_MS) == "2100-01-01T00:00:00+00:00"
    assert iso_us(2**62) == str(2**62)
    assert iso_us(1_796_223_587_907_633) == "2026-12-02T14:59:47.907633+00:00"


def test_a_hold_in_year_one_breaks_no_page_and_no_api(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    now = datetime.now(UTC)
    with rt.db.write() as s:
        for start_ms, end_ms in ((YEAR_ONE_MS, YEAR_ONE_MS + 1000), (0, 2**62)):
            hold_id = s.execute(
                insert(Hold).values(
                    reason="litigation",
                    reference="ODD-1",
                    description="written straight into the database",
                    start_ms=start_ms,
                    end_ms=end_ms,
                    status="active",
                    provisional=False,
                    owner_username="rita",
                    created_by="test",
                    created_at=now,
                    last_reviewed_at=now,
                    review_due_at=now,
                )
            ).inserted_primary_key[0]
            s.execute(insert(HoldCamera).values(hold_id=hold_id, camera_id=cam))
    make_user(rt, "rita", ["records_commander"])
    commander = sign_in(client_for(rt), "rita")
    for page in ("/records", "/records/holds", f"/records/holds/{hold_id}"):
        response = commander.get(page, headers=HTML)
        assert response.status_code == 200, (page, response.text)
        assert str(2**62) in response.text, page
    api = commander.get("/api/v1/holds")
    assert api.status_code == 200
    ends = {h["end"] for h in api.json()["holds"]}
    assert str(2**62) in ends
    assert commander.get(f"/api/v1/holds/{hold_id}").json()["end"] == str(2**62)


@pytest.fixture
def commander(sqlite_runtime: Runtime):  # noqa: ANN201
    make_user(sqlite_runtime, "rita", ["records_commander", "investigator"])
    return sign_in(client_for(sqlite_runtime), "rita")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/v1/holds/{HUGE}", "hold_id"),
        (f"/api/v1/evidence/{HUGE}", "item_id"),
        (f"/api/v1/holds?camera_id={HUGE}", "camera_id"),
        (f"/api/v1/storage-requests?year={HUGE}", "year"),
        (f"/api/v1/playback/{HUGE}/timeline", "camera_id"),
        (f"/api/v1/playback/1/timeline?start_ms={HUGE}", "start_ms"),
        (f"/api/v1/cameras/1/snapshot?at_ms={-HUGE}", "at_ms"),
        ("/api/v1/holds/0", "hold_id"),
        ("/api/v1/retention/disposals?since=9999-12-31T00:00:00Z", "since"),
        ("/api/v1/retention/disposals?until=0001-01-01T00:00:00Z", "until"),
    ],
)
def test_out_of_range_query_and_path_values_are_422_naming_the_field(commander, path: str, field: str) -> None:  # noqa: ANN001
    assert field in fields_of(commander.get(path))


def test_out_of_range_bodies_are_422_naming_the_field(sqlite_runtime: Runtime, commander) -> None:  # noqa: ANN001
    [cam] = add_cameras(sqlite_runtime, 1)
    headers = {"x-csrf-token": csrf_of(commander)}
    hold = {
        "camera_ids": [cam],
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-03-03T00:00:00Z",
        "reason": "litigation",
        "reference": "LIT-1",
    }
    for change, field in (
        ({"end": "9999-12-31T23:59:59-05:00"}, "end"),
        ({"start": "0001-01-01T00:00:00Z"}, "start"),
        ({"camera_ids": [HUGE]}, "camera_ids.0"),
    ):
        assert field in fields_of(commander.post("/api/v1/holds", headers=headers, json=hold | change))
    request = {
        "unit": "Detectives",
        "case_number": "C-1",
        "camera_ids": [cam],
        "start": "9999-12-31",
        "end": "9999-12-31",
        "reason": "prosecution",
        "narrative": "n",
        "attestation_name": "Rita Tester",
    }
    assert {"start", "end"} <= fields_of(commander.post("/api/v1/storage-requests", headers=headers, json=request))
    disposal = {"case_reference": "C-1", "case_closed_on": "9999-12-31", "authority": "court order"}
    assert "case_closed_on" in fields_of(commander.post("/api/v1/evidence/1/disposal", headers=headers, json=disposal))
    placed = commander.post("/api/v1/holds", headers=headers, json=hold)
    assert placed.status_code == 201, placed.text


def test_admin_camera_ids_past_2_63_are_422(sqlite_runtime: Runtime) -> None:
    admin = sign_in(client_for(sqlite_runtime), "admin", ADMIN_PASSWORD)
    response = admin.patch(f"/api/v1/cameras/{HUGE}", json={"enabled": False}, headers={"x-csrf-token": csrf_of(admin)})
    assert "camera_id" in fields_of(response)


def test_the_cli_takes_the_same_ranges(tmp_path) -> None:  # noqa: ANN001
    from tests.test_cli import pscs

    data_dir = tmp_path / "var"
    assert pscs(data_dir, "init").returncode == 0
    for args in (
        ("audit", "export", "--since", "9999-12-31"),
        ("retention", "report", "--until", "0001-01-01"),
        ("hold", "list", "--camera", str(HUGE)),
        ("request", "list", "--year", "9999"),
        ("evidence", "transfer", str(HUGE), "--to", "court", "--method", "by hand"),
        ("camera", "disable", str(HUGE)),
    ):
        result = pscs(data_dir, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, args
    assert pscs(data_dir, "audit", "export", "--since", "2026-01-01").returncode == 0
