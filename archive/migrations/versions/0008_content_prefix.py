"""articles: index the first 16 hex digits of content_hash, not all 64

Exact duplicates are looked up by the prefix (archive.dedup); random keys made every
batch of new articles dirty about one index page each, and the full keys made that index
five times the pages, a cost that grew with the archive (bench/dedup.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_articles_content_hash", table_name="articles")
    op.create_index(
        "ix_articles_content_prefix", "articles", [sa.text("substr(content_hash, 1, 16)")]
    )


def downgrade() -> None:
    op.drop_index("ix_articles_content_prefix", table_name="articles")
    op.create_index("ix_articles_content_hash", "articles", ["content_hash"])
