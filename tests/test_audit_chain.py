"""M1: the audit trail is append-only in the database and tamper-evident without it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pscs.audit.chain import (
    FIELDS,
    GENESIS_HASH,
    Checkpoint,
    canonical_details,
    checkpoint_message,
    event_hash,
    verify_rows,
)
from pscs.audit.events import Actor, Outcome
from pscs.audit.log import verify_database
from pscs.signing import Signer

ALICE = Actor("alice", 7, "10.0.0.5", "Mozilla/5.0")


def fill(rt, n: int) -> None:
    for i in range(n):
        rt.audit.record(
            "video.live.start",
            ALICE,
            Outcome.ALLOWED,
            object_type="camera",
            object_id=i % 3,
            clauses=("U1",),
            purpose_session_id=1,
            details={"i": i, "note": "naïve ✓"},
        )


def drop_triggers(rt) -> None:
    with rt.db.engine.begin() as conn:
        if rt.db.is_sqlite:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_no_update_delete ON audit_events"))


def sql(rt, statement: str, **params) -> None:
    with rt.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def verify(rt):
    return verify_database(rt.db, rt.audit_public_key_path.read_bytes())


def test_M1_intact_trail_verifies(runtime):
    fill(runtime, 30)
    result = verify(runtime)
    assert result.ok, result.reason
    assert result.events_checked >= 30 and result.checkpoints_checked >= 1


def test_M1_database_refuses_update_and_delete(runtime):
    fill(runtime, 3)
    for statement in (
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            sql(runtime, statement)
    assert verify(runtime).ok


def test_M1_altered_row_is_named(runtime):
    fill(runtime, 10)
    drop_triggers(runtime)
    sql(runtime, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 6")
    result = verify(runtime)
    assert not result.ok and result.first_bad_seq == 6 and "altered" in result.reason


def test_M1_deleted_row_is_named(runtime):
    fill(runtime, 10)
    drop_triggers(runtime)
    sql(runtime, "DELETE FROM audit_events WHERE seq = 4")
    result = verify(runtime)
    assert not result.ok and result.first_bad_seq == 4 and "missing" in result.reason


def test_M1_deleted_tail_is_named(runtime):
    fill(runtime, 10)
    last = runtime.audit.search(limit=1)[0].seq
    drop_triggers(runtime)
    sql(runtime, "DELETE FROM audit_events WHERE seq >= :s", s=last - 1)
    result = verify(runtime)
    assert not result.ok and result.first_bad_seq == last - 1


def test_M1_inserted_row_is_named(runtime):
    fill(runtime, 10)
    drop_triggers(runtime)
    # Make room at seq 5 by moving later rows up, then forge an event there.
    last = runtime.audit.search(limit=1)[0].seq
    for seq in range(last, 4, -1):
        sql(runtime, "UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)
    sql(
        runtime,
        "INSERT INTO audit_events (seq, ts_us, actor_id, actor, source_ip, user_agent, action, object_type, "
        "object_id, purpose_session_id, clauses, outcome, details, prev_hash, hash) SELECT 5, ts_us, actor_id, "
        "'mallory', source_ip, user_agent, 'user.create', object_type, object_id, purpose_session_id, clauses, "
        "outcome, details, hash, hash FROM audit_events WHERE seq = 4",
    )
    result = verify(runtime)
    assert not result.ok and result.first_bad_seq == 5


def test_M1_swapped_rows_are_named(runtime):
    fill(runtime, 10)
    drop_triggers(runtime)
    sql(runtime, "UPDATE audit_events SET seq = -1 WHERE seq = 7")
    sql(runtime, "UPDATE audit_events SET seq = 7 WHERE seq = 8")
    sql(runtime, "UPDATE audit_events SET seq = 8 WHERE seq = -1")
    result = verify(runtime)
    assert not result.ok and result.first_bad_seq == 7


def test_M1_rewritten_chain_is_caught_by_signed_checkpoint(runtime):
    """An attacker who recomputes every hash after an edit still cannot forge the signature."""
    fill(runtime, 10)
    runtime.audit.checkpoint()
    drop_triggers(runtime)
    sql(runtime, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    with runtime.db.engine.begin() as conn:
        rows = conn.execute(text(f"SELECT {', '.join(FIELDS)} FROM audit_events ORDER BY seq")).all()
        prev = GENESIS_HASH
        for row in rows:
            new = event_hash(prev, list(row))
            conn.execute(
                text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": new, "s": row[0]},
            )
            prev = new
        conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})
    result = verify(runtime)
    assert not result.ok and "rewritten" in result.reason
    assert result.first_bad_seq <= 3


def test_M1_cli_verify_exits_nonzero_naming_the_seq(sqlite_runtime, monkeypatch):
    rt = sqlite_runtime
    fill(rt, 5)
    env = {"PSCS_DATA_DIR": str(rt.settings.data_dir), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "pscs.cli.main", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout
    drop_triggers(rt)
    sql(rt, "UPDATE audit_events SET details = '{}' WHERE seq = 4")
    bad = subprocess.run(
        [sys.executable, "-m", "pscs.cli.main", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 3
    assert "seq 4" in bad.stderr


def test_M1_concurrent_appends_form_one_chain(sqlite_runtime):
    from concurrent.futures import ThreadPoolExecutor

    rt = sqlite_runtime
    with ThreadPoolExecutor(8) as pool:
        seqs = list(pool.map(lambda i: rt.audit.record("test.concurrent", ALICE, details={"i": i}), range(400)))
    assert len(set(seqs)) == 400
    assert verify(rt).ok


# Property test over the pure chain functions: random streams, one random tampering. ------------
KEY = Signer(Ed25519PrivateKey.generate())
event_values = st.fixed_dictionaries(
    {
        "actor": st.text(min_size=1, max_size=12),
        "action": st.sampled_from(["auth.login", "video.live.start", "user.create", "audit.export"]),
        "outcome": st.sampled_from(["allowed", "denied", "error"]),
        "object_id": st.one_of(st.none(), st.text(max_size=8)),
        "details": st.dictionaries(
            st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8), st.none()), max_size=3
        ),
    }
)


def build_chain(events: list[dict]) -> tuple[list[tuple], list[Checkpoint], tuple[int, str]]:
    rows, prev, checkpoints = [], GENESIS_HASH, []
    for seq, ev in enumerate(events, start=1):
        values = [
            seq,
            1_700_000_000_000_000 + seq,
            None,
            ev["actor"],
            None,
            None,
            ev["action"],
            None,
            ev["object_id"],
            None,
            "M1",
            ev["outcome"],
            canonical_details(ev["details"]),
        ]
        h = event_hash(prev, values)
        rows.append((*values, prev, h))
        prev = h
        if seq % 4 == 0:
            ts = 1_800_000_000_000_000 + seq
            checkpoints.append(Checkpoint(seq, ts, h, KEY.key_id, KEY.sign(checkpoint_message(seq, h, ts))))
    return rows, checkpoints, (len(rows), prev)


tampering = st.sampled_from(["alter", "delete", "insert", "swap"])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events=st.lists(event_values, min_size=2, max_size=25), how=tampering, data=st.data())
def test_M1_property_any_single_tampering_is_found_at_its_seq(events, how, data):
    rows, checkpoints, head = build_chain(events)
    assert verify_rows(rows, checkpoints, KEY.public_key, head).ok
    n = len(rows)
    i = data.draw(st.integers(0, n - 1 if how != "swap" else n - 2), label="row index")
    bad = [list(r) for r in rows]
    if how == "alter":
        column = data.draw(st.integers(1, len(FIELDS) - 1), label="column")
        original = bad[i][column]
        bad[i][column] = "tampered" if original != "tampered" else "other"
        if column == 12:
            bad[i][column] = json.dumps({"tampered": True})
    elif how == "delete":
        del bad[i]
    elif how == "insert":
        forged = list(bad[i])
        forged[3] = "mallory"
        bad.insert(i, forged)
        for j in range(i, len(bad)):
            bad[j][0] = j + 1
    else:  # swap contents, keep the sequence numbers in place
        bad[i], bad[i + 1] = bad[i + 1], bad[i]
        bad[i][0], bad[i + 1][0] = i + 1, i + 2
    result = verify_rows([tuple(r) for r in bad], checkpoints, KEY.public_key, head)
    assert not result.ok
    assert result.first_bad_seq == i + 1, result.reason
