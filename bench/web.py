"""The web UI under load: search and article pages over loopback, against the data layer.

The archive is bench/search.py's synthetic one (default 200,000 articles in SQLite: ~1,500
characters of Chinese news words each, 20 sites, five years, ~3 % traditional script),
built once and kept under data/bench/ (`--cache`), reused while its article count is the
same. The server is `ufarchive serve` in a process of its own on 127.0.0.1 and a free
port, so its memory is its own (VmRSS in /proc, summed over its worker processes). Clients are threads holding keep-alive
HTTP/1.1 connections (http.client), 8 by default.

Measured in one run, so that the load of this shared machine falls on both sides alike:
- the search page (`/?q=`) for bench/search.py's queries (common 2-character words,
  4-character words, phrases, site: and since: filters) against `archive.search.search()`
  called in this process for the same queries, with the page's arguments, at the same
  concurrency (1 and `--clients` threads, each with its own session); target: the
  page's p95 within 1.5x of search()'s;
- the article page (`/articles/{id}`, ids drawn at random); target: p95 <= 50 ms;
- the server's memory over `--requests` requests (10,000: searches, facets, articles),
  VmRSS and its RssAnon (the heap; the rest is the database file mapped by SQLite's mmap,
  page cache rather than memory the server holds) at the start, the middle and the end,
  with the peak of each part of the run; target: flat (the second half adds < 10 % to
  the heap).

    .venv/bin/python bench/web.py [--articles 200000] [--clients 8] [--requests 10000]
        [--searches 2000] [--cache data/bench]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import search as search_bench  # noqa: E402  (bench/search.py: the corpus and its queries)
from sqlalchemy import Engine, func, select  # noqa: E402

from archive.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from archive.search import search  # noqa: E402
from archive.store import ARTICLES  # noqa: E402

# What the search page asks search() for (web/pages/search.py): the first page, its size,
# its default order, with the count of matches it shows.
PAGE_SIZE = 20
PAGE_SORT = "relevance"
KINDS = ("2-char", "4-char", "phrase", "site:", "since:")

SEARCH_RATIO = 1.5
ARTICLE_P95_MS = 50.0
RSS_GROWTH = 0.10
TARGET_ARTICLES = 200_000
ARTICLES_ONE_CLIENT = 200  # the article page's own time, without queueing (reference)


def percentile(values: Sequence[float], q: float) -> float:
    return search_bench.percentile(values, q)


def ms(values: Sequence[float], q: float) -> float:
    return percentile(values, q) * 1000


# --- the archive -----------------------------------------------------------------------------


def archive(cache: Path, n: int) -> tuple[str, dict[str, list[str]]]:
    """The SQLite URL of an indexed archive of n articles (built when not cached) and the
    queries by kind."""
    corpus = search_bench.Corpus()
    path = cache / f"web-{n}.sqlite3"
    done = path.with_suffix(".done")
    url = f"sqlite:///{path}"
    if path.exists() and done.exists():
        print(f"archive: {n:,} articles, reused from {path}")
    else:
        cache.mkdir(parents=True, exist_ok=True)
        for stale in (path, done, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        print(f"archive: building {n:,} articles in {path}")
        started = time.perf_counter()
        writer = make_engine(url, writer=True)
        try:
            upgrade(writer)
            search_bench.store(writer, corpus, n)
            search_bench.build_index(writer, workers=1)
        finally:
            writer.dispose()
        done.write_text(f"{n}\n", encoding="ascii")
        print(f"  built in {time.perf_counter() - started:,.0f} s")
    first = next(corpus.batches(min(n, search_bench.BATCH)))
    queries = search_bench.pick_queries(corpus, first)
    return url, {kind: queries[kind] for kind in KINDS}


def article_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(ARTICLES)) or 0)
    finally:
        engine.dispose()


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Memory:
    rss: float  # MB
    anon: float

    def __str__(self) -> str:
        return f"{self.rss:,.0f} MB (anon {self.anon:,.0f})"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    def pids(self) -> list[int]:
        """The server and its worker processes (`serve` runs web.workers of them)."""
        found = [self.process.pid]
        for pid in found:
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
                found += [int(c) for c in children.split()]
        return found

    def memory(self) -> Memory:
        """VmRSS, and of it RssAnon (the heap: what a leak grows; RssFile is the
        database's pages mapped by SQLite's mmap, the page cache), summed over the
        server's processes."""
        found = {"VmRSS": 0.0, "RssAnon": 0.0}
        for pid in self.pids():
            with (
                contextlib.suppress(OSError),
                Path(f"/proc/{pid}/status").open(encoding="ascii") as status,
            ):
                for line in status:
                    name, _, value = line.partition(":")
                    if name in found:
                        found[name] += int(value.split()[0]) / 1024
        return Memory(found["VmRSS"], found["RssAnon"])


