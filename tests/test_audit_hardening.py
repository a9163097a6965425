"""M1 hardening: the audit trail cannot be quietly rewritten by someone who can write to the
database but holds neither the signing key's record of what it signed nor the anchors
shipped off the machine."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pscs.audit.events import Actor
from pscs.runtime import Runtime

ALICE = Actor("alice", 7, "10.0.0.5", "Mozilla/5.0")
TABLES = ("audit_events", "audit_checkpoints")


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
