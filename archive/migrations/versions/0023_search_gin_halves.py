"""The search index's GIN index in two halves on PostgreSQL (even and odd doc_ids), so that
a rebuild builds them at once on two cores

PostgreSQL 15 builds a GIN index in one process: at a million articles the build of
`ix_search_docs_vector` alone took about 1,000 of a rebuild's 1,597 seconds, with the
second core idle. Two partial indexes, `ix_search_docs_vector_0` (doc_id even) and
`ix_search_docs_vector_1` (odd), are built at once from two connections
(archive.search.build_gin_halves): 59 s at 100,000 articles where the whole index took
101 (bench/search.py). A search names both halves in each test of a term's codes
(archive.search._holds), which the planner answers with a BitmapOr of the two. The
statistics object on `doc_id & 1` tells the planner that each half holds half of the
entries (without it, it takes an expression's equality to hold for 0.5 % of rows).

Here the halves are built one after the other (one transaction, one connection): on a
large archive this upgrade takes as long as the old index's build (docs/operations.md).
On SQLite the old index goes (it indexed a column SQLite leaves empty) and nothing comes.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HALVES = ("ix_search_docs_vector_0", "ix_search_docs_vector_1")


def upgrade() -> None:
    op.execute("DROP INDEX ix_search_docs_vector")
    if op.get_bind().dialect.name == "sqlite":
        return
    for half, name in enumerate(HALVES):
        op.execute(
            f"CREATE INDEX {name} ON search_docs USING gin (vector) WHERE (doc_id & 1) = {half}"
        )
    op.execute("CREATE STATISTICS ufa_search_docs_half ON ((doc_id & 1)) FROM search_docs")
    op.execute("ANALYZE search_docs")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS ufa_search_docs_half")
        for name in HALVES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute("CREATE INDEX ix_search_docs_vector ON search_docs USING gin (vector)")
    else:
        op.execute("CREATE INDEX ix_search_docs_vector ON search_docs (vector)")
