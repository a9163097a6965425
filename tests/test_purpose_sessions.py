"""Purpose sessions (U1, U2): no video without one; the rules the profile sets; the audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from pscs.audit.events import Actor
from pscs.cameras.service import add_camera
from pscs.clock import utcnow
from pscs.policy import decisions
from pscs.purposes.models import PurposeSession
from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import client_for, csrf_of, make_user, sign_in

ADMIN = Actor("admin", 1)


def camera(rt, name: str = "cam1") -> int:
    return add_camera(
        rt,
        ADMIN,
        name=name,
        street_address="100 Broadway, Norwich, CT",
        latitude=41.52,
        longitude=-72.07,
        main_url=f"rtsp://127.0.0.1:9/{name}/main",
        public_area_attested=True,
    ).id


def signed_in(rt, username: str, roles: list[str]):
    make_user(rt, username, roles)
    client = sign_in(client_for(rt), username)
    client.headers["x-csrf-token"] = csrf_of(client)
    return client


def events(rt, action: str, outcome: str | None = None):
    return rt.audit.search(action_prefix=action, outcome=outcome, limit=50)


# Pure decisions ------------------------------------------------------------------------------
def test_U1_decisions_follow_the_profile(sqlite_runtime):
    profile = sqlite_runtime.profile
    op = frozenset({"operator"})
    assert decisions.may_open_purpose(op, "emergency", profile).allowed
    assert not decisions.may_open_purpose(op, "sightseeing", profile).allowed
    denied = decisions.may_open_purpose(op, "investigation", profile)
    assert not denied.allowed and denied.clause == "U1" and "case number" in denied.reason
    assert decisions.may_open_purpose(op, "investigation", profile, case_number="2025-0042").allowed
    assert not decisions.may_open_purpose(op, "event-management", profile).allowed
    assert decisions.may_open_purpose(op, "event-management", profile, incident_number="INC-7").allowed
    u2 = decisions.may_open_purpose(op, "crime-location", profile, designation_active=False)
    assert not u2.allowed and u2.clause == "U2"
    assert decisions.may_open_purpose(op, "crime-location", profile, designation_active=True).allowed
    admin = decisions.may_open_purpose(frozenset({"admin"}), "emergency", profile)
    assert not admin.allowed and "no video role" in admin.reason


def test_U1_U2_view_decision(sqlite_runtime):
    profile = sqlite_runtime.profile
    now = utcnow()
    op = frozenset({"operator"})
    open_state = decisions.PurposeState("U1", now + timedelta(minutes=5), False)
    assert decisions.may_view(op, open_state, 1, now, profile).allowed
    assert not decisions.may_view(op, None, 1, now, profile).allowed
    assert not decisions.may_view(op, decisions.PurposeState("U1", now, False), 1, now, profile).allowed
    assert not decisions.may_view(op, decisions.PurposeState("U1", now + timedelta(1), True), 1, now, profile).allowed
    located = decisions.PurposeState("U2", now + timedelta(minutes=5), False, frozenset({1}), now + timedelta(hours=1))
    assert decisions.may_view(op, located, 1, now, profile).allowed
    other = decisions.may_view(op, located, 2, now, profile)
    assert not other.allowed and other.clause == "U2"
    assert not decisions.may_view(frozenset({"admin"}), open_state, 1, now, profile).allowed


# Through the API -----------------------------------------------------------------------------
def test_U1_no_session_no_video_and_the_refusal_is_audited(sqlite_runtime):
    rt = sqlite_runtime
    cam = camera(rt)
    op = signed_in(rt, "olive", ["operator"])
    for url in (f"/api/v1/cameras/{cam}/snapshot", f"/api/v1/playback/{cam}/stream?start_ms=1750000000000"):
        response = op.get(url)
        assert response.status_code == 403, url
        error = response.json()["error"]
        assert error["clause"] == "U1" and "purpose session" in error["message"]
    denied = events(rt, "video.", "denied")
    assert {e.action for e in denied} == {"video.snapshot", "video.playback.start"}
    assert all(e.object_type == "camera" and e.object_id == str(cam) and e.actor == "olive" for e in denied)


def test_U1_open_purpose_rules_and_audit(sqlite_runtime):
    rt = sqlite_runtime
    op = signed_in(rt, "otto", ["operator"])
    assert op.get("/api/v1/purpose-sessions/current").json() == {"purpose_session": None}
    refused = op.post("/api/v1/purpose-sessions", json={"purpose": "investigation"})
    assert refused.status_code == 403 and refused.json()["error"]["clause"] == "U1"
    assert events(rt, "purpose.open", "denied")[0].details.find("case number") > 0
    assert op.post("/api/v1/purpose-sessions", json={"purpose": "nonsense"}).status_code == 403

    opened = op.post("/api/v1/purpose-sessions", json={"purpose": "investigation", "case_number": "2025-00042"})
    assert opened.status_code == 201, opened.text
    session = opened.json()["purpose_session"]
    assert session["case_number"] == "2025-00042" and session["clause"] == "U1"
    assert 59 * 60 <= session["seconds_left"] <= 60 * 60  # profile: 60 minutes
    assert op.get("/api/v1/purpose-sessions/current").json()["purpose_session"]["id"] == session["id"]
    allowed = events(rt, "purpose.open", "allowed")[0]
    assert allowed.purpose_session_id == session["id"] and "2025-00042" in allowed.details

    # A new purpose replaces the open one; ending early is audited.
    second = op.post("/api/v1/purpose-sessions", json={"purpose": "fire"}).json()["purpose_session"]
    assert second["id"] != session["id"]
    assert op.post("/api/v1/purpose-sessions/current/end").json() == {"ended": second["id"]}
    assert op.get("/api/v1/purpose-sessions/current").json() == {"purpose_session": None}
    ends = events(rt, "purpose.end")
    assert [e.purpose_session_id for e in ends] == [second["id"], session["id"]]


def test_U1_a_session_expires_and_belongs_to_its_sign_in(sqlite_runtime):
    rt = sqlite_runtime
    cam = camera(rt)
    op = signed_in(rt, "oscar", ["operator"])
    sid = op.post("/api/v1/purpose-sessions", json={"purpose": "emergency"}).json()["purpose_session"]["id"]
    # Another sign-in of the same user does not inherit the purpose.
    other = sign_in(client_for(rt), "oscar", "a-long-test-password-1-new")
    assert other.get("/api/v1/purpose-sessions/current").json() == {"purpose_session": None}
    assert other.get(f"/api/v1/cameras/{cam}/snapshot").status_code == 403
    with rt.db.write() as s:
        s.execute(
            update(PurposeSession).where(PurposeSession.id == sid).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = op.get(f"/api/v1/cameras/{cam}/snapshot")
    assert response.status_code == 403 and "purpose session" in response.json()["error"]["message"]


def test_U1_admin_without_a_video_role_gets_no_video(sqlite_runtime):
    rt = sqlite_runtime
    cam = camera(rt)
    admin = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)
    admin.headers["x-csrf-token"] = csrf_of(admin)
    assert admin.post("/api/v1/purpose-sessions", json={"purpose": "emergency"}).status_code == 403
    assert admin.get(f"/api/v1/cameras/{cam}/snapshot").status_code == 403
    assert admin.get("/console/live", follow_redirects=False).status_code == 403
    with admin.websocket_connect(f"/api/v1/live/{cam}") as ws:
        message = ws.receive_json()
    assert "requires one of the roles" in message["error"]


def test_U1_console_pages_send_you_to_the_purpose_picker(sqlite_runtime):
    rt = sqlite_runtime
    camera(rt)
    op = signed_in(rt, "opal", ["operator"])
    response = op.get("/console/live", headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/console?next=")
    picker = op.get("/console", headers={"accept": "text/html"})
    assert "Why are you looking?" in picker.text and "investigation" in picker.text
    # The form refuses an investigation without a case number, with the clause shown.
    refused = op.post(
        "/console/purpose",
        data={"purpose": "investigation", "csrf_token": op.headers["x-csrf-token"]},
        headers={"accept": "text/html"},
    )
    assert refused.status_code == 403 and "needs a case number" in refused.text
    done = op.post(
        "/console/purpose",
        data={"purpose": "emergency", "csrf_token": op.headers["x-csrf-token"]},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/live"
    grid = op.get("/console/live", headers={"accept": "text/html"})
    assert grid.status_code == 200 and 'id="live-grid"' in grid.text and "cam1" in grid.text


def test_U2_crime_location_needs_a_designation_and_is_limited_to_its_cameras(sqlite_runtime):
    rt = sqlite_runtime
    near, far = camera(rt, "near"), camera(rt, "far")
    sup = signed_in(rt, "sue", ["supervisor"])
    op = signed_in(rt, "omar", ["operator"])
    refused = op.post("/api/v1/purpose-sessions", json={"purpose": "crime-location"})
    assert refused.status_code == 403 and refused.json()["error"]["clause"] == "U2"
    # Only a supervisor designates.
    body = {
        "location": "Main St & 2nd",
        "reason": "reported drug sales",
        "camera_ids": [near],
        "valid_until": (utcnow() + timedelta(days=7)).isoformat(),
    }
    assert op.post("/api/v1/designations", json=body).status_code == 403
    made = sup.post("/api/v1/designations", json=body)
    assert made.status_code == 201, made.text
    designation = made.json()["designation"]
    assert designation["designated_by"] == "sue" and designation["camera_ids"] == [near]

    opened = op.post(
        "/api/v1/purpose-sessions", json={"purpose": "crime-location", "designation_id": designation["id"]}
    )
    assert opened.status_code == 201
    assert opened.json()["purpose_session"]["designated_cameras"] == [near]
    response = op.get(f"/api/v1/cameras/{far}/snapshot")
    assert response.status_code == 403 and response.json()["error"]["clause"] == "U2"

    # Revoked: the open session no longer shows even the designated camera.
    revoked = sup.post(f"/api/v1/designations/{designation['id']}/revoke", json={"reason": "arrests made"})
    assert revoked.status_code == 200
    response = op.get(f"/api/v1/cameras/{near}/snapshot")
    assert response.status_code == 403 and "no longer in force" in response.json()["error"]["message"]
    assert [e.action for e in events(rt, "designation.")] == ["designation.revoke", "designation.create"]
    assert events(rt, "access.denied")[0].actor == "omar"  # the operator's attempt to designate


@pytest.mark.parametrize("missing", ["location", "reason"])
def test_U2_a_designation_says_what_and_why(sqlite_runtime, missing):
    rt = sqlite_runtime
    cam = camera(rt)
    sup = signed_in(rt, "sam", ["supervisor"])
    body = {"location": "x", "reason": "y", "camera_ids": [cam], "valid_until": (utcnow() + timedelta(1)).isoformat()}
    body[missing] = "  "
    assert sup.post("/api/v1/designations", json=body).status_code == 422
