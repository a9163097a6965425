"""The egress service: every way video leaves goes through one gate that checks the purpose
(U1), masks (U4), audits (M1) and asks again while video flows.

* every egress kind refuses without a purpose, and audits the refusal (the table must name
  every kind, so a new way out cannot be added without its row);
* a mask lift ended early switches an open live view and an open playback stream to masked
  pictures within 3 s;
* an account disabled, a video role removed, a sign-in session ended or a password reset
  ends open live views and playback streams within 3 s, with the reason, audited.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.auth import service as auth
from pscs.auth.models import WebSession
from pscs.auth.principal import Principal
from pscs.clock import SetClock
from pscs.runtime import Runtime
from pscs.sim import CameraSpec, SimulatorServer
from pscs.video import egress
from pscs.video import zones as zone_service
from pscs.video.egress import EgressKind
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
    top_level_boxes,
    wait_for_audit,
)
from tests.web_helpers import client_for, csrf_of, make_user, sign_in

ADMIN = Actor.system("test-admin")
SWITCH_S = 3.0  # the bound: a change reaches an open view within 3 s


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer([CameraSpec("cam1")]) as server:
        yield server


def principal_of_user(rt: Runtime, username: str) -> Principal:
    """The principal the web edge builds for this user's newest sign-in session."""
    user = auth.find_user(rt, username)
    with rt.db.session() as s:
        session_id = s.scalar(
            select(WebSession.id).where(WebSession.user_id == user.id).order_by(WebSession.id.desc()).limit(1)
        )
    return Principal(Actor(username, user.id), user.role_names, session_id)


# Refused without a purpose, on every way out ---------------------------------------------------
def _live(client, cam: int) -> int:  # noqa: ANN001
    with client.websocket_connect(f"/api/v1/live/{cam}?stream=sub") as ws:
        message = json.loads(ws.receive_text())
        assert message["clause"] == "U1", message
    return 403


REFUSED_WITHOUT_PURPOSE: dict[EgressKind, Callable] = {
    EgressKind.LIVE: _live,
    EgressKind.PLAYBACK: lambda client, cam: (
        client.get(f"/api/v1/playback/{cam}/stream?start_ms={START_MS}").status_code
    ),
    EgressKind.SNAPSHOT: lambda client, cam: client.get(f"/api/v1/cameras/{cam}/snapshot").status_code,
    EgressKind.TIMELINE: lambda client, cam: client.get(f"/api/v1/playback/{cam}/timeline").status_code,
}


def test_U1_the_refusal_table_names_every_egress_kind():
    assert set(REFUSED_WITHOUT_PURPOSE) == set(EgressKind)
    assert set(egress.START_ACTION) == set(EgressKind)


@pytest.mark.parametrize("kind", list(EgressKind))
def test_U1_every_egress_kind_refuses_without_a_purpose_and_audits_the_refusal(sqlite_runtime, kind):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 1, camera_name="cam1")
    make_user(rt, "olga", ["operator"])
    client = sign_in(client_for(rt), "olga")
    assert REFUSED_WITHOUT_PURPOSE[kind](client, cam) == 403
    [event] = rt.audit.search(action_prefix=egress.START_ACTION[kind], limit=5)
    assert event.outcome == "denied" and event.object_id == str(cam) and event.actor == "olga"
    assert event.clauses == "U1" and "purpose" in json.loads(event.details)["reason"]


def test_U1_the_timeline_shows_holds_only_inside_a_purpose_and_audits_the_read(sqlite_runtime):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    client = operator_with_purpose(rt)
    response = client.get(f"/api/v1/playback/{cam}/timeline")
    assert response.status_code == 200 and "holds" in response.json()
    event = wait_for_audit(rt, "video.timeline")
    assert event.outcome == "allowed" and event.purpose_session_id is not None


# A lift ended early -----------------------------------------------------------------------------
def approved_lift(rt: Runtime, cam: int, requester: str) -> tuple[int, Principal]:
    """A lift for ``requester`` approved by a supervisor; returns it and the approver."""
    make_user(rt, "sven", ["supervisor"])
    sven = Principal(Actor("sven", auth.find_user(rt, "sven").id), frozenset({"supervisor"}))
    ivan = principal_of_user(rt, requester)
    lift = zone_service.request_lift(rt, ivan, cam, warrant_reference="W-2026-88", reason="robbery", minutes=60)
    zone_service.decide_lift(rt, sven, lift.id, approve=True)
    return lift.id, sven


