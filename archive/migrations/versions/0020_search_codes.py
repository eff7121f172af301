"""PostgreSQL's search index as int4 token codes in text order (int4[] under GIN) instead of
a tsvector, and `ufa_hits`, which finds a phrase or a prefix in them

The tsvector of bigrams with their positions was 4.3x the text it indexed and its GIN
index built at 300-480 articles/s, bound by comparing lexemes (bench/README.md, Search;
bench/pg_shapes.py). The same tokens as int4 codes (`archive.search.token_code`: a Han
bigram's code is exact) in text order are 2.0x the text, and GIN compares integers
(1.6x faster to build). A term's codes are found with `@>` from the GIN index; a phrase
(codes one after another) and a one-character prefix (a range of bigram codes) are then
checked in the entry's codes by `ufa_hits`, which also counts occurrences for relevance.

The index cannot be converted: it is emptied here and `ufarchive db upgrade` rebuilds it
from the stored articles (as revision 0007 did on SQLite). SQLite is unchanged.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Occurrences of `phrase` (codes one after another) in `codes`, followed, when `low` is
# given, by a code in [low, high] or `closing` (a one-character prefix: the bigrams that
# start with it, or it closing a run); those before the 0 that ends the title count
# `title_weight` times; with `first_only`, 1 at the first. PL/pgSQL keeps an array
# argument expanded, so each subscript is a lookup, not a fresh read of the array.
UFA_HITS = """
CREATE OR REPLACE FUNCTION ufa_hits(
    codes int4[], phrase int4[], low int4, high int4, closing int4,
    title_weight int4, first_only boolean
) RETURNS int4 LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n int4 := coalesce(cardinality(phrase), 0);
    title int4 := coalesce(array_position(codes, 0), 1);
    hits int4 := 0;
    pos int4;
    k int4;
    next_code int4;
BEGIN
    IF codes IS NULL THEN
        RETURN 0;
    END IF;
    IF n = 0 THEN
        IF low IS NULL THEN
            RETURN 0;
        END IF;
        SELECT coalesce(sum(CASE WHEN u.at < title THEN title_weight ELSE 1 END), 0)
          INTO hits
          FROM unnest(codes) WITH ORDINALITY AS u(code, at)
         WHERE u.code BETWEEN low AND high OR u.code = closing;
        RETURN CASE WHEN first_only THEN least(hits, 1) ELSE hits END;
    END IF;
    FOREACH pos IN ARRAY array_positions(codes, phrase[1]) LOOP
        k := 2;
        WHILE k <= n AND codes[pos + k - 1] = phrase[k] LOOP
            k := k + 1;
        END LOOP;
        CONTINUE WHEN k <= n;
        IF low IS NOT NULL THEN
            next_code := codes[pos + n];
            CONTINUE WHEN next_code IS NULL
                OR NOT (next_code BETWEEN low AND high OR next_code = closing);
        END IF;
        IF first_only THEN
            RETURN 1;
        END IF;
        hits := hits + CASE WHEN pos < title THEN title_weight ELSE 1 END;
    END LOOP;
    RETURN hits;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    remake_vector("int4[]")
    op.execute(UFA_HITS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute("DROP FUNCTION ufa_hits(int4[], int4[], int4, int4, int4, int4, boolean)")
    remake_vector("tsvector")


def remake_vector(column_type: str) -> None:
    """search_docs.vector emptied and of this type, GIN-indexed. Neither type compresses
    (no pglz attempt), and ANALYZE keeps the 10,000 most common elements
    (archive.search._text_share), as revision 0019 set for the tsvectors."""
    op.execute("DELETE FROM search_docs")
    op.execute("DROP INDEX ix_search_docs_vector")
    op.execute("ALTER TABLE search_docs DROP COLUMN vector")
    op.execute(f"ALTER TABLE search_docs ADD COLUMN vector {column_type}")
    op.execute("ALTER TABLE search_docs ALTER COLUMN vector SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE search_docs ALTER COLUMN vector SET STATISTICS 1000")
    op.execute("CREATE INDEX ix_search_docs_vector ON search_docs USING gin (vector)")
