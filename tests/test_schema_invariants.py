"""The schema's CHECK constraints (migration 0005): the database itself refuses a row that
breaks one, on SQLite and on PostgreSQL, and accepts a good one; an upgrade keeps the data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import CheckConstraint, Engine, create_engine, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from pscs.auth.models import User
from pscs.clock import utcnow
from pscs.retention.models import Hold, HoldStatus
from pscs.runtime import Runtime
from pscs.schema.migrate import alembic_config, current_revision, upgrade
from pscs.schema.models import metadata

T0 = 1_764_000_000_000  # an instant in 2025, UTC ms
Row = dict[str, Any]

# For each table: a good row (given the ids of its parents) and, per constraint, rows that
# break it (changes to the good row).
Good = Callable[[dict[str, int]], Row]


def _range(start: int = T0, end: int = T0 + 10_000) -> Row:
    return {"start_ms": start, "end_ms": end}


def _bad_range(start: int = T0) -> list[Row]:
    return [{"start_ms": start, "end_ms": start}, {"start_ms": start, "end_ms": start - 1}]


NOW = utcnow()
CASES: dict[str, tuple[Good, dict[str, list[Row]]]] = {
    "audit_events": (
        lambda ids: {
            "seq": 10**12,
            "ts_us": T0 * 1000,
            "actor": "test",
            "action": "test.event",
            "clauses": "M1",
            "outcome": "allowed",
            "details": "{}",
            "prev_hash": "0" * 64,
            "hash": "0" * 64,
        },
        {"outcome": [{"outcome": "maybe"}, {"outcome": "ALLOWED"}]},
    ),
    "cameras": (
        lambda ids: {
            "name": "another camera",
            "kind": "ptz",
            "street_address": "2 Main St",
            "latitude": 41.3,
            "longitude": -72.9,
            "main_url": "rtsp://cam.example/2",
        },
        {"kind": [{"kind": "dome"}]},
    ),
    "web_sessions": (
        lambda ids: {"token_hash": "t" * 64, "user_id": ids["user"], "stage": "full", "csrf_token": "c" * 64},
        {
            "stage": [{"stage": "mfa"}],
            "ended_with_reason": [{"ended_at": NOW}, {"end_reason": "logout"}],
        },
    ),
    "role_grants": (
        lambda ids: {"user_id": ids["user"], "role": "operator", "status": "pending", "requested_by": "admin"},
        {
            "status": [{"status": "granted"}],
            "decided_with_decider": [{"status": "approved", "decided_at": NOW}, {"decided_by": "ada"}],
        },
    ),
    "camera_health": (
        lambda ids: {"camera_id": ids["camera"], "state": "online", "state_since_ms": T0},
        {"state": [{"state": "sleeping"}]},
    ),
    "alerts": (
        lambda ids: {"kind": "storage_full", "severity": "critical", "message": "disk full"},
        {"kind": [{"kind": "disk_on_fire"}], "severity": [{"severity": "info"}]},
    ),
    "segments": (
        lambda ids: {
            "camera_id": ids["camera"],
            "stream": "main",
            **_range(),
            "duration_ms": 10_000,
            "frames": 250,
            "bytes": 1_000_000,
            "path": "1/2025-11-24/16/1764000000000.mp4",
            "sha256": "a" * 64,
        },
        {
            "stream": [{"stream": "third"}],
            "end_is_start_plus_duration": [{"end_ms": T0 + 10_001}, {"duration_ms": 9_999}],
            "duration_positive": [{"duration_ms": 0, "end_ms": T0}, {"duration_ms": -5, "end_ms": T0 - 5}],
            "frames_positive": [{"frames": 0}],
            "bytes_positive": [{"bytes": 0}],
        },
    ),
    "recorded_ranges": (
        lambda ids: {"camera_id": ids["camera"], "stream": "sub", **_range()},
        {"stream": [{"stream": ""}], "ends_after_start": _bad_range()},
    ),
    "recording_gaps": (
        lambda ids: {"camera_id": ids["camera"], "stream": "main", **_range(), "reason": "camera offline"},
        {"stream": [{"stream": "Main"}], "ends_after_start": _bad_range()},
    ),
    "pending_deletes": (
        lambda ids: {
            "segment_id": 123,
            "camera_id": ids["camera"],
            **_range(),
            "path": "1/2025-11-24/16/1764000000000.mp4",
            "sha256": "a" * 64,
            "reason": "retention",
            "requested_by": "system",
        },
        {"ends_after_start": _bad_range()},
    ),
    "holds": (
        lambda ids: {
            "reason": "foi_request",
            "reference": "FOI-1",
            **_range(),
            "status": "released",
            "owner_username": "admin",
            "created_by": "admin",
        },
        {
            "status": [{"status": "paused"}],
            "reason": [{"reason": "curiosity"}],
            "ends_after_start": _bad_range(),
            "at_risk_segments_not_negative": [{"at_risk_segments": -1}],
        },
    ),
    "notices": (
        lambda ids: {"kind": "hold.lapsed", "subject": "Hold 1 has lapsed", "recipient_role": "records_commander"},
        {"kind": [{"kind": "hello"}], "has_recipient": [{"recipient_role": None}]},
    ),
    "disposal_records": (
        lambda ids: {
            "camera_id": ids["camera"],
            "from_ms": T0,
            "to_ms": T0 + 1,
            "segments": 1,
            "bytes": 0,
            "rule": "retention",
            "clause": "S1",
            "requested_by": "system",
        },
        {
            "ends_after_start": [{"to_ms": T0}],
            "segments_positive": [{"segments": 0}],
            "bytes_not_negative": [{"bytes": -1}],
        },
    ),
    "retention_sweeps": (
        lambda ids: {"cutoff_ms": T0, "actor": "cli", "status": "interrupted"},
        {"status": [{"status": "done"}], "counts_not_negative": [{"deleted": -1}, {"holds_lapsed": -1}]},
    ),
    "storage_requests": (
        lambda ids: {
            "year": 2025,
            "seq": 1,
            "number": "2025-0001",
            "requester_username": "admin",
            "requester_name": "Admin",
            "unit": "Patrol",
            "case_number": "C-1",
            "reason": "prosecution",
            "narrative": "why",
            **_range(),
            "attestation_name": "Admin",
            "status": "fulfilled",
        },
        {
            "status": [{"status": "pending"}],
            "reason": [{"reason": ""}],
            "ends_after_start": _bad_range(),
            "seq_positive": [{"seq": 0}],
        },
    ),
    "evidence_items": (
        lambda ids: {
            "number": "EV-2025-0002",
            "case_number": "C-1",
            **_range(),
            "status": "disposed",
            "disposed_at": NOW,
            "created_by": "admin",
            "manifest_json": "{}",
            "manifest_sha256": "b" * 64,
            "signature": "sig",
            "key_id": "k",
        },
        {
            "status": [{"status": "lost", "disposed_at": None}],
            "ends_after_start": _bad_range(),
            "disposed_at_with_status": [{"disposed_at": None}, {"status": "preserved"}],
        },
    ),
    "evidence_files": (
        lambda ids: {
            "item_id": ids["evidence_item"],
            "sha256": "c" * 64,
            "bytes": 10,
            "camera_id": ids["camera"],
            "stream": "main",
            **_range(),
            "original_path": "1/2025-11-24/16/1764000000000.mp4",
            "store_path": "objects/cc/" + "c" * 64 + ".mp4",
            "index_sha256": "c" * 64,
        },
        {"stream": [{"stream": "both"}], "ends_after_start": _bad_range(), "bytes_not_negative": [{"bytes": -1}]},
    ),
    "custody_events": (
        lambda ids: {"item_id": ids["evidence_item"], "action": "transfer", "actor": "admin", "audit_seq": 1},
        {"action": [{"action": "peek"}]},
    ),
    "evidence_disposals": (
        lambda ids: {
            "item_id": ids["evidence_item"],
            "case_reference": "C-1",
            "case_closed_on": date(2025, 1, 1),
            "authority": "court order",
            "proposed_by": "admin",
            "status": "withdrawn",
        },
        {"status": [{"status": "approved"}], "files_removed_not_negative": [{"files_removed": -1}]},
    ),
    "privacy_zone_versions": (
        lambda ids: {
            "camera_id": ids["camera"],
            "version": 1,
            "space": "ptz",
            "zones": [],
            "status": "superseded",
            "proposed_by": "admin",
        },
        {
            "status": [{"status": "draft"}],
            "space": [{"space": "world"}],
            "version_positive": [{"version": 0}],
        },
    ),
    "mask_lifts": (
        lambda ids: {
            "camera_id": ids["camera"],
            "warrant_reference": "W-1",
            "reason": "warrant",
            "minutes": 30,
            "status": "withdrawn",
            "requested_by_id": ids["user"],
            "requested_by": "admin",
        },
        {"status": [{"status": "expired"}], "minutes_positive": [{"minutes": 0}]},
    ),
    "purpose_sessions": (
        lambda ids: {
            "user_id": ids["user"],
            "username": "admin",
            "web_session_id": ids["web_session"],
            "purpose_id": "investigation",
            "purpose_label": "Investigation",
            "clause": "U1",
            "expires_at": NOW + timedelta(hours=1),
            "ended_at": NOW,
            "end_reason": "expired",
        },
        {"ended_with_reason": [{"ended_at": None}, {"end_reason": None}]},
    ),
}


def _constraint_names(tables: Iterable[str] | None = None) -> set[str]:
    """The models' CHECK constraints (of ``tables`` only, if given)."""
    chosen = metadata.tables if tables is None else set(tables) & set(metadata.tables)
    return {
        str(c.name) for table in chosen for c in metadata.tables[table].constraints if isinstance(c, CheckConstraint)
    }


