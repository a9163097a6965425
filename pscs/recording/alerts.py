"""Alerts: a row the console shows, a log line and an audit event, raised once and
cleared when the condition ends."""

from __future__ import annotations

import logging

from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.recording.models import Alert, AlertKind, AlertSeverity
from pscs.runtime import Runtime

log = logging.getLogger(__name__)


def raise_alert(
    rt: Runtime,
    kind: AlertKind,
    message: str,
    *,
    camera_id: int | None = None,
    severity: AlertSeverity = AlertSeverity.WARNING,
    actor: Actor | None = None,
) -> int | None:
    """Open an alert unless one of this kind is already open for the camera; returns its id."""
    with rt.db.write() as s:
        if _open(s, kind, camera_id) is not None:
            return None
        alert = Alert(
            kind=kind, severity=severity, camera_id=camera_id, message=message[:500], raised_at=rt.clock.now()
        )
        s.add(alert)
        s.flush()
        alert_id = alert.id
    log.warning("ALERT %s (camera %s): %s", kind, camera_id, message)
    rt.audit.record(
        "alert.raise",
        actor or Actor.system("recorder"),
        object_type="alert",
        object_id=alert_id,
        details={"kind": kind, "camera_id": camera_id, "severity": severity, "message": message},
    )
    return alert_id


def clear_alert(rt: Runtime, kind: AlertKind, *, camera_id: int | None = None, actor: Actor | None = None) -> bool:
    with rt.db.write() as s:
        alert = _open(s, kind, camera_id)
        if alert is None:
            return False
        alert.cleared_at = rt.clock.now()
        alert_id = alert.id
    log.info("alert cleared: %s (camera %s)", kind, camera_id)
    rt.audit.record(
        "alert.clear",
        actor or Actor.system("recorder"),
        object_type="alert",
        object_id=alert_id,
        details={"kind": kind, "camera_id": camera_id},
    )
    return True


def open_alerts(rt: Runtime) -> list[Alert]:
    with rt.db.session() as s:
        return list(s.scalars(select(Alert).where(Alert.cleared_at.is_(None)).order_by(Alert.raised_at.desc())))


def _open(s, kind: str, camera_id: int | None) -> Alert | None:  # noqa: ANN001 - Session
    q = select(Alert).where(Alert.kind == kind, Alert.cleared_at.is_(None))
    q = q.where(Alert.camera_id.is_(None)) if camera_id is None else q.where(Alert.camera_id == camera_id)
    return s.scalars(q.limit(1)).first()
