"""Index shapes for PostgreSQL search, side by side on the same articles (issue 17).

The archive's PostgreSQL index is a tsvector of Han bigrams with positions under GIN
(`ts_vector` below). At 200,000 articles it is 4.3x the text it indexes and
builds at 240-320 articles/s (bench/README.md, Search); the targets are 2x and 1,000/s.
This bench measures, before any of it is built into the archive, what other shapes of
the same tokens would cost, on bench/search.py's synthetic articles:

- `tsvector`: the column before migration 0020 (the literal `ts_vector` makes), GIN;
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

    .venv/bin/python bench/pg_shapes.py [--docs 50000] [--shapes tsvector,codes,set]
        [--queries] [--keep NAME]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

It makes its own database (`ufarchive_shapes_<pid>`) and drops it at the end. `--keep
NAME` uses database NAME and keeps it; a later run with the same NAME loads nothing and
runs the queries on the tables as they are (drop it yourself: DROP DATABASE ... WITH
(FORCE)). `--shapes` loads only those shapes.

`--queries` (needs `codes`) then times the query side on the `codes` table, after
VACUUM ANALYZE, p50/p95 ms over bench/search.py's query words (`pick_queries`), each
word 3 times after one untimed pass, custom plans (psycopg's auto-prepare off): the
phrase check `ufa_phrase` (PL/pgSQL over `array_positions`, against a SQL version with
slices; checked against Python on a few articles), counts with and without it, newest
20 by the GIN plan and by a probe of the newest 5,000 articles, relevance over the
newest 2,000 matches (occurrences, a title's 4 times: `ufa_phrase_count`, and a
`title_len` column), and a single Han character as a prefix (all bigrams XY, a range of
codes, and the closing X): `&&` with the whole range, `&&` with the codes of the range
that occur (side table `codes_lexicon`), and a probe with `unnest`.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import psycopg  # noqa: E402
from search import Corpus, Doc, percentile, pick_queries  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from archive.search import Term, index_text, search_form  # noqa: E402


def ts_vector(title: str, body: str) -> str:
    """A tsvector literal of the tokens at their positions; title tokens weighted A.

    PostgreSQL keeps positions up to 16383: tokens beyond it share that position, so a
    phrase in the far end of a very long article (over ~16,000 characters) can be found
    where its bigrams only appear apart. The lexemes come in PostgreSQL's own order (byte
    order, which is code point order), so the server's sort finds them sorted; tokens
    are letters and digits, so none needs quoting (see `tokens`).
    """
    positions: dict[str, list[str]] = {}
    heads = title.split()
    for position, token in enumerate(heads, start=1):
        positions.setdefault(token, []).append(f"{min(position, 16383)}A")
    get = positions.get
    # no phrase across title and body: one position left out between them
    for position, token in enumerate(body.split(), start=len(heads) + 2):
        number = str(min(position, 16383))
        held = get(token)
        if held is None:
            positions[token] = [number]
        else:
            held.append(number)
    return " ".join([f"'{t}':{','.join(p)}" for t, p in sorted(positions.items())])


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


def lines(docs: Sequence[tuple[int, str, str]], shape: str, title_len: bool = False) -> str:
    out = io.StringIO()
    for doc_id, title, body in docs:
        if shape == "tsvector":
            value = ts_vector(title, body)
        else:
            heads = codes(title)
            numbers = [*heads, 0, *codes(body)]  # 0: no phrase across the two
            if shape == "set":
                numbers = sorted(set(numbers))
            value = "{" + ",".join(map(str, numbers)) + "}"
            if title_len:
                value += f"\t{min(len(heads), 32767)}"
        out.write(f"{doc_id}\t{value}\n")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--shapes", default=",".join(SHAPES), help="comma-separated, of " + ",".join(SHAPES)
    )
    parser.add_argument("--queries", action="store_true", help="time the query side on codes")
    parser.add_argument("--keep", metavar="NAME", help="use and keep database NAME")
    args = parser.parse_args()
    shapes = [shape for shape in args.shapes.split(",") if shape]
    if not shapes or set(shapes) - set(SHAPES):
        parser.error(f"--shapes: of {', '.join(SHAPES)}")
    if args.queries and "codes" not in shapes:
        parser.error("--queries needs the codes shape")
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    name = args.keep or f"ufarchive_shapes_{os.getpid()}"
    with admin.connect() as conn:
        held = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        kept = held.scalar() is not None
        if not kept:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(args.pg_url).set(database=name))
    try:
        run(engine, args.docs, shapes, args.queries, load=not kept)
    finally:
        engine.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(engine: object, n: int, shapes: Sequence[str], queries: bool, load: bool) -> None:
    corpus = Corpus()
    raw = engine.raw_connection()  # type: ignore[attr-defined]
    conn = raw.driver_connection
    if load:
        text_bytes, first = load_shapes(conn, corpus, n, shapes, queries)
    else:
        with conn.cursor() as cur:
            cur.execute("SELECT docs, text_bytes FROM shapes_meta")
            n, text_bytes = cur.fetchone()
        conn.commit()
        first = next(corpus.batches(n))
        print(f"database kept from an earlier run: {n:,} articles, nothing loaded")
    if queries:
        time_queries(conn, corpus, first, text_bytes)
    raw.close()


def load_shapes(
    conn: object, corpus: Corpus, n: int, shapes: Sequence[str], title_len: bool
) -> tuple[int, list[Doc]]:
    """Load and index each shape, time counts, print the table; (text bytes, first batch)."""
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
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("CREATE TABLE shapes_meta (docs int, text_bytes bigint)")
        cur.execute("INSERT INTO shapes_meta VALUES (%s, %s)", (n, text_bytes))
    conn.commit()  # type: ignore[attr-defined]
    rows = []
    for shape in shapes:
        column = "tsvector" if shape == "tsvector" else "int4[]"
        extra = title_len and shape == "codes"  # --queries: the title's token count too
        with conn.cursor() as cur:  # type: ignore[attr-defined]
            more = ", title_len int2" if extra else ""
            cur.execute(f"CREATE TABLE {shape} (doc_id bigint PRIMARY KEY, v {column}{more})")
            cur.execute(f"ALTER TABLE {shape} ALTER v SET STORAGE EXTERNAL")
        conn.commit()  # type: ignore[attr-defined]
        made = time.perf_counter()
        chunks = [lines(docs[k : k + 5000], shape, extra) for k in range(0, len(docs), 5000)]
        made = time.perf_counter() - made
        started = time.perf_counter()
        columns = "doc_id, v, title_len" if extra else "doc_id, v"
        with (
            conn.cursor() as cur,  # type: ignore[attr-defined]
            cur.copy(f"COPY {shape} ({columns}) FROM STDIN") as copy,
        ):
            for chunk in chunks:
                copy.write(chunk)
        conn.commit()  # type: ignore[attr-defined]
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        with conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute(f"CREATE INDEX ix_{shape} ON {shape} USING gin (v)")
            cur.execute(f"ANALYZE {shape}")
        conn.commit()  # type: ignore[attr-defined]
        built = time.perf_counter() - started
        with conn.cursor() as cur:  # type: ignore[attr-defined]
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
    return text_bytes, first


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


# --- the query side, on codes (--queries) -------------------------------------------------

FUNCTIONS = (
    # (a database kept from before ufa_phrase_count took first_only)
    "DROP FUNCTION IF EXISTS ufa_phrase_count(int4[], int4[], int) CASCADE",
    # occurrences of a phrase (a title's, the first title_len codes, 4 times); with
    # first_only, 1 at the first (ufa_phrase, below, is that as a boolean)
    """