def _tables_0005(engine: Engine) -> list[str]:
    """The models' tables that a database at 0004 or 0005 has (later revisions add more)."""
    return [t for t in inspect(engine).get_table_names() if t in metadata.tables]


def _parents(engine: Engine) -> dict[str, int]:
    """A camera, the administrator, a web session and an evidence item to hang rows on."""
    tables = metadata.tables
    with engine.begin() as conn:
        camera = conn.execute(
            insert(tables["cameras"]).returning(tables["cameras"].c.id),
            {
                "name": "parent camera",
                "kind": "fixed",
                "street_address": "1 Main St",
                "latitude": 41.3,
                "longitude": -72.9,
                "main_url": "rtsp://cam.example/1",
            },
        ).scalar_one()
        user = conn.execute(select(User.id).where(User.username == "admin")).scalar_one()
        web_session = conn.execute(
            insert(tables["web_sessions"]).returning(tables["web_sessions"].c.id),
            {"token_hash": "p" * 64, "user_id": user, "stage": "password", "csrf_token": "p" * 64},
        ).scalar_one()
        good_item = CASES["evidence_items"][0]({}) | {"number": "EV-2025-0001", "status": "preserved"}
        item = conn.execute(
            insert(tables["evidence_items"]).returning(tables["evidence_items"].c.id),
            good_item | {"disposed_at": None},
        ).scalar_one()
    return {"camera": camera, "user": user, "web_session": web_session, "evidence_item": item}


