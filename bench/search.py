"""Search at archive scale: index build rate and size, query latency, SQLite and PostgreSQL.

A synthetic archive (default 1,000,000 articles in SQLite and the first 200,000 of them
in PostgreSQL) of ~1,500 characters an article, words drawn from the golden pages'
bodies with Zipf-like frequencies (bench/dedup.py's vocabulary), a ~20-character title,
one of 20 sites of skewed sizes, a publish time over five years (not in id order: ids
are crawl order, and a backfill does not arrive in date order), and ~3 % of articles in
traditional script (opencc s2t), so the index holds both scripts. Articles are stored
with Core bulk inserts, then indexed by `archive.search.rebuild_index` (on PostgreSQL:
the entries by COPY, then the GIN index's two halves at once, then the common codes'
counts, each step's start printed): that gives the build rate (articles/s). Index size: the growth of the
SQLite file (after a WAL checkpoint), or `pg_total_relation_size('search_docs')`,
against the text it indexes (UTF-8 bytes of titles and bodies).

Queries, all words taken from the corpus vocabulary: common 2-character words,
mid-frequency 4-character strings, phrases (two common words together, or 6-10
characters cut from a stored article), a 2-character word filtered by `site:` (sites
large to small) and by `since:` (the last 3, 12 or 24 months); each top 20 newest first
and by relevance (`archive.search.search`, count=False), and the count of a common
2-character word (`count_matches`). Each kind runs `--queries` times cycling over its
queries after one untimed pass over them; p50/p95 in ms. The peer, timed in the same
run: a LIKE scan counting a 2-character word in the bodies.

    .venv/bin/python bench/search.py [--docs 1000000] [--pg-docs 200000] [--queries 50]
        [--workers 1] [--keep PATH] [--pg-keep NAME]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

`--pg-docs 0` skips PostgreSQL; otherwise the bench creates its own database
(`ufarchive_bench_<pid>`) on that server and drops it at the end, also on failure.
`--pg-keep NAME` keeps it instead, and a later run with the same NAME queries it as it
is (migrations applied, no fill and no build), to time a change to the queries.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import re
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from dedup import S2T, article, vocabulary  # noqa: E402
from sqlalchemy import Engine, create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from archive.db import describe_url, make_engine, make_sessionmaker, upgrade  # noqa: E402
from archive.search import GIN_HALVES, SITES, count_matches, rebuild_index, search  # noqa: E402
from archive.store import ARTICLES, VERSIONS  # noqa: E402
from archive.text import normalize  # noqa: E402

SEED = 11
SITE_COUNT = 20
TRADITIONAL = 0.03  # share of articles in traditional script
BATCH = 10_000  # articles an insert transaction
PROGRESS = 100_000
BEIJING = timezone(timedelta(hours=8))
END = datetime(2026, 11, 1, tzinfo=BEIJING)
SPAN = timedelta(days=5 * 365)
SINCE_DAYS = (90, 365, 730)
FILTER_SITES = (2, 5, 10, 19)  # site ranks, large to small (site01 is the largest)
WORDS_A_KIND = 8
COMMON_RANKS = (0, 5, 20, 60, 150, 400, 1000, 2500)  # places in the frequency order
LIKE_REPETITIONS = 3
HAN = re.compile(r"[\u4e00-\u9fff]+")

TARGET_DOCS = 1_000_000


@dataclass(frozen=True)
class Targets:
    """What an archive of TARGET_DOCS articles is held to (the issues that set them)."""

    newest_ms: float  # newest-first top-20 p95
    relevance_ms: float  # relevance top-20 p95
    count_ms: float  # count of a 2-character word p95
    build_per_s: float  # index build, articles a second
    size_ratio: float  # the index against the text


TARGETS = {
    "SQLite": Targets(20.0, 150.0, 50.0, 1000.0, 1.5),
    # PostgreSQL as the production archive (the scale-out issue)
    "PostgreSQL": Targets(30.0, 200.0, 50.0, 1000.0, 2.0),
}


@dataclass(frozen=True)
class Doc:
    id: int
    site_id: int
    title: str
    body: str
    published: datetime


class Corpus:
    """The same articles in the same order on every call: PostgreSQL gets a prefix."""

    def __init__(self, seed: int = SEED) -> None:
        self.seed = seed
        self.words, self.weights = vocabulary(random.Random(seed))
        self.site_weights = list(
            itertools.accumulate(1.0 / rank for rank in range(1, SITE_COUNT + 1))
        )

    def batches(self, n: int, size: int = BATCH) -> Iterator[list[Doc]]:
        rng = random.Random(self.seed + 1)
        sites = list(range(1, SITE_COUNT + 1))
        for start in range(1, n + 1, size):
            docs = []
            for doc_id in range(start, min(start + size, n + 1)):
                words = rng.choices(self.words, cum_weights=self.weights, k=10)
                title = "".join(words)[: rng.randint(16, 24)]
                body = article(rng, self.words, self.weights)
                if rng.random() < TRADITIONAL:
                    title, body = S2T.convert(title), S2T.convert(body)
                site = rng.choices(sites, cum_weights=self.site_weights)[0]
                published = END - SPAN * rng.random()
                docs.append(Doc(doc_id, site, title, body, published.replace(microsecond=0)))
            yield docs


@dataclass
class Kind:
    """One row of the table: a kind of query, how it is run, its target."""

    name: str
    queries: list[str]
    sort: str  # newest | relevance | count | LIKE
    target_ms: float | None
    times: list[float] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)

    def p(self, q: float) -> float:
        return percentile(self.times, q) * 1000


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def pick_queries(corpus: Corpus, first: list[Doc]) -> dict[str, list[str]]:
    """Query strings by kind, all from the corpus vocabulary (rank = place in the list)."""
    rng = random.Random(corpus.seed + 2)
    rank = {w: k for k, w in enumerate(corpus.words)}
    ranked = [w for w in corpus.words if HAN.fullmatch(w) and normalize(w) == w]
    twos = [w for w in ranked if len(w) == 2]
    # from the most frequent word down: in nearly every article to a few in a hundred
    common = [twos[next(k for k, w in enumerate(twos) if rank[w] >= r)] for r in COMMON_RANKS]
    middle = [w for w in ranked if len(w) == 4 and 300 <= rank[w] < 3000]
    step = max(1, len(middle) // WORDS_A_KIND)
    four = middle[::step][:WORDS_A_KIND]
    pairs = [f'"{common[k]}{common[-1 - k]}"' for k in range(WORDS_A_KIND // 2)]
    cuts = []
    for doc in first:
        # simplified runs only (the vocabulary has traditional words from HK/TW pages)
        runs = [run for run in HAN.findall(doc.body) if len(run) >= 10 and normalize(run) == run]
        if not runs:
            continue
        run = rng.choice(runs)
        length = rng.randint(6, 10)
        start = rng.randrange(len(run) - length + 1)
        cuts.append(f'"{run[start : start + length]}"')
        if len(cuts) == WORDS_A_KIND // 2:
            break
    sites = [f"site{rank:02d}" for rank in FILTER_SITES]
    since = [(END - timedelta(days=d)).date().isoformat() for d in SINCE_DAYS]
    return {
        "2-char": common,
        "4-char": four,
        "phrase": [q for pair in itertools.zip_longest(pairs, cuts) for q in pair if q],
        "site:": [f"site:{sites[k % len(sites)]} {w}" for k, w in enumerate(common)],
        "since:": [f"since:{since[k % len(since)]} {w}" for k, w in enumerate(common)],
    }


# --- building --------------------------------------------------------------------------------


def store(engine: Engine, corpus: Corpus, n: int) -> tuple[int, list[Doc]]:
    """Insert n articles with their sites and versions; (text bytes, the first batch)."""
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        session.execute(
            insert(SITES),
            [
                {"id": k, "name": f"site{k:02d}", "title": f"示例统战网{k:02d}"}
                for k in range(1, SITE_COUNT + 1)
            ],
        )
    text_bytes, first, started = 0, [], time.perf_counter()
    for docs in corpus.batches(n):
        first = first or docs
        articles, versions = [], []
        for doc in docs:
            url = f"https://site{doc.site_id:02d}.example.cn/tzyw/t{doc.id}.html"
            seen = doc.published + timedelta(hours=3)
            articles.append(
                {
                    "id": doc.id,
                    "site_id": doc.site_id,
                    "url": url,
                    "canonical_url": url,
                    "first_seen": seen,
                    "last_seen": seen,
                    "version": 1,
                    "publish_time": doc.published,
                }
            )
            versions.append(
                {
                    "article_id": doc.id,
                    "version": 1,
                    "first_seen": seen,
                    "last_seen": seen,
                    "title": doc.title,
                    "publish_time": doc.published,
                    "publish_time_offset": 480,
                    "body": doc.body,
                    "content_hash": "",
                }
            )
            text_bytes += len(doc.title.encode()) + len(doc.body.encode())
        with sessions() as session, session.begin():
            session.execute(insert(ARTICLES), articles)
            session.execute(insert(VERSIONS), versions)
        done = docs[-1].id
        if done % PROGRESS < BATCH or done == n:
            rate = done / (time.perf_counter() - started)
            print(f"  stored {done:,} articles ({rate:,.0f}/s, generating included)", flush=True)
    return text_bytes, first


def build_index(engine: Engine, workers: int) -> tuple[int, float]:
    """rebuild_index (one transaction on SQLite, its steps on PostgreSQL timed as they
    start): (articles indexed, seconds)."""
    sessions = make_sessionmaker(engine)
    shown = [0]
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done // PROGRESS > shown[0] // PROGRESS or done == total:
            rate = done / (time.perf_counter() - started)
            print(f"  indexed {done:,} of {total:,} ({rate:,.0f}/s)", flush=True)
        shown[0] = done

    def step(name: str) -> None:
        print(f"  {time.perf_counter() - started:,.1f} s: {name}", flush=True)

    with sessions() as session, session.begin():
        indexed = rebuild_index(
            session, batch=1000, workers=workers, on_progress=progress, on_step=step
        )
    return indexed, time.perf_counter() - started


def sqlite_bytes(path: Path) -> int:
    """The database file's size once the WAL is checkpointed into it."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages * db.execute("PRAGMA page_size").fetchone()[0])
    finally:
        db.close()


