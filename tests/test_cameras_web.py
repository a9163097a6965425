"""Camera registry through the console's API (P0), and what each role may do with it."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import client_for, csrf_of, make_user, sign_in

CAMERA = {
    "name": "main-st",
    "street_address": "1 Main St, Norwich, CT",
    "latitude": 41.52,
    "longitude": -72.07,
    "main_url": "rtsp://viewer:s3cret-pass@192.0.2.20:554/stream1",
    "sub_url": "rtsp://viewer:s3cret-pass@192.0.2.20:554/stream2",
    "public_area_attested": True,
}


@pytest.fixture
def admin(sqlite_runtime):
    return sign_in(client_for(sqlite_runtime), "admin", ADMIN_PASSWORD)


def test_P0_admin_registers_camera_and_credentials_never_come_back(sqlite_runtime, admin):
    response = admin.post("/api/v1/cameras", json=CAMERA, headers={"x-csrf-token": csrf_of(admin)})
    assert response.status_code == 201, response.text
    assert "s3cret-pass" not in response.text
    make_user(sqlite_runtime, "opal", ["operator"])
    operator = sign_in(client_for(sqlite_runtime), "opal")
    listing = operator.get("/api/v1/cameras")
    assert listing.status_code == 200 and "s3cret-pass" not in listing.text
    (camera,) = listing.json()["cameras"]
    assert camera["name"] == "main-st" and camera["public_area_attested"] and camera["attested_by"] == "admin"
    assert camera["health"]["state"] == "unknown"
    events = sqlite_runtime.audit.search(action_prefix="camera.create")
    assert events and "P0" in events[0].clauses and "s3cret-pass" not in events[0].details
    page = operator.get("/cameras", headers={"accept": "text/html"})
    assert page.status_code == 200 and "main-st" in page.text and "Register a camera" not in page.text


def test_P0_camera_without_public_area_attestation_is_refused(sqlite_runtime, admin):
    body = CAMERA | {"public_area_attested": False}
    response = admin.post("/api/v1/cameras", json=body, headers={"x-csrf-token": csrf_of(admin)})
    assert response.status_code == 403 and response.json()["error"]["clause"] == "P0"
    assert admin.get("/api/v1/cameras").json()["cameras"] == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"main_url": "http://192.0.2.20/stream"}, 422),
        ({"latitude": 123}, 422),
        ({"name": ""}, 422),
    ],
)
def test_bad_camera_input_changes_nothing(admin, change, status):
    response = admin.post("/api/v1/cameras", json=CAMERA | change, headers={"x-csrf-token": csrf_of(admin)})
    assert response.status_code == status
    assert response.json()["error"]["message"]
    assert admin.get("/api/v1/cameras").json()["cameras"] == []


def test_operator_cannot_register_or_disable_cameras(sqlite_runtime, admin):
    created = admin.post("/api/v1/cameras", json=CAMERA, headers={"x-csrf-token": csrf_of(admin)}).json()
    make_user(sqlite_runtime, "otis", ["operator"])
    operator = sign_in(client_for(sqlite_runtime), "otis")
    token = csrf_of(operator)
    assert (
        operator.post("/api/v1/cameras", json=CAMERA | {"name": "x"}, headers={"x-csrf-token": token}).status_code
        == 403
    )
    assert (
        operator.patch(
            f"/api/v1/cameras/{created['id']}", json={"enabled": False}, headers={"x-csrf-token": token}
        ).status_code
        == 403
    )
    disabled = admin.patch(
        f"/api/v1/cameras/{created['id']}", json={"enabled": False}, headers={"x-csrf-token": csrf_of(admin)}
    )
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert sqlite_runtime.audit.search(action_prefix="camera.disable")


def test_moving_a_camera_needs_a_fresh_attestation(admin):
    created = admin.post("/api/v1/cameras", json=CAMERA, headers={"x-csrf-token": csrf_of(admin)}).json()
    url = f"/api/v1/cameras/{created['id']}"
    token = csrf_of(admin)
    refused = admin.patch(url, json={"street_address": "9 Elm St"}, headers={"x-csrf-token": token})
    assert refused.status_code == 403 and refused.json()["error"]["clause"] == "P0"
    moved = admin.patch(
        url, json={"street_address": "9 Elm St", "public_area_attested": True}, headers={"x-csrf-token": token}
    )
    assert moved.status_code == 200 and moved.json()["street_address"] == "9 Elm St"


def test_alerts_are_listed_for_camera_staff(sqlite_runtime, admin):
    from pscs.recording.alerts import raise_alert

    raise_alert(sqlite_runtime, "storage_full", "recordings disk below its free-space threshold", severity="critical")
    alerts = admin.get("/api/v1/alerts").json()["alerts"]
    assert [a["kind"] for a in alerts] == ["storage_full"]
    page = admin.get("/cameras", headers={"accept": "text/html"})
    assert "storage full" in page.text
