"""Health, metrics, the OpenAPI document, the home page and the active policy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from pscs import __version__
from pscs.web import pages
from pscs.web.access import any_role, public, runtime_of, token_or_roles
from pscs.web.openapi import answers_in

router = APIRouter()


@router.get("/healthz", tags=["system"])
@public
def healthz(request: Request) -> JSONResponse:
    """Liveness and database reachability; says nothing about cameras or users."""
    rt = runtime_of(request)
    try:
        with rt.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception:  # noqa: BLE001 - any failure is "unreachable" to a health probe
        database = "unreachable"
    status = 200 if database == "ok" else 503
    return JSONResponse(
        {"status": "ok" if status == 200 else "degraded", "database": database, "version": __version__},
        status_code=status,
    )


def metrics_registry(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry | None = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        from pscs.metrics import build_registry

        registry = request.app.state.metrics_registry = build_registry(runtime_of(request))
    return registry


@router.get("/metrics", tags=["system"], responses=answers_in(CONTENT_TYPE_LATEST))
@token_or_roles("metrics_token", "admin", "auditor")
def metrics(request: Request) -> Response:
    """Prometheus metrics: for a scraper with the configured bearer token, and for admins and auditors."""
    return Response(generate_latest(metrics_registry(request)), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/openapi.json", tags=["system"])
@any_role
def openapi_document(request: Request) -> dict[str, Any]:
    return request.app.openapi()


@router.get("/", include_in_schema=False)
@any_role
def home(request: Request) -> Response:
    return pages.render(request, "home.html")


@router.get("/policy", include_in_schema=False)
@any_role
def policy_page(request: Request) -> Response:
    rt = runtime_of(request)
    return pages.render(
        request, "policy.html", {"profile": rt.profile, "profile_yaml": rt.profile.model_dump(mode="json")}
    )


@router.get("/api/v1/policy", tags=["system"])
@any_role
def policy_api(request: Request) -> dict[str, Any]:
    """The active policy profile."""
    return runtime_of(request).profile.model_dump(mode="json")


@router.get("/api/v1/me", tags=["account"])
@any_role
def me(request: Request) -> dict[str, Any]:
    view = request.state.user
    return {
        "id": view.user_id,
        "username": view.username,
        "full_name": view.full_name,
        "roles": sorted(view.roles),
        "csrf_token": view.csrf_token,
    }