def sqlite_index_parts(path: Path) -> list[tuple[str, int]]:
    """Bytes of each table and index of the search index (dbstat), largest first."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        names = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_schema WHERE name LIKE 'search_fts_%'"
                " OR tbl_name = 'search_docs'"
            )
        ]
        query = "SELECT sum(pgsize) FROM dbstat WHERE name = ?"
        parts = [(name, int(db.execute(query, (name,)).fetchone()[0] or 0)) for name in names]
        return sorted(parts, key=lambda part: -part[1])
    except sqlite3.OperationalError:  # no dbstat in this SQLite
        return []
    finally:
        db.close()


# --- querying --------------------------------------------------------------------------------


def run_kinds(
    engine: Engine, queries: dict[str, list[str]], repetitions: int, targets: Targets
) -> list[Kind]:
    """Time every kind of query through a reader engine (as the web UI and CLI read)."""
    kinds = [Kind(name, qs, "newest", targets.newest_ms) for name, qs in queries.items()]
    kinds += [Kind(name, qs, "relevance", targets.relevance_ms) for name, qs in queries.items()]
    kinds.append(Kind("count 2-char", queries["2-char"], "count", targets.count_ms))
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        # untimed: how many articles each query matches
        matches = {name: [count_matches(session, q) for q in qs] for name, qs in queries.items()}
        for kind in kinds:
            kind.matches = matches[kind.name.split()[-1]]
            run = runner(session, kind.sort)
            for q in kind.queries:  # warm-up
                run(q)
            for k in range(repetitions):
                q = kind.queries[k % len(kind.queries)]
                started = time.perf_counter()
                run(q)
                kind.times.append(time.perf_counter() - started)
        word = queries["2-char"][0]
        like = Kind("LIKE 2-char", [word], "LIKE", None)
        statement = text("SELECT count(*) FROM article_versions WHERE body LIKE :pattern")
        for _ in range(LIKE_REPETITIONS):
            started = time.perf_counter()
            found = session.scalar(statement, {"pattern": f"%{word}%"})
            like.times.append(time.perf_counter() - started)
        like.matches = [int(found or 0)]
        kinds.append(like)
    return kinds


def runner(session: Session, sort: str) -> Callable[[str], object]:
    if sort == "count":
        return lambda q: count_matches(session, q)
    if sort == "newest":
        return lambda q: search(session, q, limit=20, sort="newest", count=False)
    return lambda q: search(session, q, limit=20, sort="relevance", count=False)


def print_table(kinds: list[Kind]) -> None:
    print(
        f"  {'kind':<14} {'order':<10} {'matches (median)':>16} {'p50 ms':>9} {'p95 ms':>9} {'target':>8}  met?"
    )
    for kind in kinds:
        target = f"<= {kind.target_ms:.0f}" if kind.target_ms else ""
        met = "" if kind.target_ms is None else ("yes" if kind.p(0.95) <= kind.target_ms else "NO")
        p95 = f"{kind.p(0.95):9.1f}" if len(kind.times) > LIKE_REPETITIONS else f"{'':>9}"
        print(
            f"  {kind.name:<14} {kind.sort:<10} {statistics.median(kind.matches):>16,.0f} "
            f"{kind.p(0.5):9.1f} {p95} {target:>8}  {met}"
        )


@dataclass
class Result:
    backend: str
    docs: int
    build_rate: float
    index_bytes: int
    text_bytes: int
    kinds: list[Kind]


def verdicts(result: Result) -> list[str]:
    """One line per target of the result's backend: the figure, the target, met or NOT met."""
    targets = TARGETS[result.backend]

    def worst(sort: str) -> Kind:
        return max((k for k in result.kinds if k.sort == sort), key=lambda k: k.p(0.95))

    def line(what: str, figure: str, ok: bool) -> str:
        return f"  {what:<44} {figure:<34} {'met' if ok else 'NOT met'}"

    newest, relevance, count = worst("newest"), worst("relevance"), worst("count")
    ratio = result.index_bytes / result.text_bytes
    figures = [
        (f"newest-first top-20 p95 <= {targets.newest_ms:g} ms", newest, targets.newest_ms),
        (f"relevance top-20 p95 <= {targets.relevance_ms:g} ms", relevance, targets.relevance_ms),
        (f"count of a 2-character word p95 <= {targets.count_ms:g} ms", count, targets.count_ms),
    ]
    lines = [
        line(what, f"worst {kind.p(0.95):.1f} ms ({kind.name})", kind.p(0.95) <= target)
        for what, kind, target in figures
    ]
    rate = result.build_rate
    if rate:  # 0: a kept database, not built in this run
        lines.append(
            line(
                f"index build >= {targets.build_per_s:,.0f} articles/s",
                f"{rate:,.0f} articles/s",
                rate >= targets.build_per_s,
            )
        )
    lines.append(
        line(
            f"index <= {targets.size_ratio:g}x the text size",
            f"{ratio:.2f}x",
            ratio <= targets.size_ratio,
        )
    )
    return lines


