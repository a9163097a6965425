"""Who is asking: the one type every service takes for "the caller".

A :class:`Principal` is built at the edge — by the web layer from the request's sign-in
session, by the CLI from the operating-system user — and handed to services, which
decide with its roles and audit with its actor.  Roles are always read from the
accounts, never taken from what the caller says.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.auth.models import UserRole
from pscs.runtime import Runtime


@dataclass(frozen=True)
class Principal:
    """A signed-in user (``user_id`` set, ``web_session_id`` set on the web) or a system
    component such as the CLI (no user: no roles)."""

    actor: Actor
    roles: frozenset[str] = frozenset()
    web_session_id: int | None = None

    @property
    def user_id(self) -> int | None:
        return self.actor.user_id

    @property
    def username(self) -> str:
        return self.actor.username

    @property
    def is_system(self) -> bool:
        """A component of the installation itself (the ``pscs`` command on the server), not a
        signed-in user: the edges build a user's principal only from a sign-in session."""
        return self.actor.user_id is None

    @classmethod
    def of_session(cls, view: object, actor: Actor) -> Principal:
        """From a web request's sign-in session (``pscs.auth.service.SessionView``)."""
        return cls(actor, frozenset(view.roles), view.session_id)  # type: ignore[attr-defined]

    @classmethod
    def system(cls, component: str = "system") -> Principal:
        return cls(Actor.system(component))


def roles_of(rt: Runtime, actor: Actor) -> frozenset[str]:
    """An actor's roles as the accounts hold them now (none for a system actor)."""
    if actor.user_id is None:
        return frozenset()
    with rt.db.session() as s:
        return frozenset(s.scalars(select(UserRole.role).where(UserRole.user_id == actor.user_id)))


def principal_of_actor(rt: Runtime, actor: Actor) -> Principal:
    """A principal for an actor known only by its audit identity, roles read from the accounts."""
    return Principal(actor, roles_of(rt, actor))
