"""search_common_codes and search_code_counts: PostgreSQL keeps the document count of its
index's common codes, so that counting a common word does not read its postings

Counting a 2-character word in 99 % of a million articles made a GIN bitmap of a million
postings (72 ms before the count; bench/search.py: p95 92-124 ms against 50). The codes
`archive.search.refresh_common_codes` lists as common (in COMMON_DOCS entries or more)
get their count kept by statement triggers on search_docs: each statement that inserts,
deletes or changes entries appends one row a common code it touched (+n, -n) to
search_code_counts, read from its transition tables; a TRUNCATE empties the counts. Rows
are only ever appended (no two writers wait on one row) and folded, one a code, by the
refresh, under a SHARE lock on search_docs.

On SQLite the tables are made and stay empty: FTS5 counts a token from its own doclist.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One function for the four triggers (a trigger with transition tables has one event).
# An entry counts once a code however often it holds it (its codes made distinct before
# the common ones are picked out: 40 ms for 100 entries at 1M, 53-78 the other way round);
# nothing is appended while no code is common (a new or small archive).
COUNT_CODES = """
CREATE OR REPLACE FUNCTION ufa_count_codes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM search_code_counts;
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM search_common_codes) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO search_code_counts (code, docs)
        SELECT u.code, count(*)
          FROM ufa_new_docs d,
               LATERAL (SELECT DISTINCT c FROM unnest(d.vector) AS c) AS u(code)
         WHERE u.code IN (SELECT code FROM search_common_codes)
         GROUP BY u.code;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO search_code_counts (code, docs)
        SELECT u.code, -count(*)
          FROM ufa_old_docs d,
               LATERAL (SELECT DISTINCT c FROM unnest(d.vector) AS c) AS u(code)
         WHERE u.code IN (SELECT code FROM search_common_codes)
         GROUP BY u.code;
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = {
    "ufa_count_inserted": "AFTER INSERT ON search_docs REFERENCING NEW TABLE AS ufa_new_docs",
    "ufa_count_deleted": "AFTER DELETE ON search_docs REFERENCING OLD TABLE AS ufa_old_docs",
    "ufa_count_updated": "AFTER UPDATE ON search_docs"
    " REFERENCING OLD TABLE AS ufa_old_docs NEW TABLE AS ufa_new_docs",
    "ufa_count_truncated": "AFTER TRUNCATE ON search_docs",
}


def upgrade() -> None:
    op.create_table(
        "search_common_codes",
        sa.Column("code", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_search_common_codes")),
    )
    op.create_table(
        "search_code_counts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("docs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_code_counts")),
    )
    op.create_index(
        "ix_search_code_counts_code", "search_code_counts", ["code"], postgresql_include=["docs"]
    )
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(COUNT_CODES)
    for name, when in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} {when} FOR EACH STATEMENT EXECUTE FUNCTION ufa_count_codes()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON search_docs")
        op.execute("DROP FUNCTION ufa_count_codes()")
    op.drop_index("ix_search_code_counts_code", table_name="search_code_counts")
    op.drop_table("search_code_counts")
    op.drop_table("search_common_codes")
