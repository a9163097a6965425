"""The retention sweeper (S1), holds and their review, disposal records; a property test over
random recordings, holds, requests and clock advances; and ``kill -9`` during a sweep.

Segment files here are small stand-ins (the sweeper never decodes video): each has an index
row exactly like the recorder's, at the recorder's time-bucketed path.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from pscs import startup
from pscs.audit.events import Actor
from pscs.auth.models import User
from pscs.auth.principal import Principal, principal_of_actor
from pscs.cameras.models import Camera
from pscs.clock import utcnow
from pscs.errors import Conflict
from pscs.evidence.models import EvidenceFile
from pscs.policy.decisions import epoch_ms
from pscs.requests import service as requests
from pscs.retention import holds
from pscs.retention.disposal import disposal_report, report_csv
from pscs.retention.models import Notice, RetentionSweep
from pscs.retention.sweeper import RetentionSweeper
from pscs.runtime import Runtime
from pscs.storage import protection
from pscs.storage.layout import segment_relpath
from pscs.storage.models import DisposalRecord, PendingDelete, Segment
from pscs.storage.protection import REQUIRED_SOURCES, ProtectionUnavailable
from tests.web_helpers import make_user

DAY = 86_400_000
MIN = 60_000
T0 = datetime(2026, 3, 1, tzinfo=UTC)
T0_MS = epoch_ms(T0)


# Helpers (also used by the request, evidence and compliance tests) --------------------------------
def add_cameras(rt: Runtime, n: int, prefix: str = "Camera") -> list[int]:
    with rt.db.write() as s:
        first = (s.scalar(select(func.max(Camera.id))) or 0) + 1
        s.execute(
            insert(Camera.__table__),
            [
                {
                    "id": first + i,
                    "name": f"{prefix} {first + i}",
                    "kind": "fixed",
                    "street_address": f"{first + i} Main St, Norwich, CT",
                    "latitude": 41.5,
                    "longitude": -72.1,
                    "main_url": f"rtsp://10.0.0.{i % 250}/main",
                    "public_area_attested": True,
                    "enabled": True,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for i in range(n)
            ],
        )
    return list(range(first, first + n))


def add_segments(rt: Runtime, camera_id: int, starts_ms: list[int], duration_ms: int = 10 * MIN) -> list[int]:
    """Write a small file per segment at the recorder's path and index it; returns the ids."""
    root = rt.settings.recordings_path
    rows = []
    for start in starts_ms:
        rel = segment_relpath(camera_id, start)
        data = f"segment {camera_id} {start}".encode() * 4
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append(
            {
                "camera_id": camera_id,
                "stream": "main",
                "start_ms": start,
                "end_ms": start + duration_ms,
                "duration_ms": duration_ms,
                "frames": 10,
                "bytes": len(data),
                "path": rel,
                "sha256": hashlib.sha256(data).hexdigest(),
                "created_at": utcnow(),
            }
        )
    with rt.db.write() as s:
        s.execute(insert(Segment.__table__), rows)
        return list(
            s.scalars(select(Segment.id).where(Segment.camera_id == camera_id, Segment.start_ms.in_(starts_ms)))
        )


def user_actor(rt: Runtime, username: str, roles: list[str]) -> Actor:
    make_user(rt, username, roles)
    with rt.db.session() as s:
        return Actor(username, s.scalar(select(User.id).where(User.username == username)))


def ensure_actor(rt: Runtime, username: str, roles: list[str]) -> Actor:
    with rt.db.session() as s:
        user_id = s.scalar(select(User.id).where(User.username == username))
    return Actor(username, user_id) if user_id is not None else user_actor(rt, username, roles)


def full_name(username: str) -> str:
    return f"{username.title()} Tester"  # what tests.web_helpers.make_user gives


def segments(rt: Runtime, camera_ids: list[int] | None = None) -> dict[int, Segment]:
    q = select(Segment)
    if camera_ids is not None:
        q = q.where(Segment.camera_id.in_(camera_ids))
    with rt.db.session() as s:
        return {r.id: r for r in s.scalars(q)}


def clock(at: datetime):  # noqa: ANN201
    return lambda: at


