"""Server-rendered pages: templates, and the navigation that follows the user's roles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from pscs import __version__

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    roles: frozenset[str]


# One list: a page appears for a user only when one of the user's roles may open it.
NAVIGATION: tuple[NavItem, ...] = (
    NavItem(
        "Home", "/", frozenset({"operator", "investigator", "supervisor", "records_commander", "auditor", "admin"})
    ),
    NavItem("Users", "/admin/users", frozenset({"admin"})),
    NavItem("Audit trail", "/audit", frozenset({"auditor"})),
    NavItem(
        "Policy",
        "/policy",
        frozenset({"operator", "investigator", "supervisor", "records_commander", "auditor", "admin"}),
    ),
)


def navigation_for(roles: frozenset[str]) -> list[NavItem]:
    return [item for item in NAVIGATION if item.roles & roles]


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    user = getattr(request.state, "user", None)
    rt = request.app.state.runtime
    base = {
        "user": user,
        "nav": navigation_for(user.roles) if user is not None and user.stage == "full" else [],
        "csrf_token": user.csrf_token if user is not None else "",
        "department": rt.profile.department,
        "version": __version__,
    }
    return templates.TemplateResponse(request, template, base | (context or {}), status_code=status_code)
