"""Video to the browser — live view (WebSocket), playback, snapshots, the playback
timeline — translated to and from the egress service (:mod:`pscs.video.egress`), which
owns every policy step: the purpose check (U1, U2), the masks (U4), the audit events and
the re-checks while video flows (M1).

The live WebSocket is a plain Starlette route (FastAPI's app-wide dependencies do not
run for WebSockets): it declares its access rule like every route and enforces it by
running the same ``enforce_access`` on the handshake, then checks the Origin header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from pscs.cameras.models import Camera
from pscs.errors import NotFound, PscsError
from pscs.purposes import service as purposes
from pscs.purposes.service import PurposeView
from pscs.runtime import Runtime
from pscs.video import egress
from pscs.video.live import LiveHub
from pscs.web import pages
from pscs.web.access import Redirect, enforce_access, principal_of, runtime_of
from pscs.web.defs.common import MAX_INT, EpochMs, Id
from pscs.web.openapi import answers_in
from pscs.web.routes.purposes import video_roles

router = APIRouter(tags=["video"])
_hub_lock = threading.Lock()


def hub_of(app: Any) -> LiveHub:
    """The process's live hub (``app.state.live_hub``), created on first use."""
    hub = getattr(app.state, "live_hub", None)
    if hub is None:
        with _hub_lock:
            hub = getattr(app.state, "live_hub", None)
            if hub is None:
                hub = app.state.live_hub = LiveHub(app.state.runtime)
    return hub


# Console data ---------------------------------------------------------------------------------
@router.get("/api/v1/console/cameras")
@video_roles
def console_cameras(request: Request) -> dict[str, Any]:
    """Cameras for the console: where, whether recording, whether masked for this user."""
    from pscs.recording.models import CameraHealth

    rt = runtime_of(request)
    principal = principal_of(request)
    with rt.db.session() as s:
        cams = s.scalars(select(Camera).where(Camera.enabled.is_(True)).order_by(Camera.name)).all()
        health = {h.camera_id: h.state for h in s.scalars(select(CameraHealth))}
        rows = [(c.id, c.name, c.kind, c.street_address, c.sub_url is not None) for c in cams]
    out = []
    for cid, name, kind, address, has_sub in rows:
        masking = egress.masking_for(rt, principal, cid)
        out.append(
            {
                "id": cid,
                "name": name,
                "kind": kind,
                "street_address": address,
                "has_sub": has_sub,
                "recorder_state": health.get(cid),
                "masked": masking.mask is not None,
                "zone_version": masking.zones.version if masking.zones else None,
                "mask_lift": masking.lift.as_dict() if masking.lift else None,
            }
        )
    return {"cameras": out}


@router.get("/api/v1/views/{view_id}")
@video_roles
def view_state(request: Request, view_id: str) -> dict[str, Any]:
    """One of the caller's own live or playback views: open, finished, or ended by pscs
    (with the reason and clause) — what a player asks when its stream stopped."""
    return egress.VIEWS.lookup(view_id, principal_of(request).user_id)


@router.get("/api/v1/playback/{camera_id}/timeline")
@video_roles
def playback_timeline(
    request: Request,
    camera_id: Id,
    start_ms: EpochMs | None = None,
    end_ms: EpochMs | None = None,
) -> dict[str, Any]:
    """Recorded ranges, gaps and holds (times are UTC epoch milliseconds); default: the last
    24 hours.  Inside a purpose session only (holds name case numbers)."""
    end = end_ms if end_ms is not None else runtime_of(request).clock.ms()
    start = start_ms if start_ms is not None else end - 24 * 3600 * 1000
    return egress.timeline(runtime_of(request), principal_of(request), camera_id, start, max(start + 1, end))


# Snapshots -----------------------------------------------------------------------------------
@router.get("/api/v1/cameras/{camera_id}/snapshot", responses=answers_in("image/png"))
@video_roles
def snapshot(request: Request, camera_id: Id, at_ms: EpochMs | None = None) -> Response:
    """A PNG of the camera now (live), or of the recording at ``at_ms``; masked (U4)."""
    shot = egress.snapshot(runtime_of(request), principal_of(request), camera_id, at_ms, hub_of(request.app))
    return Response(
        shot.png,
        media_type="image/png",
        headers={
            "Content-Disposition": f'inline; filename="camera-{camera_id}-{shot.picture_ms}.png"',
            "X-Pscs-Picture-Ms": str(shot.picture_ms),
            "X-Pscs-Masked": "1" if shot.masked else "0",
        },
    )


