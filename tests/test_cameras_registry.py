"""The camera registry (P0): validation, attestation, credentials kept secret, audit."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from pscs.audit.events import Actor
from pscs.cameras.models import Camera
from pscs.cameras.service import (
    CameraNotFound,
    DuplicateCameraName,
    InvalidCamera,
    PublicAreaAttestationRequired,
    add_camera,
    disable_camera,
    enable_camera,
    get_camera,
    list_cameras,
    recording_sources,
    update_camera,
)
from pscs.cameras.sources import redact_url
from pscs.errors import InvalidInput, PolicyDenied
from pscs.runtime import Runtime
from pscs.video.live import db_resolver

ADMIN = Actor(username="admin", user_id=1, source_ip="127.0.0.1")
GOOD = dict(
    name="Broadway & Main",
    street_address="100 Broadway, Norwich, CT 06360",
    latitude=41.5243,
    longitude=-72.0759,
    main_url="rtsp://viewer:pa%3Ass@10.1.2.3:554/Streaming/101",
    sub_url="rtsp://viewer:pa%3Ass@10.1.2.3:554/Streaming/102",
    kind="ptz",
    onvif_url="http://10.1.2.3/onvif/device_service",
    onvif_username="onvif-admin",
    onvif_password="OnvifSecret9",
    public_area_attested=True,
)


def cameras_in_db(rt: Runtime) -> int:
    with rt.db.session() as s:
        return len(s.scalars(select(Camera.id)).all())


def all_audit_text(rt: Runtime) -> str:
    return "\n".join(e.details for e in rt.audit.search(limit=1000))


def test_P0_add_camera_records_location_attestation_and_audits(runtime: Runtime) -> None:
    view = add_camera(runtime, ADMIN, **GOOD)
    assert (view.name, view.kind, view.latitude, view.longitude) == (
        "Broadway & Main",
        "ptz",
        41.5243,
        -72.0759,
    )
    assert view.public_area_attested and view.attested_by == "admin" and view.attested_at is not None
    assert view.enabled
    # Shown redacted; stored without credentials; the password is encrypted at rest.
    assert view.main_url == "rtsp://viewer:***@10.1.2.3:554/Streaming/101"
    assert view.has_stream_credentials and view.has_onvif_password
    with runtime.db.session() as s:
        row = s.scalar(select(Camera))
    assert row.main_url == "rtsp://10.1.2.3:554/Streaming/101" and row.stream_username == "viewer"
    assert "pa:ss" not in row.stream_password_enc and runtime.secrets.decrypt(row.stream_password_enc) == "pa:ss"
    assert runtime.secrets.decrypt(row.onvif_password_enc) == "OnvifSecret9"
    [event] = runtime.audit.search(action_prefix="camera.create")
    assert event.clauses == "P0" and event.actor == "admin" and event.object_id == str(view.id)
    details = json.loads(event.details)
    assert details["street_address"] == GOOD["street_address"] and details["public_area_attested"] is True
    # The recorder gets the credentials back, and only it.
    [source] = recording_sources(runtime.db, runtime.secrets)
    assert source.main_url == "rtsp://viewer:pa%3Ass@10.1.2.3:554/Streaming/101"
    assert "pa%3Ass" not in repr(source) and "pa:ss" not in repr(source)
    assert "pa:ss" not in all_audit_text(runtime) and "OnvifSecret9" not in all_audit_text(runtime)
    assert "pa%3Ass" not in all_audit_text(runtime)


def test_P0_camera_without_public_area_attestation_is_refused_and_audited(runtime: Runtime) -> None:
    with pytest.raises(PublicAreaAttestationRequired) as refused:
        add_camera(runtime, ADMIN, **{**GOOD, "public_area_attested": False})
    assert refused.value.clause == "P0" and isinstance(refused.value, ValueError)
    assert isinstance(refused.value, PolicyDenied)
    assert cameras_in_db(runtime) == 0
    [event] = runtime.audit.search(action_prefix="camera.create")
    assert event.outcome == "denied" and event.clauses == "P0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "  "}, "name is required"),
        ({"name": "x" * 101}, "name is longer"),
        ({"name": "bad\x00name"}, "control characters"),
        ({"street_address": ""}, "street address is required"),
        ({"latitude": 91}, "latitude must be between"),
        ({"longitude": "east"}, "longitude must be a number"),
        ({"longitude": float("nan")}, "longitude must be between"),
        ({"kind": "dome"}, "kind must be one of"),
        ({"main_url": "http://10.1.2.3/stream"}, "must start with rtsp://"),
        ({"main_url": "rtsp:///nohost"}, "has no host"),
        ({"main_url": "rtsp://u:secret@10.1.2.3:99999/x"}, "not a valid URL"),
        ({"main_url": "rtsp://10.1.2.3/a b"}, "must not contain spaces"),
        ({"sub_url": "rtsp://other:creds@10.1.2.3/sub"}, "different credentials"),
        ({"onvif_url": "ftp://10.1.2.3/"}, "must start with http://"),
        ({"onvif_username": None, "onvif_url": "http://10.1.2.3/onvif"}, "without an ONVIF username"),
    ],
)
def test_invalid_camera_input_is_refused_and_changes_nothing(
    sqlite_runtime: Runtime, change: dict, message: str
) -> None:
    with pytest.raises(InvalidCamera, match=message) as refused:
        add_camera(sqlite_runtime, ADMIN, **{**GOOD, **change})
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, InvalidInput)
    assert "secret" not in str(refused.value)
    assert cameras_in_db(sqlite_runtime) == 0
    assert not sqlite_runtime.audit.search(action_prefix="camera.")


def test_camera_names_are_unique_ignoring_case(sqlite_runtime: Runtime) -> None:
    add_camera(sqlite_runtime, ADMIN, **GOOD)
    with pytest.raises(DuplicateCameraName):
        add_camera(sqlite_runtime, ADMIN, **{**GOOD, "name": "BROADWAY & MAIN"})
    assert cameras_in_db(sqlite_runtime) == 1


def test_P0_update_audits_changes_and_moving_needs_fresh_attestation(runtime: Runtime) -> None:
    view = add_camera(runtime, ADMIN, **GOOD)
    other = Actor(username="supervisor1", user_id=2)
    renamed = update_camera(runtime, other, view.id, name="Broadway North", onvif_password="NewOnvif77")
    assert renamed.name == "Broadway North" and renamed.attested_by == "admin"
    [event] = runtime.audit.search(action_prefix="camera.update")
    details = json.loads(event.details)
    assert details["changed"]["name"] == {"before": "Broadway & Main", "after": "Broadway North"}
    assert details["secrets_changed"] == ["ONVIF password"] and "NewOnvif77" not in event.details

    with pytest.raises(PublicAreaAttestationRequired):
        update_camera(runtime, other, view.id, street_address="5 Private Lane", latitude=41.6)
    assert get_camera(runtime, view.id).street_address == GOOD["street_address"]  # unchanged
    assert runtime.audit.search(action_prefix="camera.update", outcome="denied")

    moved = update_camera(runtime, other, "broadway north", street_address="5 Water St", public_area_attested=True)
    assert moved.street_address == "5 Water St" and moved.attested_by == "supervisor1"

    with pytest.raises(InvalidCamera, match="cannot change"):
        update_camera(runtime, other, view.id, enabled=False)
    with pytest.raises(InvalidCamera, match="latitude"):
        update_camera(runtime, other, view.id, latitude=-100, public_area_attested=True)
    assert get_camera(runtime, view.id).latitude == GOOD["latitude"]


def test_update_keeps_stream_credentials_when_only_the_sub_stream_changes(sqlite_runtime: Runtime) -> None:
    view = add_camera(sqlite_runtime, ADMIN, **GOOD)
    update_camera(sqlite_runtime, ADMIN, view.id, sub_url="rtsp://10.1.2.3:554/Streaming/103")
    [source] = recording_sources(sqlite_runtime.db, sqlite_runtime.secrets)
    assert source.main_url == "rtsp://viewer:pa%3Ass@10.1.2.3:554/Streaming/101"
    assert get_camera(sqlite_runtime, view.id).sub_url == "rtsp://viewer:***@10.1.2.3:554/Streaming/103"


def test_disable_stops_recording_and_is_audited(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    view = add_camera(rt, ADMIN, **GOOD)
    second = add_camera(rt, ADMIN, **{**GOOD, "name": "Water St", "main_url": "rtsp://10.1.2.4/main", "sub_url": None})
    disabled = disable_camera(rt, ADMIN, view.id, reason="relocated")
    assert not disabled.enabled
    assert [s.camera_id for s in recording_sources(rt.db, rt.secrets)] == [second.id]
    assert [c.name for c in list_cameras(rt)] == ["Broadway & Main", "Water St"]
    assert [c.name for c in list_cameras(rt, include_disabled=False)] == ["Water St"]
    [event] = rt.audit.search(action_prefix="camera.disable")
    assert event.clauses == "P0" and '"reason":"relocated"' in event.details
    assert enable_camera(rt, ADMIN, view.id).enabled
    with pytest.raises(CameraNotFound):
        disable_camera(rt, ADMIN, 9999)


def test_redact_url() -> None:
    assert redact_url("rtsp://u:p@h:554/x?y=1") == "rtsp://u:***@h:554/x?y=1"
    assert redact_url("rtsp://h/x") == "rtsp://h/x"
    assert redact_url("rtsp://u:p@[::1]:554/x") == "rtsp://u:***@[::1]:554/x"
    assert redact_url("rtsp://u:p@h:bad/x") == "<unparsable URL>"


QUERY_LOGIN = "rtsp://10.1.2.3:554/live?user=viewer&password=s3cr%40t&channel=1"
QUERY_SUB = "rtsp://10.1.2.3:554/live?user=viewer&PWD=s3cr%40t&channel=2"


def test_credentials_in_the_query_string_are_stored_encrypted_and_never_shown(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    onvif = "http://10.1.2.3/onvif/device_service?token=0nv1f-t0ken"
    view = add_camera(rt, ADMIN, **{**GOOD, "main_url": QUERY_LOGIN, "sub_url": QUERY_SUB, "onvif_url": onvif})
    assert view.main_url == "rtsp://10.1.2.3:554/live?user=viewer&password=***&channel=1"
    assert view.sub_url == "rtsp://10.1.2.3:554/live?user=viewer&PWD=***&channel=2"
    assert view.onvif_url == "http://10.1.2.3/onvif/device_service?token=***"
    assert view.has_stream_credentials
    with rt.db.session() as s:
        row = s.scalar(select(Camera))
    stored = " ".join((row.main_url, row.sub_url, row.onvif_url))
    assert "s3cr" not in stored and "0nv1f" not in stored  # encrypted at rest
    # The recorder and the live view get the login back, and only they.
    [source] = recording_sources(rt.db, rt.secrets)
    assert source.main_url == QUERY_LOGIN and "s3cr" not in repr(source)
    assert db_resolver(rt)(view.id, "sub").url == QUERY_SUB
    # Changing the sub stream keeps the main stream's login; a new password is no new stream.
    update_camera(rt, ADMIN, view.id, sub_url="rtsp://10.1.2.3:554/live?user=viewer&pwd=n3w&channel=3")
    update_camera(rt, ADMIN, view.id, main_url=QUERY_LOGIN.replace("s3cr%40t", "n3w"))  # no fresh attestation
    [source] = recording_sources(rt.db, rt.secrets)
    assert source.main_url == QUERY_LOGIN.replace("s3cr%40t", "n3w")
    assert db_resolver(rt)(view.id, "sub").url == "rtsp://10.1.2.3:554/live?user=viewer&pwd=n3w&channel=3"
    shown = json.dumps([c.as_dict() for c in list_cameras(rt)])
    assert "s3cr" not in shown and "n3w" not in shown and "0nv1f" not in shown
    audit = all_audit_text(rt)
    assert "s3cr" not in audit and "n3w" not in audit and "0nv1f" not in audit


def test_a_query_login_too_long_to_store_encrypted_is_refused(sqlite_runtime: Runtime) -> None:
    long_url = "rtsp://10.1.2.3/live?" + "&".join(f"token={i:040d}" for i in range(5))
    with pytest.raises(InvalidCamera, match="once its credentials are encrypted"):
        add_camera(sqlite_runtime, ADMIN, **{**GOOD, "main_url": long_url, "sub_url": None})
    assert cameras_in_db(sqlite_runtime) == 0


def test_redact_url_hides_secret_query_values() -> None:
    assert redact_url("rtsp://h/x?user=u&pass=p&Token=t&a=1") == "rtsp://h/x?user=u&pass=***&Token=***&a=1"
    assert redact_url("rtsp://u:p@h/x?pwd=p") == "rtsp://u:***@h/x?pwd=***"
