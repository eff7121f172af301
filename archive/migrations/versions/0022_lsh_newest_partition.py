"""lsh_bands partitioned on PostgreSQL: the newest tier in a table of its own, vacuumed after
each merge, so that its dead rows do not pile up in the band index

Each merge of the newest tier into a run deletes its rows (172,000 a merge). On
PostgreSQL a deleted row stays in the table and its B-tree until VACUUM, so the newest
tier's part of the one index over every tier grew by a merge's rows each time: with
autovacuum off, a batch of 500 articles cost 0.83 ms an article at 10,000 articles and
1.56 at 200,000 (bench/dedup.py); with it on, a vacuum of the whole band index (1.5 GB at
a million articles) would be due every 50 merges. Now `lsh_bands` is partitioned by
tier: `lsh_bands_newest` holds tier -1 and `lsh_bands_runs` (the default partition) the
runs, and the process that merged vacuums `lsh_bands_newest` alone once its transaction
has committed (archive.dedup.vacuum_newest). Statements name `lsh_bands` as before.

On SQLite nothing changes: a deleted row's space is reused at once.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("ALTER TABLE lsh_bands RENAME TO lsh_bands_runs")
    op.execute("ALTER TABLE lsh_bands_runs RENAME CONSTRAINT pk_lsh_bands TO pk_lsh_bands_runs")
    op.execute(
        "CREATE TABLE lsh_bands (tier smallint NOT NULL, band smallint NOT NULL,"
        " bucket bigint NOT NULL, article_id integer NOT NULL,"
        " CONSTRAINT pk_lsh_bands PRIMARY KEY (tier, bucket, band, article_id))"
        " PARTITION BY LIST (tier)"
    )
    op.execute("CREATE TABLE lsh_bands_newest PARTITION OF lsh_bands FOR VALUES IN (-1)")
    op.execute(
        "INSERT INTO lsh_bands_newest SELECT tier, band, bucket, article_id FROM lsh_bands_runs"
        " WHERE tier = -1 ORDER BY bucket"
    )
    op.execute("DELETE FROM lsh_bands_runs WHERE tier = -1")
    # (its key, the same as the parent's, becomes a partition of the parent's key)
    op.execute("ALTER TABLE lsh_bands ATTACH PARTITION lsh_bands_runs DEFAULT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("ALTER TABLE lsh_bands DETACH PARTITION lsh_bands_runs")
    op.execute(
        "INSERT INTO lsh_bands_runs SELECT tier, band, bucket, article_id FROM lsh_bands_newest"
    )
    op.execute("DROP TABLE lsh_bands")
    op.execute("ALTER TABLE lsh_bands_runs RENAME TO lsh_bands")
    op.execute("ALTER TABLE lsh_bands RENAME CONSTRAINT pk_lsh_bands_runs TO pk_lsh_bands")
