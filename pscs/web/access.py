"""Default deny: every route declares who may use it, and one dependency enforces it.

A route without a declaration is refused for everyone.  The declaration is an attribute
on the endpoint, set by the decorators below, so the route x role test can read it too.
Where the policy profile says who may do a thing (``video_roles``, ``approvals.*``), the
declaration names that entry and the roles are read from the running profile on every
request: a department that changes its profile moves the gate with the decision behind it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import Request
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import WebSocketRoute

from pscs.audit.events import Actor, Outcome
from pscs.auth import service as auth
from pscs.auth.principal import Principal
from pscs.config import Settings
from pscs.errors import AuthenticationFailed, PolicyDenied
from pscs.policy import decisions
from pscs.policy.profile import PolicyProfile
from pscs.runtime import Runtime

SESSION_COOKIE = "pscs_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

F = TypeVar("F", bound=Callable[..., Any])


class Kind(StrEnum):
    PUBLIC = "public"  # anyone, signed in or not
    SECOND_FACTOR = "second_factor"  # password accepted, TOTP outstanding
    SIGNED_IN = "signed_in"  # both factors; not yet past the password change / U3 gates
    ROLES = "roles"  # both factors, gates passed, one of the roles
    TOKEN_OR_ROLES = "token_or_roles"  # noqa: S105 - a kind: the bearer token a setting names, or as ROLES


@dataclass(frozen=True)
class AccessRule:
    kind: Kind
    roles: frozenset[str] = frozenset()  # named here
    profile_roles: tuple[str, ...] = ()  # profile entries naming more, e.g. "approvals.hold_place"
    # Pages a signed-in user must still reach before the gates (password change, U3).
    before_gates: bool = False
    token_setting: str | None = None  # TOKEN_OR_ROLES: the Settings field holding the token

    def roles_in(self, profile: PolicyProfile) -> frozenset[str]:
        """The roles this rule admits under ``profile``."""
        found = set(self.roles)
        for entry in self.profile_roles:
            value: Any = profile
            for part in entry.split("."):
                value = getattr(value, part)
            found.update(value)
        return frozenset(found)


def _check_profile_entry(entry: str) -> None:
    """Refuse at import a declaration naming a profile entry that does not exist."""
    model: Any = PolicyProfile
    for part in entry.split("."):
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            raise ValueError(f"access rule: the policy profile has no entry {entry!r}")
        model = field.annotation


def _declare(rule: AccessRule) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        fn.__pscs_access__ = rule  # type: ignore[attr-defined]
        return fn

    return mark


def public(fn: F) -> F:
    return _declare(AccessRule(Kind.PUBLIC))(fn)


def second_factor(fn: F) -> F:
    return _declare(AccessRule(Kind.SECOND_FACTOR))(fn)


def signed_in_before_gates(fn: F) -> F:
    return _declare(AccessRule(Kind.SIGNED_IN, before_gates=True))(fn)


def role_rule(*names: str, profile: tuple[str, ...] = ()) -> AccessRule:
    """A rule admitting ``names`` and the roles the profile's ``profile`` entries list."""
    for entry in profile:
        _check_profile_entry(entry)
    return AccessRule(Kind.ROLES, frozenset(names), profile)


def requires(rule: AccessRule) -> Callable[[F], F]:
    return _declare(rule)


def roles(*names: str, profile: tuple[str, ...] = ()) -> Callable[[F], F]:
    """The roles that may use the route (``names``, and those listed by the policy-profile
    entries ``profile``)."""
    return _declare(role_rule(*names, profile=profile))


def token_or_roles(token_setting: str, *names: str) -> Callable[[F], F]:
    """A machine caller with the bearer token held in the setting ``token_setting`` (none
    when unset), or a signed-in user with one of the roles.  Never the caller's address:
    behind a reverse proxy every caller comes from this machine."""
    if token_setting not in Settings.model_fields:
        raise ValueError(f"access rule: there is no setting {token_setting!r}")
    rule = role_rule(*names)
    return _declare(AccessRule(Kind.TOKEN_OR_ROLES, rule.roles, token_setting=token_setting))


def permits(request: Request, rule: AccessRule) -> bool:
    """Whether the signed-in user holds one of the rule's roles (for what a page offers)."""
    user = getattr(request.state, "user", None)
    return user is not None and bool(user.roles & rule.roles_in(runtime_of(request).profile))


ALL_ROLES = ("operator", "investigator", "supervisor", "records_commander", "auditor", "admin")


def any_role(fn: F) -> F:
    return roles(*ALL_ROLES)(fn)


def rule_of(endpoint: Callable[..., Any] | None) -> AccessRule | None:
    return getattr(endpoint, "__pscs_access__", None)


