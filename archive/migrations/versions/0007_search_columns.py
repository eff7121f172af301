"""search_fts: body first, then title, and a meta column of site tokens (SQLite)

FTS5 marks every position list outside the first column with two more bytes: with the
body first (most tokens) instead of the title the index is about a fifth smaller
(bench/search.py). The meta column holds a token for the article's site, so that a
`site:` filter is an intersection inside the index instead of a join of every match.
A contentless FTS5 table cannot be converted: it is made anew and the index emptied;
`ufarchive db upgrade` rebuilds it from the stored articles. PostgreSQL is unchanged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE search_fts")
    op.execute("DELETE FROM search_docs")
    # Tokens only (content=''): the text is in article_versions. The `ascii` tokenizer
    # splits on the spaces archive.search puts between its tokens and leaves them be.
    op.execute(
        "CREATE VIRTUAL TABLE search_fts USING fts5(body, title, meta, content='', tokenize='ascii')"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TABLE search_fts")
    op.execute("DELETE FROM search_docs")
    op.execute(
        "CREATE VIRTUAL TABLE search_fts USING fts5(title, body, content='', tokenize='ascii')"
    )
