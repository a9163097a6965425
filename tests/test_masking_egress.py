"""U4 through every egress path — live (WebSocket), playback, snapshot (live and recorded):
the zones are the mask colour in every decoded picture, the rest is still the camera's
known picture (the simulator's clock scene), and a camera without zones is passed through
without re-encoding."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import av
import numpy as np
import pytest

from pscs.sim import CameraSpec, SimulatorServer
from pscs.sim.scenes import caption_band, render_grid
from pscs.video import egress
from pscs.video.masking import zone_mask
from pscs.video.zones import ZONES
from pscs.web.routes.video import hub_of
from tests.footage import record_clock_segments
from tests.video_helpers import (
    START_MS,
    approve_zones,
    assert_masked_and_faithful,
    decode_all,
    operator_with_purpose,
    register,
    wait_for_audit,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer([CameraSpec("cam1"), CameraSpec("cam2")]) as server:
        yield server


def live_bytes(client, camera_id: int, stream: str, fragments: int) -> tuple[bytes, list[dict]]:
    data = bytearray()
    texts: list[dict] = []
    got = 0
    with client.websocket_connect(f"/api/v1/live/{camera_id}?stream={stream}") as ws:
        while got < fragments:
            message = ws.receive()
            if message.get("text"):
                import json

                texts.append(json.loads(message["text"]))
                assert "error" not in texts[-1], texts[-1]
                continue
            chunk = message["bytes"]
            data += chunk
            got += chunk[4:8] == b"moof"
    return bytes(data), texts


# Live ------------------------------------------------------------------------------------------
def test_U4_live_view_is_masked_in_every_picture(sqlite_runtime, sim):
    rt = sqlite_runtime
    cam = register(rt, sim, "cam1")
    approve_zones(rt, cam)
    client = operator_with_purpose(rt)
    data, texts = live_bytes(client, cam, "main", 20)
    assert {"masked": True} in texts
    frames = decode_all(data)
    assert len(frames) >= 20
    zones = ZONES.get(rt, cam)
    for frame in frames:
        assert_masked_and_faithful(frame, zones)
    start = wait_for_audit(rt, "video.live.start")
    assert start.object_id == str(cam) and start.purpose_session_id and '"masked":true' in start.details
    stop = wait_for_audit(rt, "video.live.stop")
    assert stop.purpose_session_id == start.purpose_session_id
    hub_of(client.app).close()


def test_U1_live_view_stops_when_its_purpose_session_ends(sqlite_runtime, sim, monkeypatch):
    """The purpose is asked again while video flows: ending it ends the view, with the reason."""
    monkeypatch.setattr(egress, "RECHECK_S", 0.2)
    rt = sqlite_runtime
    cam = register(rt, sim, "cam2")
    client = operator_with_purpose(rt)
    texts: list[dict] = []
    with client.websocket_connect(f"/api/v1/live/{cam}?stream=sub") as ws:
        while not ws.receive().get("bytes"):
            pass  # the purpose, then the first video
        assert client.post("/api/v1/purpose-sessions/current/end").status_code == 200
        deadline = time.monotonic() + 10
        while not any(t.get("state") == "session-ended" for t in texts):
            assert time.monotonic() < deadline, "the live view went on after its purpose ended"
            message = ws.receive()
            if message.get("text"):
                texts.append(json.loads(message["text"]))
    [ended] = [t for t in texts if t.get("state") == "session-ended"]
    assert ended["clause"] == "U1"
    stop = wait_for_audit(rt, "video.live.stop")
    assert json.loads(stop.details)["reason"] == ended["reason"]
    hub_of(client.app).close()


def test_U4_live_without_zones_is_passed_through_one_upstream_for_all_viewers(sqlite_runtime, sim):
    rt = sqlite_runtime
    cam = register(rt, sim, "cam2")
    first = operator_with_purpose(rt, "olaf")
    second = operator_with_purpose(rt, "orla")
    second.app = first.app  # both viewers on one server: one hub
    hub = hub_of(first.app)
    data, texts = live_bytes(first, cam, "sub", 5)
    assert {"masked": False} in texts
    with second.websocket_connect(f"/api/v1/live/{cam}?stream=sub"):
        upstream = hub.upstream(cam, "sub")
        assert upstream is not None and upstream.transcoder is None  # nothing re-encoded
        assert hub.connections() == 1
    frames = decode_all(data)
    assert frames and (frames[0].width, frames[0].height) == (320, 180)
    hub.close()


# Playback ----------------------------------------------------------------------------------------
def test_U4_playback_is_masked_across_segments_and_gaps_and_audited_with_the_range(sqlite_runtime):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 6, camera_name="cam1", gap_after_ms=(4000, 3000))
    approve_zones(rt, cam)  # approved after recording: the zones in force when shown apply
    client = operator_with_purpose(rt)
    response = client.get(f"/api/v1/playback/{cam}/stream?start_ms={START_MS + 1500}")
    assert response.status_code == 200 and response.headers["x-pscs-masked"] == "1"
    origin = int(response.headers["x-pscs-origin-ms"])
    assert origin == START_MS + 1000  # from the keyframe before the requested instant
    frames = decode_all(response.content)
    assert len(frames) == 75  # 1.0 s .. 6.0 s of recording at 15 fps, across 3 segments
    zones = ZONES.get(rt, cam)
    for frame in frames:
        assert_masked_and_faithful(frame, zones)
    times = [round(f.time, 3) for f in frames]
    jumps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(jumps) == pytest.approx(3.067, abs=0.01)  # the gap is a gap in media time
    assert sorted(jumps)[-2] < 0.1  # and segment boundaries are seamless
    stop = wait_for_audit(rt, "video.playback.stop")
    assert f'"range_from_ms":{START_MS + 1000}' in stop.details and '"range_to_ms":' in stop.details
    assert wait_for_audit(rt, "video.playback.start").purpose_session_id == stop.purpose_session_id


def test_U4_playback_without_zones_is_not_re_encoded(sqlite_runtime):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 2, camera_name="cam1")
    client = operator_with_purpose(rt)
    response = client.get(f"/api/v1/playback/{cam}/stream?start_ms={START_MS}")
    assert response.headers["x-pscs-masked"] == "0"
    played = [f.to_ndarray(format="yuv420p") for f in decode_all(response.content)]
    from pscs.storage.models import Segment

    with rt.db.session() as s:
        path = rt.settings.recordings_path / s.query(Segment).one().path
    with av.open(str(path)) as container:
        original = [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]
    assert len(played) == len(original) == 30
    assert all(np.array_equal(a, b) for a, b in zip(played, original, strict=True))  # bit-exact


# Snapshots ----------------------------------------------------------------------------------------
def png_rgb(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def assert_snapshot_masked(rgb: np.ndarray, zones) -> None:
    h, w = rgb.shape[:2]
    mask = zone_mask(zones, w, h)
    assert (rgb[mask.luma] == 0).all()  # lossless: exactly the mask colour
    grid = render_grid(w, h).astype(int)
    away = ~mask.luma
    away[: caption_band(w, h).y1 + 4] = False
    assert np.abs(rgb.astype(int) - grid)[away].mean() < 8


def test_U4_snapshots_live_and_recorded_are_masked(sqlite_runtime, sim):
    rt = sqlite_runtime
    cam = register(rt, sim, "cam1")
    record_clock_segments(rt, cam, START_MS, 2, camera_name="cam1")
    approve_zones(rt, cam)
    client = operator_with_purpose(rt)
    zones = ZONES.get(rt, cam)
    live = client.get(f"/api/v1/cameras/{cam}/snapshot")
    assert live.status_code == 200 and live.headers["x-pscs-masked"] == "1", live.text
    assert_snapshot_masked(png_rgb(live.content), zones)
    recorded = client.get(f"/api/v1/cameras/{cam}/snapshot?at_ms={START_MS + 1234}")
    assert recorded.status_code == 200
    assert abs(int(recorded.headers["x-pscs-picture-ms"]) - (START_MS + 1234)) <= 67
    assert_snapshot_masked(png_rgb(recorded.content), zones)
    events = rt.audit.search(action_prefix="video.snapshot", limit=5)
    assert len(events) == 2 and all('"masked":true' in e.details and e.purpose_session_id for e in events)
    hub_of(client.app).close()


# Lifting a mask ----------------------------------------------------------------------------------
def test_U4_a_lifted_mask_needs_a_warrant_a_second_person_and_shows_only_to_the_requester(sqlite_runtime):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 1, camera_name="cam1")
    approve_zones(rt, cam)
    ivan = operator_with_purpose(rt, "ivan", ("investigator",))
    sup = operator_with_purpose(rt, "sven", ("supervisor",))
    other = operator_with_purpose(rt, "olli")
    url = f"/api/v1/cameras/{cam}/snapshot?at_ms={START_MS + 500}"

    no_warrant = ivan.post(
        f"/api/v1/cameras/{cam}/mask-lifts", json={"warrant_reference": " ", "reason": "x", "minutes": 10}
    )
    assert no_warrant.status_code == 403 and "warrant" in no_warrant.json()["error"]["message"]
    lift = ivan.post(
        f"/api/v1/cameras/{cam}/mask-lifts",
        json={"warrant_reference": "W-2025-117", "reason": "burglary suspect", "minutes": 10},
    )
    assert lift.status_code == 201
    lift_id = lift.json()["mask_lift"]["id"]
    assert ivan.get(url).headers["x-pscs-masked"] == "1"  # requested is not approved
    assert other.post(f"/api/v1/mask-lifts/{lift_id}/approve").status_code == 403  # operators do not approve
    assert sup.post(f"/api/v1/mask-lifts/{lift_id}/approve").status_code == 200

    lifted = ivan.get(url)
    assert lifted.headers["x-pscs-masked"] == "0"
    h, w = png_rgb(lifted.content).shape[:2]
    assert not (png_rgb(lifted.content)[zone_mask(ZONES.get(rt, cam), w, h).luma] == 0).all()
    assert other.get(url).headers["x-pscs-masked"] == "1"  # a lift is personal
    event = rt.audit.search(action_prefix="video.snapshot", actor="ivan", limit=1)[0]
    assert '"lift_approved_by":"sven"' in event.details and '"lift_requested_by":"ivan"' in event.details
    approved = rt.audit.search(action_prefix="mask_lift.approve", limit=1)[0]
    assert '"requested_by":"ivan"' in approved.details and '"approved_by":"sven"' in approved.details

    assert ivan.post(f"/api/v1/mask-lifts/{lift_id}/end").status_code == 200
    assert ivan.get(url).headers["x-pscs-masked"] == "1"


def test_U4_the_requester_cannot_approve_their_own_lift(sqlite_runtime):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    sup = operator_with_purpose(rt, "sonia", ("supervisor",))
    lift = sup.post(
        f"/api/v1/cameras/{cam}/mask-lifts", json={"warrant_reference": "W-1", "reason": "r", "minutes": 5}
    ).json()["mask_lift"]
    response = sup.post(f"/api/v1/mask-lifts/{lift['id']}/approve")
    assert response.status_code == 403 and "second person" in response.json()["error"]["message"]
    too_long = sup.post(
        f"/api/v1/cameras/{cam}/mask-lifts",
        json={"warrant_reference": "W-1", "reason": "r", "minutes": rt.profile.mask_lift_max_minutes + 1},
    )
    assert too_long.status_code in (403, 422)
