"""The recorder's index writer (pscs.recording.index_writer): what the workers report is
indexed in order, many cameras' rows in one transaction, and waits while the database is
away."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy import event as sa_event

from pscs.audit.events import Actor
from pscs.cameras.service import add_camera
from pscs.recording.index_writer import IndexWriter
from pscs.runtime import Runtime
from pscs.storage.layout import segment_relpath
from pscs.storage.models import RecordingGap, Segment
from pscs.storage.segment_files import FinishedSegment
from tests.capabilities import PG_ADMIN_URL

ADMIN = Actor(username="admin", user_id=1)
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def new_camera(rt: Runtime, name: str) -> int:
    return add_camera(
        rt,
        ADMIN,
        name=name,
        street_address="1 Broadway, Norwich, CT",
        latitude=41.5,
        longitude=-72.1,
        main_url="rtsp://10.0.0.5/main",
        public_area_attested=True,
    ).id


def finished(camera_id: int, start_ms: int, duration_ms: int = 10_000) -> FinishedSegment:
    return FinishedSegment(
        camera_id=camera_id,
        stream="main",
        start_ms=start_ms,
        duration_ms=duration_ms,
        frames=duration_ms // 40,
        bytes=2_500_000,
        path=segment_relpath(camera_id, start_ms, "main"),
        sha256="0" * 64,
    )


def indexed(rt: Runtime) -> list[tuple[int, int]]:
    with rt.db.session() as s:
        query = select(Segment.camera_id, Segment.start_ms).order_by(Segment.camera_id, Segment.start_ms)
        return [(camera_id, start_ms) for camera_id, start_ms in s.execute(query)]


def gap_rows(rt: Runtime) -> list[tuple[int, int, int, str]]:
    with rt.db.session() as s:
        return [(g.camera_id, g.start_ms, g.end_ms, g.reason) for g in s.scalars(select(RecordingGap))]


def test_what_many_cameras_reported_is_indexed_in_one_transaction(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    a, b = new_camera(rt, "A"), new_camera(rt, "B")
    writer = IndexWriter(rt.db)
    writer.add((a, T0 - 5_000, T0, "not recording (recorder was stopped)"))
    for i in range(3):
        writer.add(finished(a, T0 + i * 10_000))
        writer.add(finished(b, T0 + i * 10_000))
    commits: list[object] = []

    def note(conn: object) -> None:
        commits.append(conn)

    sa_event.listen(rt.db.engine, "commit", note)
    try:
        writer.flush()
    finally:
        sa_event.remove(rt.db.engine, "commit", note)
    assert len(commits) == 1
    assert indexed(rt) == [(c, T0 + i * 10_000) for c in (a, b) for i in range(3)]
    assert gap_rows(rt) == [(a, T0 - 5_000, T0, "not recording (recorder was stopped)")]
    assert len(writer) == 0 and writer.due_at is None


def test_a_full_batch_is_due_at_once_and_a_refused_row_does_not_hold_up_the_rest(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    camera_id = new_camera(rt, "A")
    writer = IndexWriter(rt.db, batch_max=3)
    writer.add(finished(camera_id, T0))
    writer.add((camera_id + 99, T0, T0 + 1000, "no such camera"))  # refused: foreign key
    assert writer.due_at is None  # waits for the round
    writer.add(finished(camera_id, T0 + 10_000))
    assert writer.due_at is not None and writer.due_at <= time.monotonic()
    writer.flush()
    assert indexed(rt) == [(camera_id, T0), (camera_id, T0 + 10_000)]
    assert gap_rows(rt) == []
    assert len(writer) == 0 and writer.due_at is None


def test_where_recording_ended_counts_rows_still_waiting(sqlite_runtime: Runtime) -> None:
    rt = sqlite_runtime
    a, b, c = (new_camera(rt, n) for n in "ABC")
    writer = IndexWriter(rt.db)
    writer.add(finished(a, T0))
    writer.add(finished(b, T0))
    writer.flush()
    writer.add(finished(a, T0 + 10_000))  # not indexed yet
    assert writer.last_end_ms([a, b, c]) == {a: T0 + 20_000, b: T0 + 10_000}
    assert writer.last_end_ms([b]) == {b: T0 + 10_000}


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_S1_rows_wait_in_order_while_the_database_is_away_and_are_indexed_when_it_returns(
    db_url: str, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    camera_id = new_camera(runtime, "A")
    writer = IndexWriter(runtime.db, max_waiting=3, retry_s=2.0)
    for i in range(4):
        writer.add(finished(camera_id, T0 + i * 10_000))
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = db_url.rsplit("/", 1)[1]
    try:
        with caplog.at_level(logging.INFO, logger="pscs.recording.index_writer"):
            with admin.connect() as conn:  # the database goes away: no connection is allowed in
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            before = time.monotonic()
            writer.flush()
            assert "database unavailable" in caplog.text
            assert writer.due_at is not None and before + 2.0 <= writer.due_at <= time.monotonic() + 2.0
            assert len(writer) == 3  # the oldest left to reconcile, past max_waiting
            writer.flush()  # still away: one warning, not one a try
            assert caplog.text.count("database unavailable") == 1
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            writer.flush()
            assert "indexing caught up" in caplog.text
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    assert indexed(runtime) == [(camera_id, T0 + i * 10_000) for i in (1, 2, 3)]
    assert len(writer) == 0 and writer.due_at is None