def _refused_by(engine: Engine, table: str, row: Row) -> str | None:
    """The database's message if it refuses the row (nothing is kept either way)."""
    with engine.connect() as conn:
        try:
            with conn.begin() as trans:
                conn.execute(insert(metadata.tables[table]), row)
                trans.rollback()
        except IntegrityError as exc:
            return str(exc.orig)
    return None


def test_every_constraint_of_the_models_has_cases() -> None:
    tested = {f"ck_{table}_{name}" for table, (_good, bad) in CASES.items() for name in bad}
    assert tested == _constraint_names()


def test_the_database_refuses_rows_that_break_a_constraint(runtime: Runtime) -> None:
    engine = runtime.db.engine
    ids = _parents(engine)
    problems = []
    for table, (good, bad) in CASES.items():
        row = good(ids)
        if (message := _refused_by(engine, table, row)) is not None:
            problems.append(f"{table}: a good row was refused: {message}")
        for name, changes in bad.items():
            constraint = f"ck_{table}_{name}"
            for change in changes:
                message = _refused_by(engine, table, row | change)
                if message is None or constraint not in message:
                    problems.append(f"{constraint}: {change} was {'accepted' if message is None else message}")
    assert problems == []


def test_the_database_has_every_constraint_of_the_models(runtime: Runtime) -> None:
    inspector = inspect(runtime.db.engine)
    found = {str(c["name"]) for table in metadata.tables for c in inspector.get_check_constraints(table)}
    assert found == _constraint_names()


