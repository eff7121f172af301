"""Distributed crawl: articles/s with 1, 2 and 4 `ufarchive worker` processes, politeness held.

A fixture world of 20 generated sites (SITES x ARTICLES articles, listing pages of 20)
is served on 127.0.0.1, every response 100 ms late (a far-away government server). For
each worker count, a fresh PostgreSQL database and Redis key prefix; the workers start
and register, then `crawl --distributed` (crawler.distributed.crawl_distributed) queues
all 20 sites and waits for the workers to finish. Per-domain politeness: at most
DOMAIN_LIMIT requests in flight per site for all workers together, measured at each site
server. Each worker crawls every site with one request in flight per site
(`crawl.concurrent_requests: 1`), so one worker is bound by the latency, not the CPU, and
added workers can add throughput until the machine's two cores are busy.

Prints, per worker count: articles/s (first request to the run's end), the ratio to one
worker (the peer), the workers' CPU (cores busy on average), the machine's CPU busy share
and its CPU time per article (workers, PostgreSQL, Redis and the site servers together;
what does not grow with the articles, such as the processes' polling, weighs more on
the slower runs), the Redis commands run per article (every process's), the 1-minute
load average, and the most requests any site saw at once.

    .venv/bin/python bench/distributed.py [--sites 20] [--articles 100] [--workers 1,2,4]
        [--rounds 1] [--latency-ms 100] [--db-latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from archive.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from archive.models import Article  # noqa: E402
from archive.settings import DEFAULT_REDIS_URL, load_settings  # noqa: E402
from crawler import distributed  # noqa: E402
from tests.newstext import article, vocabulary  # noqa: E402
from tests.siteserver import SiteServer  # noqa: E402

LATENCY = 0.1  # the figure; --latency-ms sets another
DOMAIN_LIMIT = 4
PER_LISTING = 20
POSTGRES = os.environ.get(
    "UFARCHIVE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
WORDS, WEIGHTS = vocabulary(random.Random(7))


def article_html(site: int, number: int) -> str:
    """A distinct article of news text (tests.newstext): two articles share about as much
    of their text as two real ones do, so clustering does the work it does on a real crawl.
    (Until 2026-12-04 the texts were drawn from 20 phrases: every article shared LSH buckets
    with most others, and comparing them was a third of a worker's time.)"""
    rng = random.Random(site * 100_000 + number)
    title = "".join(rng.choices(WORDS, cum_weights=WEIGHTS, k=rng.randint(6, 10)))
    body = article(rng, WORDS, WEIGHTS)
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n"))
    return (
        f"<html><head><meta charset='utf-8'><title>{title}_测试{site}</title></head><body>"
        f"<h1>{title}</h1><div class='info'>来源：测试统战网{site}　时间：2024-03-{1 + number % 28:02d} 10:00"
        f"</div><div class='article'>{paragraphs}<p>责任编辑：王{number % 7}</p></div>"
        "<div class='footer'>版权所有 京ICP备00000000号</div></body></html>"
    )


def build_site(server: SiteServer, site: int, articles: int) -> None:
    pages = (articles + PER_LISTING - 1) // PER_LISTING
    for page in range(pages):
        name = "index.html" if page == 0 else f"index_{page}.html"
        links = "".join(
            f'<li><a href="/news/202403/t20240301_{n}.html">要闻{n}</a></li>'
            for n in range(page * PER_LISTING, min(articles, (page + 1) * PER_LISTING))
        )
        pager = "".join(
            f'<a href="index_{p}.html">{p}</a>' if p else '<a href="index.html">1</a>'
            for p in range(pages)
        )
        server.put(f"/news/{name}", f"<html><body><ul>{links}</ul>{pager}</body></html>")
    for n in range(articles):
        server.put(f"/news/202403/t20240301_{n}.html", article_html(site, n))
    server.put("/robots.txt", "User-agent: *\nDisallow: /admin/\n")


def write_config(root: Path, servers: list[SiteServer], prefix: str, redis_url: str) -> None:
    sites = root / "config" / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    (root / "config" / "settings.yaml").write_text(
        f"redis_url: {redis_url}\n"
        "crawl:\n"
        "  download_delay_seconds: 0\n"
        "  autothrottle: false\n"
        "  concurrent_requests: 1\n"
        f"  concurrent_requests_per_domain: {DOMAIN_LIMIT}\n"
        f"  redis_key_prefix: '{prefix}'\n"
        "  worker_timeout_seconds: 10\n"
        "revisit:\n  enabled: false\n"
        "logging:\n  level: WARNING\n",
        encoding="utf-8",
    )
    for n, server in enumerate(servers):
        (sites / f"s{n:02d}.yaml").write_text(
            f"name: s{n:02d}\ntitle: 测试{n}\nstart_urls: [{server.url('/news/index.html')}]\n"
            f"allowed_domains: [{server.host}]\n"
            "article_url_pattern: '/news/\\d{6}/t\\d+_\\d+\\.html$'\n"
            "follow_url_pattern: '/news/index(_\\d+)?\\.html$'\n"
            "schedule: {interval_minutes: 60}\n",
            encoding="utf-8",
        )


class DelayingProxy:
    """A TCP proxy on 127.0.0.1 that holds every chunk `delay` seconds in each direction:
    PostgreSQL as if on another host (`--db-latency-ms`). In its own thread and event loop
    (its CPU counts in the machine's, as the site servers' do)."""

    def __init__(self, host: str, port: int, delay: float) -> None:
        self.target, self.delay = (host, port), delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def start() -> None:
            server = await asyncio.start_server(self.connection, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        threading.Thread(target=self.loop.run_until_complete, args=(start(),), daemon=True).start()
        ready.wait()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self.pump(reader, up_writer), self.pump(up_reader, writer))

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # the same delay for every chunk keeps them in order (call_later is first in, first out)
        while data := await reader.read(65536):
            self.loop.call_later(self.delay, writer.write, data)
        self.loop.call_later(self.delay, writer.close)


def component_cpu(workers: list[int]) -> dict[str, float]:
    """CPU seconds so far by part: the workers, PostgreSQL's server processes, Redis, and
    this process (the site servers and the coordinator); each with the children it has
    reaped."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        name, rest = raw.split("(", 1)[1].rsplit(")", 1)
        fields = rest.split()
        pid = int(entry.name)
        names[pid], parents[pid] = name, int(fields[1])
        # with the children it has waited for: a process that ends during the run (a
        # PostgreSQL backend) is then still counted, in its parent's part
        used = sum(int(f) for f in fields[11:15])
        seconds[pid] = used / os.sysconf("SC_CLK_TCK")
    roots = set(workers)

    def part(pid: int) -> str:
        seen = pid
        while seen > 1:
            if seen in roots:
                return "workers"
            seen = parents.get(seen, 0)
        if pid == os.getpid():
            return "bench"
        if names[pid].startswith("postgres"):
            return "postgres"
        if names[pid].startswith("redis"):
            return "redis"
        return "other"

    totals: dict[str, float] = dict.fromkeys(PARTS, 0.0)
    for pid, used in seconds.items():
        totals[part(pid)] += used
    return totals


PARTS = ("workers", "postgres", "redis", "bench", "other")


def machine_busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def redis_calls(server: redis.Redis) -> int:
    """Commands the Redis server has run (INFO commandstats): workers, coordinator, all."""
    return sum(int(stat["calls"]) for stat in server.info("commandstats").values())


def run_size(
    count: int, servers: list[SiteServer], articles: int, redis_url: str,
    proxy: DelayingProxy | None = None,
) -> dict[str, float]:  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix=f"ufarchive-dist-{count}-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    dbname = f"ufarchive_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{dbname}"'))
    database_url = make_url(POSTGRES).set(database=dbname).render_as_string(hide_password=False)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()
        write_config(root, servers, prefix, redis_url)
        through = make_url(database_url)
        if proxy is not None:  # the workers and the coordinator reach it through the proxy
            through = through.set(host="127.0.0.1", port=proxy.port)
        env = {
            **os.environ,
            "UFARCHIVE_CONFIG": str(root / "config"),
            "UFARCHIVE_DATA_DIR": str(root / "data"),
            "UFARCHIVE_DATABASE_URL": through.render_as_string(hide_password=False),
        }
        for server in servers:
            server.clear()
        for n in range(count):
            log = root / f"worker-{n}.log"
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "crawler", "worker", "--log-file", str(log)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        server = redis.Redis.from_url(redis_url)
        keys = distributed.Keys(prefix)
        while len(distributed.live_workers(server, keys)) < count:
            time.sleep(0.1)
        parts_before = component_cpu([w.pid for w in workers])
        busy_before = machine_busy()
        calls_before = redis_calls(server)
        load = os.getloadavg()[0]
        started = time.time()
        runs = distributed.crawl_distributed(None, settings=load_settings(env))
        ended = time.time()
        parts_after = component_cpu([w.pid for w in workers])
        cpu = parts_after["workers"] - parts_before["workers"]
        busy_after = machine_busy()
        calls = redis_calls(server) - calls_before
        bad = [r for r in runs if not r.ok]
        if bad:
            raise SystemExit(f"{len(bad)} runs failed, e.g. {bad[0].site}: {bad[0].message}")
        engine = make_engine(database_url)
        with make_sessionmaker(engine)() as session:
            stored = int(session.scalar(select(func.count()).select_from(Article)) or 0)
        engine.dispose()
        first = min(r.at for s in servers for r in s.requests)
        last = max(r.at for s in servers for r in s.requests)
        busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
        return {
            "workers": count,
            "articles": stored,
            "expected": articles * len(servers),
            "seconds": ended - first,
            "crawl_seconds": last - first,
            "wall": ended - started,
            "rate": stored / (ended - first),
            "cores": cpu / (ended - started),
            "machine_busy": busy,
            # the whole machine's CPU (workers, PostgreSQL, Redis, the site servers) per article
            "machine_ms": (busy_after[0] - busy_before[0])
            / os.sysconf("SC_CLK_TCK")
            / stored
            * 1000,
            "load": load,
            # CPU ms per article by part
            **{
                f"ms_{name}": (parts_after[name] - parts_before[name]) / stored * 1000
                for name in PARTS
            },
            "redis_calls": calls / stored,
            "max_active": max(s.max_active for s in servers),
            "requests": sum(len(s.requests) for s in servers),
        }
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()
        client = redis.Redis.from_url(redis_url)
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        if names:
            client.delete(*names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--articles", type=int, default=100, help="articles per site")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="run the worker counts this many times, interleaved (1, 2, 4, 1, 2, 4...); each "
        "run's ratio is to the one-worker run of its own round, and the medians are printed",
    )  # fmt: skip
    parser.add_argument(
        "--latency-ms", type=float, default=LATENCY * 1000,
        help="how late every site server answers (100: the issue's figure; more lets one "
        "worker be bound by the latency, not the CPU, on a small machine)",
    )  # fmt: skip
    parser.add_argument(
        "--db-latency-ms", type=float, default=0.0,
        help="PostgreSQL reached through a proxy that holds each chunk this long each way "
        "(a database on another host; 0: straight, on loopback)",
    )  # fmt: skip
    args = parser.parse_args()
    proxy = None
    if args.db_latency_ms:
        url = make_url(POSTGRES)
        proxy = DelayingProxy(url.host or "127.0.0.1", url.port or 5432, args.db_latency_ms / 1000)
    counts = [int(c) for c in args.workers.split(",")]
    redis_url = os.environ.get("UFARCHIVE_REDIS_URL", DEFAULT_REDIS_URL)
    servers = [SiteServer().start() for _ in range(args.sites)]
    try:
        for n, server in enumerate(servers):
            build_site(server, n, args.articles)
            server.latency = args.latency_ms / 1000
        rounds = [
            [run_size(c, servers, args.articles, redis_url, proxy) for c in counts]
            for _ in range(args.rounds)
        ]
    finally:
        for server in servers:
            server.stop()
    print(f"{args.sites} sites x {args.articles} articles, {args.latency_ms:g} ms per response, "
          f"at most {DOMAIN_LIMIT} requests in flight per site for all workers together"
          + (f", PostgreSQL {args.db_latency_ms:g} ms away each way" if proxy else ""))  # fmt: skip
    print("workers  articles    seconds (fetching)  articles/s  vs 1 worker  "
          "worker CPU (cores)  machine busy  machine CPU ms/article  Redis calls/article  load(1m)  "
          "max in flight per site")  # fmt: skip
    for results in rounds:
        base = results[0]["rate"]  # this round's first count (one worker by default)
        for r in results:
            print(
                f"{r['workers']:7d}  {r['articles']:5d}/{r['expected']:<5d} {r['seconds']:6.1f} "
                f"({r['crawl_seconds']:6.1f})  "
                f"{r['rate']:10.1f}  {r['rate'] / base:10.2f}x  {r['cores']:18.2f}  "
                f"{r['machine_busy'] * 100:11.0f}%  {r['machine_ms']:21.1f}  "
                f"{r['redis_calls']:19.1f}  {r['load']:8.2f}  {r['max_active']:6d}"
                f"{'' if r['max_active'] <= DOMAIN_LIMIT else '  POLITENESS BROKEN'}"
            )
            print("         CPU ms/article: " + ", ".join(
                f"{name} {r['ms_' + name]:.2f}" for name in PARTS
            ) + " (bench: the site servers and the coordinator)")  # fmt: skip
    if len(rounds) > 1:
        # This machine's speed drifts by a fifth within minutes: a ratio is taken within a
        # round (runs a minute apart), and the medians of the rounds are the figures.
        print(f"medians of {len(rounds)} rounds:")
        for i, count in enumerate(counts):
            rates = [results[i]["rate"] for results in rounds]
            ratios = [results[i]["rate"] / results[0]["rate"] for results in rounds]
            print(
                f"{count:7d} workers  {statistics.median(rates):10.1f} articles/s "
                f"({min(rates):.1f}-{max(rates):.1f})  {statistics.median(ratios):.2f}x "
                f"({min(ratios):.2f}-{max(ratios):.2f})  machine CPU ms/article "
                f"{statistics.median(results[i]['machine_ms'] for results in rounds):.1f}"
            )


if __name__ == "__main__":
    main()
