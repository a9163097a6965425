"""The egress service: the one way video leaves pscs (U1, U2, U4, M1).

Every path that shows a camera's pictures or its recordings' metadata — live view,
playback, snapshots, the playback timeline, and the paths still to come (exports, PTZ and
misuse-investigation replay) — opens a *view* here and gets a :class:`Grant`, which owns
the whole policy sequence:

1. the U1/U2 purpose check (a refusal is audited, with the clause);
2. the privacy zones in force for the camera and the caller's own mask lift (U4);
3. the audit events at start and stop: camera, purpose session, range shown, bytes;
4. while video flows, a re-check every :data:`RECHECK_S` seconds of everything the grant
   stands on (:func:`pscs.policy.decisions.may_keep_watching`): the sign-in session, the
   account, the roles it holds *now*, the purpose session, the lift, the zone version.
   A view whose standing is gone ends, with the reason shown to the viewer and audited;
   a lift that ended, or zones that appeared or changed, switch it to masked pictures.

The web and CLI edges translate HTTP and WebSockets into these calls and nothing more.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pscs.audit.events import Outcome
from pscs.auth.models import User, WebSession
from pscs.auth.principal import Principal
from pscs.cameras.models import Camera
from pscs.errors import NotFound
from pscs.policy import decisions
from pscs.policy.decisions import Decision
from pscs.purposes import service as purposes
from pscs.purposes.service import PurposeView
from pscs.runtime import Runtime
from pscs.video import playback
from pscs.video.live import LiveHub, Subscriber
from pscs.video.playback import PlaybackStream, snapshot_at_png
from pscs.video.zones import ZONES, LiftView, ZoneSet, active_lift

RECHECK_S = 2.0


class EgressKind(StrEnum):
    """The ways video (or what was recorded when) leaves pscs.  A new way is added here,
    with its audit actions below and its row in the egress test table."""

    LIVE = "live"
    PLAYBACK = "playback"
    SNAPSHOT = "snapshot"
    TIMELINE = "timeline"


# The audit action at the start of a view, and at its end for views that last.
START_ACTION = {
    EgressKind.LIVE: "video.live.start",
    EgressKind.PLAYBACK: "video.playback.start",
    EgressKind.SNAPSHOT: "video.snapshot",
    EgressKind.TIMELINE: "video.timeline",
}
STOP_ACTION = {EgressKind.LIVE: "video.live.stop", EgressKind.PLAYBACK: "video.playback.stop"}


class ViewState(StrEnum):
    OPEN = "open"
    FINISHED = "finished"  # everything asked for was sent, or the viewer closed it
    ENDED = "ended"  # pscs ended it: the view's standing is gone


@dataclass(frozen=True)
class Masking:
    """The zones in force for a camera and the caller's own active lift for it."""

    zones: ZoneSet | None
    lift: LiftView | None

    @property
    def mask(self) -> ZoneSet | None:
        """The zones to fill in this caller's pictures (None: pass the camera's pictures)."""
        zones_in_force = self.zones is not None and not self.zones.empty
        return self.zones if decisions.pictures_masked(zones_in_force, self.lift is not None) else None

    def audit_details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"masked": self.mask is not None}
        if self.zones is not None:
            out["zone_version"] = self.zones.version
        if self.lift is not None:
            out |= {
                "mask_lift_id": self.lift.id,
                "warrant_reference": self.lift.warrant_reference,
                "lift_requested_by": self.lift.requested_by,
                "lift_approved_by": self.lift.decided_by,
            }
        return out


def masking_for(rt: Runtime, principal: Principal, camera_id: int) -> Masking:
    zones = ZONES.get(rt, camera_id)
    lift = active_lift(rt, camera_id, principal.user_id) if zones is not None and principal.user_id else None
    return Masking(zones, lift)


