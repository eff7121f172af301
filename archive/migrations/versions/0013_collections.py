"""collections: saved (a query and its filters) or frozen (items pinned at a version)

A saved collection keeps its query and filters and is re-run at export time; a frozen
one keeps its articles, each at the version it had when added (archive.collections).
Collections made before this revision were lists of articles: they become frozen, their
items pinned at the articles' current versions.

Revision ID: 0013
Revises: 0016
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="frozen")
        )
        batch_op.add_column(sa.Column("filters", JSON, nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(length=128), nullable=True))
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)
    with op.batch_alter_table("collection_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.execute(
        "UPDATE collection_items SET version = (SELECT articles.version FROM articles"
        " WHERE articles.id = collection_items.article_id)"
    )
    with op.batch_alter_table("collection_items", schema=None) as batch_op:
        batch_op.alter_column("version", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("collection_items", schema=None) as batch_op:
        batch_op.drop_column("version")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("created_by")
        batch_op.drop_column("filters")
        batch_op.drop_column("kind")
