"""dedup: lsh_bands keyed by bucket first, WITHOUT ROWID on SQLite; an article alone is its own original

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create_lsh_bands(with_rowid: bool, key: tuple[str, ...]) -> None:
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
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_lsh_bands")),
        sqlite_with_rowid=with_rowid,
    )
    op.create_index("ix_lsh_bands_article", "lsh_bands", ["article_id"], unique=False)


def upgrade() -> None:
    # The band index is derived data (`ufarchive dedup --rebuild` recomputes it), so the
    # table is recreated rather than copied.
    op.drop_index("ix_lsh_bands_article", table_name="lsh_bands")
    op.drop_table("lsh_bands")
    _create_lsh_bands(with_rowid=False, key=("bucket", "band", "article_id"))
    op.execute(
        sa.text("UPDATE articles SET is_original = :yes WHERE cluster_id IS NULL").bindparams(
            yes=True
        )
    )


def downgrade() -> None:
    op.drop_index("ix_lsh_bands_article", table_name="lsh_bands")
    op.drop_table("lsh_bands")
    _create_lsh_bands(with_rowid=True, key=("band", "bucket", "article_id"))
    op.execute(
        sa.text("UPDATE articles SET is_original = :no WHERE cluster_id IS NULL").bindparams(
            no=False
        )
    )