def _standing(rt: Runtime, principal: Principal, purpose_session_id: int, camera_id: int) -> Decision:
    """Everything a running view stands on, read afresh from the database."""
    with rt.db.session() as s:
        ws = s.get(WebSession, principal.web_session_id) if principal.web_session_id is not None else None
        user = s.get(User, principal.user_id) if principal.user_id is not None else None
        sign_in = None
        if ws is not None and user is not None and ws.user_id == user.id:
            ended = (ws.end_reason or "signed out") if ws.ended_at is not None else None
            sign_in = decisions.SignInState(ended, ws.created_at, ws.last_seen_at, user.disabled)
        roles = user.role_names if user is not None else frozenset()
    purpose = purposes.get_session(rt, purpose_session_id)
    return decisions.may_keep_watching(sign_in, roles, purpose.state, camera_id, rt.clock.now(), rt.profile)


class Grant:
    """One view of one camera by one caller, from the purpose check to the stop event."""

    def __init__(
        self,
        rt: Runtime,
        principal: Principal,
        camera_id: int,
        kind: EgressKind,
        purpose: PurposeView,
        masking: Masking,
        details: dict[str, Any],
    ) -> None:
        self.id = secrets.token_urlsafe(12)
        self.rt, self.principal, self.camera_id, self.kind = rt, principal, camera_id, kind
        self.purpose, self.masking, self.details = purpose, masking, details
        self.state = ViewState.OPEN
        self.end: Decision | None = None
        self.bytes_sent = 0
        self.started = time.monotonic()
        self.started_ms = rt.clock.ms()  # wall clock: what a live view showed began here
        self._checked = time.monotonic()
        self._closed = threading.Lock()

    @property
    def mask(self) -> ZoneSet | None:
        return self.masking.mask

    def _record(self, action: str, outcome: Outcome, clauses: tuple[str, ...], details: dict[str, Any]) -> None:
        self.rt.audit.record(
            action,
            self.principal.actor,
            outcome,
            object_type="camera",
            object_id=self.camera_id,
            clauses=clauses,
            purpose_session_id=self.purpose.id,
            details=self.details | details,
        )

    def record_start(self, **details: Any) -> None:
        """The view began: what is shown, why (the purpose), and with which masks (U4)."""
        clauses = (self.purpose.clause, "U4") if self.kind is not EgressKind.TIMELINE else (self.purpose.clause,)
        self._record(START_ACTION[self.kind], Outcome.ALLOWED, clauses, self.masking.audit_details() | details)
        if self.kind in STOP_ACTION:
            VIEWS.opened(self)

    def record_failure(self, reason: str) -> None:
        """The view was allowed but nothing could be shown (the camera sent no picture)."""
        self._record(START_ACTION[self.kind], Outcome.ERROR, (self.purpose.clause,), {"reason": reason})

    def due(self) -> bool:
        return time.monotonic() - self._checked >= RECHECK_S

    def recheck(self) -> Decision | None:
        """Ask again whether the view may go on.  Returns the refusal that ends it (kept in
        :attr:`end`), or None, having refreshed the zones and the lift in :attr:`masking`."""
        self._checked = time.monotonic()
        decision = _standing(self.rt, self.principal, self.purpose.id, self.camera_id)
        if not decision.allowed:
            self.end = decision
            return decision
        self.masking = masking_for(self.rt, self.principal, self.camera_id)
        return None

    def close(self, reason: str, **details: Any) -> None:
        """Audit the end of the view, once: why it ended, what range and how much was sent."""
        if not self._closed.acquire(blocking=False):
            return
        if self.end is not None:
            self.state, reason = ViewState.ENDED, self.end.reason
        else:
            self.state = ViewState.FINISHED
        clauses = (self.purpose.clause,) if self.end is None else (self.purpose.clause, self.end.clause)
        self._record(
            STOP_ACTION[self.kind], Outcome.ALLOWED, clauses, details | {"bytes": self.bytes_sent, "reason": reason}
        )
        VIEWS.closed(self)


