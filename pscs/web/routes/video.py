"""Video egress: live view (WebSocket), playback, snapshots — each inside a purpose
session (U1, U2) and masked on the server (U4).  Every view start and stop is audited
with the camera, the purpose session and, for playback, the recorded range sent.

The live WebSocket is a plain Starlette route (FastAPI's app-wide dependencies do not
run for WebSockets): it declares its access rule like every route and enforces it by
running the same ``enforce_access`` on the handshake, then checks the Origin header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pscs.audit.events import Outcome
from pscs.cameras.models import Camera
from pscs.db.base import utcnow
from pscs.errors import NotFound, PolicyDenied, PscsError
from pscs.policy.decisions import Decision, may_handle_video
from pscs.purposes import service as purposes
from pscs.purposes.service import Caller, PurposeView
from pscs.runtime import Runtime
from pscs.video import zones as zone_service
from pscs.video.live import LiveHub
from pscs.video.playback import PlaybackStream, snapshot_at_png, timeline
from pscs.video.zones import ZONES, LiftView, ZoneSet
from pscs.web import pages
from pscs.web.access import Redirect, enforce_access, runtime_of
from pscs.web.routes.purposes import caller_of, video_roles

router = APIRouter(tags=["video"])
_hub_lock = threading.Lock()
RECHECK_S = 2.0


def hub_of(app: Any) -> LiveHub:
    """The process's live hub (``app.state.live_hub``), created on first use."""
    hub = getattr(app.state, "live_hub", None)
    if hub is None:
        with _hub_lock:
            hub = getattr(app.state, "live_hub", None)
            if hub is None:
                hub = app.state.live_hub = LiveHub(app.state.runtime)
    return hub


def _lift_details(lift: LiftView | None) -> dict[str, Any]:
    if lift is None:
        return {}
    return {
        "mask_lift_id": lift.id,
        "warrant_reference": lift.warrant_reference,
        "lift_requested_by": lift.requested_by,
        "lift_approved_by": lift.decided_by,
    }


def _egress_zones(rt: Runtime, caller: Caller, camera_id: int) -> tuple[ZoneSet | None, LiftView | None]:
    """The zones to mask with (None: none in force, or the caller's own lift)."""
    lift = zone_service.active_lift(rt, camera_id, caller.user_id)
    zones = ZONES.get(rt, camera_id)
    return (None if lift is not None else zones), (lift if zones is not None else None)


def _camera_names(rt: Runtime) -> dict[int, str]:
    with rt.db.session() as s:
        return {cid: name for cid, name in s.execute(select(Camera.id, Camera.name))}


# Console data ---------------------------------------------------------------------------------
@router.get("/api/v1/console/cameras")
@video_roles
def console_cameras(request: Request) -> dict[str, Any]:
    """Cameras for the console: where, whether recording, whether masked for this user."""
    from pscs.recording.models import CameraHealth

    rt = runtime_of(request)
    caller = caller_of(request)
    with rt.db.session() as s:
        cams = s.scalars(select(Camera).where(Camera.enabled.is_(True)).order_by(Camera.name)).all()
        health = {h.camera_id: h.state for h in s.scalars(select(CameraHealth))}
        rows = [(c.id, c.name, c.kind, c.street_address, c.sub_url is not None) for c in cams]
    out = []
    for cid, name, kind, address, has_sub in rows:
        zones, lift = _egress_zones(rt, caller, cid)
        out.append(
            {
                "id": cid,
                "name": name,
                "kind": kind,
                "street_address": address,
                "has_sub": has_sub,
                "recorder_state": health.get(cid),
                "masked": zones is not None,
                "zone_version": ZONES.get(rt, cid).version if ZONES.get(rt, cid) else None,
                "mask_lift": lift.as_dict() if lift else None,
            }
        )
    return {"cameras": out}


