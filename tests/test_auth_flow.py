"""Sign-in, MFA, lockout, sessions, CSRF and the U3 acknowledgement, through the real pages."""

from __future__ import annotations

import json
from datetime import timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from pscs.audit.events import Actor
from pscs.audit.models import AuditEventRow
from pscs.auth import service as auth
from pscs.auth.models import PolicyAcknowledgement, User, WebSession
from pscs.clock import utcnow
from pscs.errors import Conflict
from pscs.web.access import SESSION_COOKIE
from pscs.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import (
    HTML,
    PASSWORD,
    PHONE,
    client_for,
    csrf_of,
    field_value,
    make_user,
    sign_in,
    submit_password,
)


def actions(rt, **filters) -> list[str]:
    return [e.action for e in reversed(rt.audit.search(limit=1000, **filters))]


def test_first_admin_signs_in_enrols_mfa_changes_password_and_acknowledges(runtime):
    client = client_for(runtime)
    sign_in(client, "admin", ADMIN_PASSWORD)
    me = client.get("/api/v1/me").json()
    assert me["username"] == "admin" and me["roles"] == ["admin"]
    with runtime.db.session() as s:
        admin = s.scalar(select(User).where(User.username == "admin"))
        assert admin.mfa_enrolled and not admin.must_change_password
        assert admin.totp_secret_enc and PHONE.secrets["admin"] not in admin.totp_secret_enc  # encrypted at rest
    got = actions(runtime, actor="admin")
    for expected in ("auth.login.password", "auth.mfa.enrol", "user.password.change", "policy.acknowledge"):
        assert expected in got


def test_mfa_is_required_before_anything_else(sqlite_runtime):
    rt = sqlite_runtime
    make_user(rt, "olive", ["operator"])
    client = client_for(rt)
    assert submit_password(client, "olive", PASSWORD).status_code == 303
    # Password alone: the API refuses and pages send the user to the second factor.
    assert client.get("/api/v1/me").status_code == 403
    assert client.get("/", headers={"accept": "text/html"}, follow_redirects=False).headers["location"] == "/mfa"
    page = client.get("/mfa").text
    secret = field_value(page, "csrf_token") and page.split('id="totp-secret">')[1].split("<")[0]
    bad = client.post("/mfa", data={"code": "000000", "csrf_token": field_value(page, "csrf_token")})
    assert bad.status_code == 401 and "wrong or expired" in bad.text
    code = pyotp.TOTP(secret).now()
    ok = client.post("/mfa", data={"code": code, "csrf_token": field_value(page, "csrf_token")}, follow_redirects=False)
    assert ok.status_code == 303
    # The same code cannot be replayed for another sign-in.
    other = client_for(rt)
    submit_password(other, "olive", PASSWORD)
    page2 = other.get("/mfa").text
    replay = other.post("/mfa", data={"code": code, "csrf_token": field_value(page2, "csrf_token")})
    assert replay.status_code == 401


def test_CJIS_lockout_after_five_failures_for_ten_minutes(runtime):
    rt = runtime
    make_user(rt, "ivan", ["investigator"])
    client = client_for(rt)
    for _ in range(5):
        assert submit_password(client, "ivan", "wrong-password-xx").status_code == 401
    # Locked: even the right password is refused, with the same message.
    response = submit_password(client, "ivan", PASSWORD)
    assert response.status_code == 401
    with rt.db.session() as s:
        ivan = s.scalar(select(User).where(User.username == "ivan"))
        minutes = (ivan.locked_until - utcnow()).total_seconds() / 60
    assert 9.5 < minutes <= 10
    assert "auth.account.locked" in actions(rt, actor="ivan")
    # Ten minutes later the account opens again.
    with rt.db.write() as s:
        s.execute(update(User).where(User.username == "ivan").values(locked_until=utcnow() - timedelta(seconds=1)))
    assert submit_password(client, "ivan", PASSWORD).status_code == 303


def test_unknown_user_and_wrong_password_look_the_same(sqlite_runtime):
    make_user(sqlite_runtime, "sam", ["supervisor"])
    client = client_for(sqlite_runtime)
    a = submit_password(client, "nobody", "whatever-password")
    b = submit_password(client, "sam", "whatever-password")
    assert a.status_code == b.status_code == 401
    assert "wrong user name or password" in a.text and "wrong user name or password" in b.text
    denied = sqlite_runtime.audit.search(action_prefix="auth.login.password", outcome="denied")
    assert {e.actor for e in denied} == {"nobody", "sam"}