def test_U4_a_lift_ended_early_masks_the_open_live_view_within_3_s(sqlite_runtime, sim):
    rt = sqlite_runtime
    cam = register(rt, sim, "cam1")
    approve_zones(rt, cam)
    ivan = operator_with_purpose(rt, "ivan", ("investigator",))
    lift_id, sven = approved_lift(rt, cam, "ivan")
    masked_data = bytearray()
    with ivan.websocket_connect(f"/api/v1/live/{cam}?stream=sub") as ws:
        hello = json.loads(ws.receive_text())
        assert hello["lift"]["id"] == lift_id
        states: list[dict] = []
        while {"masked": False} not in states or not ws.receive().get("bytes"):
            message = ws.receive()
            if message.get("text"):
                states.append(json.loads(message["text"]))
        zone_service.end_lift(rt, sven, lift_id)
        ended = time.monotonic()
        fragments = 0
        switched: float | None = None
        while fragments < 10:
            assert time.monotonic() - ended < 15, "no masked pictures after the lift ended"
            message = ws.receive()
            if message.get("text"):
                if json.loads(message["text"]).get("masked") is True:
                    switched = time.monotonic()
                continue
            if switched is not None:
                masked_data += message["bytes"]
                fragments += message["bytes"][4:8] == b"moof"
    assert switched is not None and switched - ended <= SWITCH_S
    frames = decode_all(bytes(masked_data))
    assert len(frames) >= 10
    for frame in frames:
        assert_masked_and_faithful(frame, ZONES.get(rt, cam))
    hub_of(ivan.app).close()


def last_init_onwards(data: bytes) -> bytes:
    """The stream from its last init segment (ftyp + moov) on: what a player plays after
    the switch, decodable on its own."""
    starts = [offset for offset, kind in top_level_boxes(data) if kind == b"ftyp"]
    return data[starts[-1] :]


def test_U4_a_lift_ended_early_masks_the_open_playback_stream_within_3_s(sqlite_runtime):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 40, camera_name="cam1", segment_seconds=10, width=320, height=180)
    approve_zones(rt, cam)
    operator_with_purpose(rt, "ivan", ("investigator",))
    lift_id, sven = approved_lift(rt, cam, "ivan")
    view = egress.open_playback(rt, principal_of_user(rt, "ivan"), cam, START_MS)
    assert not view.masked
    chunks = view.chunks()
    before = next(chunks)
    zone_service.end_lift(rt, sven, lift_id)
    ended = time.monotonic()
    after = bytearray()
    for chunk in chunks:  # a player reading ahead of what it shows, about 10 s of video a second
        after += chunk
        if view.masked:
            break
        assert time.monotonic() - ended <= SWITCH_S, "still unmasked after the lift ended"
        time.sleep(0.1)
    for _ in range(5):
        after += next(chunks)
    view.close()
    assert view.masked
    frames = decode_all(last_init_onwards(before + bytes(after)))
    assert len(frames) >= 15
    for frame in frames:
        assert_masked_and_faithful(frame, ZONES.get(rt, cam))
    stop = wait_for_audit(rt, "video.playback.stop")
    assert json.loads(stop.details)["reason"] == "closed by the viewer"


# The viewer's standing gone ---------------------------------------------------------------------
def _disable(rt: Runtime, username: str, principal: Principal) -> None:
    auth.update_user(rt, ADMIN, username, disabled=True)


def _remove_video_role(rt: Runtime, username: str, principal: Principal) -> None:
    auth.update_user(rt, ADMIN, username, roles=["auditor"])


def _sign_out(rt: Runtime, username: str, principal: Principal) -> None:
    assert principal.web_session_id is not None
    auth.end_session(rt, principal.actor, principal.web_session_id)


def _reset_password(rt: Runtime, username: str, principal: Principal) -> None:
    auth.reset_password(rt, ADMIN, username)


STANDING_GONE = {
    "account disabled": (_disable, "account disabled"),
    "video role removed": (_remove_video_role, "no video role"),
    "sign-in session ended": (_sign_out, "logout"),
    "password reset": (_reset_password, "password reset"),
}


