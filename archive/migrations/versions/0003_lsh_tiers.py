"""lsh_bands in tiers, merged down when full; lsh_keys remembers each article's buckets

Random bucket keys made every commit dirty one page of the whole band index per row, so
the cost of clustering an article grew with the archive (bench/dedup.py). New rows now go
to a small tier. The article_id index and foreign key of lsh_bands go (they made merging
a tier 7x slower); an article's rows are found through lsh_keys instead. Existing rows
are kept, in tier 0.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby, islice

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _set_rows_aside(article_index: bool) -> None:
    """Copy lsh_bands's rows to lsh_bands_copy and drop the table, to be made anew."""
    op.execute("CREATE TABLE lsh_bands_copy AS SELECT band, bucket, article_id FROM lsh_bands")
    if article_index:
        op.drop_index("ix_lsh_bands_article", table_name="lsh_bands")
    op.drop_table("lsh_bands")


def _keys(rows: Iterable[tuple[int, int, int]]) -> Iterator[dict[str, object]]:
    """One lsh_keys row an article, from its (article_id, band, bucket) rows in order."""
    for article_id, group in groupby(rows, key=lambda row: row[0]):
        buckets = [row[2] for row in group]
        yield {"article_id": article_id, "buckets": struct.pack(f"<{len(buckets)}q", *buckets)}


def upgrade() -> None:
    _set_rows_aside(article_index=True)
    op.create_table(
        "lsh_bands",
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("band", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tier", "bucket", "band", "article_id", name=op.f("pk_lsh_bands")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "lsh_tiers",
        sa.Column("tier", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tier", name=op.f("pk_lsh_tiers")),
    )
    lsh_keys = op.create_table(
        "lsh_keys",
        sa.Column("article_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("buckets", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_lsh_keys_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_lsh_keys")),
    )
    op.execute(
        "INSERT INTO lsh_bands (tier, band, bucket, article_id)"
        " SELECT 0, band, bucket, article_id FROM lsh_bands_copy ORDER BY bucket"
    )
    op.execute("INSERT INTO lsh_tiers (tier, row_count) SELECT 0, count(*) FROM lsh_bands")
    rows = op.get_bind().execute(  # streamed: an archive's bands need not fit in memory
        sa.text("SELECT article_id, band, bucket FROM lsh_bands_copy ORDER BY article_id, band"),
        execution_options={"yield_per": 10_000},
    )
    keys = _keys((row[0], row[1], row[2]) for row in rows)
    while chunk := list(islice(keys, 1_000)):
        op.bulk_insert(lsh_keys, chunk)
    op.execute("DROP TABLE lsh_bands_copy")


def downgrade() -> None:
    _set_rows_aside(article_index=False)
    op.drop_table("lsh_keys")
    op.drop_table("lsh_tiers")
    op.create_table(
        "lsh_bands",
        sa.Column("band", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_lsh_bands_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bucket", "band", "article_id", name=op.f("pk_lsh_bands")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_lsh_bands_article", "lsh_bands", ["article_id"], unique=False)
    op.execute(
        "INSERT INTO lsh_bands (band, bucket, article_id)"
        " SELECT band, bucket, article_id FROM lsh_bands_copy ORDER BY bucket"
    )
    op.execute("DROP TABLE lsh_bands_copy")