class ViewRegistry:
    """The views open in this process, and why the recent ones ended — so a player whose
    stream stopped can tell its user why (a stream cannot carry a reason after its end)."""

    KEEP_ENDED = 2000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Grant] = {}
        self._ended: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def opened(self, grant: Grant) -> None:
        with self._lock:
            self._open[grant.id] = grant

    def closed(self, grant: Grant) -> None:
        with self._lock:
            self._open.pop(grant.id, None)
            self._ended[grant.id] = _view_dict(grant)
            while len(self._ended) > self.KEEP_ENDED:
                self._ended.popitem(last=False)

    def lookup(self, view_id: str, user_id: int | None) -> dict[str, Any]:
        """A view of this user's (another's is as unknown as one that never was)."""
        with self._lock:
            grant = self._open.get(view_id)
            found = _view_dict(grant) if grant is not None else self._ended.get(view_id)
        if found is None or found["user_id"] != user_id:
            raise NotFound(f"no view {view_id}")
        return found


def _view_dict(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.id,
        "user_id": grant.principal.user_id,
        "camera_id": grant.camera_id,
        "kind": str(grant.kind),
        "state": str(grant.state),
        "reason": grant.end.reason if grant.end else None,
        "clause": grant.end.clause if grant.end else None,
    }


VIEWS = ViewRegistry()


def open_view(
    rt: Runtime, principal: Principal, camera_id: int, kind: EgressKind, details: dict[str, Any] | None = None
) -> Grant:
    """The gate in front of every way video leaves: the caller's purpose session allows
    this camera (U1, U2), or a refusal naming the clause — audited."""
    details = details or {}
    with rt.db.session() as s:
        if s.get(Camera, camera_id) is None:
            raise NotFound(f"no camera {camera_id}")
    now = rt.clock.now()
    session = (
        purposes.current_session(rt, principal.web_session_id, now) if principal.web_session_id is not None else None
    )
    decision = decisions.may_view(principal.roles, session.state if session else None, camera_id, now, rt.profile)
    if not decision.allowed:
        raise rt.audit.refusal(
            START_ACTION[kind],
            principal.actor,
            decision,
            object_type="camera",
            object_id=camera_id,
            purpose_session_id=session.id if session else None,
            details=details,
        )
    assert session is not None
    return Grant(rt, principal, camera_id, kind, session, masking_for(rt, principal, camera_id), details)


# Timeline ---------------------------------------------------------------------------------------
def timeline(rt: Runtime, principal: Principal, camera_id: int, start_ms: int, end_ms: int) -> dict[str, Any]:
    """Recorded ranges, gaps and holds between two instants.  Holds name case numbers, so
    the timeline is shown, like the pictures, only inside a purpose session."""
    grant = open_view(rt, principal, camera_id, EgressKind.TIMELINE, {"start_ms": start_ms, "end_ms": end_ms})
    data = playback.timeline(rt, camera_id, start_ms, end_ms)
    grant.record_start(ranges=len(data["ranges"]), holds=len(data["holds"]))
    return data


# Snapshots --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    png: bytes
    picture_ms: int  # wall-clock time of the picture shown
    masked: bool


def snapshot(rt: Runtime, principal: Principal, camera_id: int, at_ms: int | None, hub: LiveHub) -> Snapshot:
    """A PNG of the camera now (``at_ms`` None) or of its recording at ``at_ms``, masked."""
    details = {"at_ms": at_ms, "source": "live" if at_ms is None else "recording"}
    grant = open_view(rt, principal, camera_id, EgressKind.SNAPSHOT, details)
    try:
        if at_ms is None:
            png = hub.snapshot_png(camera_id, grant.mask)
            shown_ms = rt.clock.ms()
        else:
            png, shown_ms = snapshot_at_png(rt, camera_id, at_ms, grant.mask)
    except TimeoutError as exc:
        grant.record_failure(str(exc))
        raise NotFound(f"camera {camera_id} sent no picture: {exc}") from exc
    grant.record_start(picture_ms=shown_ms)
    return Snapshot(png, shown_ms, grant.mask is not None)