# Basic behaviour -----------------------------------------------------------------------------------
def test_S1_sweep_destroys_expired_unheld_recordings_and_records_their_disposal(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pscs.storage import deletion

    monkeypatch.setattr(deletion, "_BATCH", 7)  # through the pipeline, batch after batch
    cam_a, cam_b = add_cameras(runtime, 2)
    # 40 days of one segment every 12 hours on each camera.
    starts = [T0_MS + i * 12 * 60 * MIN for i in range(80)]
    add_segments(runtime, cam_a, starts)
    add_segments(runtime, cam_b, starts)
    investigator = user_actor(runtime, "ivan", ["investigator"])
    held = holds.place_hold(
        runtime,
        principal_of_actor(runtime, investigator),
        camera_ids=[cam_a],
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="criminal_investigation",
        reference="2026-000123",
        now=T0,
    )
    now = T0 + timedelta(days=40)
    report = RetentionSweeper(runtime, clock=clock(now)).run_once()

    cutoff = epoch_ms(now) - 30 * DAY
    left = segments(runtime)
    root = runtime.settings.recordings_path
    for seg in left.values():
        assert seg.end_ms > cutoff or (seg.camera_id == cam_a and seg.start_ms < T0_MS + DAY)
        assert (root / seg.path).exists()
    expired = [s for s in starts if s + 10 * MIN <= cutoff]
    assert report.deleted == 2 * len(expired) - 2 and report.protected == 2  # two segments in the held day
    assert not any(
        p.suffix == ".mp4"
        and int(p.stem) + 10 * MIN <= cutoff
        and not (p.parts[-4] == str(cam_a) and int(p.stem) < T0_MS + DAY)
        for p in root.rglob("*.mp4")
    )
    # Empty day folders are gone; held folders stay.
    assert not (root / str(cam_b) / "2026-03-01").exists() and (root / str(cam_a) / "2026-03-01").exists()
    with runtime.db.session() as s:
        records = list(s.scalars(select(DisposalRecord)))
        sweep = s.scalar(select(RetentionSweep))
    assert sum(r.segments for r in records) == report.deleted
    assert {r.camera_id for r in records} == {cam_a, cam_b} and all(r.clause == "S1" for r in records)
    assert all(r.rule.startswith("retention: older than 30 days") for r in records)
    assert sweep.status == "finished" and sweep.deleted == report.deleted
    [event] = runtime.audit.search(action_prefix="retention.sweep")
    assert event.clauses == "S1" and f'"deleted":{report.deleted}' in event.details
    # The periodic report sums the records per camera.
    rep = disposal_report(runtime.db.session(), "Norwich PD", 30, T0, utcnow() + timedelta(days=1))
    assert rep.segments == report.deleted and len(rep.lines) == 2
    assert "camera_id,camera,location,rule" in "".join(report_csv(rep))
    assert held.id in {h.id for h in holds.list_holds(runtime, Principal.system(), status="active")}


def test_S1_dry_run_changes_nothing(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    add_segments(rt, cam, [T0_MS, T0_MS + DAY, T0_MS + 35 * DAY])
    report = RetentionSweeper(rt, clock=clock(T0 + timedelta(days=40))).run_once(dry_run=True)
    assert (report.deleted, report.protected) == (2, 0) and report.cameras[cam].deleted == 2
    assert len(segments(rt)) == 3
    with rt.db.session() as s:
        assert s.scalar(select(func.count(DisposalRecord.id))) == 0


def test_S1_quarantined_files_are_destroyed_at_the_same_age_unless_protected(runtime: Runtime) -> None:
    cam_a, cam_b = add_cameras(runtime, 2)
    base = runtime.settings.recordings_path / ".quarantine"

    def quarantined(camera_id: int, start_ms: int, written_ms: int) -> Path:
        path = base / segment_relpath(camera_id, start_ms)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not playable" * 10)
        os.utime(path, (written_ms / 1000, written_ms / 1000))
        return path

    old = quarantined(cam_b, T0_MS, T0_MS + 10_000)
    held = quarantined(cam_a, T0_MS, T0_MS + 10_000)
    young = quarantined(cam_b, T0_MS + 20 * DAY, T0_MS + 20 * DAY + 10_000)
    # Named long ago but written to until recently: its name gives only its start.
    late = quarantined(cam_b, T0_MS + DAY, T0_MS + 25 * DAY)
    stranger = base / "notes.txt"
    stranger.write_text("not named like a recording: left alone")
    holds.place_hold(
        runtime,
        principal_of_actor(runtime, user_actor(runtime, "ivan", ["investigator"])),
        camera_ids=[cam_a],
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="criminal_investigation",
        reference="2026-000124",
        now=T0,
    )
    now = T0 + timedelta(days=40)

    dry = RetentionSweeper(runtime, clock=clock(now)).run_once(dry_run=True)
    assert [f.camera_id for f in dry.quarantine.deleted] == [cam_b] and old.exists()
    assert [f.camera_id for f in dry.quarantine.protected] == [cam_a]

    report = RetentionSweeper(runtime, clock=clock(now)).run_once()
    assert not old.exists()
    assert held.exists() and young.exists() and late.exists() and stranger.exists()
    assert (len(report.quarantine.deleted), len(report.quarantine.protected)) == (1, 1)
    with runtime.db.session() as s:
        [record] = s.scalars(select(DisposalRecord))
    assert (record.camera_id, record.from_ms, record.to_ms, record.bytes) == (cam_b, T0_MS, T0_MS + 10_000, 120)
    assert record.clause == "S1" and "quarantined file" in record.rule
    [event] = runtime.audit.search(action_prefix="storage.delete", object_type="quarantined_file")
    assert '"deleted":1' in event.details and '"protected_refused":1' in event.details
    [sweep] = [e for e in runtime.audit.search(action_prefix="retention.sweep") if e.action == "retention.sweep"]
    assert json.loads(sweep.details)["quarantined_files"] == {"deleted": 1, "bytes": 120, "protected": 1}


def test_S1_hold_lapses_without_review_with_notice_to_owner_and_records_commander(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    add_segments(rt, cam, [T0_MS])
    owner = user_actor(rt, "olga", ["investigator"])
    hold = holds.place_hold(
        rt,
        principal_of_actor(rt, owner),
        camera_ids=[cam],
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="prosecution",
        reference="CR-26-1234",
        now=T0,
    )
    assert hold.review_due_at == T0 + timedelta(days=90)
    # Day 80: a reminder; the hold still protects.
    first = RetentionSweeper(rt, clock=clock(T0 + timedelta(days=80))).run_once()
    assert first.reminders == [hold.id] and first.deleted == 0 and first.protected == 1
    # Re-affirmed on day 85: due on day 175.
    again = holds.reaffirm_hold(
        rt, principal_of_actor(rt, owner), hold.id, "trial set for autumn", now=T0 + timedelta(days=85)
    )
    assert again.review_due_at == T0 + timedelta(days=175)
    assert RetentionSweeper(rt, clock=clock(T0 + timedelta(days=170))).run_once().deleted == 0
    # Not re-affirmed again: on day 176 it lapses, with notice, and the footage goes.
    last = RetentionSweeper(rt, clock=clock(T0 + timedelta(days=176))).run_once()
    assert last.holds_lapsed == [hold.id] and last.deleted == 1
    assert holds.get_hold(rt, Principal.system(), hold.id).status == "lapsed"
    with rt.db.session() as s:
        notices = list(s.scalars(select(Notice).where(Notice.kind == "hold.lapsed")))
    assert {(n.recipient, n.recipient_role) for n in notices} == {("olga", None), (None, "records_commander")}
    assert [n.subject for n in holds.notices_for(rt, "olga", frozenset({"investigator"}))][0].endswith("has lapsed")
    [event] = rt.audit.search(action_prefix="hold.lapse")
    assert event.clauses == "S1" and "role:records_commander" in event.details


def test_S1_hold_rules(sqlite_runtime: Runtime) -> None:
    from pscs.errors import InvalidInput, PolicyDenied

    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    owner = user_actor(rt, "oscar", ["investigator"])
    other = user_actor(rt, "otto", ["investigator"])
    boss = user_actor(rt, "rita", ["records_commander"])
    operator = user_actor(rt, "opal", ["operator"])
    with pytest.raises(InvalidInput, match="number"):
        holds.place_hold(
            rt,
            principal_of_actor(rt, owner),
            camera_ids=[cam],
            start_ms=T0_MS,
            end_ms=T0_MS + 1,
            reason="litigation",
            reference=" ",
        )
    with pytest.raises(InvalidInput, match="reason"):
        holds.place_hold(
            rt,
            principal_of_actor(rt, owner),
            camera_ids=[cam],
            start_ms=T0_MS,
            end_ms=T0_MS + 1,
            reason="curiosity",
            reference="x",
        )
    with pytest.raises(PolicyDenied):
        holds.place_hold(
            rt,
            principal_of_actor(rt, operator),
            camera_ids=[cam],
            start_ms=T0_MS,
            end_ms=T0_MS + 1,
            reason="litigation",
            reference="x",
        )
    hold = holds.place_hold(
        rt,
        principal_of_actor(rt, owner),
        camera_ids=[cam],
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="foi_request",
        reference="FOI-2026-17",
    )
    with pytest.raises(PolicyDenied):
        holds.release_hold(rt, principal_of_actor(rt, other), hold.id, "not mine")
    changed = holds.change_hold(rt, principal_of_actor(rt, boss), hold.id, end_ms=T0_MS + 2 * DAY, owner="otto")
    assert changed.owner == "otto" and changed.end_ms == T0_MS + 2 * DAY
    released = holds.release_hold(rt, principal_of_actor(rt, other), hold.id, "request answered")
    assert released.status == "released"
    actions = [e.action for e in rt.audit.search(action_prefix="hold.")]
    assert {"hold.create", "hold.change", "hold.release"} <= set(actions)
    assert "denied" in {e.outcome for e in rt.audit.search(action_prefix="hold.")}


def test_S1_a_hold_placed_while_a_deletion_is_in_flight_says_so(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    [seg_id] = add_segments(rt, cam, [T0_MS])
    seg = segments(rt)[seg_id]
    with rt.db.write() as s:
        s.add(
            PendingDelete(
                segment_id=seg.id,
                camera_id=cam,
                start_ms=seg.start_ms,
                end_ms=seg.end_ms,
                path=seg.path,
                sha256=seg.sha256,
                reason="retention",
                requested_by="retention",
            )
        )
    owner = user_actor(rt, "ines", ["investigator"])
    hold = holds.place_hold(
        rt,
        principal_of_actor(rt, owner),
        camera_ids=[cam],
        start_ms=T0_MS,
        end_ms=T0_MS + DAY,
        reason="criminal_investigation",
        reference="2026-1",
    )
    assert hold.at_risk_segments == 1
    # ... and the deletion, asked again before the unlink, is cancelled.
    RetentionSweeper(rt, clock=clock(T0 + timedelta(days=40))).run_once()
    assert seg_id in segments(rt) and (rt.settings.recordings_path / seg.path).exists()


def test_S1_holds_also_stop_disk_pressure(sqlite_runtime: Runtime) -> None:
    from pscs.storage.pressure import DiskUsage, relieve_disk_pressure

    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    ids = add_segments(rt, cam, [T0_MS + i * DAY for i in range(4)])
    owner = user_actor(rt, "pat", ["investigator"])
    holds.place_hold(
        rt,
        principal_of_actor(rt, owner),
        camera_ids=[cam],
        start_ms=T0_MS,
        end_ms=T0_MS + 1,
        reason="litigation",
        reference="Preservation order KNL-CV26-1",
    )
    rt.settings.min_free_bytes = 10**15  # the disk is always "full": everything deletable goes
    result = relieve_disk_pressure(rt, usage=lambda _p: DiskUsage(10**6, 10**6, 0))
    assert result.deleted == 3 and result.protected_skipped >= 1
    assert list(segments(rt)) == [ids[0]] and (rt.settings.recordings_path / segments(rt)[ids[0]].path).exists()
    with rt.db.session() as s:
        [record] = s.scalars(select(DisposalRecord)).all()
    assert record.segments == 3 and record.rule.startswith("disk pressure")  # disposals are recorded too


# Protection sources: registered in every process that deletes, or nothing is deleted ---------------
@pytest.mark.parametrize("missing", REQUIRED_SOURCES)
def test_S1_a_process_missing_a_protection_source_deletes_nothing(
    sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    from pscs.storage.deletion import delete_segments
    from pscs.storage.pressure import DiskUsage, relieve_disk_pressure

    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    ids = add_segments(rt, cam, [T0_MS, T0_MS + DAY])
    holds.place_hold(
        rt,
        principal_of_actor(rt, user_actor(rt, "ivan", ["investigator"])),
        camera_ids=[cam],
        start_ms=T0_MS,
        end_ms=T0_MS + 1,
        reason="criminal_investigation",
        reference="2026-000125",
        now=T0,
    )
    monkeypatch.delitem(protection._sources, missing)  # as in a process that never registered it
    now = T0 + timedelta(days=40)
    rt.settings.min_free_bytes = 10**15  # the disk is "full"
    with pytest.raises(ProtectionUnavailable, match=missing):
        RetentionSweeper(rt, clock=clock(now)).run_once()
    with pytest.raises(ProtectionUnavailable, match=missing):
        relieve_disk_pressure(rt, usage=lambda _p: DiskUsage(10**6, 10**6, 0))
    with pytest.raises(ProtectionUnavailable, match=missing):
        delete_segments(rt, Actor.system("cli"), ids, reason="by hand")
    root = rt.settings.recordings_path
    assert set(segments(rt)) == set(ids) and all((root / seg.path).exists() for seg in segments(rt).values())
    with rt.db.session() as s:
        assert s.scalar(select(func.count(DisposalRecord.id))) == 0
        assert s.scalar(select(func.count(PendingDelete.id))) == 0

    startup.prepare()  # registered: the same round deletes the unheld segment only
    report = RetentionSweeper(rt, clock=clock(now)).run_once()
    assert (report.deleted, report.protected) == (1, 1) and list(segments(rt)) == [ids[0]]


def test_S1_every_process_that_deletes_registers_the_protection_sources(
    sqlite_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pscs.cli.common import open_runtime
    from pscs.cli.serve import BackgroundServices
    from pscs.web.app import create_app

    rt = sqlite_runtime
    monkeypatch.setenv("PSCS_DATA_DIR", str(rt.settings.data_dir))
    starts = {
        "the web app": lambda: create_app(rt),
        "the service (sweeper, recorders' disk pressure)": lambda: BackgroundServices(rt, record=False),
        "the CLI": lambda: open_runtime().close(),
    }
    for process, start in starts.items():
        monkeypatch.setattr(protection, "_sources", {})
        with pytest.raises(ProtectionUnavailable):
            protection.require_sources()
        start()
        assert set(REQUIRED_SOURCES) <= set(protection.registered_sources()), process


# Property: nothing protected is destroyed, nothing unprotected outlives the limit ------------------
PROTECT = st.one_of(
    st.tuples(st.just("hold"), st.integers(0, 1), st.integers(0, 19), st.integers(1, 10)),
    st.tuples(st.just("request"), st.integers(0, 1), st.integers(0, 19), st.integers(1, 6)),
)
OPS = st.lists(
    st.one_of(
        PROTECT,
        st.tuples(st.just("release"), st.integers(0, 10)),
        st.tuples(st.just("decide"), st.integers(0, 10), st.booleans()),
        st.tuples(st.just("advance"), st.integers(1, 40)),
        st.tuples(st.just("advance"), st.integers(25, 100)),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    setup=st.lists(PROTECT, min_size=1, max_size=4),
    ops=OPS,
    step_hours=st.sampled_from([12, 24]),
    offset_minutes=st.integers(0, 359),
)
def test_S1_S2_S3_property_sweeper_never_deletes_protected_and_never_keeps_expired(
    sqlite_runtime: Runtime, setup: list[tuple], ops: list[tuple], step_hours: int, offset_minutes: int
) -> None:
    """Random recordings, holds, storage requests (decided either way), releases, lapses and
    clock advances, with a sweep after every step: nothing protected is destroyed, nothing
    unprotected is kept past the limit, nothing is destroyed early, evidence never changes."""
    rt = sqlite_runtime
    cams = add_cameras(rt, 2, prefix=f"P{os.urandom(3).hex()}")
    inv = ensure_actor(rt, "pinv", ["investigator"])
    boss = ensure_actor(rt, "pboss", ["records_commander"])
    # Recordings: a 10-minute segment every few hours over 60 days on each camera.
    base = T0_MS
    for i, cam in enumerate(cams):
        first = base + (offset_minutes + 97 * i) * MIN
        add_segments(rt, cam, list(range(first, base + 60 * DAY, step_hours * 60 * MIN)))
    now = T0 + timedelta(days=20)
    placed: list[int] = []
    filed: list[str] = []
    hold_ranges: dict[int, tuple[int, int, int]] = {}  # hold id -> (camera, lo, hi), while active
    evidence_before: dict[str, bytes] = {}
    days = rt.profile.retention.recording_days

    def protected_now() -> set[int]:
        """The oracle: what the test itself knows must survive (independent of the code's check)."""
        active = list(hold_ranges.values())
        for number in filed:
            v = requests.get_request(rt, Principal.system(), number)
            if v.status in ("submitted", "approved"):
                active.extend((c, v.start_ms, v.end_ms) for c in v.camera_ids)
        return {
            sid
            for sid, seg in segments(rt, cams).items()
            if any(c == seg.camera_id and lo < seg.end_ms and hi > seg.start_ms for c, lo, hi in active)
        }

    for step, op in enumerate([*setup, *ops]):
        kind = op[0]
        if kind == "hold":
            _, ci, day, length = op
            lo = base + day * DAY
            h = holds.place_hold(
                rt,
                principal_of_actor(rt, inv),
                camera_ids=[cams[ci]],
                start_ms=lo,
                end_ms=lo + length * DAY,
                reason="criminal_investigation",
                reference="P-1",
                now=now,
            )
            placed.append(h.id)
            hold_ranges[h.id] = (cams[ci], lo, lo + length * DAY)
        elif kind == "release" and placed:
            hid = placed[op[1] % len(placed)]
            if hid in hold_ranges:
                holds.release_hold(rt, principal_of_actor(rt, inv), hid, "done", now=now)
                del hold_ranges[hid]
        elif kind == "request":
            _, ci, day, length = op
            lo = base + day * DAY
            if lo < epoch_ms(now):
                v = requests.file_request(
                    rt,
                    principal_of_actor(rt, inv),
                    unit="Detective Division",
                    case_number="P-2",
                    camera_ids=[cams[ci]],
                    start_ms=lo,
                    end_ms=lo + length * DAY,
                    reason="prosecution",
                    narrative="property test",
                    attestation_name=full_name("pinv"),
                    now=now,
                )
                filed.append(v.number)
        elif kind == "decide" and filed:
            number = filed[op[1] % len(filed)]
            if requests.get_request(rt, Principal.system(), number).status == "submitted":
                requests.decide_request(
                    rt, principal_of_actor(rt, boss), number, approve=op[2], reason="" if op[2] else "no case", now=now
                )
        elif kind == "advance":
            now += timedelta(days=op[1])
        if step < len(setup) - 1:
            continue  # the setup happens at one moment; sweeps start after it
        # Lapses: holds past review are lapsed by the sweep; the oracle follows the same rule.
        for hid in list(hold_ranges):
            if holds.get_hold(rt, Principal.system(), hid).review_due_at <= now:
                del hold_ranges[hid]
        must_survive = protected_now()
        before = segments(rt, cams)
        for item_file in _evidence_files(rt):
            evidence_before.setdefault(item_file, (rt.settings.evidence_path / item_file).read_bytes())
        RetentionSweeper(rt, clock=clock(now)).run_once()
        after = segments(rt, cams)
        cutoff = epoch_ms(now) - days * DAY
        root = rt.settings.recordings_path
        for sid in must_survive:
            assert sid in after and (root / before[sid].path).exists(), f"protected segment {sid} destroyed"
        for sid, seg in before.items():
            if seg.end_ms > cutoff:
                assert sid in after, f"segment {sid} destroyed before its time"
            elif sid not in must_survive:
                assert sid not in after and not (root / seg.path).exists(), f"expired segment {sid} kept"
        for rel, data in evidence_before.items():
            assert (rt.settings.evidence_path / rel).read_bytes() == data, "evidence changed"
    with rt.db.session() as s:
        assert s.scalar(select(func.count(PendingDelete.id))) == 0


def _evidence_files(rt: Runtime) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(select(EvidenceFile.store_path)))


# kill -9 during a sweep ---------------------------------------------------------------------------
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from pscs.config import Settings
    from pscs.runtime import Runtime
    from pscs.retention.sweeper import RetentionSweeper
    import pscs.storage.deletion as deletion

    point, after = sys.argv[2], int(sys.argv[3])
    deletion._BATCH = 16  # pages of 40 go through the pipeline in batches of 16, 16 and 8
    count = {"n": 0}

    def die():
        count["n"] += 1
        if count["n"] >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    if point == "unlink":
        # A sweep unlinks in a child process of its own: watch the files go from outside and
        # kill the whole process group (this process and that child) once `after` are gone.
        import threading, time
        root = Settings(data_dir=sys.argv[1]).recordings_path
        def files():
            return sum(len(names) for _, _, names in os.walk(root))
        total = files()
        def watch():
            while total - files() < after:
                time.sleep(0.0002)
            os.killpg(0, signal.SIGKILL)
        threading.Thread(target=watch, daemon=True).start()
    elif point == "forget":  # files gone, index rows not yet removed (inside that transaction)
        real_record = deletion.record_disposals
        def record(*a, **k):
            n = real_record(*a, **k)
            die()
            return n
        deletion.record_disposals = record
    else:  # "tidy": index rows and disposal records committed, folders not yet tidied
        real_tidy = deletion._remove_empty_buckets
        def tidy(*a, **k):
            die()
            return real_tidy(*a, **k)
        deletion._remove_empty_buckets = tidy
    from pscs import startup
    startup.prepare()  # as every pscs process does: no protection sources, no deletion
    rt = Runtime.open(Settings(data_dir=sys.argv[1]))
    now = datetime.fromisoformat(sys.argv[4])
    RetentionSweeper(rt, clock=lambda: now, page_size=40).run_once()
    print("finished without being killed")
    """
)


@pytest.mark.parametrize(
    ("point", "after"), [("unlink", 1), ("unlink", 57), ("unlink", 130), ("forget", 2), ("tidy", 3)]
)
def test_S1_kill_9_during_a_sweep_leaves_a_state_the_next_sweep_finishes(
    sqlite_runtime: Runtime, point: str, after: int
) -> None:
    rt = sqlite_runtime
    cams = add_cameras(rt, 2)
    starts = [T0_MS + i * 30 * MIN for i in range(96)]  # two days, every 30 minutes
    for cam in cams:
        add_segments(rt, cam, starts)
    owner = user_actor(rt, "kim", ["investigator"])
    holds.place_hold(
        rt,
        principal_of_actor(rt, owner),
        camera_ids=[cams[1]],
        start_ms=T0_MS + 6 * 60 * MIN,
        end_ms=T0_MS + 8 * 60 * MIN,
        reason="criminal_investigation",
        reference="K-9",
        now=T0,
    )
    now = T0 + timedelta(days=33)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(rt.settings.data_dir), point, str(after), now.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own process group, which the "unlink" point kills
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    # Whatever the kill left, the index never names a missing file ...
    root = rt.settings.recordings_path
    with rt.db.session() as s:
        pending = {p.segment_id for p in s.scalars(select(PendingDelete))}
    for sid, seg in segments(rt).items():
        assert sid in pending or (root / seg.path).exists()
    # ... and the next sweep finishes the job.
    report = RetentionSweeper(rt, clock=clock(now)).run_once()
    left = segments(rt)
    assert {s.camera_id for s in left.values()} == {cams[1]}
    assert all(T0_MS + 6 * 60 * MIN - 30 * MIN < s.start_ms < T0_MS + 8 * 60 * MIN for s in left.values())
    assert len(left) == 4 and all((root / s.path).exists() for s in left.values())
    on_disk = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(on_disk) == 4
    with rt.db.session() as s:
        assert s.scalar(select(func.count(PendingDelete.id))) == 0
        statuses = [w.status for w in s.scalars(select(RetentionSweep).order_by(RetentionSweep.id))]
        disposed = s.scalar(select(func.sum(DisposalRecord.segments)))
    assert statuses == ["interrupted", "finished"]
    assert disposed == 2 * len(starts) - 4  # every destroyed segment has its disposal record
    # The killed round's decided deletions were finished (and recorded) by the next one.
    assert report.resumed > 0 or point == "tidy"
    [hold] = holds.list_holds(rt, Principal.system())
    assert hold.status == "active"


# One round at a time -------------------------------------------------------------------------------
def running_round(rt: Runtime, holder: str, heartbeat_at: datetime) -> int:
    with rt.db.write() as s:
        row = RetentionSweep(
            cutoff_ms=0, status="running", actor="cli", holder=holder, heartbeat_at=heartbeat_at, started_at=utcnow()
        )
        s.add(row)
        s.flush()
        return row.id


def round_status(rt: Runtime, round_id: int) -> str:
    with rt.db.session() as s:
        return s.get(RetentionSweep, round_id).status


def test_S1_one_round_at_a_time_while_its_process_lives(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    [cam] = add_cameras(rt, 1)
    add_segments(rt, cam, [T0_MS])
    other = subprocess.Popen(["sleep", "60"])  # stands for a `pscs retention run` in progress
    try:
        busy = running_round(rt, f"{socket.gethostname()}:{other.pid}", utcnow())
        with pytest.raises(Conflict, match=f"retention round {busy} is still running"):
            RetentionSweeper(rt, clock=clock(T0 + timedelta(days=40))).run_once()
        assert len(segments(rt)) == 1  # nothing touched
        assert round_status(rt, busy) == "running"
    finally:
        other.kill()
        other.wait()
    report = RetentionSweeper(rt, clock=clock(T0 + timedelta(days=40))).run_once()
    assert report.deleted == 1
    assert round_status(rt, busy) == "interrupted"  # its process is gone
    assert round_status(rt, report.sweep_id) == "finished"


def test_S1_a_round_on_another_machine_is_judged_by_its_heartbeat(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    alive = running_round(rt, "recorder-2.example:4242", utcnow() - timedelta(minutes=1))
    with pytest.raises(Conflict):
        RetentionSweeper(rt, clock=clock(T0)).run_once()
    with rt.db.write() as s:
        s.get(RetentionSweep, alive).heartbeat_at = utcnow() - timedelta(minutes=16)
    report = RetentionSweeper(rt, clock=clock(T0)).run_once()
    assert round_status(rt, alive) == "interrupted"
    assert round_status(rt, report.sweep_id) == "finished"


def test_S1_the_database_admits_one_running_round(runtime: Runtime) -> None:
    running_round(runtime, "a:1", utcnow())
    with pytest.raises(IntegrityError):
        running_round(runtime, "b:2", utcnow())


def test_S1_pure_rules() -> None:
    from datetime import date

    from pscs.policy import decisions
    from pscs.policy.profile import load_profile

    profile = load_profile()
    now = T0 + timedelta(days=31)
    cutoff = decisions.retention_cutoff_ms(now, profile)
    assert cutoff == T0_MS + DAY
    assert decisions.segment_expired(cutoff, now, profile).allowed
    assert not decisions.segment_expired(cutoff + 1, now, profile).allowed
    assert not decisions.segment_expired(cutoff, now, profile, protected=True).allowed
    assert decisions.compliance_deadline_ms(now, profile) == cutoff - 60 * MIN
    due = T0 + timedelta(days=90)
    assert decisions.hold_review(due, T0) is decisions.HoldReview.CURRENT
    assert decisions.hold_review(due, due - timedelta(days=3)) is decisions.HoldReview.DUE_SOON
    assert decisions.hold_review(due, due) is decisions.HoldReview.LAPSED
    assert decisions.foi_response_due(date(2026, 3, 6)) == date(2026, 3, 12)  # Friday -> Thursday
    assert not decisions.may_manage_hold("ann", frozenset({"investigator"}), "bob", False, profile).allowed
    assert decisions.may_manage_hold("ann", frozenset({"investigator"}), "ann", False, profile).allowed
    assert decisions.may_manage_hold("ann", frozenset({"records_commander"}), "bob", False, profile).allowed
    assert decisions.may_manage_hold("bob", frozenset({"records_commander"}), "bob", True, profile).clause == "S2"
    assert decisions.may_place_hold(frozenset({"investigator"}), profile).allowed
    assert not decisions.may_place_hold(frozenset({"operator", "admin"}), profile).allowed
    # The roles come from the profile: a department that lets operators hold footage says so there.
    operators_too = profile.model_copy(
        update={"approvals": profile.approvals.model_copy(update={"hold_place": ["operator"]})}
    )
    assert decisions.may_place_hold(frozenset({"operator"}), operators_too).allowed
