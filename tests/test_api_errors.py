"""Bad input gets a clear JSON error with the right status, changes nothing, and leaks nothing."""

from __future__ import annotations

import pytest

from pscs.auth import service as auth
from pscs.auth.principal import Principal
from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import client_for, csrf_of, sign_in


@pytest.fixture
def admin(sqlite_runtime):
    return sign_in(client_for(sqlite_runtime), "admin", ADMIN_PASSWORD)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x1", "full_name": "X", "roles": ["sheriff"]}, "roles.0"),
        ({"username": "x1", "roles": ["operator"]}, "full_name"),
        ({"username": "x1", "full_name": "X", "roles": []}, "roles"),
        ({"username": "x1", "full_name": "X", "roles": ["operator"], "password": "short"}, "password"),
        ({"username": "x1", "full_name": "X", "roles": ["operator"], "is_superuser": True}, "is_superuser"),
    ],
)
def test_invalid_user_is_refused_with_the_field_named(sqlite_runtime, admin, body, field):
    before = len(auth.list_users(sqlite_runtime, Principal.system()))
    response = admin.post("/api/v1/users", json=body, headers={"x-csrf-token": csrf_of(admin)})
    assert response.status_code == 422
    error = error_of(response)
    assert any(f["field"] == field for f in error["fields"]), error
    assert len(auth.list_users(sqlite_runtime, Principal.system())) == before


def test_domain_rule_violation_is_a_clear_4xx(sqlite_runtime, admin):
    token = csrf_of(admin)
    bad_name = admin.post(
        "/api/v1/users",
        json={"username": "Bad Name!", "full_name": "B", "roles": ["operator"]},
        headers={"x-csrf-token": token},
    )
    assert bad_name.status_code == 422 and "username" in error_of(bad_name)["message"]
    missing = admin.patch("/api/v1/users/ghost", json={"disabled": True}, headers={"x-csrf-token": token})
    assert missing.status_code == 404 and "ghost" in error_of(missing)["message"]


def test_malformed_json_and_unknown_routes(admin):
    token = csrf_of(admin)
    broken = admin.post(
        "/api/v1/users", content=b"{not json", headers={"x-csrf-token": token, "content-type": "application/json"}
    )
    assert broken.status_code == 422
    error_of(broken)
    assert admin.get("/api/v1/nothing-here").status_code in (403, 404)
    wrong_method = admin.delete("/api/v1/users", headers={"x-csrf-token": token})
    assert wrong_method.status_code == 405 and "not allowed" in error_of(wrong_method)["message"]


def test_bad_query_values(admin):
    response = admin.get("/api/v1/audit/events", params={"since": "yesterday-ish"})
    assert response.status_code == 403  # admin is not an auditor: refused before input is looked at


def test_security_headers_on_every_response(sqlite_runtime):
    client = client_for(sqlite_runtime)
    for path in ("/login", "/healthz", "/api/v1/me"):
        response = client.get(path)
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def test_session_cookie_flags(sqlite_runtime):
    client = client_for(sqlite_runtime)
    page = client.get("/login").text
    import re

    token = re.search(r'name="login_csrf" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "login_csrf": token}, follow_redirects=False
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_session_cookie_is_secure_over_https(sqlite_runtime):
    from fastapi.testclient import TestClient

    from pscs.web.app import create_app

    client = TestClient(create_app(sqlite_runtime), base_url="https://pscs.example")
    page = client.get("/login")
    assert "secure" in page.headers["set-cookie"].lower()
    assert page.headers["strict-transport-security"].startswith("max-age=")


def test_auditor_reads_are_audited_and_validated(sqlite_runtime):
    from tests.web_helpers import make_user

    make_user(sqlite_runtime, "ada", ["auditor"])
    auditor = sign_in(client_for(sqlite_runtime), "ada")
    bad = auditor.get("/api/v1/audit/events", params={"since": "yesterday-ish"})
    assert bad.status_code == 422 and "since" in error_of(bad)["message"]
    ok = auditor.get("/api/v1/audit/events", params={"actor": "admin"})
    assert ok.status_code == 200
    searches = sqlite_runtime.audit.search(action_prefix="audit.search", actor="ada")
    assert searches and '"actor":"admin"' in searches[0].details
    verify = auditor.post("/api/v1/audit/verify", headers={"x-csrf-token": csrf_of(auditor)})
    assert verify.status_code == 200 and verify.json()["ok"] is True
    export = auditor.get("/api/v1/audit/export", params={"format": "jsonl"})
    assert export.status_code == 200 and '"action": "audit.verify"' in export.text
    page = auditor.get("/audit", params={"actor": "ada"}, headers={"accept": "text/html"})
    assert page.status_code == 200 and "audit.export" in page.text