# Playback ---------------------------------------------------------------------------------------
class PlaybackView:
    """A recorded stream for one viewer: :meth:`chunks` yields fragmented MP4 and asks
    again, before each fragment it makes once :data:`RECHECK_S` has passed, whether it may
    go on; :meth:`close` (always called by the edge) audits the end."""

    def __init__(self, grant: Grant, stream: PlaybackStream, first: bytes, rest: Iterator[bytes]) -> None:
        self.grant, self.stream = grant, stream
        self._first: bytes | None = first
        self._rest = rest
        self._finished = False

    @property
    def masked(self) -> bool:
        return self.stream.zones is not None

    def chunks(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            self.grant.bytes_sent += len(first)
            yield first
        while True:
            if self.grant.due():
                if self.grant.recheck() is not None:
                    return
                self.stream.set_mask(self.grant.mask)
            chunk = next(self._rest, None)
            if chunk is None:
                self._finished = True
                return
            self.grant.bytes_sent += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self._rest, "close", None)
        if close is not None:
            close()
        self.grant.close(
            "finished" if self._finished else "closed by the viewer",
            range_from_ms=self.stream.first_ms,
            range_to_ms=self.stream.last_ms,
        )


def open_playback(
    rt: Runtime, principal: Principal, camera_id: int, start_ms: int, end_ms: int | None = None
) -> PlaybackView:
    grant = open_view(rt, principal, camera_id, EgressKind.PLAYBACK, {"start_ms": start_ms, "end_ms": end_ms})
    stream = PlaybackStream(rt, camera_id, start_ms, zones=grant.mask, end_ms=end_ms)
    rest = iter(stream)
    first = next(rest, None)
    if first is None:
        raise NotFound("nothing was recorded at or after that time")
    grant.record_start(from_ms=stream.first_ms)
    return PlaybackView(grant, stream, first, rest)


# Live -------------------------------------------------------------------------------------------
class LiveView:
    """A live stream for one viewer: the hub's subscription, kept to what the grant allows."""

    def __init__(self, grant: Grant, hub: LiveHub, subscription: Subscriber) -> None:
        self.grant, self.hub, self.subscription = grant, hub, subscription
        self._apply_lift()

    def hello(self) -> dict[str, Any]:
        """The first message to the viewer: why they are watching, and any lift in force."""
        lift = self.grant.masking.lift
        return {
            "view_id": self.grant.id,
            "purpose": self.grant.purpose.as_dict(),
            "camera_id": self.grant.camera_id,
            "stream": self.subscription.stream,
            "lift": lift.as_dict() if lift else None,
        }

    def _apply_lift(self) -> None:
        lift = self.grant.masking.lift
        self.subscription.clear_until = lift.expires_at.timestamp() if lift and lift.expires_at else None

    def recheck(self) -> tuple[Decision | None, list[dict[str, Any]]]:
        """(the refusal that ends the view, or None; state messages for the viewer)."""
        had_lift = self.grant.masking.lift is not None
        refusal = self.grant.recheck()
        if refusal is not None:
            return refusal, [{"state": "session-ended", "reason": refusal.reason, "clause": refusal.clause}]
        self._apply_lift()
        return None, ([{"lift": None}] if had_lift and self.grant.masking.lift is None else [])

    def close(self, reason: str) -> None:
        self.hub.unsubscribe(self.subscription)
        self.grant.close(
            reason,
            range_from_ms=self.grant.started_ms,
            range_to_ms=self.grant.rt.clock.ms(),
            seconds=round(time.monotonic() - self.grant.started, 1),
        )


def open_live(
    rt: Runtime, principal: Principal, camera_id: int, stream: str, hub: LiveHub, **subscribe: Any
) -> LiveView:
    """``subscribe``: passed to :meth:`LiveHub.subscribe` (the viewer's event loop)."""
    grant = open_view(rt, principal, camera_id, EgressKind.LIVE, {"stream": stream})
    lift = grant.masking.lift
    clear_until = lift.expires_at.timestamp() if lift and lift.expires_at else None
    view = LiveView(grant, hub, hub.subscribe(camera_id, stream, clear_until=clear_until, **subscribe))
    grant.record_start()
    return view