# --- the two backends --------------------------------------------------------------------------


def bench_sqlite(corpus: Corpus, args: argparse.Namespace) -> tuple[Result, dict[str, list[str]]]:
    with tempfile.TemporaryDirectory(prefix="ufarchive-bench-") as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "search.sqlite3"
        if path.exists():
            raise SystemExit(f"--keep {path}: the file exists already; give a new path")
        url = f"sqlite:///{path}"
        print(f"\nSQLite: {args.docs:,} articles in {path}")
        writer = make_engine(url, writer=True)
        upgrade(writer)
        text_bytes, first = store(writer, corpus, args.docs)
        writer.dispose()
        before = sqlite_bytes(path)
        writer = make_engine(url, writer=True)
        indexed, seconds = build_index(writer, args.workers)
        writer.dispose()
        index_bytes = sqlite_bytes(path) - before
        parts = sqlite_index_parts(path)
        queries = pick_queries(corpus, first)
        reader = make_engine(url)
        try:
            kinds = run_kinds(reader, queries, args.queries, TARGETS["SQLite"])
        finally:
            reader.dispose()
    result = Result("SQLite", args.docs, indexed / seconds, index_bytes, text_bytes, kinds)
    report(result, seconds, f"file growth after a WAL checkpoint: {mb(index_bytes)}", parts)
    return result, queries


