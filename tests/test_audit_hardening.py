"""M1 hardening: the audit trail cannot be quietly rewritten by someone who can write to the
database but holds neither the signing key's record of what it signed nor the anchors
shipped off the machine."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner, Result

from pscs.audit import log as audit_log
from pscs.audit.chain import FIELDS, event_hash
from pscs.audit.events import Actor
from pscs.audit.log import verify_database
from pscs.audit.signed_heads import SigningRefused, parse_heads
from pscs.cli.main import app as cli_app
from pscs.config import Settings, get_settings
from pscs.install import init_installation
from pscs.policy.profile import default_profile_text
from pscs.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD

ALICE = Actor("alice", 7, "10.0.0.5", "Mozilla/5.0")
TABLES = ("audit_events", "audit_checkpoints")
EVERY_EVENTS, EVERY_SECONDS = 10, 60
Cli = Callable[..., Result]


@pytest.fixture
def rt(tmp_path: Path, db_url: str | None) -> Iterator[Runtime]:
    """An installation whose profile signs the head every 10 events or 60 seconds."""
    profiles = Path(audit_log.__file__).parents[1] / "policy" / "profiles"
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        default_profile_text()
        .replace("checkpoint_every_events: 1000", f"checkpoint_every_events: {EVERY_EVENTS}")
        .replace("checkpoint_every_seconds: 60", f"checkpoint_every_seconds: {EVERY_SECONDS}")
    )
    shutil.copy(profiles / "norwich-policy.txt", tmp_path / "norwich-policy.txt")
    settings = Settings(data_dir=tmp_path / "var", database_url=db_url, policy_profile=profile)
    result = init_installation(settings, admin_password=ADMIN_PASSWORD)
    assert result.runtime.audit.policy.every_events == EVERY_EVENTS
    yield result.runtime
    result.runtime.close()


@pytest.fixture
def cli(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """``pscs …`` in this process, on the test's installation."""
    monkeypatch.setenv("PSCS_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("PSCS_POLICY_PROFILE", str(rt.settings.policy_profile))
    if rt.settings.database_url:
        monkeypatch.setenv("PSCS_DATABASE_URL", rt.settings.database_url)
    else:
        monkeypatch.delenv("PSCS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, list(args))
    get_settings.cache_clear()


class FakeTime:
    """The audit writer's clock, moved by the test (microseconds)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = audit_log.now_us()
        monkeypatch.setattr(audit_log, "now_us", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000)


def fill(rt: Runtime, n: int) -> None:
    for i in range(n):
        rt.audit.record("video.live.start", ALICE, object_type="camera", object_id=i % 3, details={"i": i})


def sql(rt: Runtime, statement: str, **params: object) -> None:
    with rt.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def drop_triggers(rt: Runtime) -> None:
    """What an attacker with write access to the database does first."""
    with rt.db.engine.begin() as conn:
        for table in TABLES:
            if rt.db.is_sqlite:
                conn.execute(text(f"DROP TRIGGER {table}_no_update"))
                conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
            else:
                conn.execute(text(f"DROP TRIGGER {table}_no_update_delete ON {table}"))


def restore_triggers(rt: Runtime) -> None:
    """... and last, so that the database looks as it did."""
    functions = {"audit_events": "pscs_audit_append_only", "audit_checkpoints": "pscs_audit_checkpoints_append_only"}
    with rt.db.engine.begin() as conn:
        for table in TABLES:
            if rt.db.is_sqlite:
                for verb in ("UPDATE", "DELETE"):
                    conn.execute(
                        text(
                            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only (M1)'); END"
                        )
                    )
            else:
                conn.execute(
                    text(
                        f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                        f"FOR EACH ROW EXECUTE FUNCTION {functions[table]}()"
                    )
                )


def test_M1_database_refuses_changing_or_removing_checkpoints(runtime):
    fill(runtime, 5)
    runtime.audit.checkpoint()
    for statement in (
        "UPDATE audit_checkpoints SET head_hash = 'x'",
        "DELETE FROM audit_checkpoints",
        *(() if runtime.db.is_sqlite else ("TRUNCATE audit_checkpoints",)),
    ):
        with pytest.raises(DBAPIError, match="audit_checkpoints is append-only"):
            sql(runtime, statement)
    drop_triggers(runtime)
    restore_triggers(runtime)
    with pytest.raises(DBAPIError, match="append-only"):
        sql(runtime, "DELETE FROM audit_checkpoints")


def verify(rt: Runtime):
    return verify_database(rt.db, rt.audit_public_key_path.read_bytes(), cadence=rt.audit.policy)


def checkpoint_seqs(rt: Runtime) -> list[int]:
    with rt.db.engine.connect() as conn:
        return list(conn.execute(text("SELECT seq FROM audit_checkpoints ORDER BY seq")).scalars())


def last_seq(rt: Runtime) -> int:
    return rt.audit.search(limit=1)[0].seq


def test_M1_writer_signs_at_least_every_n_events_and_s_seconds(rt, monkeypatch):
    clock = FakeTime(monkeypatch)
    fill(rt, 25)  # one batch at a time: the count limit
    for _ in range(4):  # and 40 s apart: the time limit closes a stretch before it spans 60 s
        clock.advance(40)
        fill(rt, 1)
    seqs = [0, *checkpoint_seqs(rt)]
    assert all(b - a <= EVERY_EVENTS for a, b in zip(seqs, seqs[1:], strict=False))
    with rt.db.engine.connect() as conn:
        ts = dict(conn.execute(text("SELECT seq, ts_us FROM audit_events")).all())
    for a, b in zip(seqs, seqs[1:], strict=False):
        assert max(ts[s] for s in range(a + 1, b + 1)) - ts[a + 1] <= EVERY_SECONDS * 1_000_000
    result = verify(rt)
    assert result.ok, result.problems


def test_M1_one_batch_is_signed_inside_at_the_cadence(rt):
    """Group commit writes many events in one transaction; the signatures fall inside it."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: rt.audit.record("test.concurrent", ALICE, details={"i": i}), range(200)))
    seqs = [0, *checkpoint_seqs(rt)]
    assert max(b - a for a, b in zip(seqs, seqs[1:], strict=False)) <= EVERY_EVENTS
    assert verify(rt).ok


def test_M1_deleting_every_checkpoint_is_found(rt):
    fill(rt, 30)
    rt.audit.checkpoint()
    assert verify(rt).ok
    drop_triggers(rt)
    sql(rt, "DELETE FROM audit_checkpoints")
    restore_triggers(rt)
    result = verify(rt)
    assert not result.ok and result.first_bad_seq == 1
    assert "no signed checkpoint between them" in result.reason


def test_M1_removed_checkpoints_at_the_end_are_found_once_the_cadence_has_passed(rt, monkeypatch):
    clock = FakeTime(monkeypatch)
    fill(rt, 25)
    rt.audit.checkpoint()
    kept = checkpoint_seqs(rt)[-2]
    drop_triggers(rt)
    sql(rt, "DELETE FROM audit_checkpoints WHERE seq > :s", s=kept)
    restore_triggers(rt)
    assert verify(rt).ok  # within the cadence the newest events may still be unsigned
    clock.advance(3 * EVERY_SECONDS)
    result = verify(rt)
    assert not result.ok and result.first_bad_seq == kept + 1
    assert f"the checkpoints after {kept} were removed" in result.reason


def rewrite(rt: Runtime, *, cut: range, keep_checkpoints_before: int | None) -> None:
    """The attack of issue 16: with write access to the database only, delete events in the
    middle, renumber and re-hash the rest, delete the checkpoints after the cut (or all),
    and put the triggers back."""
    drop_triggers(rt)
    with rt.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= :a AND seq < :b"), {"a": cut.start, "b": cut.stop})
        later = conn.execute(text("SELECT seq FROM audit_events WHERE seq >= :b ORDER BY seq"), {"b": cut.stop})
        for (seq,) in later.all():
            conn.execute(
                text("UPDATE audit_events SET seq = :new WHERE seq = :old"), {"new": seq - len(cut), "old": seq}
            )
        prev = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": cut.start - 1}).scalar_one()
        rows = conn.execute(
            text(f"SELECT {', '.join(FIELDS)} FROM audit_events WHERE seq >= :a ORDER BY seq"), {"a": cut.start}
        ).all()
        for row in rows:
            new = event_hash(prev, list(row))
            conn.execute(
                text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": new, "s": row[0]},
            )
            prev = new
        if keep_checkpoints_before is None:
            conn.execute(text("DELETE FROM audit_checkpoints"))
        else:
            conn.execute(text("DELETE FROM audit_checkpoints WHERE seq >= :s"), {"s": keep_checkpoints_before})
        last_cp = conn.execute(text("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints")).scalar_one()
        conn.execute(
            text(
                "UPDATE audit_head SET seq = :n, hash = :h, checkpoint_seq = :c, unsigned_since_us = "
                "(SELECT ts_us FROM audit_events WHERE seq = :c + 1)"
            ),
            {"n": rows[-1][0], "h": prev, "c": last_cp},
        )
    restore_triggers(rt)


@pytest.mark.parametrize("checkpoints", ["after the cut", "all"])
def test_M1_full_rewrite_then_checkpoint_still_fails_verification(rt, cli, checkpoints):
    fill(rt, 60)
    assert cli("audit", "checkpoint").exit_code == 0
    before = cli("audit", "verify")
    assert before.exit_code == 0, before.output
    first_cut = 20
    keep = None if checkpoints == "all" else first_cut
    last_kept_cp = 0 if keep is None else max(s for s in checkpoint_seqs(rt) if s < first_cut)
    rewrite(rt, cut=range(first_cut, first_cut + 5), keep_checkpoints_before=keep)
    signed = cli("audit", "checkpoint")  # what the service does every minute
    assert signed.exit_code == 3 and "not signed" in signed.output and "cut off" in signed.output
    result = cli("audit", "verify")
    assert result.exit_code == 3, result.output
    assert f"BROKEN at seq {last_kept_cp + 1}" in result.output
    assert "no signed checkpoint between them" in result.output  # the cadence
    assert "does not match the chain" in result.output  # the signer's record


def test_M1_cadence_alone_finds_the_rewrite_when_the_forged_head_is_signed(rt):
    """Were the forged head signed anyway (a signer without its record), the stretch the
    removed checkpoints leave is still too long."""
    fill(rt, 60)
    rt.audit.checkpoint()
    rewrite(rt, cut=range(20, 25), keep_checkpoints_before=20)
    unrecorded = audit_log.AuditLog(rt.db, rt.audit.signer, rt.audit.policy, record=None)
    assert unrecorded.checkpoint() == last_seq(rt)
    result = verify(rt)  # the database alone, without the signer's record
    assert not result.ok and "no signed checkpoint between them" in result.reason


def test_M1_signer_records_every_head_it_signs(rt):
    fill(rt, 35)
    rt.audit.checkpoint()
    recorded = rt.audit.head_record.read()
    assert [h.seq for h in recorded] == checkpoint_seqs(rt)
    assert recorded[-1].seq == last_seq(rt)
    assert oct(rt.audit.head_record.path.stat().st_mode & 0o777) == "0o600"
    assert rt.audit.head_record.path.parent == rt.settings.keys_dir


def test_M1_signer_refuses_a_head_that_does_not_extend_the_last_it_signed(rt):
    """Even with every checkpoint left in place and the timestamps kept within the cadence,
    a rewritten chain is not signed, and a cut-off one is found."""
    fill(rt, 8)
    rt.audit.checkpoint()
    signed = last_seq(rt)
    drop_triggers(rt)
    sql(rt, "UPDATE audit_events SET actor = 'mallory' WHERE seq = :s", s=signed)
    with rt.db.engine.begin() as conn:
        row = conn.execute(
            text(f"SELECT {', '.join(FIELDS)}, prev_hash FROM audit_events WHERE seq = :s"), {"s": signed}
        )
        values = list(row.one())
        forged = event_hash(values[-1], values[:-1])
        conn.execute(text("UPDATE audit_events SET hash = :h WHERE seq = :s"), {"h": forged, "s": signed})
        conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": forged})
    restore_triggers(rt)
    fill(rt, 2)  # appends still work; their head is left unsigned
    with pytest.raises(SigningRefused, match=f"event {signed} is not the one this signer signed"):
        rt.audit.checkpoint()
    assert checkpoint_seqs(rt)[-1] == signed


def test_M1_a_trail_cut_off_at_a_checkpoint_is_found_by_the_signers_record(rt, cli):
    fill(rt, 30)
    rt.audit.checkpoint()
    keep = checkpoint_seqs(rt)[-2]
    drop_triggers(rt)
    sql(rt, "DELETE FROM audit_events WHERE seq > :s", s=keep)
    sql(rt, "DELETE FROM audit_checkpoints WHERE seq > :s", s=keep)
    with rt.db.engine.begin() as conn:
        kept_hash = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": keep}).scalar_one()
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h, checkpoint_seq = :s, unsigned_since_us = NULL"),
            {"s": keep, "h": kept_hash},
        )
    restore_triggers(rt)
    assert verify(rt).ok  # the database alone looks like a quiet installation
    result = cli("audit", "verify")
    assert result.exit_code == 3
    assert f"BROKEN at seq {keep + 1}" in result.output and "events were cut off" in result.output


@pytest.fixture
def anchored(rt: Runtime, tmp_path: Path) -> Iterator[tuple[Runtime, Path]]:
    """The installation again, sending its signed heads to a file that stands for another host."""
    anchor = tmp_path / "elsewhere" / "pscs-heads.jsonl"
    anchor.parent.mkdir()
    settings = rt.settings.model_copy(update={"audit_anchors": [f"file://{anchor}"]})
    other = Runtime.open(settings)
    yield other, anchor
    other.close()


def test_M1_signed_heads_reach_the_file_anchor(anchored):
    rt, anchor = anchored
    fill(rt, 25)
    rt.audit.checkpoint()
    sent = parse_heads(anchor.read_text(), str(anchor))
    assert len(sent) >= 3 and {h.seq for h in sent} <= set(checkpoint_seqs(rt))
    assert sent[-1].seq == last_seq(rt) and sent == rt.audit.head_record.read()[-len(sent) :]
    assert oct(anchor.stat().st_mode & 0o777) == "0o640"


def test_M1_an_unreachable_anchor_does_not_stop_the_trail(rt, tmp_path):
    missing = tmp_path / "not-mounted" / "heads.jsonl"
    other = Runtime.open(rt.settings.model_copy(update={"audit_anchors": [str(missing)]}))
    try:
        fill(other, 12)
        assert other.audit.checkpoint() == last_seq(other)
    finally:
        other.close()
    assert not missing.exists() and verify(rt).ok


def test_M1_anchors_catch_a_rewrite_by_someone_who_also_holds_the_key(anchored, cli, tmp_path):
    """Root on the server can rewrite the chain, delete the signer's record and sign the
    forged head with the key; the heads already sent elsewhere still disagree."""
    rt, anchor = anchored
    fill(rt, 60)
    rt.audit.checkpoint()
    intact = cli("audit", "verify", "--anchors", str(anchor))
    assert intact.exit_code == 0, intact.output
    anchored_seqs = [h.seq for h in parse_heads(anchor.read_text(), str(anchor))]
    rewrite(rt, cut=range(30, 35), keep_checkpoints_before=30)
    rt.audit.head_record.path.unlink()
    unrecorded = audit_log.AuditLog(rt.db, rt.audit.signer, rt.audit.policy, record=None)
    unrecorded.checkpoint()
    result = cli("audit", "verify", "--anchors", str(anchor))
    assert result.exit_code == 3, result.output
    first_mismatch = min(s for s in anchored_seqs if s >= 30)
    assert f"anchored head ({anchor}) at {first_mismatch}" in result.output
    assert "does not match the chain" in result.output
    unreadable = cli("audit", "verify", "--anchors", str(tmp_path / "nowhere.jsonl"))
    assert unreadable.exit_code == 2 and "cannot be read" in unreadable.output


def test_M1_anchor_urls_are_checked():
    from pscs.audit.anchors import FileAnchor, anchor_from_url

    assert anchor_from_url("file:///srv/heads.jsonl") == FileAnchor("file:///srv/heads.jsonl", Path("/srv/heads.jsonl"))
    for bad in ("heads.jsonl", "ftp://host/x", "s3://"):
        with pytest.raises(ValueError, match="anchor"):
            anchor_from_url(bad)


def test_M1_web_verification_lists_every_break(rt):
    from tests.web_helpers import client_for, csrf_of, make_user, sign_in

    make_user(rt, "audrey", ["auditor"])
    auditor = sign_in(client_for(rt), "audrey")
    fill(rt, 30)
    rewrite(rt, cut=range(15, 18), keep_checkpoints_before=None)
    body = auditor.post("/api/v1/audit/verify", headers={"x-csrf-token": csrf_of(auditor)}).json()
    assert body["ok"] is False and body["first_bad_seq"] == 1
    reasons = [p["reason"] for p in body["problems"]]
    assert any("no signed checkpoint between them" in r for r in reasons)
    assert any(r.startswith("events") and "head in the signer's record" in r for r in reasons)


def test_M1_upgrade_to_0006_starts_the_cadence_where_the_trail_is(tmp_path, db_url):
    from alembic import command
    from sqlalchemy import create_engine

    from pscs.schema.migrate import alembic_config, current_revision, upgrade

    url = db_url or f"sqlite:///{tmp_path / 'pscs.db'}"
    upgrade(url, "0005")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for seq in (1, 2, 3):
                conn.execute(
                    text(
                        "INSERT INTO audit_events (seq, ts_us, actor, action, clauses, outcome, details, prev_hash, "
                        "hash) VALUES (:s, :t, 'a', 'x', 'M1', 'allowed', '{}', 'p', 'h')"
                    ),
                    {"s": seq, "t": 1000 * seq},
                )
            conn.execute(text("INSERT INTO audit_head VALUES (1, 3, 'h', 1, 1500)"))
            conn.execute(text("INSERT INTO audit_checkpoints VALUES (1, 1500, 'h', 'k', 's')"))
        upgrade(url, "0006")
        assert current_revision(url) == "0006"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT unsigned_since_us FROM audit_head")).scalar_one() == 2000
        with pytest.raises(DBAPIError, match="audit_checkpoints is append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_checkpoints"))
        engine.dispose()
        command.downgrade(alembic_config(url), "0005")
        assert current_revision(url) == "0005"
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_checkpoints"))
            assert "unsigned_since_us" not in list(conn.execute(text("SELECT * FROM audit_head")).keys())
    finally:
        engine.dispose()
