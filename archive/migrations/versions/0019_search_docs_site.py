"""search_docs.site_id (a `site:` filter walks one site's newest entries), and tsvectors
stored uncompressed on PostgreSQL

A text query with `site:` tested every match of its words and then joined each to its
article to look at the site (about 2 s for a common word at 200,000 articles on
PostgreSQL, bench/search.py). With the site beside the entry, indexed with doc_id, the
site's newest entries come off one index and only those are tested. Filled from the
articles; new entries carry it (archive.search.write_entries). SQLite keeps the column's
default of 0 in its schema (its ALTER TABLE cannot drop one); nothing relies on it.

PostgreSQL tried to compress every tsvector (pglz) and gave up on each: a tsvector of
bigrams does not compress (lz4 saves 5 %), and the attempt was a fifth of the time the
server spent writing an entry (bench/search.py: perf). `STORAGE EXTERNAL` keeps them out
of line without trying; it applies to entries written from now on (`reindex` rewrites all).

ANALYZE keeps the 10,000 most common lexemes instead of 1,000 (statistics target 1000):
archive.search expects a phrase as often as its rarest bigram, and a bigram outside that
list is taken as rare; with 1,000 only bigrams in more than 17 % of the bench's articles
were in it, so a word in 10 % of them was searched through the GIN index (385 ms newest
first at 200,000 articles; 19 ms with the list at 1.1 %). ANALYZE then reads more rows
(40 s at 200,000 articles, in autovacuum's background).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "search_docs",
        sa.Column("site_id", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.execute(
        "UPDATE search_docs SET site_id ="
        " (SELECT articles.site_id FROM articles WHERE articles.id = search_docs.article_id)"
    )
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("search_docs", "site_id", server_default=None)
        op.execute("ALTER TABLE search_docs ALTER COLUMN vector SET STORAGE EXTERNAL")
        op.execute("ALTER TABLE search_docs ALTER COLUMN vector SET STATISTICS 1000")
    op.create_index("ix_search_docs_site_doc", "search_docs", ["site_id", "doc_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER TABLE search_docs ALTER COLUMN vector SET STORAGE EXTENDED")
        op.execute("ALTER TABLE search_docs ALTER COLUMN vector SET STATISTICS -1")
    op.drop_index("ix_search_docs_site_doc", table_name="search_docs")
    with op.batch_alter_table("search_docs") as batch:
        batch.drop_column("site_id")
