"""PostgreSQL writes band rows straight into the current run: the newest tier's rows moved

Since this revision, clustering on PostgreSQL writes a batch's lsh_bands rows into the
current run (archive.dedup.writes_runs) instead of the newest tier, which it merged into
a run every 4,096 articles (a tenth of clustering's time, bench/dedup.py). The rows the
newest tier still holds become a run of their own, after the others, with no filter yet:
until the next settling builds it from the run's rows (as for a run from before
migration 0009), that run is asked for every bucket. The log, the newest tier's buckets,
is emptied with them. On SQLite nothing changes.

Downgrade leaves the rows where they are: the code before reads a run without a filter
the same way.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    rows = conn.scalar(sa.text("SELECT count(*) FROM lsh_bands_newest")) or 0
    if rows:
        last = conn.scalar(sa.text("SELECT max(tier) FROM lsh_tiers WHERE tier >= 0"))
        run = 0 if last is None else int(last) + 1
        conn.execute(
            sa.text(
                "INSERT INTO lsh_bands_runs (tier, band, bucket, article_id)"
                " SELECT :run, band, bucket, article_id FROM lsh_bands_newest ORDER BY bucket"
            ),
            {"run": run},
        )
        conn.execute(sa.text("TRUNCATE lsh_bands_newest"))
        conn.execute(
            sa.text("INSERT INTO lsh_tiers (tier, row_count) VALUES (:run, :rows)"),
            {"run": run, "rows": rows},
        )
    conn.execute(sa.text("UPDATE lsh_tiers SET row_count = 0 WHERE tier = -1"))
    conn.execute(sa.text("DELETE FROM lsh_log"))


def downgrade() -> None:
    pass