@router.get("/api/v1/playback/{camera_id}/timeline")
@video_roles
def playback_timeline(
    request: Request,
    camera_id: int,
    start_ms: Annotated[int | None, Query(ge=0)] = None,
    end_ms: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """Recorded ranges, gaps and holds (times are UTC epoch milliseconds); default: the last 24 hours."""
    rt = runtime_of(request)
    decision = may_handle_video(frozenset(request.state.user.roles), rt.profile)
    if not decision.allowed:
        raise PolicyDenied(decision.reason, decision.clause)
    now_ms = int(time.time() * 1000)
    end = end_ms if end_ms is not None else now_ms
    start = start_ms if start_ms is not None else end - 24 * 3600 * 1000
    with rt.db.session() as s:
        if s.get(Camera, camera_id) is None:
            raise NotFound(f"no camera {camera_id}")
    return timeline(rt, camera_id, start, max(start + 1, end))


# Snapshots -----------------------------------------------------------------------------------
@router.get("/api/v1/cameras/{camera_id}/snapshot")
@video_roles
def snapshot(request: Request, camera_id: int, at_ms: Annotated[int | None, Query(ge=0)] = None) -> Response:
    """A PNG of the camera now (live), or of the recording at ``at_ms``; masked (U4)."""
    rt = runtime_of(request)
    caller = caller_of(request)
    details: dict[str, Any] = {"at_ms": at_ms, "source": "live" if at_ms is None else "recording"}
    purpose = purposes.require_view(rt, caller, camera_id, "video.snapshot", details)
    zones, lift = _egress_zones(rt, caller, camera_id)
    try:
        if at_ms is None:
            png = hub_of(request.app).snapshot_png(camera_id, zones)
            shown_ms = int(time.time() * 1000)
        else:
            png, shown_ms = snapshot_at_png(rt, camera_id, at_ms, zones)
    except TimeoutError as exc:
        rt.audit.record(
            "video.snapshot",
            caller.actor,
            Outcome.ERROR,
            object_type="camera",
            object_id=camera_id,
            clauses=(purpose.clause,),
            purpose_session_id=purpose.id,
            details=details,
        )
        raise NotFound(f"camera {camera_id} sent no picture: {exc}") from exc
    rt.audit.record(
        "video.snapshot",
        caller.actor,
        object_type="camera",
        object_id=camera_id,
        clauses=(purpose.clause, "U4"),
        purpose_session_id=purpose.id,
        details=details | {"picture_ms": shown_ms, "masked": zones is not None} | _lift_details(lift),
    )
    return Response(
        png,
        media_type="image/png",
        headers={
            "Content-Disposition": f'inline; filename="camera-{camera_id}-{shown_ms}.png"',
            "X-Pscs-Picture-Ms": str(shown_ms),
            "X-Pscs-Masked": "1" if zones is not None else "0",
        },
    )


# Playback ------------------------------------------------------------------------------------
@router.get("/api/v1/playback/{camera_id}/stream")
@video_roles
def playback_stream(
    request: Request,
    camera_id: int,
    start_ms: Annotated[int, Query(ge=0)],
    end_ms: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Recorded video from ``start_ms`` as fragmented MP4 (for Media Source Extensions).
    ``X-Pscs-Origin-Ms``: the wall-clock time of media time 0."""
    rt = runtime_of(request)
    caller = caller_of(request)
    details = {"start_ms": start_ms, "end_ms": end_ms}
    purpose = purposes.require_view(rt, caller, camera_id, "video.playback.start", details)
    zones, lift = _egress_zones(rt, caller, camera_id)
    stream = PlaybackStream(rt, camera_id, start_ms, zones=zones, end_ms=end_ms)
    chunks = iter(stream)
    first = next(chunks, None)
    if first is None:
        raise NotFound("nothing was recorded at or after that time")
    rt.audit.record(
        "video.playback.start",
        caller.actor,
        object_type="camera",
        object_id=camera_id,
        clauses=(purpose.clause, "U4"),
        purpose_session_id=purpose.id,
        details=details | {"from_ms": stream.first_ms, "masked": zones is not None} | _lift_details(lift),
    )
    body = _audited_playback(rt, caller, purpose, camera_id, stream, first, chunks)
    assert stream.muxer.info is not None
    return StreamingResponse(
        body,
        media_type="video/mp4",
        headers={
            "X-Pscs-Origin-Ms": str(stream.first_ms),
            "X-Pscs-Codec": stream.muxer.info.codec,
            "X-Pscs-Masked": "1" if zones is not None else "0",
        },
    )


class _PurposeWatch:
    """Asks again, every ``RECHECK_S`` while video flows, whether the purpose session still
    allows this camera (U1: it may have expired, been ended or lost its designation)."""

    def __init__(self, rt: Runtime, purpose: PurposeView, camera_id: int, roles: frozenset[str]) -> None:
        self.rt, self.purpose, self.camera_id, self.roles = rt, purpose, camera_id, roles
        self.checked = time.monotonic()

    async def refusal(self) -> Decision | None:
        """The refusal once the session no longer allows the video; None while it does."""
        if time.monotonic() - self.checked < RECHECK_S:
            return None
        self.checked = time.monotonic()
        decision = await run_in_threadpool(purposes.still_valid, self.rt, self.purpose.id, self.camera_id, self.roles)
        return None if decision.allowed else decision


async def _audit_stop(
    rt: Runtime, action: str, caller: Caller, purpose: PurposeView, camera_id: int, details: dict[str, Any]
) -> None:
    await run_in_threadpool(
        rt.audit.record,
        action,
        caller.actor,
        Outcome.ALLOWED,
        object_type="camera",
        object_id=camera_id,
        clauses=(purpose.clause,),
        purpose_session_id=purpose.id,
        details=details,
    )


async def _audited_playback(
    rt: Runtime,
    caller: Caller,
    purpose: PurposeView,
    camera_id: int,
    stream: PlaybackStream,
    first: bytes,
    chunks: Iterator[bytes],
) -> AsyncIterator[bytes]:
    sent = len(first)
    reason = "finished"
    watch = _PurposeWatch(rt, purpose, camera_id, caller.roles)
    try:
        yield first
        while True:
            chunk = await run_in_threadpool(next, chunks, None)
            if chunk is None:
                break
            if refusal := await watch.refusal():
                reason = refusal.reason
                break
            sent += len(chunk)
            yield chunk
    except BaseException:
        reason = "closed by the viewer"
        raise
    finally:
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):
                await run_in_threadpool(chunks.close)  # type: ignore[attr-defined]
            await _audit_stop(
                rt,
                "video.playback.stop",
                caller,
                purpose,
                camera_id,
                {"range_from_ms": stream.first_ms, "range_to_ms": stream.last_ms, "bytes": sent, "reason": reason},
            )


# Live ------------------------------------------------------------------------------------------
async def _refuse(websocket: WebSocket, message: str, clause: str | None, code: int = 4403) -> None:
    if websocket.application_state == WebSocketState.CONNECTING:
        await websocket.accept()
    await websocket.send_text(json.dumps({"error": message, "clause": clause}))
    await websocket.close(code=code, reason=message[:120])


@video_roles
async def live_socket(websocket: WebSocket) -> None:
    """``/api/v1/live/{camera_id}?stream=sub|main``: binary messages are fMP4 (an init
    segment, then fragments); text messages are JSON state (``state``, ``masked``,
    ``lift``, ``purpose``, ``error``)."""
    origin = websocket.headers.get("origin")
    if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
        await _refuse(websocket, "cross-site WebSocket refused", "CJIS-5.10")
        return
    scope = dict(websocket.scope)
    scope.update(type="http", method="GET")
    request = Request(scope)
    try:
        await enforce_access(request)
    except Redirect:
        await _refuse(websocket, "sign in first", "CJIS-5.5.2", 4401)
        return
    except PscsError as exc:
        await _refuse(websocket, exc.message, getattr(exc, "clause", None))
        return
    rt: Runtime = websocket.app.state.runtime
    caller = Caller.of(request.state.user, request.state.actor)
    try:
        camera_id = int(websocket.path_params["camera_id"])
    except ValueError:
        await _refuse(websocket, "camera id must be a number", None, 4422)
        return
    stream = websocket.query_params.get("stream", "sub")
    if stream not in ("main", "sub"):
        await _refuse(websocket, "stream is main or sub", None, 4422)
        return
    details = {"stream": stream}
    try:
        purpose = await run_in_threadpool(purposes.require_view, rt, caller, camera_id, "video.live.start", details)
    except PscsError as exc:
        await _refuse(websocket, exc.message, getattr(exc, "clause", None), 4404 if exc.status == 404 else 4403)
        return
    zones, lift = await run_in_threadpool(_egress_zones, rt, caller, camera_id)
    await websocket.accept()
    hub = hub_of(websocket.app)
    started = time.monotonic()
    sub = hub.subscribe(
        camera_id,
        stream,
        loop=asyncio.get_running_loop(),
        clear_until=lift.expires_at.timestamp() if lift and lift.expires_at else None,
    )
    await run_in_threadpool(
        rt.audit.record,
        "video.live.start",
        caller.actor,
        Outcome.ALLOWED,
        object_type="camera",
        object_id=camera_id,
        clauses=(purpose.clause, "U4"),
        purpose_session_id=purpose.id,
        details=details | {"masked": zones is not None} | _lift_details(lift),
    )
    reason = "closed by the viewer"
    sent = 0
    await websocket.send_text(
        json.dumps(
            {
                "purpose": purpose.as_dict(),
                "camera_id": camera_id,
                "stream": stream,
                "lift": lift.as_dict() if lift else None,
            }
        )
    )
    receiver = asyncio.ensure_future(websocket.receive())
    watch = _PurposeWatch(rt, purpose, camera_id, caller.roles)
    try:
        while True:
            getter = asyncio.ensure_future(sub.next())
            done, _ = await asyncio.wait({getter, receiver}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                message = receiver.result()
                if message.get("type") == "websocket.disconnect":
                    break
                receiver = asyncio.ensure_future(websocket.receive())
                continue
            if getter in done:
                item = getter.result()
                if item is None:
                    reason = "live stream stopped"
                    break
                if isinstance(item, bytes):
                    sent += len(item)
                    await websocket.send_bytes(item)
                else:
                    await websocket.send_text(item)
            else:
                getter.cancel()
            if refusal := await watch.refusal():
                reason = refusal.reason
                await websocket.send_text(
                    json.dumps({"state": "session-ended", "reason": refusal.reason, "clause": refusal.clause})
                )
                break
            if lift is not None and lift.expires_at is not None and utcnow() >= lift.expires_at:
                await websocket.send_text(json.dumps({"lift": None}))
                lift = None
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
    finally:
        receiver.cancel()
        hub.unsubscribe(sub)
        with anyio.CancelScope(shield=True):
            await _audit_stop(
                rt,
                "video.live.stop",
                caller,
                purpose,
                camera_id,
                details | {"seconds": round(time.monotonic() - started, 1), "bytes": sent, "reason": reason},
            )
            with contextlib.suppress(Exception):
                if websocket.application_state == WebSocketState.CONNECTED:
                    await websocket.close(code=1000)


router.routes.append(WebSocketRoute("/api/v1/live/{camera_id}", live_socket, name="live_socket"))


# Pages ----------------------------------------------------------------------------------------
def _need_purpose(request: Request) -> PurposeView:
    rt = runtime_of(request)
    current = purposes.current_session(rt, request.state.user.session_id)
    if current is None:
        raise Redirect(f"/console?next={request.url.path}")
    return current


def _camera_list(rt: Runtime, current: PurposeView) -> list[dict[str, Any]]:
    from pscs.cameras.service import list_cameras

    cams = [
        c
        for c in list_cameras(rt, include_disabled=False)
        if current.designated_cameras is None or c.id in current.designated_cameras
    ]
    return [
        {
            "id": c.id,
            "name": c.name,
            "kind": c.kind,
            "street_address": c.street_address,
            "has_sub": c.sub_url is not None,
        }
        for c in cams
    ]


@router.get("/console/live", include_in_schema=False)
@video_roles
def live_grid_page(request: Request) -> Response:
    current = _need_purpose(request)
    rt = runtime_of(request)
    return pages.render(request, "live.html", {"purpose": current.as_dict(), "cameras": _camera_list(rt, current)})


@router.get("/console/live/{camera_id}", include_in_schema=False)
@video_roles
def live_single_page(request: Request, camera_id: int) -> Response:
    current = _need_purpose(request)
    rt = runtime_of(request)
    camera = next((c for c in _camera_list(rt, current) if c["id"] == camera_id), None)
    if camera is None:
        raise NotFound(f"no camera {camera_id} in this purpose")
    return pages.render(request, "live_single.html", {"purpose": current.as_dict(), "camera": camera})


@router.get("/console/playback/{camera_id}", include_in_schema=False)
@video_roles
def playback_page(request: Request, camera_id: int) -> Response:
    current = _need_purpose(request)
    rt = runtime_of(request)
    camera = next((c for c in _camera_list(rt, current) if c["id"] == camera_id), None)
    if camera is None:
        raise NotFound(f"no camera {camera_id} in this purpose")
    return pages.render(request, "playback.html", {"purpose": current.as_dict(), "camera": camera})


@router.get("/console/playback", include_in_schema=False)
@video_roles
def playback_index(request: Request) -> Response:
    current = _need_purpose(request)
    cams = _camera_list(runtime_of(request), current)
    if not cams:
        return RedirectResponse("/console", status_code=303)
    return RedirectResponse(f"/console/playback/{cams[0]['id']}", status_code=303)


__all__ = ["hub_of", "router"]
