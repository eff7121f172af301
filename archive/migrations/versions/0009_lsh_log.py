"""lsh_log: the buckets of the newest tier, so that runs need not be read to be filtered

Every run of lsh_bands, the one being filled included, now has a Bloom filter, updated
at each merge from the buckets the merged batches logged, instead of one built by
reading a whole run (688,000 rows) when it was full; and lookups ask the newest tier only
for buckets in the log (archive.dedup). The rows already in the newest tier are logged
here; runs without a filter get one from their rows at the next merge.

And no index on content_hash: exact copies share all their buckets and are found through
lsh_bands; the index's random keys dirtied about a page an article at every commit, a
share of the cost that grew with the archive (bench/dedup.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_articles_content_prefix", table_name="articles")
    log = op.create_table(
        "lsh_log",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("buckets", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lsh_log")),
    )
    bind = op.get_bind()
    buckets = list(
        bind.execute(sa.text("SELECT DISTINCT bucket FROM lsh_bands WHERE tier = -1")).scalars()
    )
    if buckets:
        op.bulk_insert(
            log,
            [
                {
                    "id": int.from_bytes(os.urandom(7), "little"),
                    "buckets": struct.pack(f"<{len(buckets)}q", *buckets),
                }
            ],
        )


def downgrade() -> None:
    # 0008's code treats a run with a filter as sealed: the one being filled starts anew
    op.drop_table("lsh_log")
    op.create_index(
        "ix_articles_content_prefix", "articles", [sa.text("substr(content_hash, 1, 16)")]
    )