@pytest.mark.parametrize("change", list(STANDING_GONE))
def test_U1_an_open_live_view_ends_within_3_s_when_its_standing_goes(sqlite_runtime, sim, change):
    rt = sqlite_runtime
    cam = register(rt, sim, "cam1")
    make_user(rt, "olga", ["operator", "auditor"])
    client = sign_in(client_for(rt), "olga")
    client.headers["x-csrf-token"] = csrf_of(client)
    assert client.post("/api/v1/purpose-sessions", json={"purpose": "emergency"}).status_code == 201
    act, expected = STANDING_GONE[change]
    with client.websocket_connect(f"/api/v1/live/{cam}?stream=sub") as ws:
        while not ws.receive().get("bytes"):
            pass  # the purpose, then the first video
        act(rt, "olga", principal_of_user(rt, "olga"))
        changed = time.monotonic()
        while True:
            assert time.monotonic() - changed < 15, "the live view went on"
            message = ws.receive()
            if message.get("text") and json.loads(message["text"]).get("state") == "session-ended":
                ended_message = json.loads(message["text"])
                break
    assert time.monotonic() - changed <= SWITCH_S + 0.5  # the message, then the socket's close
    assert expected in ended_message["reason"]
    stop = wait_for_audit(rt, "video.live.stop")
    assert json.loads(stop.details)["reason"] == ended_message["reason"]
    assert ended_message["clause"] in stop.clauses.split(",")
    shown = json.loads(stop.details)
    assert 0 < shown["range_to_ms"] - shown["range_from_ms"] < 30_000  # the wall-clock range watched
    hub_of(client.app).close()


@pytest.mark.parametrize("change", list(STANDING_GONE))
def test_U1_an_open_playback_stream_ends_within_3_s_when_its_standing_goes(sqlite_runtime, change):
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 40, camera_name="cam1", segment_seconds=10, width=320, height=180)
    make_user(rt, "olga", ["operator", "auditor"])
    client = sign_in(client_for(rt), "olga")
    client.headers["x-csrf-token"] = csrf_of(client)
    assert client.post("/api/v1/purpose-sessions", json={"purpose": "emergency"}).status_code == 201
    principal = principal_of_user(rt, "olga")
    view = egress.open_playback(rt, principal, cam, START_MS)
    chunks = view.chunks()
    next(chunks)
    act, expected = STANDING_GONE[change]
    act(rt, "olga", principal)
    changed = time.monotonic()
    for _ in chunks:
        assert time.monotonic() - changed <= SWITCH_S, "the playback stream went on"
        time.sleep(0.1)
    view.close()
    assert view.grant.end is not None and expected in view.grant.end.reason
    stop = wait_for_audit(rt, "video.playback.stop")
    assert json.loads(stop.details)["reason"] == view.grant.end.reason
    assert json.loads(stop.details)["range_to_ms"] < START_MS + 39_000  # it did not run to the end


def test_U1_a_player_whose_stream_stopped_is_told_why(sqlite_runtime):
    """A stream names its view (X-Pscs-View); once pscs ended it, the view says why — to its
    viewer only."""
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 40, camera_name="cam1", segment_seconds=10, width=320, height=180)
    client = operator_with_purpose(rt)
    whole = client.get(f"/api/v1/playback/{cam}/stream?start_ms={START_MS + 38_000}")
    assert client.get(f"/api/v1/views/{whole.headers['x-pscs-view']}").json()["state"] == "finished"

    view = egress.open_playback(rt, principal_of_user(rt, "olga"), cam, START_MS)
    chunks = view.chunks()
    next(chunks)
    assert client.get(f"/api/v1/views/{view.grant.id}").json()["state"] == "open"
    assert client.post("/api/v1/purpose-sessions/current/end").status_code == 200
    for _ in chunks:
        time.sleep(0.1)
    view.close()
    state = client.get(f"/api/v1/views/{view.grant.id}").json()
    assert state["state"] == "ended" and state["clause"] == "U1" and "purpose" in state["reason"]
    make_user(rt, "otto", ["operator"])
    other = sign_in(client_for(rt), "otto")
    assert other.get(f"/api/v1/views/{view.grant.id}").status_code == 404  # a view is its viewer's own


def test_U1_a_view_follows_the_runtimes_clock_past_the_idle_lock(sqlite_runtime):
    """Policy time is the runtime's clock: set past the sign-in session's idle limit, the
    open playback ends (CJIS 5.5.5) and the session is over, without the test waiting."""
    rt = sqlite_runtime
    cam = register(rt, None, "cam1")
    record_clock_segments(rt, cam, START_MS, 20, camera_name="cam1", segment_seconds=10, width=320, height=180)
    client = operator_with_purpose(rt)
    rt.clock = SetClock(rt.clock.now())
    view = egress.open_playback(rt, principal_of_user(rt, "olga"), cam, START_MS)
    chunks = view.chunks()
    next(chunks)
    rt.clock.advance(minutes=rt.profile.security.idle_lock_minutes, seconds=1)
    view.grant._checked -= egress.RECHECK_S  # the next fragment is the next re-check
    assert next(chunks, None) is None
    view.close()
    assert view.grant.end is not None and view.grant.end.clause == "CJIS-5.5.5"
    assert "inactivity" in view.grant.end.reason
    assert client.get(f"/api/v1/playback/{cam}/timeline").status_code == 401