def test_CJIS_idle_session_locks_after_30_minutes(runtime):
    rt = runtime
    make_user(rt, "olga", ["operator"])
    client = sign_in(client_for(rt), "olga")
    assert client.get("/api/v1/me").status_code == 200
    with rt.db.write() as s:
        s.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "locked after inactivity" in response.json()["error"]["message"]
    with rt.db.session() as s:
        assert s.scalar(select(WebSession.end_reason)) == "idle_locked"
    assert "auth.session.end" in actions(rt, actor="olga")
    # The lock is final: coming back does not reopen it.
    assert client.get("/api/v1/me").status_code == 401


def test_session_ends_after_12_hours_even_when_active(sqlite_runtime):
    rt = sqlite_runtime
    make_user(rt, "otto", ["operator"])
    client = sign_in(client_for(rt), "otto")
    with rt.db.write() as s:
        s.execute(update(WebSession).values(created_at=utcnow() - timedelta(hours=12, minutes=1)))
    assert client.get("/api/v1/me").status_code == 401


def test_csrf_token_required_on_state_changing_requests(runtime):
    rt = runtime
    client = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)
    body = {"username": "newbie", "full_name": "New Bie", "roles": ["operator"]}
    missing = client.post("/api/v1/users", json=body)
    assert missing.status_code == 403 and "CSRF" in missing.json()["error"]["message"]
    wrong = client.post("/api/v1/users", json=body, headers={"x-csrf-token": "forged"})
    assert wrong.status_code == 403
    assert not any(u for u in rt.audit.search(action_prefix="user.create") if "newbie" in u.details)
    ok = client.post("/api/v1/users", json=body, headers={"x-csrf-token": csrf_of(client)})
    assert ok.status_code == 201 and len(ok.json()["one_time_password"]) >= 12
    denied = rt.audit.search(action_prefix="access.denied", actor="admin")
    assert len(denied) == 2 and all("CJIS-5.10" in e.clauses for e in denied)


def test_login_form_has_its_own_csrf_check(sqlite_runtime):
    client = client_for(sqlite_runtime)
    client.get("/login")
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "login_csrf": "forged"})
    assert response.status_code == 403


