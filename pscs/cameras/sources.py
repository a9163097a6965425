"""What the recorder is handed for each camera, and the credential-safe handling of stream
URLs.  Kept free of the database and service layers: recorder worker processes import it,
and every module they import is memory in every worker."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit


@dataclass(frozen=True)
class RecordingSource:
    """What the recorder needs to record one camera.  ``main_url`` carries the stream
    credentials: hand it only to the RTSP client, never to a log or a page."""

    camera_id: int
    name: str
    main_url: str

    def __repr__(self) -> str:  # keeps credentials out of tracebacks and debug logs
        shown = redact_url(self.main_url)
        return f"RecordingSource(camera_id={self.camera_id}, name={self.name!r}, main_url={shown!r})"


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` -> ``rtsp://user:***@host/x``; anything unparsable
    is hidden whole rather than risk showing a secret."""
    try:
        parts = urlsplit(url)
        host = netloc_host(parts.hostname, parts.port)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    if not username:
        return url
    parts = urlsplit(url)
    userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password is not None else "")
    netloc = f"{userinfo}@{netloc_host(parts.hostname, parts.port)}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def netloc_host(hostname: str | None, port: int | None) -> str:
    host = hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host
