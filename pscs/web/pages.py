"""Server-rendered pages: templates, and the navigation that follows the user's roles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pscs import __version__
from pscs.clock import format_utc
from pscs.web.access import AccessRule, Kind, iter_routes, rule_of

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


templates.env.filters["ms_utc"] = format_utc  # footage times (epoch ms) as UTC, e.g. in the records pages


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str


# The console's pages in menu order.  Who sees an item is not written here: it is read from
# the access rule of the route behind it, so the menu can never offer a page that refuses.
NAVIGATION: tuple[NavItem, ...] = (
    NavItem("Home", "/"),
    NavItem("Cameras", "/cameras"),
    NavItem("Users", "/admin/users"),
    NavItem("Audit trail", "/audit"),
    NavItem("Console", "/console"),
    NavItem("Playback", "/console/playback"),
    NavItem("Privacy zones", "/console/zones"),
    NavItem("Designations", "/console/designations"),
    NavItem("Mask lifts", "/console/mask-lifts"),
    NavItem("Records", "/records"),
    NavItem("Policy", "/policy"),
)


def _rule_for(app: Any, href: str) -> AccessRule | None:
    for route in iter_routes(app.routes):
        if route.path == href and "GET" in route.methods:
            return rule_of(route.endpoint)
    return None


def navigation_for(app: Any, roles: frozenset[str]) -> list[NavItem]:
    profile = app.state.runtime.profile
    visible = []
    for item in NAVIGATION:
        rule = _rule_for(app, item.href)
        if rule is not None and (rule.kind in (Kind.PUBLIC, Kind.SIGNED_IN) or rule.roles_in(profile) & roles):
            visible.append(item)
    return visible


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    user = getattr(request.state, "user", None)
    rt = request.app.state.runtime
    base = {
        "user": user,
        "nav": navigation_for(request.app, user.roles) if user is not None and user.stage == "full" else [],
        "csrf_token": user.csrf_token if user is not None else "",
        "department": rt.profile.department,
        "version": __version__,
    }
    return templates.TemplateResponse(request, template, base | (context or {}), status_code=status_code)
