"""Signed checkpoints are append-only like the events they sign (M1): the database refuses
UPDATE and DELETE on ``audit_checkpoints`` (and TRUNCATE on PostgreSQL), so removing the
signatures after a cut takes dropping the triggers first, as rewriting events does.

``audit_head`` gains ``unsigned_since_us``, the time of the first event after the last
checkpoint, from which the writer counts the checkpoint cadence's time limit.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

MESSAGE = "audit_checkpoints is append-only (M1)"


def upgrade() -> None:
    op.add_column("audit_head", sa.Column("unsigned_since_us", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE audit_head SET unsigned_since_us = (SELECT ts_us FROM audit_events "
        "WHERE audit_events.seq = audit_head.checkpoint_seq + 1)"
    )
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_checkpoints_no_{verb.lower()} BEFORE {verb} ON audit_checkpoints "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
        return
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION pscs_audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints "
        "FOR EACH ROW EXECUTE FUNCTION pscs_audit_checkpoints_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints "
        "FOR EACH STATEMENT EXECUTE FUNCTION pscs_audit_checkpoints_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoints_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_checkpoints_no_delete")
        with op.batch_alter_table("audit_head") as batch_op:
            batch_op.drop_column("unsigned_since_us")
        return
    op.drop_column("audit_head", "unsigned_since_us")
    op.execute("DROP TRIGGER IF EXISTS audit_checkpoints_no_update_delete ON audit_checkpoints")
    op.execute("DROP TRIGGER IF EXISTS audit_checkpoints_no_truncate ON audit_checkpoints")
    op.execute("DROP FUNCTION IF EXISTS pscs_audit_checkpoints_append_only()")
