"""Default deny: every route of the app, asked by every role and by nobody."""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from pscs.policy.profile import ROLES
from pscs.web.access import Kind, RouteInfo, iter_routes, rule_of
from pscs.web.app import create_app
from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import client_for, csrf_of, make_user, sign_in


def all_routes(app) -> list[tuple[str, str, RouteInfo]]:
    routes = [(m, r.path, r) for r in iter_routes(app.routes) for m in sorted(r.methods - {"HEAD"})]
    # Signing out last, so that it does not end the session the other checks use.
    return sorted(routes, key=lambda r: r[1] == "/logout")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nobody-here", path)


def test_every_route_declares_who_may_use_it(sqlite_runtime):
    app = create_app(sqlite_runtime)
    paths = {p for _, p, _ in all_routes(app)}
    # The walk must see the included routers' routes, or this test would prove nothing.
    assert {"/login", "/api/v1/users", "/api/v1/audit/events", "/api/v1/cameras"} <= paths
    assert len(paths) >= 30
    undeclared = [f"{m} {p}" for m, p, r in all_routes(app) if rule_of(r.endpoint) is None]
    assert undeclared == []


def test_a_route_without_a_rule_is_closed_to_everyone(sqlite_runtime):
    app = create_app(sqlite_runtime)
    extra = APIRouter()

    @extra.get("/api/v1/forgotten")
    def forgotten() -> dict:
        return {"secret": "should never be served"}

    app.include_router(extra)
    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/api/v1/forgotten")
    assert response.status_code == 403 and "no access rule" in response.json()["error"]["message"]
    admin = sign_in(client, "admin", ADMIN_PASSWORD)
    assert admin.get("/api/v1/forgotten").status_code == 403


@pytest.fixture
def clients_by_role(runtime):
    clients = {"anonymous": client_for(runtime)}
    for role in ROLES:
        if role == "admin":
            clients[role] = sign_in(client_for(runtime), "admin", ADMIN_PASSWORD)
        else:
            make_user(runtime, f"{role.replace('_', '-')}-user", [role])
            clients[role] = sign_in(client_for(runtime), f"{role.replace('_', '-')}-user")
    return clients


def test_route_role_matrix(runtime, clients_by_role):
    app = create_app(runtime)
    failures = []
    for who, client in clients_by_role.items():
        headers = {"x-csrf-token": csrf_of(client)} if who != "anonymous" else {}
        for method, path, route in all_routes(app):
            rule = rule_of(route.endpoint)
            if method == "WEBSOCKET":
                if who == "anonymous" or (rule.kind is Kind.ROLES and who not in rule.roles_in(runtime.profile)):
                    with client.websocket_connect(concrete(path)) as ws:
                        if "error" not in ws.receive_json():
                            failures.append(f"{who:17} WS     {path}: not refused")
                continue
            response = client.request(
                method, concrete(path), headers=headers, json={} if method != "GET" else None, follow_redirects=False
            )
            if rule.kind is Kind.PUBLIC:
                expected_open = True
            elif who == "anonymous":
                expected_open = False
            elif rule.kind is Kind.SECOND_FACTOR:
                expected_open = True  # a fully signed-in user is sent on; not a denial
            elif rule.kind is Kind.SIGNED_IN:
                expected_open = True
            else:
                expected_open = who in rule.roles_in(runtime.profile)
            denied = response.status_code in (401, 403)
            if expected_open == denied:
                failures.append(
                    f"{who:17} {method:6} {path}: {response.status_code} "
                    f"(expected {'open' if expected_open else 'denied'})"
                )
    assert failures == [], "\n".join(failures)


def test_admin_alone_has_no_video_role(sqlite_runtime):
    from pscs.policy.decisions import may_handle_video

    profile = sqlite_runtime.profile
    assert not may_handle_video(frozenset({"admin"}), profile).allowed
    assert not may_handle_video(frozenset({"auditor"}), profile).allowed
    assert may_handle_video(frozenset({"admin", "operator"}), profile).allowed


def test_menu_follows_the_route_rules(sqlite_runtime):
    make_user(sqlite_runtime, "audrey", ["auditor"])
    admin = sign_in(client_for(sqlite_runtime), "admin", ADMIN_PASSWORD)
    auditor = sign_in(client_for(sqlite_runtime), "audrey")
    admin_home = admin.get("/", headers={"accept": "text/html"}).text
    auditor_home = auditor.get("/", headers={"accept": "text/html"}).text
    assert 'href="/admin/users"' in admin_home and 'href="/audit"' not in admin_home
    assert 'href="/audit"' in auditor_home and 'href="/admin/users"' not in auditor_home


def test_gates_and_menu_follow_the_policy_profile(sqlite_runtime):
    """A department that changes who may do a thing in its profile changes the route gate
    and the menu with it, not only the decision behind them."""
    rt = sqlite_runtime
    make_user(rt, "olive", ["operator"])
    make_user(rt, "oscar", ["operator"])
    olive = sign_in(client_for(rt), "olive")
    assert olive.get("/api/v1/holds").status_code == 403  # Norwich: operators do not place holds
    assert 'href="/console"' in olive.get("/", headers={"accept": "text/html"}).text

    approvals = rt.profile.approvals.model_copy(update={"hold_place": ["operator", "investigator"]})
    rt.profile = rt.profile.model_copy(
        update={"approvals": approvals, "video_roles": ["investigator", "supervisor", "records_commander"]}
    )
    oscar = sign_in(client_for(rt), "oscar")  # (signing in acknowledges the changed profile, U3)
    assert oscar.get("/api/v1/holds").status_code == 200
    assert oscar.get("/api/v1/purposes").status_code == 403
    home = oscar.get("/", headers={"accept": "text/html"}).text
    assert 'href="/console"' not in home