def test_an_enum_member_is_stored_as_its_value(runtime: Runtime) -> None:
    with runtime.db.write() as s:
        hold = Hold(
            reason="litigation", reference="L-1", start_ms=T0, end_ms=T0 + 1, owner_username="a", created_by="a"
        )
        s.add(hold)
        s.flush()
        hold.status = HoldStatus.LAPSED
    with runtime.db.engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM holds")).scalar_one() == "lapsed"


# Upgrading a database of the previous revision ---------------------------------------------------
@pytest.fixture
def url(tmp_path: Path, db_url: str | None) -> Iterator[str]:
    yield db_url or f"sqlite:///{tmp_path / 'pscs.db'}"


VALID_0004_ROWS = [
    "INSERT INTO users (id, username, full_name, password_hash, must_change_password, mfa_enrolled, "
    "last_totp_step, disabled, failed_attempts, created_at) "
    "VALUES (1, 'rc', 'R C', 'x', false, true, 0, false, 0, '2025-11-01 10:00:00')",
    "INSERT INTO cameras (id, name, kind, street_address, latitude, longitude, main_url, public_area_attested, "
    "enabled, created_at, updated_at) VALUES (1, 'Green', 'fixed', '1 Main St', 41.3, -72.9, 'rtsp://c/1', true, true, "
    "'2025-11-01 10:00:00', '2025-11-01 10:00:00')",
    "INSERT INTO segments (camera_id, stream, start_ms, end_ms, duration_ms, frames, bytes, path, sha256, created_at) "
    f"VALUES (1, 'main', {T0}, {T0 + 10_000}, 10000, 250, 5000, '1/a.mp4', 'aa', '2025-11-24 16:00:10')",
    f"INSERT INTO recorded_ranges (camera_id, stream, start_ms, end_ms) VALUES (1, 'main', {T0}, {T0 + 10_000})",
    "INSERT INTO recording_gaps (camera_id, stream, start_ms, end_ms, reason, created_at) "
    f"VALUES (1, 'main', {T0 - 5_000}, {T0}, 'camera offline', '2025-11-24 16:00:00')",
    "INSERT INTO holds (id, reason, reference, description, start_ms, end_ms, status, provisional, owner_username, "
    "created_by, created_at, last_reviewed_at, at_risk_segments) VALUES (1, 'litigation', 'L-1', '', "
    f"{T0}, {T0 + 60_000}, 'active', false, 'rc', 'rc', '2025-11-25 09:00:00', '2025-11-25 09:00:00', 0)",
    "INSERT INTO hold_cameras (hold_id, camera_id) VALUES (1, 1)",
    "INSERT INTO retention_sweeps (started_at, finished_at, cutoff_ms, dry_run, status, actor, deleted, bytes, "
    "protected, resumed, holds_lapsed) VALUES ('2025-11-25 03:00:00', NULL, 0, false, 'interrupted', 'service', "
    "0, 0, 0, 0, 0)",
    "INSERT INTO retention_sweeps (started_at, finished_at, cutoff_ms, dry_run, status, actor, deleted, bytes, "
    "protected, resumed, holds_lapsed) VALUES ('2025-11-26 03:00:00', '2025-11-26 03:01:00', 0, false, 'finished', "
    "'service', 3, 300, 1, 0, 0)",
    "INSERT INTO audit_events (seq, ts_us, actor, action, clauses, outcome, details, prev_hash, hash) "
    "VALUES (1, 1, 'system', 'test.event', 'M1', 'allowed', '{}', 'p', 'h')",
]
COUNTS = {
    "users": 1,
    "cameras": 1,
    "segments": 1,
    "recorded_ranges": 1,
    "recording_gaps": 1,
    "holds": 1,
    "hold_cameras": 1,
    "retention_sweeps": 2,
    "audit_events": 1,
}


