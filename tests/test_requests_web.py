"""The records pages and API as people use them: an investigator files the form on screen,
the records commander decides in the log, the log exports, the form prints (S1-S3)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from pscs.runtime import Runtime
from tests.test_retention_sweeper import DAY, T0, T0_MS, add_cameras, add_segments
from tests.web_helpers import HTML, client_for, csrf_of, make_user, sign_in


def test_S2_S3_file_on_screen_decide_in_the_log_export_and_print(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    add_segments(rt, cam, [T0_MS, T0_MS + DAY // 2])
    make_user(rt, "iris", ["investigator"])
    make_user(rt, "rory", ["records_commander"])
    make_user(rt, "oona", ["operator"])
    investigator = sign_in(client_for(rt), "iris")
    commander = sign_in(client_for(rt), "rory")

    page = investigator.get("/records/requests/new", headers=HTML)
    assert page.status_code == 200 and "Type your full name (Iris Tester)" in page.text
    form = {
        "csrf_token": csrf_of(investigator),
        "unit": "Detective Division",
        "case_number": "2026-000321",
        "camera_ids": [str(cam)],
        "start": "2026-03-01T00:00",
        "end": "2026-03-02T00:00",
        "reason": "criminal_investigation",
        "narrative": "Burglary, 12 Main St",
        "attestation_name": "iris tester",
    }
    filed = investigator.post("/records/requests", data=form, headers=HTML, follow_redirects=False)
    assert filed.status_code == 303 and filed.headers["location"] == f"/records/requests/{T0.year}-0001"
    detail = investigator.get(filed.headers["location"], headers=HTML).text
    assert 'id="request-status">submitted<' in detail and "Approve" not in detail

    # The requester cannot decide (route closed to the role); the records commander can.
    headers = {"x-csrf-token": csrf_of(investigator)}
    assert (
        investigator.post(
            "/api/v1/storage-requests/2026-0001/decision", json={"approve": True}, headers=headers
        ).status_code
        == 403
    )
    log_page = commander.get("/records/requests", headers=HTML).text
    assert "Storage request log" in log_page and "2026-0001" in log_page
    assert "Approve: store as evidence" in commander.get("/records/requests/2026-0001", headers=HTML).text
    decided = commander.post(
        "/records/requests/2026-0001/decision",
        headers=HTML,
        follow_redirects=False,
        data={"csrf_token": csrf_of(commander), "decision": "approve", "reason": "ok"},
    )
    assert decided.status_code == 303
    body = commander.get("/api/v1/storage-requests/2026-0001").json()
    assert body["status"] == "fulfilled" and body["evidence_item_id"] and body["hold_status"] == "released"
    evidence_page = commander.get(f"/records/evidence/{body['evidence_item_id']}", headers=HTML).text
    assert "EV-2026-0001" in evidence_page and "intake" in evidence_page

    exported = commander.get("/records/requests/log.csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert exported.headers["content-type"].startswith("text/csv") and rows[0]["status"] == "fulfilled"
    for url in (
        "/records/requests/log.pdf",
        "/records/requests/2026-0001/form.pdf",
        "/records/requests/blank-form.pdf",
    ):
        response = commander.get(url)
        assert response.status_code == 200 and response.content.startswith(b"%PDF-"), url
    # An operator sees only their own (none); the log's exports are closed to them.
    operator = sign_in(client_for(rt), "oona")
    assert operator.get("/api/v1/storage-requests").json()["requests"] == []
    assert operator.get("/records/requests/log.csv").status_code == 403
    assert operator.get("/api/v1/storage-requests/2026-0001").status_code == 403


def test_S1_holds_api_and_pages_and_the_disposal_report(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    make_user(rt, "hugo", ["investigator"])
    make_user(rt, "rita", ["records_commander"])
    investigator = sign_in(client_for(rt), "hugo")
    headers = {"x-csrf-token": csrf_of(investigator)}
    created = investigator.post(
        "/api/v1/holds",
        headers=headers,
        json={
            "camera_ids": [cam],
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-03-03T00:00:00Z",
            "reason": "foi_request",
            "reference": "FOI-2026-0042",
            "description": "Request from the Bulletin",
        },
    )
    assert created.status_code == 201, created.text
    hold = created.json()
    assert hold["owner"] == "hugo" and hold["review_due_at"] and hold["reason_label"].startswith("Pending public")
    page = investigator.get(f"/records/holds/{hold['id']}", headers=HTML).text
    assert "FOI-2026-0042" in page and "Re-affirm hold" in page
    missing = investigator.post(
        "/api/v1/holds",
        headers=headers,
        json={
            "camera_ids": [cam],
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-03-03T00:00:00Z",
            "reason": "curiosity",
            "reference": "x",
        },
    )
    assert missing.status_code == 422
    released = investigator.post(
        f"/api/v1/holds/{hold['id']}/release", headers=headers, json={"reason": "request answered"}
    )
    assert released.json()["status"] == "released"

    # Something to report: a day of footage destroyed.
    add_segments(rt, cam, [T0_MS])
    from pscs.retention.sweeper import RetentionSweeper

    RetentionSweeper(rt, clock=lambda: T0 + timedelta(days=40)).run_once()
    commander = sign_in(client_for(rt), "rita")
    report = commander.get("/records/disposals", headers=HTML)
    assert report.status_code == 200 and re.search(r"<th>1</th>", report.text)
    assert commander.get("/api/v1/retention/disposals?format=pdf").content.startswith(b"%PDF-")
    assert commander.get("/api/v1/retention/disposals").json()["segments"] == 1
    check = commander.post("/api/v1/compliance/check", headers={"x-csrf-token": csrf_of(commander)})
    assert check.status_code == 200 and check.json()["ok"] is True
    assert "Records" in commander.get("/", headers=HTML).text  # in the menu


def test_S2_playback_range_fills_in_the_request_form(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    cam_a, cam_b = add_cameras(rt, 2)
    make_user(rt, "ines", ["investigator"])
    investigator = sign_in(client_for(rt), "ines")
    start_ms = T0_MS + 90_000  # 00:01:30 after T0
    page = investigator.get(
        "/records/requests/new",
        params={"camera_id": cam_b, "start_ms": start_ms, "end_ms": start_ms + 45_000},
        headers=HTML,
    )
    assert page.status_code == 200
    assert f'<option value="{cam_b}" selected>' in page.text
    assert f'<option value="{cam_a}">' in page.text
    expected_start = (T0 + timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M")
    expected_end = (T0 + timedelta(seconds=90 + 45 + 59)).strftime("%Y-%m-%dT%H:%M")
    assert f'name="start" type="datetime-local" required value="{expected_start}"' in page.text
    assert f'name="end" type="datetime-local" required value="{expected_end}"' in page.text


def test_S1_S3_console_forms_call_the_same_services_as_the_api(sqlite_runtime: Runtime) -> None:
    """Holds placed, re-affirmed and released, and evidence disposal proposed and approved,
    through the console's forms (their fields as the pages post them)."""
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    add_segments(rt, cam, [T0_MS])
    make_user(rt, "hana", ["investigator"])
    make_user(rt, "rosa", ["records_commander"])
    make_user(rt, "saul", ["supervisor"])
    investigator = sign_in(client_for(rt), "hana")
    token = csrf_of(investigator)

    placed = investigator.post(
        "/records/holds",
        headers=HTML,
        follow_redirects=False,
        data={
            "csrf_token": token,
            "camera_ids": [str(cam)],
            "start": "2026-03-01T00:00",
            "end": "2026-03-02T00:00",
            "reason": "litigation",
            "reference": "CV-26-1234",
            "description": "",
        },
    )
    assert placed.status_code == 303, placed.text
    hold_url = placed.headers["location"]
    hold = investigator.get("/api/v1" + hold_url.removeprefix("/records")).json()
    assert (hold["owner"], hold["reference"], hold["start"]) == ("hana", "CV-26-1234", T0.isoformat())
    reaffirmed = investigator.post(
        f"{hold_url}/reaffirm", headers=HTML, follow_redirects=False, data={"csrf_token": token, "note": "trial set"}
    )
    assert reaffirmed.status_code == 303 and reaffirmed.headers["location"] == hold_url
    no_reason = investigator.post(f"{hold_url}/release", headers=HTML, data={"csrf_token": token, "reason": ""})
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    released = investigator.post(
        f"{hold_url}/release", headers=HTML, follow_redirects=False, data={"csrf_token": token, "reason": "settled"}
    )
    assert released.status_code == 303
    assert investigator.get("/api/v1" + hold_url.removeprefix("/records")).json()["status"] == "released"
    actions = [e.action for e in rt.audit.search(object_type="hold", object_id=str(hold["id"]))]
    assert {"hold.create", "hold.reaffirm", "hold.release"} <= set(actions)

    filed = investigator.post(
        "/api/v1/storage-requests",
        headers={"x-csrf-token": token},
        json={
            "unit": "Detective Division",
            "case_number": "2026-000777",
            "camera_ids": [cam],
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-03-01T06:00:00Z",
            "reason": "prosecution",
            "narrative": "Assault, Main St",
            "attestation_name": "Hana Tester",
        },
    ).json()
    commander = sign_in(client_for(rt), "rosa")
    commander.post(
        f"/records/requests/{filed['number']}/decision",
        headers=HTML,
        data={"csrf_token": csrf_of(commander), "decision": "approve", "reason": ""},
    )
    item_id = commander.get(f"/api/v1/storage-requests/{filed['number']}").json()["evidence_item_id"]
    proposed = commander.post(
        f"/records/evidence/{item_id}/disposal",
        headers=HTML,
        follow_redirects=False,
        data={
            "csrf_token": csrf_of(commander),
            "case_reference": "2026-000777",
            "case_closed_on": "2026-06-01",
            "authority": "Nolle, Superior Court",
        },
    )
    assert proposed.status_code == 303 and proposed.headers["location"] == f"/records/evidence/{item_id}"
    [disposal] = commander.get(f"/api/v1/evidence/{item_id}").json()["disposals"]
    supervisor = sign_in(client_for(rt), "saul")
    approved = supervisor.post(
        f"/records/evidence/disposals/{disposal['id']}/approve",
        headers=HTML,
        follow_redirects=False,
        data={"csrf_token": csrf_of(supervisor)},
    )
    assert approved.status_code == 303 and approved.headers["location"] == f"/records/evidence/{item_id}"
    assert supervisor.get(f"/api/v1/evidence/{item_id}").json()["status"] == "disposed"
