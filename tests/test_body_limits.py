"""Load at the door (issue 16, finding 2): request bodies are limited before anything reads
them, parses them or checks access, so an anonymous caller cannot make the server read
30 MB to find out they may not send it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Request

from pscs.runtime import Runtime
from pscs.web.access import SESSION_COOKIE, public
from pscs.web.app import create_app
from pscs.web.limits import accepts_upload
from tests.web_helpers import client_for

MB = 1024**2
CHUNK = 64 * 1024


@dataclass
class Answer:
    status: int
    body: dict
    chunks_read: int


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // CHUNK):
        yield b"{" * CHUNK


def _call(app, path: str, total: int, *, declare_length: bool, cookie: str | None = None) -> Answer:  # noqa: ANN001
    """One POST through the ASGI app, the body handed over chunk by chunk as a server would."""
    chunks = _chunks(total)
    read = 0

    async def receive() -> dict:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": read < total // CHUNK}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"accept", b"application/json")]
    if declare_length:
        headers.append((b"content-length", str(total).encode()))
    if cookie:
        headers.append((b"cookie", f"{SESSION_COOKIE}={cookie}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("192.0.2.9", 5555),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], json.loads(body), read)


def test_finding2_an_anonymous_30MB_body_is_refused_unread(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    app = create_app(rt)
    events_before = len(rt.audit.search(limit=1000))
    for path in ("/api/v1/users", "/login"):
        answer = _call(app, path, 30 * MB, declare_length=True)
        assert answer.status == 413
        assert answer.chunks_read == 0  # not one byte read
        assert answer.body["error"]["code"] == "body_too_large"
        assert f"{rt.settings.max_body_bytes:,} bytes" in answer.body["error"]["message"]
    # Refused before the access check ran: it would have audited the anonymous caller.
    assert len(rt.audit.search(limit=1000)) == events_before


def test_finding2_a_body_without_a_length_is_cut_off_at_the_limit(sqlite_runtime: Runtime) -> None:
    app = create_app(sqlite_runtime)
    answer = _call(app, "/api/v1/users", 30 * MB, declare_length=False)
    assert answer.status == 413 and answer.body["error"]["code"] == "body_too_large"
    assert answer.chunks_read * CHUNK <= sqlite_runtime.settings.max_body_bytes + CHUNK


def test_finding2_document_uploads_have_their_own_configured_limit(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    rt.settings = rt.settings.model_copy(update={"max_body_bytes": 64 * 1024, "max_upload_bytes": 3 * MB})
    app = create_app(rt)

    @app.post("/test/upload")
    @public
    @accepts_upload
    async def upload(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.post("/test/not-upload")
    @public
    async def not_upload(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    signed = _call(app, "/test/upload", 2 * MB, declare_length=True, cookie="any-session")
    assert (signed.status, signed.body) == (200, {"bytes": 2 * MB})
    assert _call(app, "/test/upload", 4 * MB, declare_length=True, cookie="any-session").status == 413
    assert _call(app, "/test/upload", 2 * MB, declare_length=True).status == 413  # anonymous: small limit
    assert _call(app, "/test/not-upload", 2 * MB, declare_length=True, cookie="any-session").status == 413
    assert _call(app, "/test/not-upload", CHUNK, declare_length=True).status == 200  # at the limit


def test_ordinary_forms_and_json_pass(sqlite_runtime: Runtime) -> None:
    client = client_for(sqlite_runtime)
    assert client.get("/login").status_code == 200
    refused = client.post("/api/v1/users", content=b"x" * (2 * MB), headers={"content-type": "application/json"})
    assert refused.status_code == 413
    assert refused.headers["x-content-type-options"] == "nosniff"  # the security headers still apply
