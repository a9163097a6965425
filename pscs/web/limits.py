"""Request body limits, enforced before anything reads a body or checks access.

FastAPI reads and parses a route's body before it runs the app-wide access dependency, so
a limit set any later would let an anonymous caller make the server read and parse as
much as it likes.  This middleware sits outside all of that: a declared length over the
limit is refused before the first byte is read, and a body sent without a length is
counted as it arrives and cut off at the limit.

Bodies are small (JSON and forms) everywhere except on routes marked ``accepts_upload``,
and there only for a caller who sends a session cookie (the access check then decides as
usual); the two limits are the settings ``max_body_bytes`` and ``max_upload_bytes``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any, TypeVar

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pscs.web.access import SESSION_COOKIE, iter_routes

F = TypeVar("F", bound=Callable[..., Any])
_UPLOAD = "__pscs_upload__"


def accepts_upload(fn: F) -> F:
    """Mark a route that takes documents: its body may reach ``max_upload_bytes``."""
    setattr(fn, _UPLOAD, True)
    return fn


class _BodyTooLarge(Exception):
    """Raised into whatever is reading the body once it passes the limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp, *, small: int, upload: int, refuse: Callable[[int], Response]) -> None:
        self.app = app
        self.small = small
        self.upload = upload
        self.refuse = refuse  # the 413 answer, given the limit that was passed
        self._upload_routes: list[tuple[re.Pattern[str], frozenset[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self.refuse(limit)(scope, receive, send)
            return

        received = 0
        over = started = False

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a body cut short is replaced by the 413 below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await self.refuse(limit)(scope, receive, send)

    def _limit_for(self, scope: Scope) -> int:
        if not _has_session_cookie(scope):
            return self.small
        if self._upload_routes is None:
            self._upload_routes = [
                (compile_path(route.path)[0], route.methods)
                for route in iter_routes(scope["app"].routes)
                if getattr(route.endpoint, _UPLOAD, False)
            ]
        path, method = scope["path"], scope["method"]
        for pattern, methods in self._upload_routes:
            if method in methods and pattern.match(path):
                return self.upload
        return self.small


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # the server refuses a malformed length itself; counting still applies


def _has_session_cookie(scope: Scope) -> bool:
    header = Headers(scope=scope).get("cookie")
    if not header:
        return False
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(header)
    except CookieError:
        return False
    return SESSION_COOKIE in cookies