def test_U3_acknowledgement_before_first_access_and_yearly(runtime):
    rt = runtime
    make_user(rt, "una", ["operator"])
    client = sign_in(client_for(rt), "una", acknowledge=False)
    refused = client.get("/api/v1/me")
    assert refused.status_code == 403 and refused.json()["error"]["clause"] == "U3"
    assert (
        client.get("/", headers={"accept": "text/html"}, follow_redirects=False).headers["location"] == "/acknowledge"
    )
    page = client.get("/acknowledge").text
    assert "Norwich Police Department" in page and "Use Procedures" in page  # the policy itself is shown
    token = field_value(page, "csrf_token")
    no_training = client.post("/acknowledge", data={"typed_name": "Una Tester", "csrf_token": token})
    assert no_training.status_code == 422
    wrong_name = client.post(
        "/acknowledge", data={"typed_name": "Someone Else", "training_completed": "true", "csrf_token": token}
    )
    assert wrong_name.status_code == 422
    ok = client.post(
        "/acknowledge",
        data={"typed_name": "Una Tester", "training_completed": "true", "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert client.get("/api/v1/me").status_code == 200
    with rt.db.session() as s:
        ack = s.scalar(select(PolicyAcknowledgement))
        assert ack.training_completed and ack.profile_id == "norwich"
    # A year later it is due again.
    with rt.db.write() as s:
        s.execute(update(PolicyAcknowledgement).values(acknowledged_at=utcnow() - timedelta(days=366)))
    lapsed = client.get("/api/v1/me")
    assert lapsed.status_code == 403 and "lapsed" in lapsed.json()["error"]["message"]


def test_disabled_user_is_signed_out_and_cannot_sign_in(sqlite_runtime):
    rt = sqlite_runtime
    make_user(rt, "dan", ["operator"])
    dan = sign_in(client_for(rt), "dan")
    admin = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)
    response = admin.patch("/api/v1/users/dan", json={"disabled": True}, headers={"x-csrf-token": csrf_of(admin)})
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert dan.get("/api/v1/me").status_code == 401
    assert submit_password(client_for(rt), "dan", PASSWORD + "-new").status_code == 401


def test_last_admin_cannot_be_removed(sqlite_runtime):
    admin = sign_in(client_for(sqlite_runtime), "admin", ADMIN_PASSWORD)
    with pytest.raises(Conflict, match="last active administrator"):
        auth.update_user(sqlite_runtime, Actor.system("test-admin"), "admin", roles=["auditor"])
    with pytest.raises(Conflict, match="last active administrator"):
        auth.update_user(sqlite_runtime, Actor.system("test-admin"), "admin", disabled=True)
    assert admin.get("/api/v1/me").json()["roles"] == ["admin"]  # nothing changed


def test_logout_ends_the_session(sqlite_runtime):
    rt = sqlite_runtime
    make_user(rt, "lou", ["operator"])
    client = sign_in(client_for(rt), "lou")
    token = csrf_of(client)
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401
    with rt.db.session() as s:
        assert s.scalar(select(AuditEventRow.action).where(AuditEventRow.action == "auth.logout"))


def test_U1_signing_out_ends_the_declared_purpose(sqlite_runtime):
    rt = sqlite_runtime
    make_user(rt, "pia", ["operator"])
    client = sign_in(client_for(rt), "pia")
    token = csrf_of(client)
    opened = client.post("/api/v1/purpose-sessions", json={"purpose": "fire"}, headers={"x-csrf-token": token})
    assert opened.status_code == 201, opened.text
    client.post("/logout", data={"csrf_token": token})
    ended = rt.audit.search(action_prefix="purpose.end", actor="pia")
    assert ended and "signed out" in ended[0].details


def test_the_session_token_is_rotated_when_the_second_factor_completes(sqlite_runtime):
    rt = sqlite_runtime
    make_user(rt, "fay", ["operator"])
    client = client_for(rt)
    assert submit_password(client, "fay", PASSWORD).status_code == 303
    before_mfa = client.cookies.get(SESSION_COOKIE)
    page = client.get("/mfa").text
    PHONE.secrets["fay"] = page.split('id="totp-secret">')[1].split("<")[0]
    done = client.post(
        "/mfa", data={"code": PHONE.code("fay"), "csrf_token": field_value(page, "csrf_token")}, follow_redirects=False
    )
    assert done.status_code == 303
    after_mfa = client.cookies.get(SESSION_COOKIE)
    assert after_mfa and after_mfa != before_mfa
    # Signed in: the new token leads on to the first-sign-in password change.
    assert client.get("/", headers=HTML, follow_redirects=False).headers["location"] == "/account/password"
    # Whoever saw or planted the token of the half-signed-in session gets nothing with it.
    planted = client_for(rt)
    planted.cookies.set(SESSION_COOKIE, before_mfa)
    assert planted.get("/api/v1/me").status_code == 401


def test_a_password_change_ends_the_accounts_other_sessions_but_not_this_one(sqlite_runtime):
    rt = sqlite_runtime
    make_user(rt, "gus", ["operator"])
    here = sign_in(client_for(rt), "gus", new_password=PASSWORD + "-2")
    elsewhere = sign_in(client_for(rt), "gus", PASSWORD + "-2")
    assert elsewhere.get("/api/v1/me").status_code == 200
    page = here.get("/account/password").text
    changed = here.post(
        "/account/password",
        data={
            "current_password": PASSWORD + "-2",
            "new_password": PASSWORD + "-3",
            "confirm_password": PASSWORD + "-3",
            "csrf_token": field_value(page, "csrf_token"),
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303, changed.text
    assert here.get("/api/v1/me").status_code == 200
    assert elsewhere.get("/api/v1/me").status_code == 401
    [event] = rt.audit.search(action_prefix="user.password.change", actor="gus", limit=1)
    assert json.loads(event.details) == {"other_sessions_ended": 1}


def test_csp_lets_websockets_go_only_to_the_pages_own_host(sqlite_runtime):
    plain = client_for(sqlite_runtime)
    csp = plain.get("/login").headers["content-security-policy"]
    assert "connect-src 'self' ws://testserver;" in csp
    assert " ws: " not in csp and " wss:" not in csp
    secure = TestClient(create_app(sqlite_runtime), base_url="https://pscs.example:8443")
    assert "connect-src 'self' wss://pscs.example:8443;" in secure.get("/login").headers["content-security-policy"]
    # A Host header that tries to write its own directives is left out of the policy.
    forged = plain.get("/login", headers={"host": "evil.example; script-src *"}).headers["content-security-policy"]
    assert "connect-src 'self';" in forged and "evil" not in forged
