"""The FastAPI application: thin routes over the domain services."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from pscs import __version__, startup
from pscs.errors import PscsError, TooManyAttempts
from pscs.runtime import Runtime
from pscs.web import pages
from pscs.web.access import Redirect, enforce_access, wants_html
from pscs.web.limits import BodyLimit
from pscs.web.openapi import openapi_document
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

# connect-src is completed per request with the page's own WebSocket origin (see
# content_security_policy): the live view connects back to the host that served it, nowhere else.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src {connect}; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# A Host header that is a plain host name or address (and port): anything else is left out of
# the policy rather than let a header write its own directives into it.
_PLAIN_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
SECURITY_HEADERS = {
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
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
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
        response.headers.setdefault("Content-Security-Policy", content_security_policy(request))
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.scheme == "https":  # as the client used it (trusted proxies say so)
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    if runtime.settings.trusted_proxies:
        # Outermost, so that every layer below sees the client's address and scheme; the
        # headers are believed only from the configured proxies (a caller could forge them).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(runtime.settings.trusted_proxies))
    _install_error_handlers(app)
    return app


def content_security_policy(request: Request) -> str:
    """The policy for one response: WebSockets only to the host the page came from, over
    wss when the page came over https."""
    connect = "'self'"
    host = request.headers.get("host", "")
    if _PLAIN_HOST.fullmatch(host):
        connect += f" {'wss' if request.url.scheme == 'https' else 'ws'}://{host}"
    return CSP.format(connect=connect)


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