def _execute(url: str, statements: list[str]) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {table: conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one() for table in COUNTS}
    finally:
        engine.dispose()


def test_upgrade_from_0004_keeps_the_data_and_adds_the_constraints(url: str) -> None:
    upgrade(url, "0004")
    _execute(url, VALID_0004_ROWS)
    upgrade(url, "0005")
    assert current_revision(url) == "0005"
    assert _counts(url) == COUNTS
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        present = _tables_0005(engine)
        found = {str(c["name"]) for table in present for c in inspector.get_check_constraints(table)}
        assert found == _constraint_names(present)
        with engine.connect() as conn:
            segment = conn.execute(text("SELECT start_ms, end_ms, duration_ms, path FROM segments")).one()
            assert tuple(segment) == (T0, T0 + 10_000, 10_000, "1/a.mp4")
        # What copying a table on SQLite could lose is still there: the append-only audit
        # trail (0002) and the one running sweep at a time (0004).
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'mallory'"))
        running = "INSERT INTO retention_sweeps (started_at, cutoff_ms, dry_run, status, actor, deleted, bytes, "
        running += (
            "protected, resumed, holds_lapsed) VALUES ('2025-11-27 03:00:00', 0, false, 'running', 'a', 0, 0, 0, 0, 0)"
        )
        with engine.begin() as conn:
            conn.execute(text(running))
        with pytest.raises(IntegrityError, match="uq_retention_sweeps_one_running|UNIQUE"), engine.begin() as conn:
            conn.execute(text(running))
    finally:
        engine.dispose()


def test_upgrade_from_0004_refuses_rows_that_break_a_constraint_and_changes_nothing(url: str) -> None:
    upgrade(url, "0004")
    _execute(url, VALID_0004_ROWS[:3])
    _execute(url, ["UPDATE segments SET end_ms = end_ms + 1"])
    with pytest.raises(RuntimeError, match=r"ck_segments_end_is_start_plus_duration .*: 1 rows"):
        upgrade(url)
    assert current_revision(url) == "0004"
    engine = create_engine(url)
    try:
        assert not any(inspect(engine).get_check_constraints(table) for table in _tables_0005(engine))
    finally:
        engine.dispose()


def test_downgrade_to_0004_removes_the_constraints_and_keeps_the_data(url: str) -> None:
    upgrade(url, "0004")
    _execute(url, VALID_0004_ROWS)
    upgrade(url, "0005")
    command.downgrade(alembic_config(url), "0004")
    assert current_revision(url) == "0004"
    assert _counts(url) == COUNTS
    engine = create_engine(url)
    try:
        assert not any(inspect(engine).get_check_constraints(table) for table in _tables_0005(engine))
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))
    finally:
        engine.dispose()
    upgrade(url, "0005")
    assert current_revision(url) == "0005"