@contextmanager
def server(url: str, work: Path, workers: int | None = None) -> Iterator[Server]:
    """`ufarchive serve` on 127.0.0.1 and a free port, until the block ends."""
    (work / "config" / "sites").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "UFARCHIVE_CONFIG": str(work / "config"),
        "UFARCHIVE_DATA_DIR": str(work / "data"),
        "UFARCHIVE_DATABASE_URL": url,
    }
    port = free_port()
    command = [str(Path(sys.executable).with_name("ufarchive")), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    log = (work / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = Client(port).get("/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the web UI did not start on port {port}")
            time.sleep(0.1)
        yield Server(process, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        errors = [
            line for line in (work / "server.log").read_text("utf-8", "replace").splitlines()
            if line and not line.startswith((" ", "Traceback", "web UI on"))
        ]  # fmt: skip
        if errors:
            print(f"the server logged {len(errors)} lines, the last: {errors[-1]}")


class Client:
    """One keep-alive connection; get() gives (status, seconds, bytes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str) -> tuple[int, float, int]:
        started = time.perf_counter()
        try:
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            body = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # one retry on a fresh connection (the server closed it)
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            started = time.perf_counter()
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            body = response.read()
        return response.status, time.perf_counter() - started, len(body)

    def close(self) -> None:
        self.conn.close()


# --- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """Requests shared out to threads; done counts them as they finish."""

    done: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(
        self, threads: int, jobs: Sequence[str], work: Callable[[], Callable[[str], float]]
    ) -> list[float]:
        """Each thread makes its worker (a connection, a session) and takes jobs in turn."""
        times: list[float] = []
        cursor = iter(range(len(jobs)))

        def thread() -> None:
            do = work()
            while True:
                with self.lock:
                    k = next(cursor, None)
                if k is None:
                    return
                try:
                    seconds = do(jobs[k])
                except Exception as exc:  # noqa: BLE001  (counted and shown, the run goes on)
                    with self.lock:
                        self.failures.append(f"{jobs[k]}: {type(exc).__name__}: {exc}")
                    continue
                with self.lock:
                    times.append(seconds)
                    self.done += 1

        pool = [threading.Thread(target=thread) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return times


def page_worker(port: int) -> Callable[[], Callable[[str], float]]:
    def make() -> Callable[[str], float]:
        client = Client(port)

        def do(path: str) -> float:
            status, seconds, size = client.get(path)
            if status != 200 or size == 0:
                raise RuntimeError(f"HTTP {status}")
            return seconds

        return do

    return make


def direct_worker(engine: Engine) -> Callable[[], Callable[[str], float]]:
    sessions = make_sessionmaker(engine)

    def make() -> Callable[[str], float]:
        def do(query: str) -> float:
            started = time.perf_counter()
            with sessions() as session:
                search(session, query, limit=PAGE_SIZE, sort=PAGE_SORT, count=True)
            return time.perf_counter() - started

        return do

    return make


def search_path(query: str) -> str:
    return "/?q=" + quote(query, safe="")


def facets_path(query: str) -> str:
    """The search page's facets and timeline: a request of their own (web/pages/search.py)."""
    return "/facets?q=" + quote(query, safe="")


@dataclass
class Sampler:
    """The server's RSS every 0.2 s with the requests done by then."""

    server: Server
    load: Load
    samples: list[tuple[int, Memory]] = field(default_factory=list)
    peaks: dict[str, Memory] = field(default_factory=dict)  # the highest RSS in each phase
    phase: str = "warm-up"
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.wait(0.1):
            now = self.server.memory()
            self.samples.append((self.load.done, now))
            peak = self.peaks.get(self.phase, now)
            self.peaks[self.phase] = Memory(max(now.rss, peak.rss), max(now.anon, peak.anon))

    def at(self, done: int) -> Memory:
        return next((rss for n, rss in self.samples if n >= done), self.samples[-1][1])


@contextmanager
def phase(label: str, count: Callable[[], int], sampler: Sampler) -> Iterator[None]:
    """Print how long a part of the run took (and how many page requests it made); the
    sampler keeps the RSS peak of each part."""
    started = time.perf_counter()
    sampler.phase = label
    yield
    print(f"  {label}: {count():,} pages in {time.perf_counter() - started:,.0f} s", flush=True)


def row(label: str, times: Sequence[float]) -> str:
    return (
        f"  {label:<44} {len(times):>6,} {ms(times, 0.5):>8.1f} {ms(times, 0.95):>8.1f} "
        f"{ms(times, 0.99):>8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=TARGET_ARTICLES, help="archive size")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument(
        "--server-workers", type=int, help="processes of `serve` (default: web.workers, one a core)"
    )
    parser.add_argument("--requests", type=int, default=10_000, help="page requests in all")
    parser.add_argument(
        "--searches", type=int, default=2_000, help="of which search pages (the rest articles)"
    )
    parser.add_argument(
        "--cache", type=Path, default=REPO / "data" / "bench", help="where the archive is kept"
    )
    args = parser.parse_args()
    if args.articles < 1000 or args.clients < 1 or not 0 < args.searches < args.requests:
        parser.error("--articles >= 1000, --clients >= 1, 0 < --searches < --requests")
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    started = time.perf_counter()
    url, by_kind = archive(args.cache, args.articles)
    queries = [q for kind in KINDS for q in by_kind[kind]]
    n = article_count(url)
    rng = random.Random(5)
    print(f"{len(queries)} queries: " + " | ".join(queries))
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    engine = make_engine(url)
    with (
        tempfile.TemporaryDirectory(prefix="ufarchive-bench-web-") as tmp,
        server(url, Path(tmp), args.server_workers) as web,
    ):
        load = Load()
        pages, direct = page_worker(web.port), direct_worker(engine)
        sampler = Sampler(web, load)
        sampler.thread.start()
        # warm-up, untimed and uncounted: every query both ways, a few articles
        Load().run(1, queries, direct)
        Load().run(1, [search_path(q) for q in queries], pages)
        Load().run(1, [f"/articles/{rng.randint(1, n)}" for _ in range(50)], pages)
        start_rss = web.memory()

        # search() and the page take turns, a round of the queries each, so that a busy
        # spell of this shared machine falls on both alike
        rounds = max(1, args.searches // len(queries))
        paths = [search_path(q) for q in queries]
        direct_1: list[float] = []
        page_1: list[float] = []
        direct_n: list[float] = []
        page_n: list[float] = []
        with phase("search, 1 thread / client", lambda: len(page_1), sampler):
            for _ in range(2):
                direct_1 += Load().run(1, queries, direct)
                page_1 += load.run(1, paths, pages)
        with phase(f"search, {args.clients} threads / clients", lambda: len(page_n), sampler):
            for _ in range(rounds):
                direct_n += Load().run(args.clients, queries, direct)
                page_n += load.run(args.clients, paths, pages)
        with phase("facets", lambda: len(facets), sampler):
            facets = load.run(args.clients, [facets_path(q) for q in queries], pages)
        left = args.requests - load.done - ARTICLES_ONE_CLIENT
        ids = [f"/articles/{rng.randint(1, n)}" for _ in range(left)]
        with phase(f"article pages, {args.clients} clients", lambda: len(article_n), sampler):
            article_n = load.run(args.clients, ids, pages)
        with phase("article pages, 1 client", lambda: len(article_1), sampler):
            article_1 = load.run(1, ids[:ARTICLES_ONE_CLIENT], pages)
        sampler.stop.set()
        sampler.thread.join()
        end_rss = web.memory()
    engine.dispose()

    print(f"\n{n:,} articles, {args.clients} clients, {load.done:,} page requests")
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  {'':<44} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    print(row("search() in process, 1 thread", direct_1))
    print(row("search page, 1 client", page_1))
    print(row(f"search() in process, {args.clients} threads", direct_n))
    print(row(f"search page, {args.clients} clients", page_n))
    print(row(f"facets of a search, {args.clients} clients", facets))
    print(row(f"article page, {args.clients} clients", article_n))
    print(row("article page, 1 client", article_1))
    if load.failures:
        print(f"  {len(load.failures)} failed requests, the first: {load.failures[0]}")

    ratio_1 = ms(page_1, 0.95) / ms(direct_1, 0.95)
    ratio_n = ms(page_n, 0.95) / ms(direct_n, 0.95)
    middle = sampler.at(load.done // 2)
    growth = (end_rss.anon - middle.anon) / middle.anon
    print(
        f"\nserver RSS: start {start_rss}, middle ({load.done // 2:,} requests) {middle}, "
        f"end {end_rss}\n  peaks: "
        + "; ".join(f"{name} {peak}" for name, peak in sampler.peaks.items())
    )
    scale = "" if n == TARGET_ARTICLES else f" (at {n:,} articles, not the target's 200,000)"
    print(f"\nTargets{scale}:")
    verdicts = [
        (f"search page p95 <= {SEARCH_RATIO}x search(), {args.clients} clients",
         f"{ratio_n:.2f}x", ratio_n <= SEARCH_RATIO),
        (f"search page p95 <= {SEARCH_RATIO}x search(), 1 client (reference)",
         f"{ratio_1:.2f}x", ratio_1 <= SEARCH_RATIO),
        (f"article page p95 <= {ARTICLE_P95_MS:.0f} ms, {args.clients} clients",
         f"{ms(article_n, 0.95):.1f} ms", ms(article_n, 0.95) <= ARTICLE_P95_MS),
        ("server heap (RssAnon) flat: second half adds < 10 %", f"{growth:+.1%}", growth < RSS_GROWTH),
        ("no failed request", f"{len(load.failures)} failed", not load.failures),
    ]  # fmt: skip
    for what, figure, ok in verdicts:
        print(f"  {what:<56} {figure:<12} {'met' if ok else 'NOT met'}")
    print(f"\n{time.perf_counter() - started:,.0f} s in all")


if __name__ == "__main__":
    main()
