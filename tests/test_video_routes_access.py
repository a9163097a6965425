"""Every console/video route × every role (and nobody): open to the roles it declares,
refused (401/403) to everyone else.  Reads the routes from the routers themselves, so it
does not depend on how the framework nests included routers."""

from __future__ import annotations

from fastapi.routing import APIRoute

from pscs.policy.profile import ROLES
from pscs.web.access import Kind, rule_of
from pscs.web.routes import purposes, video, zones
from tests.conftest import ADMIN_PASSWORD
from tests.test_routes_access import concrete
from tests.web_helpers import client_for, csrf_of, make_user, sign_in


def test_console_routes_role_matrix(sqlite_runtime):
    rt = sqlite_runtime
    clients = {"anonymous": client_for(rt)}
    for role in ROLES:
        if role == "admin":
            clients[role] = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)
        else:
            make_user(rt, f"{role.replace('_', '-')}-user", [role])
            clients[role] = sign_in(client_for(rt), f"{role.replace('_', '-')}-user")
    routes = [
        (m, r.path, r)
        for module in (purposes, video, zones)
        for r in module.router.routes
        if isinstance(r, APIRoute)
        for m in sorted(r.methods - {"HEAD"})
    ]
    assert len(routes) >= 30
    failures = []
    for who, client in clients.items():
        headers = {"x-csrf-token": csrf_of(client)} if who != "anonymous" else {}
        for method, path, route in routes:
            rule = rule_of(route.endpoint)
            assert rule is not None and rule.kind is Kind.ROLES, path
            response = client.request(
                method, concrete(path), headers=headers, json={} if method != "GET" else None, follow_redirects=False
            )
            expected_open = who != "anonymous" and who in rule.roles_in(rt.profile)
            if expected_open == (response.status_code in (401, 403)):
                failures.append(f"{who:17} {method:6} {path}: {response.status_code}")
    assert failures == [], "\n".join(failures)
    # The live WebSocket declares its rule too, and refuses a caller without it.
    assert rule_of(video.live_socket).roles_in(rt.profile) == frozenset(rt.profile.video_roles)
    with clients["auditor"].websocket_connect("/api/v1/live/1") as ws:
        assert "requires one of the roles" in ws.receive_json()["error"]