def check_server(pg_url: str) -> None:
    """Fail before the long SQLite part, not after it, when PostgreSQL cannot be reached."""
    admin = create_engine(pg_url)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as exc:
        problem = str(exc.orig or exc).strip().splitlines()[0]
        raise SystemExit(f"--pg-url {describe_url(pg_url)}: {problem}") from None
    finally:
        admin.dispose()


def bench_postgres(
    corpus: Corpus, args: argparse.Namespace, queries: dict[str, list[str]]
) -> Result:
    keep = args.pg_keep
    name = keep or f"ufarchive_bench_{os.getpid()}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        exists = bool(
            conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        )
        if not exists:
            conn.exec_driver_sql(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    print(f"\nPostgreSQL: {args.pg_docs:,} articles in " + (
        f"the kept database {name} (no fill, no build)" if exists else f"a new database {name}"
    ))  # fmt: skip
    engines: list[Engine] = []
    indexed, seconds, text_bytes = 0, 0.0, 0
    try:
        writer = make_engine(url, writer=True)
        engines.append(writer)
        upgrade(writer)
        if exists:
            with writer.connect() as conn:
                stored = conn.scalar(text("SELECT count(*) FROM articles"))
                text_bytes = int(conn.scalar(text(
                    "SELECT sum(octet_length(coalesce(title, '')) + octet_length(body))"
                    " FROM article_versions")) or 0)  # fmt: skip
            if stored != args.pg_docs:
                raise SystemExit(
                    f"--pg-keep {name}: it holds {stored:,} articles, not {args.pg_docs:,}"
                )
            indexed = args.pg_docs
        else:
            text_bytes, _ = store(writer, corpus, args.pg_docs)
            indexed, seconds = build_index(writer, args.workers)
        # autovacuum would get to it soon after a bulk load; the planner needs its figures
        with writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            index_bytes = int(
                conn.scalar(text("SELECT pg_total_relation_size('search_docs')")) or 0
            )
            gin = sum(  # its two halves (migration 0023)
                int(conn.scalar(text(f"SELECT pg_relation_size('{half}')")) or 0)
                for half in GIN_HALVES
            )
        reader = make_engine(url)
        engines.append(reader)
        kinds = run_kinds(reader, queries, args.queries, TARGETS["PostgreSQL"])
    finally:
        for engine in engines:
            engine.dispose()
        if not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"  dropped the database {name}")
        admin.dispose()
    result = Result(
        "PostgreSQL", args.pg_docs, indexed / seconds if seconds else 0.0, index_bytes,
        text_bytes, kinds,
    )  # fmt: skip
    report(
        result,
        seconds,
        f"pg_total_relation_size('search_docs'): {mb(index_bytes)}, of which GIN {mb(gin)}",
        [],
    )
    return result


def mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def report(result: Result, seconds: float, size: str, parts: list[tuple[str, int]]) -> None:
    print(f"\n{result.backend}, {result.docs:,} articles")
    if seconds:
        print(f"  index build: {result.build_rate:,.0f} articles/s ({seconds:,.1f} s)")
    else:
        print("  index build: not in this run (a kept database)")
    print(
        f"  index size: {size}; text (titles + bodies, UTF-8) {mb(result.text_bytes)}; "
        f"ratio {result.index_bytes / result.text_bytes:.2f}"
    )
    if parts:
        print("  of which: " + ", ".join(f"{name} {mb(size)}" for name, size in parts))
    print_table(result.kinds)
    like = result.kinds[-1]
    count = next(k for k in result.kinds if k.sort == "count")
    print(
        f"  LIKE '%{like.queries[0]}%' over the bodies: median {like.p(0.5):,.0f} ms of "
        f"{LIKE_REPETITIONS} = {like.p(0.5) / count.p(0.5):,.0f}x the indexed count's p50; "
        f"it finds {like.matches[0]:,} articles, the index {count.matches[0]:,} "
        "(LIKE: simplified bodies only; the index: titles and bodies, both scripts)"
    )
    print("  queries (matching articles):")
    for kind in result.kinds:
        if kind.sort == "newest":
            pairs = zip(kind.queries, kind.matches, strict=True)
            print(f"    {kind.name:<7} " + " | ".join(f"{q} {n:,}" for q, n in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000, help="articles in SQLite")
    parser.add_argument(
        "--pg-docs", type=int, default=200_000, help="articles in PostgreSQL (0: skip)"
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a server where the bench may create and drop its own database",
    )
    parser.add_argument("--queries", type=int, default=50, help="timed repetitions a kind of query")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="tokenising processes for the build (default: one a core, as `ufarchive reindex`)",
    )
    parser.add_argument("--keep", metavar="PATH", help="keep the SQLite database at PATH")
    parser.add_argument(
        "--pg-keep",
        metavar="NAME",
        help="the PostgreSQL database NAME: made, filled and kept if it is not there, else "
        "queried as it is (upgraded, no fill, no build: to time query changes quickly)",
    )
    args = parser.parse_args()
    if args.docs < 100 or args.queries < 1 or args.pg_docs < 0:
        parser.error("--docs must be at least 100, --queries at least 1, --pg-docs 0 or more")
    if args.pg_docs:
        check_server(args.pg_url)
    # a kill runs the clean-up too (the PostgreSQL database, the temporary SQLite file)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    corpus = Corpus()
    started = time.perf_counter()
    sqlite_result, queries = bench_sqlite(corpus, args)
    results = [sqlite_result]
    if args.pg_docs:
        results.append(bench_postgres(corpus, args, queries))
    for result in results:
        print(
            f"\nTargets ({result.backend} at {TARGET_DOCS:,} articles), {result.docs:,} here"
            + ("" if result.docs == TARGET_DOCS else ": not the target's scale")
        )
        print("\n".join(verdicts(result)))
    print(f"\n{time.perf_counter() - started:,.0f} s in all")


if __name__ == "__main__":
    main()