# Enforcement ------------------------------------------------------------------------------
class Redirect(Exception):
    """A browser page that needs the user somewhere else first (sign-in, MFA, U3)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def client_ip(request: Request) -> str | None:
    """The caller's address: the peer's, or the one a trusted proxy reports
    (``Settings.trusted_proxies``, applied by the app's proxy-headers middleware)."""
    return request.client.host if request.client else None


def has_bearer_token(request: Request, token_setting: str) -> bool:
    configured = getattr(runtime_of(request).settings, token_setting)
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if configured is None or scheme.lower() != "bearer" or not sent:
        return False
    return secrets.compare_digest(sent.strip().encode(), configured.get_secret_value().encode())


def anonymous_actor(request: Request) -> Actor:
    return Actor("anonymous", None, client_ip(request), request.headers.get("user-agent"))


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


def principal_of(request: Request) -> Principal:
    """The signed-in caller of a request that passed :func:`enforce_access`, as services take it."""
    return Principal.of_session(request.state.user, request.state.actor)


def _deny(request: Request, actor: Actor, status_message: str, clause: str, reason: str) -> PolicyDenied:
    runtime_of(request).audit.record(
        "access.denied",
        actor,
        Outcome.DENIED,
        object_type="route",
        object_id=f"{request.method} {request.url.path}",
        clauses=(clause,),
        details={"reason": reason},
    )
    return PolicyDenied(status_message, clause)


async def enforce_access(request: Request) -> None:
    """The app-wide dependency: runs before every route's own code."""
    rt = runtime_of(request)
    rule = rule_of(request.scope.get("endpoint"))
    request.state.user = None
    request.state.actor = anonymous_actor(request)
    if rule is None:
        raise _deny(
            request,
            request.state.actor,
            "this route has no access rule, so it is closed",
            "CJIS-5.5.2",
            "no access rule (default deny)",
        )
    if rule.kind is Kind.PUBLIC:
        return
    if rule.kind is Kind.TOKEN_OR_ROLES and rule.token_setting and has_bearer_token(request, rule.token_setting):
        return

    token = request.cookies.get(SESSION_COOKIE)
    try:
        if not token:
            raise AuthenticationFailed("you are not signed in")
        view = auth.resume_session(rt, token)
    except AuthenticationFailed as exc:
        if wants_html(request):
            raise Redirect("/login") from exc
        _deny(request, request.state.actor, exc.message, "CJIS-5.5.2", "not signed in")
        raise
    actor = Actor(view.username, view.user_id, client_ip(request), request.headers.get("user-agent"))
    request.state.user = view
    request.state.actor = actor

    if rule.kind is Kind.SECOND_FACTOR:
        if view.stage != auth.Stage.PASSWORD:
            raise Redirect("/")
        await _check_csrf(request, view, actor)
        return
    if view.stage != auth.Stage.FULL:
        if wants_html(request):
            raise Redirect("/mfa")
        raise _deny(request, actor, "complete multi-factor sign-in first", "CJIS-5.6.2.2", "second factor outstanding")
    await _check_csrf(request, view, actor)
    if rule.before_gates:
        return

    if view.must_change_password:
        if wants_html(request):
            raise Redirect("/account/password")
        raise _deny(request, actor, "change your one-time password first", "CJIS-5.6.2.1", "password change due")
    ack = auth.acknowledgement_status(rt, view.user_id)
    if not ack.allowed:
        if wants_html(request):
            raise Redirect("/acknowledge")
        raise _deny(request, actor, ack.reason, ack.clause, ack.reason)

    if rule.kind in (Kind.ROLES, Kind.TOKEN_OR_ROLES):
        decision = decisions.role_access(view.roles, rule.roles_in(rt.profile))
        if not decision.allowed:
            raise _deny(request, actor, decision.reason, decision.clause, decision.reason)


async def _check_csrf(request: Request, view: auth.SessionView, actor: Actor) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent, view.csrf_token):
        raise _deny(
            request,
            actor,
            "the form is stale or forged (CSRF check failed); reload the page",
            "CJIS-5.10",
            "csrf token missing or wrong",
        )


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]  # "WEBSOCKET" for a WebSocket route
    endpoint: Callable[..., Any]


def iter_routes(routes: Any, prefix: str = "") -> Iterator[RouteInfo]:
    """Every HTTP and WebSocket route of an app or router, however routers are nested
    (FastAPI wraps an included router instead of copying its routes into the app)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield RouteInfo(prefix + route.path, frozenset(route.methods), route.endpoint)
        elif isinstance(route, WebSocketRoute | APIWebSocketRoute):
            yield RouteInfo(prefix + route.path, frozenset({"WEBSOCKET"}), route.endpoint)
        elif (router := getattr(route, "original_router", None)) is not None:
            context = getattr(route, "include_context", None)
            yield from iter_routes(router.routes, prefix + getattr(context, "prefix", ""))
