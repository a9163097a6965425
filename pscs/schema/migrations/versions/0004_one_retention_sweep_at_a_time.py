"""One retention sweep at a time: who runs a round, its heartbeat, and a unique index on
the running one.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import pscs.db.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retention_sweeps") as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", pscs.db.base.UTCDateTime(), nullable=True))
    # Rounds left "running" by earlier versions have no holder to ask: they were interrupted.
    op.execute("UPDATE retention_sweeps SET status = 'interrupted' WHERE status = 'running'")
    op.create_index(
        "uq_retention_sweeps_one_running",
        "retention_sweeps",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.drop_index("uq_retention_sweeps_one_running", table_name="retention_sweeps")
    with op.batch_alter_table("retention_sweeps") as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("holder")