CREATE OR REPLACE FUNCTION ufa_phrase_count(
    codes int4[], phrase int4[], title_len int DEFAULT 0, first_only boolean DEFAULT false
) RETURNS int LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    n int := cardinality(phrase);
    p int;
    k int;
    total int := 0;
BEGIN
    -- codes is expanded once on entry: codes[i] is then O(1), no detoast a subscript
    FOREACH p IN ARRAY array_positions(codes, phrase[1]) LOOP
        k := 2;
        WHILE k <= n AND codes[p + k - 1] = phrase[k] LOOP
            k := k + 1;
        END LOOP;
        IF k > n THEN
            IF first_only THEN
                RETURN 1;
            END IF;
            total := total + CASE WHEN p <= title_len THEN 4 ELSE 1 END;
        END IF;
    END LOOP;
    RETURN total;
END
$$""",
    # (a SQL function of one expression: inlined into the statement, no call of its own)
    """
CREATE OR REPLACE FUNCTION ufa_phrase(codes int4[], phrase int4[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ufa_phrase_count(codes, phrase, 0, true) > 0
$$""",
    """
CREATE OR REPLACE FUNCTION ufa_phrase_sql(codes int4[], phrase int4[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(array_positions(codes, phrase[1])) AS p
        WHERE codes[p : p + cardinality(phrase) - 1] = phrase
    )
$$""",
)
PROBE = 5_000  # newest documents probed for a page (archive.search.PG_PROBE_MAX)
RANK_PROBE = 20_000  # ... for relevance's window (PG_RANK_PROBE_MAX)
WINDOW = 2_000  # newest matches ranked by relevance
PAGE = 20
TIMEOUT_MS = 60_000
PLANNED_TIMEOUT_MS = 5_000  # && with 28,097 codes as planned: a seq scan
Statement = tuple[str, dict[str, object]]


@dataclass
class Timing:
    p50: float  # ms
    p95: float
    results: list[list[tuple[object, ...]]]  # each statement's rows (the untimed pass)


def timed(
    conn: object,
    statements: Sequence[Statement],
    repeats: int = 3,
    warm: bool = True,
    settings: Sequence[str] = (),
) -> Timing | None:
    """p50/p95 ms of the statements, each `repeats` times after an untimed pass (unless
    not `warm`), under `settings` (SET ...); None if one ran past the statement timeout."""
    results, times = [], []
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        for setting in settings:
            cur.execute(setting)
        try:
            for sql, values in statements:
                if warm:
                    cur.execute(sql, values)
                    results.append(cur.fetchall())
            for _ in range(repeats):
                for k, (sql, values) in enumerate(statements):
                    started = time.perf_counter()
                    cur.execute(sql, values)
                    rows = cur.fetchall()
                    times.append(time.perf_counter() - started)
                    if len(results) < len(statements) and k == len(results):
                        results.append(rows)
        except psycopg.errors.QueryCanceled:
            return None
        finally:
            cur.execute("RESET ALL")
            cur.execute(f"SET statement_timeout = {TIMEOUT_MS}")
    return Timing(statistics.median(times) * 1000, percentile(times, 0.95) * 1000, results)


def explain(conn: object, title: str, statement: Statement, settings: Sequence[str] = ()) -> None:
    sql, values = statement
    print(f"\n-- EXPLAIN {title}" + "".join(f"; {setting}" for setting in settings))
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        for setting in settings:
            cur.execute(setting)
        try:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, values)
            for (line,) in cur.fetchall():
                print("   ", line if len(line) < 240 else line[:200] + " ...")
        except psycopg.errors.QueryCanceled:
            print("    (statement timeout)")
        finally:
            cur.execute("RESET ALL")
            cur.execute(f"SET statement_timeout = {TIMEOUT_MS}")


def query_codes(query: str) -> list[int]:
    term = Term.parse(query)
    assert term is not None and not term.prefix, query
    return [code(token) for token in term.tokens]


def matching(c: Sequence[int], check: str = "ufa_phrase") -> str:
    """WHERE for a term: all its codes (GIN), then in order unless it is one code."""
    if len(c) == 1:
        return "v @> %(all)s::int4[]"
    return f"v @> %(all)s::int4[] AND {check}(v, %(c)s::int4[])"


def params(c: Sequence[int]) -> dict[str, object]:
    return {"all": sorted(set(c)), "c": list(c), "k": c[0]}


def time_queries(conn: object, corpus: Corpus, first: list[Doc], text_bytes: int) -> None:
    conn.commit()  # type: ignore[attr-defined]
    conn.autocommit = True  # type: ignore[attr-defined]
    conn.prepare_threshold = None  # type: ignore[attr-defined]  # custom plans, per word
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        started = time.perf_counter()
        cur.execute("VACUUM ANALYZE codes")
        print(f"\nVACUUM ANALYZE codes: {time.perf_counter() - started:.1f} s")
        for function in FUNCTIONS:
            cur.execute(function)
        cur.execute(f"SET statement_timeout = {TIMEOUT_MS}")
    words = pick_queries(corpus, first)
    kinds = {
        kind: [(w, query_codes(w)) for w in words[kind]] for kind in ("2-char", "4-char", "phrase")
    }
    for kind, terms in kinds.items():
        print(f"{kind}: " + ", ".join(f"{w} ({len(c)})" for w, c in terms))
    rows: list[tuple[str, str, str, Timing | None, str]] = []

    def add(what: str, kind: str, form: str, timing: Timing | None, note: str = "") -> None:
        rows.append((what, kind, form, timing, note))
        shown = "timeout" if timing is None else f"{timing.p50:.1f} / {timing.p95:.1f}"
        print(f"  {what} | {kind} | {form} | {shown} | {note}", flush=True)

    check_phrases(conn, first)
    detoast_costs(conn, kinds, add)
    counts(conn, kinds, add)
    newest(conn, kinds, add)
    relevance(conn, kinds, add)
    prefixes(conn, first, add)
    sizes(conn, text_bytes)
    print("\n| measurement | words | SQL form | p50 / p95 ms | note |")
    print("|---|---|---|---|---|")
    for what, kind, form, timing, note in rows:
        shown = "timeout" if timing is None else f"{timing.p50:.1f} / {timing.p95:.1f}"
        print(f"| {what} | {kind} | {form} | {shown} | {note} |")


def check_phrases(conn: object, first: list[Doc]) -> None:
    """ufa_phrase, ufa_phrase_sql and ufa_phrase_count against Python on a few articles."""
    rng = random.Random(5)
    checked = wrong = found = 0
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        for doc in first[:40]:
            heads = index_text(doc.title).split()
            seq: list[str | None] = [*heads, None, *index_text(doc.body).split()]
            cur.execute("SELECT v, title_len FROM codes WHERE doc_id = %s", (doc.id,))
            v, title_len = cur.fetchone()
            assert v == [0 if t is None else code(t) for t in seq] and title_len == len(heads)
            tokens = [t for t in seq if t is not None]
            phrases = []
            for _ in range(12):  # present ones, and their codes out of order
                size = rng.randint(2, 5)
                start = rng.randrange(len(tokens) - size)
                phrase = tokens[start : start + size]
                phrases.append(phrase)
                phrases.append(rng.sample(phrase, size))
                phrases.append([phrase[0], rng.choice(tokens)])
            phrases.append(heads[-2:] + tokens[len(heads) : len(heads) + 1])  # across the 0
            for phrase in phrases:
                size = len(phrase)
                hits = [k for k in range(len(seq) - size + 1) if seq[k : k + size] == phrase]
                expected = sum(4 if k < len(heads) else 1 for k in hits)
                c = [code(t) for t in phrase]  # type: ignore[arg-type]
                cur.execute(
                    "SELECT ufa_phrase(v, %(c)s::int4[]), ufa_phrase_sql(v, %(c)s::int4[]), "
                    "ufa_phrase_count(v, %(c)s::int4[], title_len) FROM codes WHERE doc_id = %(d)s",
                    {"c": c, "d": doc.id},
                )
                got = cur.fetchone()
                checked += 1
                found += bool(hits)
                if got != (bool(hits), bool(hits), expected):
                    wrong += 1
                    print(f"  WRONG doc {doc.id} {phrase}: {got}, Python {bool(hits)} {expected}")
    print(
        f"\nphrase check against Python: {checked} (doc, phrase) pairs on 40 articles, "
        f"{found} present, {wrong} wrong"
    )


def detoast_costs(
    conn: object, kinds: dict[str, list[tuple[str, list[int]]]], add: Callable[..., None]
) -> None:
    """Per-document costs over the newest PROBE articles, and subscripts on a long array."""
    newest = f"(SELECT doc_id, v FROM codes ORDER BY doc_id DESC LIMIT {PROBE}) d"
    add(
        "walk newest 5,000",
        "-",
        f"SELECT count(*) FROM {newest}",
        timed(conn, [(f"SELECT count(*) FROM {newest}", {})]),
    )
    add(
        "walk + detoast 5,000",
        "-",
        "sum(cardinality(v))",
        timed(conn, [(f"SELECT sum(cardinality(v)) FROM {newest}", {})]),
    )
    for kind in ("4-char", "phrase"):
        terms = kinds[kind]
        for form, where in (
            ("@> only", "v @> %(all)s::int4[]"),
            ("ufa_phrase (plpgsql)", "ufa_phrase(v, %(c)s::int4[])"),
            ("ufa_phrase_sql (slices)", "ufa_phrase_sql(v, %(c)s::int4[])"),
            ("ufa_phrase_count", "ufa_phrase_count(v, %(c)s::int4[], 0) > 0"),
        ):
            statements = [
                (f"SELECT count(*) FROM {newest} WHERE {where}", params(c)) for _, c in terms
            ]
            add("filter newest 5,000", kind, form, timed(conn, statements))
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("CREATE TEMP TABLE long_array (n int, v int4[])")
        cur.execute("ALTER TABLE long_array ALTER v SET STORAGE EXTERNAL")
        cur.execute(
            "INSERT INTO long_array SELECT n, array_fill(7, ARRAY[n]) FROM unnest('{2000,20000,200000}'::int[]) n"
        )
    for n in (2_000, 20_000, 200_000):
        for function in ("ufa_phrase", "ufa_phrase_sql"):
            if function == "ufa_phrase_sql" and n > 20_000:
                continue  # quadratic: n slices of n elements
            sql = f"SELECT {function}(v, '{{7,8}}') FROM long_array WHERE n = {n}"
            add(
                "long toasted array, all positions",
                f"{n:,} x 7",
                function,
                timed(conn, [(sql, {})]),
            )


def counts(
    conn: object, kinds: dict[str, list[tuple[str, list[int]]]], add: Callable[..., None]
) -> None:
    for kind, terms in kinds.items():
        forms = [("@> only", "v @> %(all)s::int4[]")]
        if kind != "2-char":
            forms += [
                ("@> + ufa_phrase", matching([0, 0])),
                ("@> + ufa_phrase_sql", matching([0, 0], "ufa_phrase_sql")),
            ]
        for form, where in forms:
            statements = [
                (f"SELECT count(*) FROM codes WHERE {where}", params(c)) for _, c in terms
            ]
            timing = timed(conn, statements)
            note = ""
            if timing is not None:
                found = [r[0][0] for r in timing.results]
                note = f"matches {sum(found):,}: " + " ".join(f"{x:,}" for x in found)
            add("count", kind, form, timing, note)
            if kind == "phrase":
                explain(conn, f"count, {kind} {terms[0][0]}, {form}", statements[0])


def newest(
    conn: object, kinds: dict[str, list[tuple[str, list[int]]]], add: Callable[..., None]
) -> None:
    for kind, terms in kinds.items():
        where = matching(terms[0][1])
        gin = f"SELECT doc_id FROM codes WHERE {where} ORDER BY doc_id DESC LIMIT {PAGE}"
        probe = (
            f"SELECT doc_id FROM (SELECT doc_id, v FROM codes ORDER BY doc_id DESC LIMIT {PROBE}) d "
            f"WHERE {where} ORDER BY doc_id DESC LIMIT {PAGE}"
        )
        for form, sql in (("as planned", gin), (f"probe newest {PROBE:,}", probe)):
            timing = timed(conn, [(sql, params(c)) for _, c in terms])
            note = ""
            if timing is not None:
                short = sum(len(r) < PAGE for r in timing.results)
                note = f"{short} of {len(terms)} under {PAGE} rows" if short else ""
            add("newest 20", kind, form, timing, note)
        for w, c in (terms[:1] + terms[-1:]) if kind == "2-char" else terms[:2]:
            explain(conn, f"newest 20, {kind} {w}", (gin, params(c)))


def relevance(
    conn: object, kinds: dict[str, list[tuple[str, list[int]]]], add: Callable[..., None]
) -> None:
    for kind, terms in kinds.items():
        where = matching(terms[0][1])
        scores = [("ufa_phrase_count", "ufa_phrase_count(v, %(c)s::int4[], title_len)")]
        if kind == "2-char":
            scores.append(
                (
                    "array_positions",
                    "cardinality(array_positions(v, %(k)s::int4)) + 3 * cardinality(array_positions(v[1:title_len], %(k)s::int4))",
                )
            )
        windows = (
            (
                "GIN",
                f"SELECT doc_id, v, title_len FROM codes WHERE {where} ORDER BY doc_id DESC LIMIT {WINDOW}",
            ),
            (
                f"probe newest {RANK_PROBE:,}",
                (
                    f"SELECT doc_id, v, title_len FROM (SELECT doc_id, v, title_len FROM codes "
                    f"ORDER BY doc_id DESC LIMIT {RANK_PROBE}) d WHERE {where} ORDER BY doc_id DESC LIMIT {WINDOW}"
                ),
            ),
        )
        for window, inner in windows:
            for score_name, score in scores:
                sql = f"SELECT doc_id FROM ({inner}) m ORDER BY {score} DESC, doc_id DESC LIMIT {PAGE}"
                add(
                    "relevance: newest 2,000 -> top 20",
                    kind,
                    f"{window} window, {score_name}",
                    timed(conn, [(sql, params(c)) for _, c in terms]),
                )
        sql = f"SELECT doc_id FROM ({windows[0][1]}) m ORDER BY {scores[0][1]} DESC, doc_id DESC LIMIT {PAGE}"
        explain(conn, f"relevance, {kind} {terms[0][0]}", (sql, params(terms[0][1])))


def prefixes(conn: object, first: list[Doc], add: Callable[..., None]) -> None:
    """A single Han character X: the bigrams XY (one range of codes) and the closing X."""
    share: dict[str, int] = {}
    for doc in first:
        for char in set(search_form(doc.title + " " + doc.body)):
            if char in HAN_INDEX:
                share[char] = share.get(char, 0) + 1
    size = len(first)

    def near(target: float) -> str:
        return min(share, key=lambda ch: (abs(share[ch] / size - target), ch))

    chars = ["国", "人", near(0.01), near(0.001)]
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT to_regclass('codes_lexicon') IS NOT NULL")
        if cur.fetchone()[0]:
            print("\ncodes_lexicon: kept from an earlier run")
        else:
            started = time.perf_counter()
            cur.execute("CREATE TABLE codes_lexicon (code int4 PRIMARY KEY)")
            cur.execute("INSERT INTO codes_lexicon SELECT DISTINCT unnest(v) FROM codes")
            cur.execute("VACUUM ANALYZE codes_lexicon")
            print(f"\ncodes_lexicon built in {time.perf_counter() - started:.1f} s")
        cur.execute("SELECT count(*), pg_total_relation_size('codes_lexicon') FROM codes_lexicon")
        distinct, lexicon = cur.fetchone()
        print(f"codes_lexicon: {distinct:,} distinct codes, {lexicon / 2**20:.1f} MB")
    for char in chars:
        index = HAN_INDEX[char]
        lo = 1 + index * HAN_COUNT
        hi = lo + HAN_COUNT - 1
        closing = 1 + CLOSING + index
        values = {"range": [*range(lo, hi + 1), closing], "lo": lo, "hi": hi, "closing": closing}
        with conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute(
                "SELECT count(*) FROM codes_lexicon WHERE code BETWEEN %(lo)s::int4 AND %(hi)s::int4 OR code = %(closing)s::int4",
                values,
            )
            occurring = cur.fetchone()[0]
        label = f"{char} ({share.get(char, 0) / size:.2%} of the first {size:,})"
        print(f"\n{label}: {occurring:,} of the range's codes occur")
        lexicon_codes = "ARRAY(SELECT code FROM codes_lexicon WHERE code BETWEEN %(lo)s::int4 AND %(hi)s::int4 OR code = %(closing)s::int4)"
        unnested = "EXISTS (SELECT 1 FROM unnest(v) c WHERE c BETWEEN %(lo)s::int4 AND %(hi)s::int4 OR c = %(closing)s::int4)"
        probed = f"(SELECT doc_id, v FROM codes ORDER BY doc_id DESC LIMIT {PROBE}) d"
        planned = [f"SET statement_timeout = {PLANNED_TIMEOUT_MS}"]  # seq scan: O(n m) a row
        gin = ["SET enable_seqscan = off", "SET enable_indexscan = off"]
        forms = (
            ("(a) && all 28,097 codes, as planned", "v && %(range)s::int4[]", "codes", planned),
            ("(a) && all 28,097 codes, GIN forced", "v && %(range)s::int4[]", "codes", gin),
            (f"(b) && the {occurring:,} occurring (lexicon)", f"v && {lexicon_codes}", "codes", []),
            (f"(c) probe newest {PROBE:,}, unnest", unnested, probed, []),
        )
        for form, where, source, settings in forms:
            if not form.startswith("(c)"):
                count = f"SELECT count(*) FROM codes WHERE {where}"
                timing = timed(conn, [(count, values)], settings=settings)
                found = "" if timing is None else f"{timing.results[0][0][0]:,} docs"
                add("prefix count", label, form, timing, found)
                if char == chars[0]:
                    explain(conn, f"prefix count, {char}, {form}", (count, values), settings)
            page = f"SELECT doc_id FROM {source} WHERE {where} ORDER BY doc_id DESC LIMIT {PAGE}"
            timing = timed(conn, [(page, values)], settings=settings)
            found = "" if timing is None else f"{len(timing.results[0])} rows"
            add("prefix newest 20", label, form, timing, found)
            if char in (chars[0], chars[-1]):
                explain(conn, f"prefix newest 20, {char}, {form}", (page, values), settings)
        scan = f"SELECT count(*) FROM codes WHERE {unnested}"
        timing = timed(conn, [(scan, values)], repeats=1, warm=False)
        found = "" if timing is None else f"{timing.results[0][0][0]:,} docs"
        add("prefix count", label, "(c) scan all, unnest (1 run)", timing, found)


def sizes(conn: object, text_bytes: int) -> None:
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(
            "SELECT pg_total_relation_size('codes'), pg_relation_size('codes'), "
            "pg_total_relation_size(reltoastrelid), pg_relation_size('ix_codes'), "
            "pg_total_relation_size('codes_pkey'), pg_total_relation_size('codes_lexicon') "
            "FROM pg_class WHERE oid = 'codes'::regclass"
        )
        total, heap, toast, gin, pkey, lexicon = cur.fetchone()
    mb = 2**20
    print(
        f"\ntext {text_bytes / mb:.1f} MB; codes total {total / mb:.1f} MB ({total / text_bytes:.2f}x): "
        f"heap {heap / mb:.1f}, toast {toast / mb:.1f} ({toast / text_bytes:.2f}x), "
        f"GIN {gin / mb:.1f} ({gin / text_bytes:.2f}x), primary key {pkey / mb:.1f}; "
        f"codes_lexicon {lexicon / mb:.1f} MB ({lexicon / text_bytes:.3f}x)"
    )


if __name__ == "__main__":
    main()
