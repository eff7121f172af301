"""search index: search_docs (+ a GIN-indexed tsvector on PostgreSQL, an FTS5 table on SQLite)

The index starts empty: `ufarchive reindex` fills it for articles stored before this
revision (`ufarchive search` says so while it covers fewer articles than are stored).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_docs",
        sa.Column("article_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("doc_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("vector", postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name=op.f("fk_search_docs_article_id_articles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_search_docs")),
        sa.UniqueConstraint("doc_id", name=op.f("uq_search_docs_doc_id")),
    )
    op.create_index(
        "ix_search_docs_vector", "search_docs", ["vector"], unique=False, postgresql_using="gin"
    )
    if op.get_bind().dialect.name == "sqlite":
        # Tokens only (content=''): the text is in article_versions. The `ascii`
        # tokenizer splits on the spaces archive.search puts between its tokens and
        # leaves them as they are (they are normalised already).
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5(title, body, content='', tokenize='ascii')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE search_fts")
    op.drop_index("ix_search_docs_vector", table_name="search_docs", postgresql_using="gin")
    op.drop_table("search_docs")
