"""What the recorder is handed for each camera, and the credential-safe handling of stream
URLs.  Kept free of the database and service layers: recorder worker processes import it,
and every module they import is memory in every worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit


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


# Query parameters that carry a secret (compared in lower case).  Many cameras take their
# login in the query string (``?user=admin&password=…``, ``?token=…``): such a value is kept
# encrypted like a ``user:password@`` password and shown as ``***``.  A user name is shown,
# as it is in ``user:***@host``.
SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "pw",
        "passphrase",
        "secret",
        "token",
        "access_token",
        "auth",
        "auth_token",
        "authtoken",
        "key",
        "apikey",
        "api_key",
        "signature",
        "sig",
    }
)
HIDDEN = "***"


def _secret_value(piece: str) -> tuple[str, str] | None:
    """(name, value) of a ``name=value`` query piece whose name is a secret one."""
    name, sep, value = piece.partition("=")
    return (name, value) if sep and value and unquote(name).lower() in SECRET_PARAMS else None


def map_secret_params(url: str, change: Callable[[str], str]) -> str:
    """``url`` with ``change`` applied to the value of every secret query parameter; the rest
    of the URL is left exactly as it was (parameter order and encoding included)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pieces = []
    for piece in parts.query.split("&"):
        if secret := _secret_value(piece):
            piece = f"{secret[0]}={change(secret[1])}"
        pieces.append(piece)
    return urlunsplit(parts._replace(query="&".join(pieces)))


def has_secret_params(url: str) -> bool:
    return any(_secret_value(piece) for piece in urlsplit(url).query.split("&"))


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x?token=t`` -> ``rtsp://user:***@host/x?token=***``;
    anything unparsable is hidden whole rather than risk showing a secret."""
    try:
        parts = urlsplit(url)
        host = netloc_host(parts.hostname, parts.port)
        url = map_secret_params(url, lambda _value: HIDDEN)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, urlsplit(url).query, parts.fragment))


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
