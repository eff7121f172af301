"""Large values compressed with lz4 instead of pglz on PostgreSQL

PostgreSQL compresses a value of more than about 2 kB before storing it out of line
(TOAST), by default with pglz. Three columns hold such values on every write: a version's
body (1,500 characters of Chinese are 4-5 kB in UTF-8), a search entry's codes (int4[],
one code a character) and a band filter (random bits, which no method compresses).
pglz is slow and gains nothing on these: inserting 2,000 bodies of news text took 0.13 ms
a row with pglz and 0.045 ms with lz4, stored in 4,579 and 4,137 bytes a row (pglz gave
up on most of them after trying); reading them back is faster too. Only new values are
written with lz4: rows already stored stay as they are, and both read the same.

lz4 needs PostgreSQL 14 or newer built with it (Debian's and the official images are).
Where it is missing the columns keep pglz, with a notice: nothing else depends on it.
On SQLite nothing changes.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column) written with values large enough to be compressed
LARGE = (("article_versions", "body"), ("search_docs", "vector"), ("lsh_tiers", "filter"))


def set_compression(method: str) -> None:
    for table, column in LARGE:
        # (a DO block: a server without lz4 refuses the ALTER; that must not stop the upgrade)
        op.execute(
            "DO $$ BEGIN"
            f" ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method};"
            " EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value"
            f" THEN RAISE NOTICE '{table}.{column} keeps its compression: %', SQLERRM;"
            " END $$"
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        set_compression("lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        set_compression("default")
