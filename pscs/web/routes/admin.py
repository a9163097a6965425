"""User administration (admin role).  An administrator manages accounts and settings but
sees no video unless also given a video role, changes no one's roles of their own, and
gives a video or approver role only with a second administrator's approval."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pscs.auth import grants
from pscs.auth import service as auth
from pscs.auth.models import User
from pscs.policy.profile import ROLES, Role
from pscs.web import pages
from pscs.web.access import principal_of, roles, runtime_of
from pscs.web.defs.common import Id

router = APIRouter(tags=["users"])
admin_only = roles("admin")


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=2, max_length=64)]
    full_name: Annotated[str, Field(min_length=1, max_length=200)]
    roles: Annotated[list[Role], Field(min_length=1)]
    password: Annotated[str | None, Field(min_length=12, max_length=256)] = None


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: Annotated[list[Role] | None, Field(min_length=1)] = None
    disabled: bool | None = None


def user_dict(user: User, pending: dict[int, list[str]] | None = None) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "roles": sorted(user.role_names),
        "pending_roles": (pending or {}).get(user.id, []),  # waiting for a second administrator
        "disabled": user.disabled,
        "mfa_enrolled": user.mfa_enrolled,
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
        "created_at": user.created_at.isoformat(),
    }


@router.get("/api/v1/users")
@admin_only
def list_users(request: Request) -> dict[str, Any]:
    rt = runtime_of(request)
    pending = grants.pending_roles_by_user(rt)
    return {"users": [user_dict(u, pending) for u in auth.list_users(rt, principal_of(request))]}


@router.get("/api/v1/users/{username}")
@admin_only
def get_user(request: Request, username: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    rt = runtime_of(request)
    return user_dict(auth.read_user(rt, principal_of(request), username), grants.pending_roles_by_user(rt))


@router.post("/api/v1/users", status_code=201)
@admin_only
def create_user(request: Request, body: NewUser) -> dict[str, Any]:
    """Create an account.  Without a password, a one-time password is generated and returned once."""
    rt = runtime_of(request)
    password = body.password or auth.generate_password()
    user = auth.create_user(
        rt,
        request.state.actor,
        username=body.username,
        full_name=body.full_name,
        roles=list(body.roles),
        password=password,
    )
    result = user_dict(auth.get_user(rt, user.id), grants.pending_roles_by_user(rt))
    if body.password is None:
        result["one_time_password"] = password
    return result


@router.patch("/api/v1/users/{username}")
@admin_only
def change_user(request: Request, username: str, body: UserChange) -> dict[str, Any]:
    rt = runtime_of(request)
    auth.update_user(
        rt,
        request.state.actor,
        username,
        roles=None if body.roles is None else list(body.roles),
        disabled=body.disabled,
    )
    return user_dict(auth.find_user(rt, username), grants.pending_roles_by_user(rt))


def grant_dict(grant: grants.RoleGrantView) -> dict[str, Any]:
    return {
        "id": grant.id,
        "username": grant.username,
        "role": grant.role,
        "status": grant.status,
        "requested_by": grant.requested_by,
        "requested_at": grant.requested_at.isoformat(),
        "decided_by": grant.decided_by,
        "decided_at": grant.decided_at.isoformat() if grant.decided_at else None,
    }


@router.get("/api/v1/role-grants")
@admin_only
def list_role_grants(request: Request) -> dict[str, Any]:
    """Roles given by one administrator that wait for a second."""
    return {"grants": [grant_dict(g) for g in grants.list_role_grants(runtime_of(request))]}


@router.post("/api/v1/role-grants/{grant_id}/approve")
@admin_only
def approve_role_grant(request: Request, grant_id: Id) -> dict[str, Any]:
    """A second administrator approves: the user holds the role from now on."""
    return grant_dict(grants.decide_role_grant(runtime_of(request), principal_of(request), grant_id, approve=True))


@router.post("/api/v1/role-grants/{grant_id}/reject")
@admin_only
def reject_role_grant(request: Request, grant_id: Id) -> dict[str, Any]:
    return grant_dict(grants.decide_role_grant(runtime_of(request), principal_of(request), grant_id, approve=False))


@router.post("/admin/role-grants/{grant_id}/{decision}", include_in_schema=False)
@admin_only
def decide_role_grant_form(request: Request, grant_id: Id, decision: Literal["approve", "reject"]) -> Response:
    grants.decide_role_grant(runtime_of(request), principal_of(request), grant_id, approve=decision == "approve")
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/api/v1/users/{username}/reset-mfa")
@admin_only
def reset_mfa(request: Request, username: str) -> dict[str, Any]:
    auth.reset_mfa(runtime_of(request), request.state.actor, username)
    return {"username": username, "mfa_enrolled": False}


@router.post("/api/v1/users/{username}/reset-password")
@admin_only
def reset_password(request: Request, username: str) -> dict[str, Any]:
    password = auth.reset_password(runtime_of(request), request.state.actor, username)
    return {"username": username, "one_time_password": password}


@router.get("/api/v1/config")
@admin_only
def show_config(request: Request) -> dict[str, Any]:
    """The running configuration (the database password is never shown)."""
    rt = runtime_of(request)
    return {"settings": rt.settings.public_dict(), "profile": rt.profile.profile_id}


@router.get("/admin/users", include_in_schema=False)
@admin_only
def users_page(request: Request) -> Response:
    rt = runtime_of(request)
    pending = grants.pending_roles_by_user(rt)
    return pages.render(
        request,
        "users.html",
        {
            "users": [user_dict(u, pending) for u in auth.list_users(rt, principal_of(request))],
            "roles": ROLES,
            "grants": [grant_dict(g) for g in grants.list_role_grants(rt)],
        },
    )
