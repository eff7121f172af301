"""Index shapes for PostgreSQL search, side by side on the same articles (issue 17).

The archive's PostgreSQL index is a tsvector of Han bigrams with positions under GIN
(`archive.search.ts_vector`). At 200,000 articles it is 4.3x the text it indexes and
builds at 240-320 articles/s (bench/README.md, Search); the targets are 2x and 1,000/s.
This bench measures, before any of it is built into the archive, what other shapes of
the same tokens would cost, on bench/search.py's synthetic articles:

- `tsvector`: today's column (the literal `archive.search.ts_vector` makes), GIN;
- `codes`: the tokens as int4 codes in text order (positions implicit: a phrase is its
  codes one after another), int4[] under GIN (array_ops, built in);
- `set`: the distinct codes, sorted (no positions: a phrase would be checked against
  stored text), int4[] under GIN.

A Han bigram's code is exact (28,096 Han code points of the BMP squared fit in an int4),
as is a run's closing character; other tokens (words, digits, Han outside the BMP) are
hashed into the negative range. Each shape is loaded with COPY into a table of its own
(rows/s, the client's token work excluded: it is the same for all), then its GIN index
is built (s); sizes are `pg_total_relation_size` against the UTF-8 bytes of titles and
bodies; then counts of common 2-character words and of 4-character words (all bigrams
present, no phrase check) are timed, p50/p95 over the words.

    .venv/bin/python bench/pg_shapes.py [--docs 50000]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

It makes its own database (`ufarchive_shapes_<pid>`) and drops it at the end.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from search import Corpus, percentile, pick_queries  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from archive.search import index_text, ts_vector  # noqa: E402

HAN_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF))
HAN_COUNT = sum(b - a + 1 for a, b in HAN_RANGES)  # 28,096
CLOSING = HAN_COUNT * HAN_COUNT  # codes of a run's closing character start here


def _han_index() -> dict[str, int]:
    index: dict[str, int] = {}
    for first, last in HAN_RANGES:
        for point in range(first, last + 1):
            index[chr(point)] = len(index)
    return index


HAN_INDEX = _han_index()


def code(token: str) -> int:
    """The token's int4 code: exact for BMP Han bigrams and characters, else a hash."""
    index = HAN_INDEX
    if len(token) == 2 and token[0] in index and token[1] in index:
        return 1 + index[token[0]] * HAN_COUNT + index[token[1]]
    if len(token) == 1 and token in index:
        return 1 + CLOSING + index[token]
    return -1 - (zlib.crc32(token.encode()) & 0x7FFFFFFF)


def codes(tokens: str) -> list[int]:
    return [code(t) for t in tokens.split()]


SHAPES = ("tsvector", "codes", "set")


def lines(docs: Sequence[tuple[int, str, str]], shape: str) -> str:
    out = io.StringIO()
    for doc_id, title, body in docs:
        if shape == "tsvector":
            value = ts_vector(title, body)
        else:
            numbers = [*codes(title), 0, *codes(body)]  # 0: no phrase across the two
            if shape == "set":
                numbers = sorted(set(numbers))
            value = "{" + ",".join(map(str, numbers)) + "}"
        out.write(f"{doc_id}\t{value}\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    name = f"ufarchive_shapes_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(args.pg_url).set(database=name))
    try:
        run(engine, args.docs)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(engine: object, n: int) -> None:
    corpus = Corpus()
    print(f"tokenising {n:,} articles ...", flush=True)
    started = time.perf_counter()
    docs: list[tuple[int, str, str]] = []
    text_bytes, first = 0, []
    for batch in corpus.batches(n):
        first = first or batch
        for doc in batch:
            docs.append((doc.id, index_text(doc.title), index_text(doc.body)))
            text_bytes += len(doc.title.encode()) + len(doc.body.encode())
    print(f"  {time.perf_counter() - started:.0f} s; text {text_bytes / 2**20:.1f} MB")
    queries = pick_queries(corpus, first)
    twos, fours = queries["2-char"], queries["4-char"]
    raw = engine.raw_connection()  # type: ignore[attr-defined]
    conn = raw.driver_connection
    rows = []
    for shape in SHAPES:
        column = "tsvector" if shape == "tsvector" else "int4[]"
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {shape} (doc_id bigint PRIMARY KEY, v {column})")
            cur.execute(f"ALTER TABLE {shape} ALTER v SET STORAGE EXTERNAL")
        conn.commit()
        made = time.perf_counter()
        chunks = [lines(docs[k : k + 5000], shape) for k in range(0, len(docs), 5000)]
        made = time.perf_counter() - made
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY {shape} (doc_id, v) FROM STDIN") as copy:
            for chunk in chunks:
                copy.write(chunk)
        conn.commit()
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(f"CREATE INDEX ix_{shape} ON {shape} USING gin (v)")
            cur.execute(f"ANALYZE {shape}")
        conn.commit()
        built = time.perf_counter() - started
        with conn.cursor() as cur:
            cur.execute(f"SELECT pg_total_relation_size('{shape}'), pg_relation_size('ix_{shape}')")
            total, gin = cur.fetchone()
        counts = {
            "2-char": time_counts(conn, shape, twos),
            "4-char": time_counts(conn, shape, fours),
        }
        rows.append((shape, made, loaded, built, total, gin, counts))
        print(
            f"  {shape}: literals {made:.1f} s, COPY {loaded:.1f} s, GIN {built:.1f} s", flush=True
        )
    print(f"\n{n:,} articles, text {text_bytes / 2**20:.1f} MB (titles and bodies, UTF-8)")
    print(
        "| shape | COPY rows/s | GIN build s | rows + GIN /s | size / text | GIN / text "
        "| count 2-char p50 / p95 ms | count 4-char p50 / p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape, _made, loaded, built, total, gin, counts in rows:
        two, four = counts["2-char"], counts["4-char"]
        print(
            f"| {shape} | {n / loaded:,.0f} | {built:.1f} | {n / (loaded + built):,.0f} "
            f"| {total / text_bytes:.2f}x | {gin / text_bytes:.2f}x "
            f"| {two[0]:.1f} / {two[1]:.1f} | {four[0]:.1f} / {four[1]:.1f} |"
        )
    raw.close()


def time_counts(conn: object, shape: str, words: list[str]) -> tuple[float, float]:
    """p50 / p95 ms of counting the documents holding each word (its tokens all present)."""
    query: Callable[[str], tuple[str, tuple[object]]]
    if shape == "tsvector":

        def query(word: str) -> tuple[str, tuple[object]]:
            bigrams = [word[k : k + 2] for k in range(len(word) - 1)]
            sql = f"SELECT count(*) FROM {shape} WHERE v @@ %s::tsquery"
            return sql, (" <-> ".join(bigrams),)
    else:

        def query(word: str) -> tuple[str, tuple[object]]:
            bigrams = [code(word[k : k + 2]) for k in range(len(word) - 1)]
            return f"SELECT count(*) FROM {shape} WHERE v @> %s::int4[]", (bigrams,)

    times = []
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        for word in words:  # one untimed pass
            cur.execute(*query(word))
        for _ in range(3):
            for word in words:
                started = time.perf_counter()
                cur.execute(*query(word))
                cur.fetchone()
                times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, percentile(times, 0.95) * 1000


if __name__ == "__main__":
    main()
