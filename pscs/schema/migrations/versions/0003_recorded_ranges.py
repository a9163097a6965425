"""Recorded ranges: the segment index summarised for the playback timeline, filled from the
segments already indexed.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# As pscs.storage.ranges.REBUILD_SQL was when this revision was written (1500 ms tolerance).
BACKFILL = """
INSERT INTO recorded_ranges (camera_id, stream, start_ms, end_ms)
SELECT camera_id, stream, MIN(start_ms), MAX(end_ms) FROM (
    SELECT camera_id, stream, start_ms, end_ms,
           SUM(starts_range) OVER (PARTITION BY camera_id, stream ORDER BY start_ms ROWS UNBOUNDED PRECEDING) AS run
    FROM (
        SELECT camera_id, stream, start_ms, end_ms,
               CASE WHEN start_ms - LAG(end_ms) OVER (PARTITION BY camera_id, stream ORDER BY start_ms)
                         <= 1500 THEN 0 ELSE 1 END AS starts_range
        FROM segments
    ) AS marked
) AS numbered
GROUP BY camera_id, stream, run
"""


def upgrade() -> None:
    op.create_table(
        "recorded_ranges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("camera_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=10), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], name=op.f("fk_recorded_ranges_camera_id_cameras")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recorded_ranges")),
    )
    op.create_index("ix_recorded_ranges_camera_end", "recorded_ranges", ["camera_id", "stream", "end_ms"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_recorded_ranges_camera_end", table_name="recorded_ranges")
    op.drop_table("recorded_ranges")
