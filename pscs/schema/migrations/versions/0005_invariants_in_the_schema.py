"""Invariants in the schema: CHECK constraints on states, streams and time ranges.

Every column with a fixed set of values (a state, a stream, a kind) accepts only those
values, every time range ends after it starts, a segment's end is its start plus its
duration, and counts and sizes are not negative (see docs/design/storage.md, "Invariants
in the schema").

Assumes the existing rows keep these rules, as every version of pscs before this one wrote
them.  Before changing anything the upgrade counts the rows that break each rule and, if
there are any, stops with the constraints and counts (the database is left as it was);
``SELECT * FROM <table> WHERE NOT (<condition>)`` lists them.

On SQLite a constraint is added by copying the table (Alembic's batch mode); the triggers
that keep ``audit_events`` append-only (0002) go with the old table and are created again.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STREAMS = "('main', 'sub')"
HOLD_REASONS = "('criminal_investigation', 'prosecution', 'foi_request', 'litigation')"
ENDS_AFTER_START = ("ends_after_start", "end_ms > start_ms")
ENDED_WITH_REASON = (
    "ended_with_reason",
    "(ended_at IS NULL AND end_reason IS NULL) OR (ended_at IS NOT NULL AND end_reason IS NOT NULL)",
)

# table -> [(name after "ck_<table>_", condition)], as the models were when this was written.
CHECKS: dict[str, list[tuple[str, str]]] = {
    "audit_events": [("outcome", "outcome IN ('allowed', 'denied', 'error')")],
    "cameras": [("kind", "kind IN ('fixed', 'ptz')")],
    "web_sessions": [("stage", "stage IN ('password', 'full')"), ENDED_WITH_REASON],
    "camera_health": [("state", "state IN ('online', 'connecting', 'offline', 'paused', 'stopped')")],
    "alerts": [
        ("kind", "kind IN ('camera_offline', 'storage_full')"),
        ("severity", "severity IN ('warning', 'critical')"),
    ],
    "segments": [
        ("stream", f"stream IN {STREAMS}"),
        ("end_is_start_plus_duration", "end_ms = start_ms + duration_ms"),
        ("duration_positive", "duration_ms > 0"),
        ("frames_positive", "frames > 0"),
        ("bytes_positive", "bytes > 0"),
    ],
    "recorded_ranges": [("stream", f"stream IN {STREAMS}"), ENDS_AFTER_START],
    "recording_gaps": [("stream", f"stream IN {STREAMS}"), ENDS_AFTER_START],
    "pending_deletes": [ENDS_AFTER_START],
    "holds": [
        ("status", "status IN ('active', 'released', 'lapsed')"),
        ("reason", f"reason IN {HOLD_REASONS}"),
        ENDS_AFTER_START,
        ("at_risk_segments_not_negative", "at_risk_segments >= 0"),
    ],
    "notices": [
        ("kind", "kind IN ('hold.review_due', 'hold.lapsed')"),
        ("has_recipient", "recipient IS NOT NULL OR recipient_role IS NOT NULL"),
    ],
    "disposal_records": [
        ("ends_after_start", "to_ms > from_ms"),
        ("segments_positive", "segments > 0"),
        ("bytes_not_negative", "bytes >= 0"),
    ],
    "retention_sweeps": [
        ("status", "status IN ('running', 'finished', 'failed', 'interrupted')"),
        (
            "counts_not_negative",
            "deleted >= 0 AND bytes >= 0 AND protected >= 0 AND resumed >= 0 AND holds_lapsed >= 0",
        ),
    ],
    "storage_requests": [
        ("status", "status IN ('submitted', 'approved', 'denied', 'fulfilled')"),
        ("reason", f"reason IN {HOLD_REASONS}"),
        ENDS_AFTER_START,
        ("seq_positive", "seq > 0"),
    ],
    "evidence_items": [
        ("status", "status IN ('preserved', 'disposed')"),
        ENDS_AFTER_START,
        (
            "disposed_at_with_status",
            "(status = 'disposed' AND disposed_at IS NOT NULL) OR (status <> 'disposed' AND disposed_at IS NULL)",
        ),
    ],
    "evidence_files": [("stream", f"stream IN {STREAMS}"), ENDS_AFTER_START, ("bytes_not_negative", "bytes >= 0")],
    "custody_events": [("action", "action IN ('intake', 'view', 'export', 'transfer', 'verify', 'disposal')")],
    "evidence_disposals": [
        ("status", "status IN ('proposed', 'executed', 'withdrawn')"),
        ("files_removed_not_negative", "files_removed >= 0"),
    ],
    "privacy_zone_versions": [
        ("status", "status IN ('proposed', 'approved', 'rejected', 'superseded', 'withdrawn')"),
        ("space", "space IN ('image', 'ptz')"),
        ("version_positive", "version > 0"),
    ],
    "mask_lifts": [
        ("status", "status IN ('requested', 'approved', 'rejected', 'ended', 'withdrawn')"),
        ("minutes_positive", "minutes > 0"),
    ],
    "purpose_sessions": [ENDED_WITH_REASON],
}

# As migration 0002 created them on SQLite.
AUDIT_TRIGGERS_SQLITE = [
    f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only (M1)'); END"
    for verb in ("UPDATE", "DELETE")
]
# The partial unique index of 0004: batch mode would copy it without its WHERE clause.
ONE_RUNNING_SWEEP = "uq_retention_sweeps_one_running"


def _without_sqlite_extras(table: str, change) -> None:  # noqa: ANN001 - a callable taking the batch op
    """Run ``change`` in a batch on ``table``, keeping what SQLite's table copy would lose."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite and table == "audit_events":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")
    if table == "retention_sweeps":
        op.drop_index(ONE_RUNNING_SWEEP, table_name="retention_sweeps")
    with op.batch_alter_table(table) as batch_op:
        change(batch_op)
    if table == "retention_sweeps":
        op.create_index(
            ONE_RUNNING_SWEEP,
            "retention_sweeps",
            ["status"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
    if sqlite and table == "audit_events":
        for statement in AUDIT_TRIGGERS_SQLITE:
            op.execute(statement)


def _rows_that_break(checks: dict[str, list[tuple[str, str]]]) -> list[str]:
    found = []
    for table, conditions in checks.items():
        for name, condition in conditions:
            count = op.get_bind().scalar(sa.text(f"SELECT COUNT(*) FROM {table} WHERE NOT ({condition})"))
            if count:
                found.append(f"ck_{table}_{name} ({condition}): {count} rows")
    return found


def upgrade() -> None:
    broken = _rows_that_break(CHECKS)
    if broken:
        raise RuntimeError("existing rows break the new constraints; nothing was changed: " + "; ".join(broken))
    for table, checks in CHECKS.items():

        def add(batch_op, table=table, checks=checks) -> None:  # noqa: ANN001
            for name, condition in checks:
                batch_op.create_check_constraint(op.f(f"ck_{table}_{name}"), condition)

        _without_sqlite_extras(table, add)


def downgrade() -> None:
    for table, checks in reversed(CHECKS.items()):

        def drop(batch_op, table=table, checks=checks) -> None:  # noqa: ANN001
            for name, _condition in checks:
                batch_op.drop_constraint(op.f(f"ck_{table}_{name}"), type_="check")

        _without_sqlite_extras(table, drop)
