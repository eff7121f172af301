"""lsh_bands: runs with Bloom filters instead of one ever-growing biggest tier (archive.dedup)

The middle tier used to be merged into one biggest tier, a merge whose cost grew with the
archive, and every lookup sought in it. Full tiers now stay as runs, appended at the end
of the index and never merged again, each with a filter of its buckets, so that a lookup
skips the runs that cannot hold a bucket. Renumbered: the newest tier 2 -> -1; the biggest
(0) and the middle tier (1) become runs 0 and 1, still open: the next merge of the newest
tier seals run 0 (its filter is built then) and goes on filling run 1.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lsh_tiers") as batch:
        batch.add_column(sa.Column("filter", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("stamp", sa.BigInteger(), nullable=True))
    op.execute("UPDATE lsh_bands SET tier = -1 WHERE tier = 2")
    op.execute("UPDATE lsh_tiers SET tier = -1 WHERE tier = 2")
    # 0003 counted an empty biggest tier: an empty run would only be asked for nothing
    op.execute(
        "DELETE FROM lsh_tiers WHERE tier >= 0"
        " AND NOT EXISTS (SELECT 1 FROM lsh_bands WHERE lsh_bands.tier = lsh_tiers.tier)"
    )


def downgrade() -> None:
    # every run back into the biggest tier 0 (0005 has no runs), the newest tier to 2
    op.execute("UPDATE lsh_bands SET tier = 0 WHERE tier > 0")
    op.execute("UPDATE lsh_bands SET tier = 2 WHERE tier = -1")
    op.execute(
        "INSERT INTO lsh_tiers (tier, row_count) SELECT 0, 0"
        " WHERE NOT EXISTS (SELECT 1 FROM lsh_tiers WHERE tier = 0)"
    )
    op.execute(
        "UPDATE lsh_tiers SET row_count = (SELECT sum(row_count) FROM lsh_tiers WHERE tier >= 0)"
        " WHERE tier = 0"
    )
    op.execute("DELETE FROM lsh_tiers WHERE tier > 0")
    op.execute("UPDATE lsh_tiers SET tier = 2 WHERE tier = -1")
    with op.batch_alter_table("lsh_tiers") as batch:
        batch.drop_column("stamp")
        batch.drop_column("filter")