# Playback ------------------------------------------------------------------------------------
@router.get("/api/v1/playback/{camera_id}/stream", responses=answers_in("video/mp4"))
@video_roles
def playback_stream(
    request: Request,
    camera_id: Id,
    start_ms: EpochMs,
    end_ms: EpochMs | None = None,
) -> Response:
    """Recorded video from ``start_ms`` as fragmented MP4 (for Media Source Extensions).
    ``X-Pscs-Origin-Ms``: the wall-clock time of media time 0; ``X-Pscs-View``: the view,
    whose state (``/api/v1/views/{id}``) says why a stream that stopped early ended."""
    view = egress.open_playback(runtime_of(request), principal_of(request), camera_id, start_ms, end_ms)
    info = view.stream.muxer.info
    assert info is not None
    return StreamingResponse(
        _closing(view),
        media_type="video/mp4",
        headers={
            "X-Pscs-Origin-Ms": str(view.stream.first_ms),
            "X-Pscs-Codec": info.codec,
            "X-Pscs-Masked": "1" if view.masked else "0",
            "X-Pscs-View": view.grant.id,
        },
    )


async def _closing(view: egress.PlaybackView) -> AsyncIterator[bytes]:
    """The view's chunks, made in a worker thread; its end is audited however it comes."""
    try:
        async for chunk in iterate_in_threadpool(view.chunks()):
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(view.close)


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
    try:
        camera_id = int(websocket.path_params["camera_id"])
    except ValueError:
        camera_id = 0
    if not 1 <= camera_id <= MAX_INT:
        await _refuse(websocket, "camera id must be a positive number below 2^63", None, 4422)
        return
    stream = websocket.query_params.get("stream", "sub")
    if stream not in ("main", "sub"):
        await _refuse(websocket, "stream is main or sub", None, 4422)
        return
    try:
        view = await run_in_threadpool(
            egress.open_live,
            websocket.app.state.runtime,
            principal_of(request),
            camera_id,
            stream,
            hub_of(websocket.app),
            loop=asyncio.get_running_loop(),
        )
    except PscsError as exc:
        await _refuse(websocket, exc.message, getattr(exc, "clause", None), 4404 if exc.status == 404 else 4403)
        return
    reason = "closed by the viewer"
    try:
        await websocket.accept()
        await websocket.send_text(json.dumps(view.hello()))
        reason = await _pump(websocket, view)
    except (WebSocketDisconnect, RuntimeError, ConnectionError):
        pass
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(view.close, reason)
            with contextlib.suppress(Exception):
                if websocket.application_state == WebSocketState.CONNECTED:
                    await websocket.close(code=1000)


async def _pump(websocket: WebSocket, view: egress.LiveView) -> str:
    """Send the viewer's pictures until they leave or the view ends; returns why it ended."""
    receiver = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            getter = asyncio.ensure_future(view.subscription.next())
            done, _ = await asyncio.wait({getter, receiver}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                getter.cancel()
                if receiver.result().get("type") == "websocket.disconnect":
                    return "closed by the viewer"
                receiver = asyncio.ensure_future(websocket.receive())
                continue
            if getter in done:
                item = getter.result()
                if item is None:
                    return "live stream stopped"
                if isinstance(item, bytes):
                    view.grant.bytes_sent += len(item)
                    await websocket.send_bytes(item)
                else:
                    await websocket.send_text(item)
            else:
                getter.cancel()
            if view.grant.due():
                refusal, messages = await run_in_threadpool(view.recheck)
                for message in messages:
                    await websocket.send_text(json.dumps(message))
                if refusal is not None:
                    return refusal.reason
    finally:
        receiver.cancel()


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
def live_single_page(request: Request, camera_id: Id) -> Response:
    current = _need_purpose(request)
    rt = runtime_of(request)
    camera = next((c for c in _camera_list(rt, current) if c["id"] == camera_id), None)
    if camera is None:
        raise NotFound(f"no camera {camera_id} in this purpose")
    return pages.render(request, "live_single.html", {"purpose": current.as_dict(), "camera": camera})


@router.get("/console/playback/{camera_id}", include_in_schema=False)
@video_roles
def playback_page(request: Request, camera_id: Id) -> Response:
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
