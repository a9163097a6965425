"""Registering, changing and disabling cameras (P0).

Every change is validated first (bad input raises and changes nothing) and then audited
with clause P0.  Credentials never leave this module in the clear except through
:func:`recording_sources`, which the recorder uses to connect: they are not logged, not
audited and not shown back (a URL with credentials is shown as ``user:***@host``).  A
camera that takes its login in the query string (``?user=…&password=…``, ``?token=…``) is
treated alike: the values of :data:`~pscs.cameras.sources.SECRET_PARAMS` are stored
encrypted in the URL and shown as ``***``.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pscs.audit.events import Actor, Outcome
from pscs.cameras.logins import connect_url, encrypt_query_secrets, reveal_query_secrets
from pscs.cameras.models import Camera, CameraKind
from pscs.cameras.sources import RecordingSource, has_secret_params, netloc_host, redact_url, with_credentials
from pscs.db.engine import Database
from pscs.errors import Conflict, InvalidInput, NotFound, PolicyDenied
from pscs.runtime import Runtime
from pscs.secretbox import SecretBox

CAMERA_KINDS = tuple(CameraKind)
STREAM_SCHEMES = ("rtsp", "rtsps")
ONVIF_SCHEMES = ("http", "https")
MAX_NAME = 100
MAX_URL = 500
_CLAUSES = ("P0",)


# Errors: ValueError subclasses (for plain callers) that are also the domain's
# PscsError kinds (so the web layer and CLI map them to a status without a table).
class InvalidCamera(InvalidInput, ValueError):
    """A field is missing or malformed; the message names it."""


class DuplicateCameraName(Conflict, ValueError):
    """Another camera already has this name."""


class PublicAreaAttestationRequired(PolicyDenied, ValueError):
    """P0: a camera is registered (or moved) only with an attestation that it watches
    a public area only."""

    def __init__(self, message: str) -> None:
        super().__init__(message, clause="P0")


class CameraNotFound(NotFound, LookupError):
    """No camera with that id or name."""


@dataclass(frozen=True)
class CameraView:
    """A camera as shown to people: no password, URLs redacted."""

    id: int
    name: str
    kind: str
    street_address: str
    latitude: float
    longitude: float
    main_url: str
    sub_url: str | None
    onvif_url: str | None
    onvif_username: str | None
    has_stream_credentials: bool
    has_onvif_password: bool
    public_area_attested: bool
    attested_by: str | None
    attested_at: datetime | None
    enabled: bool
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class _SplitUrl:
    url: str  # without credentials
    username: str | None
    password: str | None


def _split_url(field: str, url: str | None, schemes: tuple[str, ...]) -> _SplitUrl:
    if url is None or not str(url).strip():
        raise InvalidCamera(f"{field} is required")
    url = str(url).strip()
    if len(url) > MAX_URL:
        raise InvalidCamera(f"{field} is longer than {MAX_URL} characters")
    if any(ch.isspace() for ch in url):
        raise InvalidCamera(f"{field} must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # The message must not echo the URL: it may hold a password.
        raise InvalidCamera(f"{field} is not a valid URL ({_reason(exc)})") from None
    if parts.scheme.lower() not in schemes:
        raise InvalidCamera(f"{field} must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise InvalidCamera(f"{field} has no host")
    bare = urlunsplit((parts.scheme.lower(), netloc_host(parts.hostname, port), parts.path, parts.query, ""))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return _SplitUrl(bare, username, password)


def _stored(secrets: SecretBox, field: str, url: str) -> str:
    """``url`` as stored: secret query values encrypted."""
    stored = encrypt_query_secrets(secrets, url)
    if len(stored) > MAX_URL:
        raise InvalidCamera(f"{field} is longer than {MAX_URL} characters once its credentials are encrypted")
    return stored


def _reason(exc: ValueError) -> str:
    text = str(exc)
    return "bad port" if "port" in text.lower() else "malformed"


# Validation ---------------------------------------------------------------------------------
def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidCamera("name is required")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise InvalidCamera(f"name is longer than {MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidCamera("name must not contain control characters")
    return name


def _clean_address(address: Any) -> str:
    if not isinstance(address, str) or not address.strip():
        raise InvalidCamera("street address is required (P0: cameras are registered with their location)")
    address = " ".join(address.split())
    if len(address) > 300:
        raise InvalidCamera("street address is longer than 300 characters")
    return address


def _coordinate(field: str, value: Any, limit: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidCamera(f"{field} must be a number") from None
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise InvalidCamera(f"{field} must be between -{limit:g} and {limit:g}")
    return number


def _kind(kind: Any) -> str:
    if kind not in CAMERA_KINDS:
        raise InvalidCamera(f"kind must be one of: {', '.join(CAMERA_KINDS)}")
    return str(kind)


def _optional_text(field: str, value: Any, max_len: int = 200) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidCamera(f"{field} must be text of at most {max_len} characters")
    return value.strip()


def _streams(main_url: Any, sub_url: Any) -> tuple[_SplitUrl, _SplitUrl | None]:
    main = _split_url("main stream URL", main_url, STREAM_SCHEMES)
    sub = _split_url("sub stream URL", sub_url, STREAM_SCHEMES) if sub_url else None
    if sub and sub.username and (sub.username, sub.password) != (main.username, main.password):
        raise InvalidCamera("main and sub stream URLs carry different credentials; a camera has one stream login")
    return main, sub


def _audit_denied(rt: Runtime, actor: Actor, action: str, camera: str) -> None:
    rt.audit.record(
        action,
        actor,
        Outcome.DENIED,
        object_type="camera",
        object_id=camera,
        clauses=_CLAUSES,
        details={"reason": "public-area attestation missing"},
    )


def _require_attestation(rt: Runtime, actor: Actor, attested: bool, action: str, name: str) -> None:
    if attested is True:
        return
    _audit_denied(rt, actor, action, name)
    raise PublicAreaAttestationRequired(
        "P0: the camera may only be registered with the attestation that it monitors public areas only, "
        "overtly, and nothing a person could not see from a public place"
    )


def _name_taken(s: Session, name: str, except_id: int | None = None) -> bool:
    q = select(Camera.id).where(func.lower(Camera.name) == name.lower())
    if except_id is not None:
        q = q.where(Camera.id != except_id)
    return s.scalar(q) is not None


def _find(s: Session, camera: int | str) -> Camera:
    if isinstance(camera, int) or (isinstance(camera, str) and camera.isdigit()):
        row = s.get(Camera, int(camera))
    else:
        row = s.scalar(select(Camera).where(func.lower(Camera.name) == str(camera).strip().lower()))
    if row is None:
        raise CameraNotFound(f"no camera {camera!r}")
    return row


def _view(c: Camera) -> CameraView:
    return CameraView(
        id=c.id,
        name=c.name,
        kind=c.kind,
        street_address=c.street_address,
        latitude=c.latitude,
        longitude=c.longitude,
        main_url=_shown_url(c.main_url, c.stream_username),
        sub_url=_shown_url(c.sub_url, c.stream_username) if c.sub_url else None,
        onvif_url=redact_url(c.onvif_url) if c.onvif_url else None,
        onvif_username=c.onvif_username,
        has_stream_credentials=c.stream_username is not None or has_secret_params(c.main_url),
        has_onvif_password=c.onvif_password_enc is not None,
        public_area_attested=c.public_area_attested,
        attested_by=c.attested_by,
        attested_at=c.attested_at,
        enabled=c.enabled,
        created_at=c.created_at,
        updated_at=c.updated_at,
    )


def _shown_url(url: str, username: str | None) -> str:
    return redact_url(with_credentials(url, username, "x"))


# Service ------------------------------------------------------------------------------------
def add_camera(
    rt: Runtime,
    actor: Actor,
    *,
    name: str,
    street_address: str,
    latitude: float,
    longitude: float,
    main_url: str,
    sub_url: str | None = None,
    kind: str = CameraKind.FIXED,
    onvif_url: str | None = None,
    onvif_username: str | None = None,
    onvif_password: str | None = None,
    public_area_attested: bool = False,
) -> CameraView:
    """Register a camera.  ``public_area_attested`` must be True (P0): the actor attests
    that the camera overtly monitors public areas only; who and when are recorded."""
    name = _clean_name(name)
    address = _clean_address(street_address)
    lat = _coordinate("latitude", latitude, 90)
    lon = _coordinate("longitude", longitude, 180)
    kind = _kind(kind)
    main, sub = _streams(main_url, sub_url)
    onvif = _split_url("ONVIF URL", onvif_url, ONVIF_SCHEMES) if onvif_url else None
    onvif_user = _optional_text("ONVIF username", onvif_username) or (onvif.username if onvif else None)
    onvif_pass = onvif_password if onvif_password else (onvif.password if onvif else None)
    if onvif_pass is not None and not onvif_user:
        raise InvalidCamera("an ONVIF password was given without an ONVIF username")
    _require_attestation(rt, actor, public_area_attested, "camera.create", name)

    now = rt.clock.now()
    with rt.db.write() as s:
        if _name_taken(s, name):
            raise DuplicateCameraName(f"a camera named {name!r} already exists")
        camera = Camera(
            name=name,
            kind=kind,
            street_address=address,
            latitude=lat,
            longitude=lon,
            main_url=_stored(rt.secrets, "main stream URL", main.url),
            sub_url=_stored(rt.secrets, "sub stream URL", sub.url) if sub else None,
            stream_username=main.username,
            stream_password_enc=rt.secrets.encrypt(main.password) if main.password is not None else None,
            onvif_url=_stored(rt.secrets, "ONVIF URL", onvif.url) if onvif else None,
            onvif_username=onvif_user,
            onvif_password_enc=rt.secrets.encrypt(onvif_pass) if onvif_pass is not None else None,
            public_area_attested=True,
            attested_by=actor.username,
            attested_at=now,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        s.add(camera)
        s.flush()
        view = _view(camera)
    rt.audit.record(
        "camera.create",
        actor,
        object_type="camera",
        object_id=view.id,
        clauses=_CLAUSES,
        details=_audit_fields(view),
    )
    return view


def _audit_fields(view: CameraView) -> dict[str, Any]:
    shown = view.as_dict()
    for key in ("id", "created_at", "updated_at", "attested_at"):
        shown.pop(key)
    return shown


_LOCATION_FIELDS = ("street_address", "latitude", "longitude")
UPDATABLE_FIELDS = (
    "name",
    "kind",
    *_LOCATION_FIELDS,
    "main_url",
    "sub_url",
    "onvif_url",
    "onvif_username",
    "onvif_password",
)


def update_camera(
    rt: Runtime,
    actor: Actor,
    camera: int | str,
    *,
    public_area_attested: bool = False,
    **changes: Any,
) -> CameraView:
    """Change some of a camera's fields (see ``UPDATABLE_FIELDS``); ``None`` clears an
    optional one.  Moving a camera (address or coordinates) or pointing it at another
    stream needs a fresh public-area attestation (P0)."""
    unknown = sorted(set(changes) - set(UPDATABLE_FIELDS))
    if unknown:
        raise InvalidCamera(f"cannot change {', '.join(unknown)}; changeable: {', '.join(UPDATABLE_FIELDS)}")
    if not changes:
        raise InvalidCamera("nothing to change")

    try:
        before, after, secrets_changed, moved = _apply_update(rt, actor, camera, public_area_attested, changes)
    except PublicAreaAttestationRequired:
        _audit_denied(rt, actor, "camera.update", str(camera))
        raise
    changed = {
        k: {"before": getattr(before, k), "after": getattr(after, k)}
        for k in after.__dict__
        if k != "updated_at" and getattr(before, k) != getattr(after, k)
    }
    rt.audit.record(
        "camera.update",
        actor,
        object_type="camera",
        object_id=after.id,
        clauses=_CLAUSES,
        details={
            "name": after.name,
            "changed": _jsonable(changed),
            "secrets_changed": secrets_changed,
            "re_attested": moved,
        },
    )
    return after


def _apply_update(
    rt: Runtime, actor: Actor, camera: int | str, attested: bool, changes: dict[str, Any]
) -> tuple[CameraView, CameraView, list[str], bool]:
    with rt.db.write() as s:
        row = _find(s, camera)
        before = _view(row)
        new: dict[str, Any] = {}
        secrets_changed: list[str] = []
        if "name" in changes:
            new["name"] = _clean_name(changes["name"])
            if _name_taken(s, new["name"], except_id=row.id):
                raise DuplicateCameraName(f"a camera named {new['name']!r} already exists")
        if "kind" in changes:
            new["kind"] = _kind(changes["kind"])
        if "street_address" in changes:
            new["street_address"] = _clean_address(changes["street_address"])
        if "latitude" in changes:
            new["latitude"] = _coordinate("latitude", changes["latitude"], 90)
        if "longitude" in changes:
            new["longitude"] = _coordinate("longitude", changes["longitude"], 180)
        if "main_url" in changes or "sub_url" in changes:
            main_in = changes.get("main_url") or connect_url(
                rt.secrets, row.main_url, row.stream_username, row.stream_password_enc
            )
            if "sub_url" in changes:
                sub_in = changes["sub_url"]
            else:  # it shares the main stream's user:password login; its query secrets are its own
                sub_in = reveal_query_secrets(rt.secrets, row.sub_url) if row.sub_url else None
            main, sub = _streams(main_in, sub_in)
            new["main_url"] = _stored(rt.secrets, "main stream URL", main.url)
            new["sub_url"] = _stored(rt.secrets, "sub stream URL", sub.url) if sub else None
            if "main_url" in changes:
                new["stream_username"] = main.username
                new["stream_password_enc"] = rt.secrets.encrypt(main.password) if main.password is not None else None
                secrets_changed.append("stream credentials")
        if "onvif_url" in changes:
            onvif = _split_url("ONVIF URL", changes["onvif_url"], ONVIF_SCHEMES) if changes["onvif_url"] else None
            new["onvif_url"] = _stored(rt.secrets, "ONVIF URL", onvif.url) if onvif else None
            if onvif and onvif.username:
                new["onvif_username"] = onvif.username
            if onvif and onvif.password is not None:
                new["onvif_password_enc"] = rt.secrets.encrypt(onvif.password)
                secrets_changed.append("ONVIF password")
        if "onvif_username" in changes:
            new["onvif_username"] = _optional_text("ONVIF username", changes["onvif_username"])
        if "onvif_password" in changes:
            password = changes["onvif_password"]
            new["onvif_password_enc"] = rt.secrets.encrypt(password) if password else None
            secrets_changed.append("ONVIF password")

        # Stored URLs are compared as shown: a credential encrypted afresh is not a new stream.
        moved = any(f in new and new[f] != getattr(row, f) for f in _LOCATION_FIELDS) or (
            "main_url" in new and redact_url(new["main_url"]) != redact_url(row.main_url)
        )
        if moved and attested is not True:
            # Nothing has been written yet: leaving the block by exception rolls back.
            raise PublicAreaAttestationRequired(
                "P0: moving a camera or changing its stream needs a fresh attestation "
                "that it monitors public areas only"
            )
        for field, value in new.items():
            setattr(row, field, value)
        if moved:
            row.public_area_attested, row.attested_by, row.attested_at = True, actor.username, rt.clock.now()
        row.updated_at = rt.clock.now()
        s.flush()
        return before, _view(row), secrets_changed, moved


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value.isoformat() if isinstance(value, datetime) else value


def set_camera_enabled(
    rt: Runtime, actor: Actor, camera: int | str, enabled: bool, reason: str | None = None
) -> CameraView:
    """Disable (stop recording; footage already recorded stays under retention) or
    re-enable a camera."""
    if reason is not None and len(reason) > 500:
        raise InvalidCamera("reason is longer than 500 characters")
    try:
        with rt.db.write() as s:
            row = _find(s, camera)
            if enabled and not row.public_area_attested:  # disabling is always allowed
                raise PublicAreaAttestationRequired("P0: this camera has no public-area attestation; update it first")
            was = row.enabled
            row.enabled = enabled
            row.updated_at = rt.clock.now()
            s.flush()
            view = _view(row)
    except PublicAreaAttestationRequired:
        _audit_denied(rt, actor, "camera.enable", str(camera))
        raise
    rt.audit.record(
        "camera.disable" if not enabled else "camera.enable",
        actor,
        object_type="camera",
        object_id=view.id,
        clauses=_CLAUSES,
        details={"name": view.name, "was_enabled": was, "reason": reason},
    )
    return view


def disable_camera(rt: Runtime, actor: Actor, camera: int | str, reason: str | None = None) -> CameraView:
    return set_camera_enabled(rt, actor, camera, False, reason)


def enable_camera(rt: Runtime, actor: Actor, camera: int | str) -> CameraView:
    return set_camera_enabled(rt, actor, camera, True)


def list_cameras(rt: Runtime, *, include_disabled: bool = True) -> list[CameraView]:
    with rt.db.session() as s:
        q = select(Camera).order_by(Camera.name)
        if not include_disabled:
            q = q.where(Camera.enabled.is_(True))
        return [_view(c) for c in s.scalars(q)]


def get_camera(rt: Runtime, camera: int | str) -> CameraView:
    with rt.db.session() as s:
        return _view(_find(s, camera))


def recording_sources(db: Database, secrets: SecretBox) -> list[RecordingSource]:
    """Enabled, attested cameras with the URL the recorder connects to (credentials in)."""
    with db.session() as s:
        rows = s.scalars(
            select(Camera).where(Camera.enabled.is_(True), Camera.public_area_attested.is_(True)).order_by(Camera.id)
        ).all()
        return [
            RecordingSource(
                camera_id=c.id,
                name=c.name,
                main_url=connect_url(secrets, c.main_url, c.stream_username, c.stream_password_enc),
            )
            for c in rows
        ]


def require_cameras(s: Session, camera_ids: set[int] | list[int]) -> None:
    """Refuse (InvalidInput) a list of camera ids that is empty or names a camera that does not exist."""
    wanted = set(camera_ids)
    if not wanted:
        raise InvalidInput("name at least one camera")
    known = set(s.scalars(select(Camera.id).where(Camera.id.in_(wanted))))
    if missing := sorted(wanted - known):
        raise InvalidInput(f"no camera with id {', '.join(map(str, missing))}")
