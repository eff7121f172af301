"""Exports at archive scale: rows/s of every format and peak memory at 100,000 and 1,000,000
articles, on SQLite and PostgreSQL, side by side with what an analyst would write without
ufarchive: `pandas.read_sql(<the same query>, engine).to_csv(path)`.

The archive is synthetic: ~1,500 characters of Chinese news text an article (paragraphs
drawn from bench/dedup.py's vocabulary), a ~20-character title, 20 sites of skewed sizes,
a source and an editor from small lists (some missing), publish times over five years,
and one archived page each: a real WARC response and request record written by
`archive.warc.WarcFileWriter` (shared by every database of the run). Rows go straight
into the tables (sqlite3 executemany; PostgreSQL COPY), no ORM, no search index.

Each export runs in a child process of its own (`ufarchive export` in-process:
`archive.export.export_file`, the manifest included), which reports its rows, seconds
and peak RSS (getrusage), so a run's memory is its own and nothing is cached between
runs; the pandas peer runs the same way, right after our CSV of the same database.
Memory flatness: the peak at 1M less the peak at 100k, per format (target <= 50 MB).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/export.py [--docs 1000000] [--small 100000]
        [--formats csv,jsonl,parquet,xlsx,warc] [--no-pg] [--keep DIR]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

SEED = 20241115
SITE_COUNT = 20
BATCH = 10_000
END = datetime(2026, 6, 30, tzinfo=UTC)
SPAN = timedelta(days=5 * 365)
SOURCES = ["中央统战部网站", "人民网", "新华网", "中国统一战线新闻网", "人民政协网", "团结报",
           "光明日报", "统战新语", "某某市委统战部", None]  # fmt: skip
EDITORS = ["王明", "李华", "张伟", "刘洋", "陈静", "赵敏", "孙磊", "周婷", None, None]
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite
TARGET_RSS_GROWTH_MB = 50


# --- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    id: int
    site_id: int
    title: str
    body: str
    published: datetime
    source: str | None
    editor: str | None

    @property
    def url(self) -> str:
        return f"https://site{self.site_id:02d}.example.cn/tzyw/t{self.id}.html"

    @property
    def seen(self) -> datetime:
        return self.published + timedelta(hours=3)


def corpus(n: int, seed: int = SEED) -> Any:
    """The same n articles, in the same order, on every call."""
    from dedup import article, vocabulary

    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    pool = [article(rng, words, weights).split("\n") for _ in range(4000)]
    paragraphs = [p for ps in pool for p in ps]
    site_weights = [1.0 / rank for rank in range(1, SITE_COUNT + 1)]
    sites = list(range(1, SITE_COUNT + 1))
    for doc_id in range(1, n + 1):
        title = "".join(rng.choices(words, cum_weights=weights, k=10))[: rng.randint(16, 24)]
        body = "\n".join(rng.sample(paragraphs, rng.randint(5, 9)))[: rng.randint(1300, 1800)]
        published = (END - SPAN * rng.random()).replace(microsecond=0)
        site = rng.choices(sites, weights=site_weights)[0]
        yield Doc(doc_id, site, title, body, published, rng.choice(SOURCES), rng.choice(EDITORS))


def page(doc: Doc) -> bytes:
    paragraphs = "".join(f"<p>{line}</p>" for line in doc.body.split("\n"))
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{doc.title}</title></head>"
        f"<body><h1>{doc.title}</h1><div class='info'>来源：{doc.source or ''}</div>"
        f"<div class='article'>{paragraphs}</div></body></html>"
    ).encode()


def write_warcs(data_dir: Path, n: int) -> list[tuple[Any, ...]]:
    """One response + request record for each of the first n documents; their places."""
    from archive.warc import WarcFileWriter

    writer = WarcFileWriter(data_dir, max_bytes=1_000_000_000, prefix="bench")
    places = []
    started = time.perf_counter()
    try:
        for doc in corpus(n):
            html = page(doc)
            where = writer.write_exchange(
                doc.url, method="GET", request_headers=[("User-Agent", "ufarchive-bench")],
                status=200, reason="OK",
                response_headers=[("Content-Type", "text/html; charset=utf-8")],
                body=html, fetched_at=doc.seen, sync=False,
            )  # fmt: skip
            places.append((where.file, where.offset, where.length, where.record_id,
                           where.payload_digest, len(html)))  # fmt: skip
            if doc.id % 20_000 == 0:
                print(f"  WARC: {doc.id:,} pages ({doc.id / (time.perf_counter() - started):,.0f}/s)", flush=True)  # fmt: skip
    finally:
        writer.close()
    return places


# --- databases ----------------------------------------------------------------------------------

ARTICLE_COLUMNS = ("id", "site_id", "url", "canonical_url", "status", "first_seen", "last_seen",
                   "version", "publish_time", "content_hash", "is_original", "last_checked",
                   "next_check", "snapshot_id")  # fmt: skip
VERSION_COLUMNS = ("id", "article_id", "version", "first_seen", "last_seen", "title", "publish_time",
                   "publish_time_offset", "source", "editor", "body", "content_hash", "snapshot_id")  # fmt: skip
SNAPSHOT_COLUMNS = ("id", "article_id", "url", "fetched_at", "status_code", "headers", "content_type",
                    "payload_length", "warc_file", "warc_offset", "warc_length", "warc_record_id",
                    "payload_digest", "record_type")  # fmt: skip


def table_rows(
    doc: Doc, place: tuple[Any, ...] | None, when: Any
) -> tuple[tuple[Any, ...] | None, ...]:
    """(article, version, snapshot) rows of one document (no snapshot past the archived
    pages: --warc-docs); `when` formats its times."""
    file, offset, length, record_id, digest, size = place or (None,) * 6
    published, seen = when(doc.published), when(doc.seen)
    content_hash = f"{doc.id:064x}"
    snapshot_id = doc.id if place else None
    article = (doc.id, doc.site_id, doc.url, doc.url, "live", seen, seen, 1, published,
               content_hash, True, seen, seen, snapshot_id)  # fmt: skip
    version = (doc.id, doc.id, 1, seen, seen, doc.title, published, 480, doc.source, doc.editor,
               doc.body, content_hash, snapshot_id)  # fmt: skip
    snapshot = (doc.id, doc.id, doc.url, seen, 200, '{"Content-Type": "text/html; charset=utf-8"}',
                "text/html; charset=utf-8", size, file, offset, length, record_id, digest,
                "response") if place else None  # fmt: skip
    return article, version, snapshot


def place(places: list[tuple[Any, ...]], doc: Doc) -> tuple[Any, ...] | None:
    return places[doc.id - 1] if doc.id <= len(places) else None


def build_sqlite(path: Path, n: int, places: list[tuple[Any, ...]]) -> None:
    from archive.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    con = sqlite3.connect(path, isolation_level=None)
    # no journal for a bulk load into a new file: in WAL mode the whole load went through
    # a 5 GB write-ahead log and then into the file again (1,300 s for 1M articles)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO sites (id, name, title, created_at) VALUES (?, ?, ?, ?)",
        [(k, f"site{k:02d}", f"示例统战网{k:02d}", "2024-01-01 00:00:00.000000")
         for k in range(1, SITE_COUNT + 1)],
    )  # fmt: skip
    statements = [
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        for table, cols in (("snapshots", SNAPSHOT_COLUMNS), ("articles", ARTICLE_COLUMNS),
                            ("article_versions", VERSION_COLUMNS))
    ]  # fmt: skip

    def when(value: datetime) -> str:
        return value.strftime(SQLITE_TIME)

    batch: list[tuple[tuple[Any, ...], ...]] = []
    for doc in corpus(n):
        batch.append(table_rows(doc, place(places, doc), when))
        if len(batch) == BATCH or doc.id == n:
            articles, versions, snapshots = zip(*batch, strict=True)
            for statement, rows in zip(statements, (snapshots, articles, versions), strict=True):
                con.executemany(statement, [r for r in rows if r is not None])
            batch = []
    con.execute("COMMIT")
    con.execute("ANALYZE")
    con.close()


def build_postgres(url: str, n: int, places: list[tuple[Any, ...]]) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from archive.db import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as con:
        with con.cursor() as cur:
            cur.executemany(
                "INSERT INTO sites (id, name, title, created_at) VALUES (%s, %s, %s, now())",
                [(k, f"site{k:02d}", f"示例统战网{k:02d}") for k in range(1, SITE_COUNT + 1)],
            )
        tables = (("articles", ARTICLE_COLUMNS, 0), ("snapshots", SNAPSHOT_COLUMNS, 2),
                  ("article_versions", VERSION_COLUMNS, 1))  # fmt: skip
        batch: list[tuple[tuple[Any, ...], ...]] = []
        for doc in corpus(n):
            batch.append(table_rows(doc, place(places, doc), lambda v: v))
            if len(batch) < BATCH and doc.id != n:
                continue
            for table, cols, k in tables:  # one COPY at a time on a connection
                with (
                    con.cursor() as cur,
                    cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy,
                ):
                    for rows in batch:
                        if rows[k] is not None:
                            copy.write_row(rows[k])
            batch = []
        con.commit()
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("VACUUM ANALYZE")


# --- one export in a child process ---------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    from archive.db import make_engine, make_sessionmaker
    from archive.export import Options, export_file

    engine = make_engine(args.url)
    out = Path(args.out)
    started = time.perf_counter()
    if args.format == "pandas":
        import pandas as pd

        from archive.export import record_query

        # pandas holds the whole result (~2.2 GB a 100,000 articles): capped, so that at
        # 1M it ends in a MemoryError of its own instead of the machine's OOM killer
        sql = str(record_query().compile(engine, compile_kwargs={"literal_binds": True}))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (int(args.pandas_memory_gb * 2**30), hard))
        try:
            frame = pd.read_sql(sql, engine)
            frame.to_csv(out, index=False)
        except MemoryError:
            frame = None
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))  # room to report it
            out.touch()
            print(json.dumps({"rows": 0, "seconds": time.perf_counter() - started,
                              "cpu": cpu_seconds(), "rss_mb": peak_rss_mb(), "bytes": 0,
                              "failed": f"MemoryError under a {args.pandas_memory_gb:g} GB cap"}))  # fmt: skip
            return
        rows = len(frame)
    else:
        with make_sessionmaker(engine)() as session, session.begin():
            result = export_file(
                session, out, args.format, options=Options(data_dir=Path(args.data_dir))
            )
        rows = result.rows
    seconds = time.perf_counter() - started
    engine.dispose()
    size = out.stat().st_size
    print(json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu_seconds(),
                      "rss_mb": peak_rss_mb(), "bytes": size}))  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries
    that over from the parent across fork and exec, so a child would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(
    url: str, fmt: str, out: Path, data_dir: Path, pandas_memory_gb: float
) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", "--url", url, "--format", fmt, "--out", str(out),
         "--data-dir", str(data_dir), "--pandas-memory-gb", str(pandas_memory_gb)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"{fmt} export failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    for path in out.parent.glob(f"{out.name}*"):
        path.unlink()
    return figures


# --- the run ---------------------------------------------------------------------------------------


def measure(
    label: str, urls: dict[int, str], formats: list[str], work: Path, data_dir: Path,
    pandas_memory_gb: float,
) -> dict[tuple[str, int], dict[str, Any]]:  # fmt: skip
    figures: dict[tuple[str, int], dict[str, Any]] = {}
    for fmt in formats:  # a format's two sizes one after the other: the same load on both
        for size, url in urls.items():
            ext = "csv" if fmt == "pandas" else fmt
            # a file of this backend's own: two runs may share the folder (--keep)
            got = run_child(url, fmt, work / f"out-{label}-{fmt}.{ext}", data_dir, pandas_memory_gb)
            figures[fmt, size] = got
            if got.get("failed"):
                print(f"  {label} {size:>9,} {fmt:8} FAILED after {got['seconds']:.1f} s: "
                      f"{got['failed']} (peak RSS {got['rss_mb']:,.0f} MB)", flush=True)  # fmt: skip
                continue
            print(f"  {label} {size:>9,} {fmt:8} {got['rows']:>9,} rows {got['seconds']:7.1f} s "
                  f"{got['rows'] / got['seconds']:>9,.0f} rows/s ({got['rows'] / got['cpu']:>7,.0f} a CPU s)  "
                  f"peak RSS {got['rss_mb']:7.1f} MB  {got['bytes'] / 1e6:8.1f} MB", flush=True)  # fmt: skip
    return figures


def report(
    label: str, figures: dict[tuple[str, int], dict[str, Any]], small: int, big: int
) -> list[str]:
    lines = [
        f"\n{label}: rows/s and peak RSS, {small:,} and {big:,} articles",
        f"| format | rows/s {small // 1000}k | rows/s {big // 1000}k | rows a CPU s {big // 1000}k | "
        f"peak RSS {small // 1000}k | peak RSS {big // 1000}k | growth | output {big // 1000}k |",
        "|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for fmt in dict.fromkeys(f for f, _ in figures):
        a, b = figures[fmt, small], figures[fmt, big]
        if a.get("failed") or b.get("failed"):
            failed = a if a.get("failed") else b
            lines.append(f"| {fmt} | {failed['failed']} after {failed['seconds']:,.0f} s, "
                         f"peak RSS {failed['rss_mb']:,.0f} MB | | | | | | |")  # fmt: skip
            continue
        growth = b["rss_mb"] - a["rss_mb"]
        lines.append(
            f"| {fmt} | {a['rows'] / a['seconds']:,.0f} | {b['rows'] / b['seconds']:,.0f} | "
            f"{b['rows'] / b['cpu']:,.0f} | {a['rss_mb']:,.0f} MB | {b['rss_mb']:,.0f} MB | {growth:+,.0f} MB | "
            f"{b['bytes'] / 1e6:,.0f} MB |"
        )
        if fmt != "pandas":
            ok = growth <= TARGET_RSS_GROWTH_MB
            verdicts.append(
                f"{label} {fmt}: RSS growth {growth:+.0f} MB {'ok' if ok else 'OVER'} (<= {TARGET_RSS_GROWTH_MB})"
            )
    if figures.get(("pandas", big), {}).get("failed") and ("csv", big) in figures:
        peer = figures["pandas", big]
        verdicts.append(
            f"{label} csv vs pandas.read_sql().to_csv() at {big:,}: pandas failed "
            f"({peer['failed']}, peak RSS {peer['rss_mb']:,.0f} MB); ours "
            f"{figures['csv', big]['rss_mb']:,.0f} MB"
        )
    elif ("pandas", big) in figures and ("csv", big) in figures:
        ours, peer = figures["csv", big], figures["pandas", big]
        speed = (ours["rows"] / ours["seconds"]) / (peer["rows"] / peer["seconds"])
        memory = ours["rss_mb"] / peer["rss_mb"]
        verdicts.append(
            f"{label} csv vs pandas.read_sql().to_csv() at {big:,}: {speed:.2f}x the rows/s "
            f"({'ok' if speed >= 1 else 'SLOWER'}), {memory:.1%} of its peak RSS"
        )
    return [*lines, "", *verdicts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument(
        "--warc-docs",
        type=int,
        default=100_000,
        help="archive pages (WARC records) for this many articles; the rest have none",
    )
    parser.add_argument("--formats", default="csv,pandas,jsonl,parquet,xlsx,warc")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--keep", type=Path, help="build the archives here and keep them")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument(
        "--pandas-memory-gb", type=float, default=18.0,
        help="address-space cap of the pandas peer (it holds the whole result)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    formats = args.formats.split(",")
    work = args.keep or Path(tempfile.mkdtemp(prefix="ufarchive-bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    sizes = (args.small, args.docs)
    print(f"bench/export.py: {args.docs:,} articles (and {args.small:,}), formats {', '.join(formats)}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {work}", flush=True)  # fmt: skip
    started = time.perf_counter()
    places_file = work / "places.json"
    if places_file.exists():
        places = [tuple(p) for p in json.loads(places_file.read_text())]
    else:
        places = write_warcs(data_dir, min(args.warc_docs, args.docs))
        places_file.write_text(json.dumps(places))
    print(
        f"  WARC records of {len(places):,} pages: {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    report_lines: list[str] = []
    pg_names: list[str] = []
    try:
        if not args.no_sqlite:
            urls = {}
            for size in sizes:
                path = work / f"sqlite-{size}.sqlite3"
                if not path.exists():
                    t = time.perf_counter()
                    build_sqlite(path, size, places)
                    print(f"  SQLite {size:,}: built in {time.perf_counter() - t:.0f} s, "
                          f"{path.stat().st_size / 1e9:.2f} GB", flush=True)  # fmt: skip
                urls[size] = f"sqlite:///{path}"
            report_lines += report(
                "SQLite",
                measure("SQLite", urls, formats, work, data_dir, args.pandas_memory_gb),
                *sizes,
            )
        if not args.no_pg:
            from sqlalchemy import create_engine
            from sqlalchemy.engine import make_url

            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            urls = {}
            for size in sizes:
                name = f"ufarchive_bench_export_{size}"
                url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
                with admin.connect() as conn:
                    exists = conn.exec_driver_sql(
                        f"SELECT 1 FROM pg_database WHERE datname = '{name}'"
                    ).scalar()
                    if not exists or not args.keep:
                        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                        conn.exec_driver_sql(
                            f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"
                        )
                        exists = None
                if not args.keep:
                    pg_names.append(name)
                if not exists:
                    t = time.perf_counter()
                    build_postgres(url, size, places)
                    print(
                        f"  PostgreSQL {size:,}: built in {time.perf_counter() - t:.0f} s",
                        flush=True,
                    )
                urls[size] = url
            admin.dispose()
            report_lines += report(
                "PostgreSQL",
                measure("PostgreSQL", urls, formats, work, data_dir, args.pandas_memory_gb),
                *sizes,
            )
    finally:
        if pg_names:
            from sqlalchemy import create_engine

            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for name in pg_names:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report_lines))
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; load average now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
