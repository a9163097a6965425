"""The FastAPI application: thin routes over the domain services."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from pscs import __version__, startup
from pscs.errors import PscsError, TooManyAttempts
from pscs.runtime import Runtime
from pscs.web import pages
from pscs.web.access import Redirect, enforce_access, wants_html
from pscs.web.limits import BodyLimit
from pscs.web.routes import (
    account,
    admin,
    audit,
    cameras,
    evidence,
    holds,
    purposes,
    records,
    requests,
    retention,
    system,
    video,
    zones,
)

log = logging.getLogger("pscs.web")
STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(runtime: Runtime) -> FastAPI:
    startup.prepare()  # protection sources, before any request can ask
    app = FastAPI(
        title="pscs — Public Safety Camera System",
        version=__version__,
        dependencies=[Depends(enforce_access)],
        # The built-in documentation routes would bypass the access rules; the OpenAPI
        # document is served by a declared route instead (system.openapi_document).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (
        system,
        account,
        admin,
        audit,
        cameras,
        purposes,
        video,
        zones,
        records,
        holds,
        requests,
        evidence,
        retention,
    ):
        app.include_router(module.router)

    # Added before the headers middleware, so that its 413 carries the security headers too.
    app.add_middleware(
        BodyLimit,
        small=runtime.settings.max_body_bytes,
        upload=runtime.settings.max_upload_bytes,
        refuse=_body_too_large,
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # noqa: ANN001, ANN202
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.scheme == "https":
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    _install_error_handlers(app)
    return app


def _error_body(status: int, code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"status": status, "code": code, "message": message, **extra}}


def _body_too_large(limit: int) -> Response:
    message = f"the request body is too large: at most {limit:,} bytes are accepted here"
    return JSONResponse(_error_body(413, "body_too_large", message), status_code=413, headers={"Connection": "close"})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Redirect)
    async def _redirect(request: Request, exc: Redirect) -> Response:
        return RedirectResponse(exc.location, status_code=303)

    @app.exception_handler(PscsError)
    async def _domain_error(request: Request, exc: PscsError) -> Response:
        extra = {"clause": exc.clause} if hasattr(exc, "clause") else {}
        if wants_html(request):
            response = pages.render(
                request, "error.html", {"status": exc.status, "message": exc.message, **extra}, status_code=exc.status
            )
        else:
            response = JSONResponse(_error_body(exc.status, exc.code, exc.message, **extra), status_code=exc.status)
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path", "form"))
            problems.append({"field": where, "message": err["msg"]})
        message = "invalid input: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        if wants_html(request):
            return pages.render(request, "error.html", {"status": 422, "message": message}, status_code=422)
        return JSONResponse(_error_body(422, "invalid_input", message, fields=problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = f"no such page or resource: {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(
            _error_body(exc.status_code, "http_error", message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        reference = secrets.token_hex(6)
        log.exception("unhandled error (reference %s) on %s %s", reference, request.method, request.url.path)
        return JSONResponse(
            _error_body(
                500,
                "internal_error",
                f"internal error; the administrator can find it in the log under reference {reference}",
            ),
            status_code=500,
        )
