"""Two people for power (finding 6): nobody changes their own roles, and a video role or an
approver role given by an administrator is held only once a second administrator approves
it — on the web and at the command line, both audited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pscs.auth import grants
from pscs.auth import service as auth
from pscs.config import Settings
from pscs.install import init_installation
from pscs.policy.decisions import powerful_roles
from pscs.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD
from tests.web_helpers import client_for, csrf_of, make_user, sign_in


def roles_of(rt: Runtime, username: str) -> list[str]:
    return sorted(auth.find_user(rt, username).role_names)


def admins(rt: Runtime):  # noqa: ANN201 - two signed-in administrators
    make_user(rt, "ada", ["admin"])
    return sign_in(client_for(rt), "admin", ADMIN_PASSWORD), sign_in(client_for(rt), "ada")


def test_powerful_roles_are_the_video_and_approver_roles(sqlite_runtime):
    profile = sqlite_runtime.profile
    assert profile.role_grants_need_second_admin  # on for Norwich
    # admin proposes privacy zones: an approver role too.  auditor is neither.
    assert powerful_roles(profile) == {"operator", "investigator", "supervisor", "records_commander", "admin"}


def test_nobody_changes_their_own_roles_on_the_web(sqlite_runtime):
    rt = sqlite_runtime
    admin, _ = admins(rt)
    response = admin.patch(
        "/api/v1/users/admin", json={"roles": ["admin", "operator"]}, headers={"x-csrf-token": csrf_of(admin)}
    )
    assert response.status_code == 403 and response.json()["error"]["clause"] == "CJIS-5.5.2"
    assert roles_of(rt, "admin") == ["admin"] and grants.list_role_grants(rt) == []
    refused = rt.audit.search(action_prefix="user.roles.change", outcome="denied")
    assert len(refused) == 1 and refused[0].actor == "admin"


def test_a_video_or_approver_role_waits_for_a_second_administrator(sqlite_runtime):
    rt = sqlite_runtime
    admin, ada = admins(rt)
    created = admin.post(
        "/api/v1/users",
        json={"username": "vic", "full_name": "Vic Viewer", "roles": ["operator", "auditor"]},
        headers={"x-csrf-token": csrf_of(admin)},
    )
    assert created.status_code == 201
    assert created.json()["roles"] == ["auditor"] and created.json()["pending_roles"] == ["operator"]
    # Nor can one administrator make a second administrator (the other approvers' approver).
    promoted = admin.patch(
        "/api/v1/users/vic", json={"roles": ["auditor", "admin"]}, headers={"x-csrf-token": csrf_of(admin)}
    )
    assert promoted.status_code == 200 and promoted.json()["roles"] == ["auditor"]
    assert promoted.json()["pending_roles"] == ["admin", "operator"]
    assert roles_of(rt, "vic") == ["auditor"]

    waiting = {g.role: g.id for g in grants.list_role_grants(rt)}
    assert admin.get("/api/v1/role-grants").json()["grants"][0]["requested_by"] == "admin"
    own = admin.post(f"/api/v1/role-grants/{waiting['operator']}/approve", headers={"x-csrf-token": csrf_of(admin)})
    assert own.status_code == 403 and "second administrator" in own.json()["error"]["message"]
    assert roles_of(rt, "vic") == ["auditor"]

    approved = ada.post(f"/api/v1/role-grants/{waiting['operator']}/approve", headers={"x-csrf-token": csrf_of(ada)})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    rejected = ada.post(f"/api/v1/role-grants/{waiting['admin']}/reject", headers={"x-csrf-token": csrf_of(ada)})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert roles_of(rt, "vic") == ["auditor", "operator"]
    again = ada.post(f"/api/v1/role-grants/{waiting['admin']}/approve", headers={"x-csrf-token": csrf_of(ada)})
    assert again.status_code == 409

    events = {(e.action, e.actor, e.outcome) for e in rt.audit.search(action_prefix="user.role_grant")}
    assert {
        ("user.role_grant.request", "admin", "allowed"),
        ("user.role_grant.approve", "admin", "denied"),
        ("user.role_grant.approve", "ada", "allowed"),
        ("user.role_grant.reject", "ada", "allowed"),
    } <= events


def test_the_grantee_does_not_approve_their_own_grant(sqlite_runtime):
    rt = sqlite_runtime
    admin, ada = admins(rt)
    response = admin.patch(
        "/api/v1/users/ada", json={"roles": ["admin", "supervisor"]}, headers={"x-csrf-token": csrf_of(admin)}
    )
    assert response.json()["pending_roles"] == ["supervisor"]
    (grant,) = grants.list_role_grants(rt)
    own = ada.post(f"/api/v1/role-grants/{grant.id}/approve", headers={"x-csrf-token": csrf_of(ada)})
    assert own.status_code == 403 and roles_of(rt, "ada") == ["admin"]


def test_the_profile_can_let_one_administrator_grant(sqlite_runtime):
    rt = sqlite_runtime
    rt.profile = rt.profile.model_copy(update={"role_grants_need_second_admin": False})
    admin, _ = admins(rt)
    created = admin.post(
        "/api/v1/users",
        json={"username": "olly", "full_name": "Olly Operator", "roles": ["operator"]},
        headers={"x-csrf-token": csrf_of(admin)},
    )
    assert created.json()["roles"] == ["operator"] and created.json()["pending_roles"] == []


def pscs(data_dir: Path, os_user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "PSCS_DATA_DIR": str(data_dir), "HOME": str(data_dir.parent)}
    env |= {"LOGNAME": os_user, "USER": os_user}  # who the command line acts as ("cli:<user>")
    return subprocess.run(
        [sys.executable, "-m", "pscs.cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_command_line_keeps_the_same_rules(tmp_path: Path):
    data_dir = tmp_path / "var"
    rt = init_installation(Settings(data_dir=data_dir), admin_password=ADMIN_PASSWORD).runtime
    make_user(rt, "olga", ["admin"])
    mine = pscs(data_dir, "olga", "user", "roles", "olga", "--role", "admin", "--role", "operator")
    assert mine.returncode == 2 and "own roles" in mine.stderr
    assert roles_of(rt, "olga") == ["admin"]

    # An administrator at the web console gives a role; the same person at the server's
    # command line cannot approve it, another can.
    admin = sign_in(client_for(rt), "admin", ADMIN_PASSWORD)
    admin.patch("/api/v1/users/olga", json={"roles": ["admin", "supervisor"]}, headers={"x-csrf-token": csrf_of(admin)})
    (grant,) = grants.list_role_grants(rt)
    listed = pscs(data_dir, "bob", "user", "grants")
    assert listed.returncode == 0 and "supervisor" in listed.stdout
    assert pscs(data_dir, "admin", "user", "approve", str(grant.id)).returncode == 2
    assert pscs(data_dir, "olga", "user", "approve", str(grant.id)).returncode == 2
    approved = pscs(data_dir, "bob", "user", "approve", str(grant.id))
    assert approved.returncode == 0, approved.stderr
    assert roles_of(rt, "olga") == ["admin", "supervisor"]
    decided = rt.audit.search(action_prefix="user.role_grant.approve")
    assert [(e.actor, e.outcome) for e in decided] == [
        ("cli:bob", "allowed"),
        ("cli:olga", "denied"),
        ("cli:admin", "denied"),
    ]
    rt.close()


def test_an_ordinary_role_is_given_at_once(sqlite_runtime):
    rt = sqlite_runtime
    admin, _ = admins(rt)
    make_user(rt, "pat", ["operator"])
    response = admin.patch("/api/v1/users/pat", json={"roles": ["auditor"]}, headers={"x-csrf-token": csrf_of(admin)})
    assert response.status_code == 200 and response.json()["roles"] == ["auditor"]
    assert response.json()["pending_roles"] == []
