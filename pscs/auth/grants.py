"""Two people for power: a video role, or a role the profile's approvals name, given by an
administrator is held only once a second administrator approves it (CJIS 5.5.2, M1).

``pscs.auth.service.create_user`` and ``update_user`` (the web's users page and API, and
``pscs user``) give roles through :func:`assign_roles`; :func:`decide_role_grant` approves
or rejects what waits.  Every request and decision is audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.auth.models import RoleGrant, RoleGrantStatus, User, UserRole
from pscs.auth.principal import Principal, roles_of
from pscs.errors import Conflict, NotFound
from pscs.policy import decisions
from pscs.runtime import Runtime

CLI_ACTOR_PREFIX = "cli:"  # the command line acts as "cli:<operating-system user>"


def is_own_account(actor: Actor, user_id: int, username: str) -> bool:
    """Whether ``actor`` is the account's holder: signed in as it, or at the server's
    command line as the operating-system user of the same name."""
    return actor.user_id == user_id or actor.username == CLI_ACTOR_PREFIX + username


@dataclass
class RoleAssignment:
    """What giving a user a set of roles did: the roles held before and now, and the grants
    that wait for a second administrator."""

    username: str
    user_id: int
    before: list[str]
    after: list[str]
    waiting: list[tuple[int, str]] = field(default_factory=list)  # (grant id, role)

    @property
    def pending_roles(self) -> list[str]:
        return sorted(role for _, role in self.waiting)


def assign_roles(rt: Runtime, s, user: User, roles: list[str], actor: Actor, now: datetime) -> RoleAssignment:  # noqa: ANN001
    """Give ``user`` exactly ``roles`` (validated), inside the caller's write transaction:
    removals and ordinary roles at once, powerful ones given by a person as pending grants."""
    before = sorted(user.role_names)
    waiting_roles = [
        r
        for r in roles
        if r not in before and decisions.grant_needs_second_admin(r, rt.profile, by_system=actor.user_id is None)
    ]
    held = [r for r in roles if r not in waiting_roles]
    # Keep the rows of roles kept: replacing them all would insert a kept role before its
    # old row is deleted (the unique constraint refuses that).
    user.roles = [r for r in user.roles if r.role in held] + [UserRole(role=r) for r in held if r not in before]
    assignment = RoleAssignment(user.username, user.id, before, sorted(held))
    waiting_now = select(RoleGrant).where(RoleGrant.user_id == user.id, RoleGrant.status == RoleGrantStatus.PENDING)
    open_grants = {g.role: g for g in s.scalars(waiting_now)}
    for role in waiting_roles:
        grant = open_grants.get(role)
        if grant is None:
            grant = RoleGrant(
                user_id=user.id,
                role=role,
                status=RoleGrantStatus.PENDING,
                requested_by=actor.username,
                requested_by_id=actor.user_id,
                requested_at=now,
            )
            s.add(grant)
            s.flush()
        assignment.waiting.append((grant.id, role))
    return assignment


def audit_assignment(rt: Runtime, actor: Actor, assignment: RoleAssignment) -> None:
    if assignment.after != assignment.before:
        rt.audit.record(
            "user.roles.change",
            actor,
            object_type="user",
            object_id=assignment.user_id,
            clauses=("M1",),
            details={"username": assignment.username, "before": assignment.before, "after": assignment.after},
        )
    for grant_id, role in assignment.waiting:
        rt.audit.record(
            "user.role_grant.request",
            actor,
            object_type="role_grant",
            object_id=grant_id,
            clauses=("M1", decisions.SEPARATION_OF_DUTIES),
            details={"username": assignment.username, "role": role, "waits_for": "a second administrator"},
        )


@dataclass(frozen=True)
class RoleGrantView:
    id: int
    username: str
    role: str
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None


def _view(grant: RoleGrant, username: str) -> RoleGrantView:
    return RoleGrantView(
        grant.id,
        username,
        grant.role,
        grant.status,
        grant.requested_by,
        grant.requested_at,
        grant.decided_by,
        grant.decided_at,
    )


def list_role_grants(rt: Runtime, *, pending_only: bool = True) -> list[RoleGrantView]:
    with rt.db.session() as s:
        q = select(RoleGrant, User.username).join(User, User.id == RoleGrant.user_id).order_by(RoleGrant.id)
        if pending_only:
            q = q.where(RoleGrant.status == RoleGrantStatus.PENDING)
        return [_view(g, name) for g, name in s.execute(q).all()]


def pending_roles_by_user(rt: Runtime) -> dict[int, list[str]]:
    with rt.db.session() as s:
        rows = s.execute(
            select(RoleGrant.user_id, RoleGrant.role).where(RoleGrant.status == RoleGrantStatus.PENDING)
        ).all()
    found: dict[int, list[str]] = {}
    for user_id, role in rows:
        found.setdefault(user_id, []).append(role)
    return {k: sorted(v) for k, v in found.items()}


def decide_role_grant(rt: Runtime, principal: Principal, grant_id: int, *, approve: bool) -> RoleGrantView:
    """A second administrator approves (the user then holds the role) or rejects a grant."""
    action = "user.role_grant.approve" if approve else "user.role_grant.reject"
    with rt.db.session() as s:
        grant = s.get(RoleGrant, grant_id)
        if grant is None:
            raise NotFound(f"no role grant {grant_id}")
        grantee = s.get(User, grant.user_id)
        assert grantee is not None
        requester = _person(s, Actor(grant.requested_by, grant.requested_by_id))
        decider = _person(s, principal.actor)
        grantee_name, role = grantee.username, grant.role
    # Roles as the accounts hold them now, not as the session began.
    decider_roles = frozenset() if principal.is_system else roles_of(rt, principal.actor)
    decision = decisions.may_decide_role_grant(
        decider_roles, system=principal.is_system, is_requester=decider == requester, is_grantee=decider == grantee_name
    )
    details = {"username": grantee_name, "role": role, "requested_by": requester}
    if not decision.allowed:
        raise rt.audit.refusal(
            action, principal.actor, decision, object_type="role_grant", object_id=grant_id, details=details
        )
    now = rt.clock.now()
    with rt.db.write() as s:
        # Locked: two administrators deciding at once decide one after the other.
        grant = s.scalar(select(RoleGrant).where(RoleGrant.id == grant_id).with_for_update())
        assert grant is not None
        if grant.status != RoleGrantStatus.PENDING:
            raise Conflict(f"role grant {grant_id} was already {grant.status}")
        grant.status = RoleGrantStatus.APPROVED if approve else RoleGrantStatus.REJECTED
        grant.decided_by, grant.decided_by_id, grant.decided_at = principal.username, principal.user_id, now
        if approve:
            user = s.get(User, grant.user_id)
            assert user is not None
            if grant.role not in user.role_names:
                user.roles.append(UserRole(role=grant.role))
        view = _view(grant, grantee_name)
    rt.audit.record(
        action,
        principal.actor,
        object_type="role_grant",
        object_id=grant_id,
        clauses=("M1", decisions.SEPARATION_OF_DUTIES),
        details=details,
    )
    return view


def _person(s, actor: Actor) -> str:  # noqa: ANN001 - SQLAlchemy session
    """The account name of the person behind ``actor``: the signed-in user, or the
    operating-system user at the command line (one person, whichever way they came)."""
    if actor.user_id is not None:
        user = s.get(User, actor.user_id)
        if user is not None:
            return user.username
    return actor.username.removeprefix(CLI_ACTOR_PREFIX)
