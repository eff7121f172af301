"""Revisits: how fast a run finds its due articles, and what a cheap check saves.

1. select: an archive of 200,000 articles first seen over three years, on 20 sites (the
   biggest with 60,000), each checked once at a time the revisit policy allows; then
   `archive.store.due_articles` for a run of each site at 50 moments over a month, with
   the default budget (1,000: half of max_pages 2,000). p50/p95 per database.
2. run: a local site of N articles (pages of real size: a portal template of ~50 KB), all
   stored by a first crawl. Then, in the same process, two runs of the same articles:
   - revisit: the server honours conditional requests; 95 % answer 304, 5 % were edited;
   - full refetch: the server ignores them and renders a view counter into every page
     (as many CMSs do), so every page comes back in full and is extracted and compared:
     what a crawler without cheap checks pays.
   Ratio revisit / full (target < 1/5), by the crawl's own clock (Scrapy's elapsed time,
   excluding process start) and by wall time (including it). The runs are started as the
   scheduler starts them (crawler.runner.CrawlProcesses: each crawl process is started when
   the previous run ends, and imports while nothing waits); `--cold` starts each afresh, as
   a one-off `ufarchive crawl` does.
   And the floor, just before the revisit and with the same requests: a bare Scrapy
   spider (no pipeline, no middlewares of ours, a callback that does nothing) sending the
   same conditional requests, in a process of its own. What Scrapy alone costs for them.

    .venv/bin/python bench/revisit.py [--part select|run|both] [--articles 200000]
        [--pages 2000] [--cold] [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from archive.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from archive.models import CrawlRun  # noqa: E402
from archive.revisit import next_check, revisit_budget  # noqa: E402
from archive.settings import RevisitSettings, load_settings  # noqa: E402
from archive.store import (  # noqa: E402
    ARTICLES,
    SNAPSHOTS,
    due_articles,
    known_articles,
    known_by_ids,
)
from crawler.runner import CrawlProcesses, run_crawl  # noqa: E402
from crawler.spider import REVISIT_BATCH  # noqa: E402
from tests.siteserver import SiteServer  # noqa: E402

POLICY = RevisitSettings()
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SITES = 20
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# --- 1. selecting the due articles ------------------------------------------------------------


def fill(url: str, articles: int) -> list[int]:
    """Bulk-insert the archive's articles and their snapshots; returns the site ids."""
    engine = make_engine(url, writer=True)
    upgrade(engine)
    rng = random.Random(13)
    weights = [3.0] + [1.0] * (SITES - 1)  # one big site
    total = sum(weights)
    sizes = [int(articles * w / total) for w in weights]
    sizes[-1] += articles - sum(sizes)
    site_ids = []
    with engine.begin() as conn:
        for n in range(SITES):
            site_ids.append(
                conn.execute(
                    text(
                        "INSERT INTO sites (name, title, created_at) VALUES (:n, :n, :at) RETURNING id"
                    ),
                    {"n": f"site{n}", "at": NOW},
                ).scalar_one()
            )
    article_id = 0
    for site_id, size in zip(site_ids, sizes, strict=True):
        for start in range(0, size, 10_000):
            rows, snaps = [], []
            for _ in range(min(10_000, size - start)):
                article_id += 1
                first = NOW - timedelta(days=rng.uniform(0, 3 * 365))
                changed = (
                    first + timedelta(days=rng.uniform(0, 30)) if rng.random() < 0.1 else first
                )
                changed = min(changed, NOW)
                version = 2 if changed > first else 1
                # last checked somewhere in the interval its tier allows
                interval = next_check(POLICY, NOW, first, changed, version) - NOW
                checked = NOW - timedelta(
                    seconds=rng.uniform(0, max(interval.total_seconds(), 3600))
                )
                rows.append({
                    "id": article_id, "site_id": site_id, "url": f"https://s{site_id}.gov.cn/{article_id}.html",
                    "canonical_url": f"https://s{site_id}.gov.cn/{article_id}.html", "status": "live",
                    "first_seen": first, "last_seen": checked, "version": version,
                    "publish_time": first, "is_original": True, "last_checked": checked,
                    "last_changed": changed, "next_check": next_check(POLICY, checked, first, changed, version),
                    "snapshot_id": article_id,
                })  # fmt: skip
                snaps.append({
                    "id": article_id, "article_id": article_id, "url": rows[-1]["url"], "fetched_at": first,
                    "status_code": 200, "headers": {}, "etag": f'"{article_id:x}"',
                    "last_modified": None, "payload_length": 40_000, "warc_file": "warc/x.warc.gz",
                    "warc_offset": article_id * 1000, "warc_length": 900,
                    "warc_record_id": f"<urn:uuid:{uuid.UUID(int=article_id)}>",
                    "payload_digest": "sha1:X", "record_type": "response",
                })  # fmt: skip
            with engine.begin() as conn:
                conn.execute(insert(ARTICLES), rows)
                conn.execute(insert(SNAPSHOTS), snaps)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE articles"))
            conn.execute(text("ANALYZE snapshots"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return site_ids


def measure_select(url: str, site_ids: list[int]) -> tuple[float, float, float, float]:
    """(p50, p95 of selecting the due ids, p95 of reading the first batch, due per run)."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    budget = revisit_budget(POLICY, 2000)
    times, reads, found = [], [], []
    rng = random.Random(7)
    with sessions() as session:
        due_articles(session, site_ids[0], NOW, budget)  # warm the cache once
        for k in range(50):
            now = NOW + timedelta(hours=rng.uniform(0, 24 * 30))
            for site_id in (site_ids[0], site_ids[1 + k % (SITES - 1)]):
                started = time.perf_counter()
                due = due_articles(session, site_id, now, budget)
                times.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                known_by_ids(session, due[:REVISIT_BATCH])
                reads.append((time.perf_counter() - started) * 1000)
                found.append(len(due))
    engine.dispose()
    times.sort()
    reads.sort()
    p95 = int(len(times) * 0.95) - 1
    return statistics.median(times), times[p95], reads[p95], statistics.mean(found)


def part_select(articles: int, postgres: str) -> None:
    print(f"== selecting a run's due articles: {articles:,} articles over 3 years, {SITES} sites, "
          f"budget {revisit_budget(POLICY, 2000)} a run")  # fmt: skip
    print(f"{'database':<12}{'fill s':>8}{'p50 ms':>9}{'p95 ms':>9}{'due/run':>9}"
          f"{'read 200 p95 ms':>17}  (target: select p95 < 50 ms)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        started = time.perf_counter()
        site_ids = fill(url, articles)
        filled = time.perf_counter() - started
        p50, p95, read, due = measure_select(url, site_ids)
        print(f"{'SQLite':<12}{filled:>8.0f}{p50:>9.2f}{p95:>9.2f}{due:>9.0f}{read:>17.2f}")
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    name = f"ufarchive_bench_revisit_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
        started = time.perf_counter()
        site_ids = fill(url, articles)
        filled = time.perf_counter() - started
        p50, p95, read, due = measure_select(url, site_ids)
        print(f"{'PostgreSQL':<12}{filled:>8.0f}{p50:>9.2f}{p95:>9.2f}{due:>9.0f}{read:>17.2f}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- 2. a revisit run against a full refetch ---------------------------------------------------

PARAGRAPHS = [
    "各民主党派、工商联和无党派人士围绕中心工作深入调研，提出了一批有分量的意见建议。",
    "会议强调，要坚持大团结大联合，最大限度凝聚共识、汇聚力量，为推进中国式现代化贡献智慧和力量。",
    "统战部有关负责同志介绍了今年统一战线工作的总体安排，要求各单位加强协同配合，抓好工作落实。",
]
# A portal page's chrome: navigation, sidebars of links, scripts and styles (real 统战部
# and city portal pages weigh 30-80 KB of which the article is 2-5 KB).
CHROME = "".join(
    f'<li><a href="/lm{n}/index.html" title="栏目{n}">统战栏目{n}：专题报道与工作动态</a></li>'
    for n in range(150)
)
STYLE = (
    "<style>"
    + "".join(f".c{n}{{margin:{n % 7}px;color:#{n:06x}}}" for n in range(300))
    + "</style>"
)


def article_html(i: int, rng: random.Random, counter: int, edited: bool) -> str:
    words = [p[k : k + 2] for p in PARAGRAPHS for k in range(0, len(p) - 1, 2)]
    body = "".join(f"<p>　　{''.join(rng.choices(words, k=50))}。</p>" for _ in range(10))
    if edited:
        body = "<p>　　【更正】本文第二段数据有误，现已更正。</p>" + body
    return (
        f'<html><head><meta charset="utf-8"><title>统战要闻第{i}篇_测试统战网</title>{STYLE}</head><body>'
        f'<div class="nav"><ul>{CHROME}</ul></div><h1>统战要闻第{i}篇</h1>'
        f'<div class="info">来源：测试统战网　时间：2024-03-01 09:{i % 60:02d}:00　浏览次数：{counter}</div>'
        f'<div class="content">{body}</div><div class="editor">责任编辑：王芳</div>'
        f'<div class="side"><ul>{CHROME}</ul></div><div class="footer">版权所有 京ICP备00000000号</div></body></html>'
    )


def write_config(base: Path, server: SiteServer, pages: int) -> dict[str, str]:
    config = base / "config"
    (config / "sites").mkdir(parents=True)
    (config / "settings.yaml").write_text(
        "crawl:\n  download_delay_seconds: 0\n  autothrottle: false\n"
        "  concurrent_requests: 16\n  concurrent_requests_per_domain: 16\n"
        "revisit:\n  max_revisits: 1.0\n",
        encoding="utf-8",
    )
    (config / "sites" / "bench.yaml").write_text(
        f"name: bench\ntitle: bench\nstart_urls: [{server.url('/tzyw/index.html')}]\n"
        f"allowed_domains: [{server.host}]\narticle_url_pattern: '/tzyw/a/\\d+\\.html$'\n"
        "schedule: {interval_minutes: 60}\n"
        f"max_pages: {pages * 2 + 10}\n",
        encoding="utf-8",
    )
    return {"UFARCHIVE_CONFIG": str(config), "UFARCHIVE_DATA_DIR": str(base / "data")}


def timed_run(env: dict[str, str], processes: CrawlProcesses) -> tuple[float, float, Any]:
    settings = load_settings(env)
    if processes.ahead:
        # scheduled runs of a site are minutes apart: the process started when the last
        # run ended has finished its imports by the time the next run comes
        time.sleep(3)
    started = time.perf_counter()
    (run,) = run_crawl(["bench"], settings=settings, processes=processes)
    wall = time.perf_counter() - started
    if run.status != "succeeded":
        raise SystemExit(f"run {run.status}: {run.message}")
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        stats, finished = conn.execute(
            select(CrawlRun.stats, CrawlRun.finished_at).where(CrawlRun.id == run.run_id)
        ).one()
    engine.dispose()
    # the crawl's own clock: from Scrapy's start to the run's end (no process start)
    started = datetime.fromisoformat(stats["start_time"])
    return (finished - started).total_seconds(), wall, run


def bare_spider(requests_file: str) -> None:
    """The floor (a child process): the same conditional requests through a bare Scrapy
    spider; prints its crawl seconds (from the engine's start) as the last line."""
    started = time.perf_counter()
    import scrapy
    from scrapy.crawler import CrawlerProcess

    wanted = json.loads(Path(requests_file).read_text(encoding="utf-8"))
    clock: dict[str, float] = {}

    class Bare(scrapy.Spider):
        name = "bare"

        async def start(self) -> Any:
            clock["start"] = time.perf_counter()
            for url, headers in wanted:
                yield scrapy.Request(url, headers=headers, dont_filter=True,
                                     meta={"handle_httpstatus_list": [304]})  # fmt: skip

        def parse(self, response: Any) -> None:
            return None

    process = CrawlerProcess({
        "LOG_ENABLED": False, "TELNETCONSOLE_ENABLED": False, "ROBOTSTXT_OBEY": False,
        "COOKIES_ENABLED": False, "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "DOWNLOAD_DELAY": 0,
    })  # fmt: skip
    process.crawl(Bare)
    process.start()
    ended = time.perf_counter()
    print(json.dumps({"crawl": ended - clock["start"], "process": ended - started}))


def timed_bare(env: dict[str, str], base: Path) -> tuple[float, float]:
    """(crawl s, wall s) of the bare spider asking for every stored article conditionally."""
    settings = load_settings(env)
    engine = make_engine(settings.database_url)
    with make_sessionmaker(engine)() as session:
        site_id = session.scalar(text("SELECT id FROM sites WHERE name = 'bench'"))
        known = known_articles(session, site_id).values()
    engine.dispose()
    wanted = [
        (k.url, {"If-None-Match": k.etag} if k.etag else {"If-Modified-Since": k.last_modified})
        for k in known
    ]
    path = base / "bare-requests.json"
    path.write_text(json.dumps(wanted), encoding="utf-8")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--bare-spider", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    return json.loads(done.stdout.strip().splitlines()[-1])["crawl"], wall


def part_run(pages: int, cold: bool = False) -> None:
    rng = random.Random(3)
    seeds = [rng.random() for _ in range(pages)]
    edited = set(random.Random(11).sample(range(pages), pages // 20))
    processes = CrawlProcesses(ahead=not cold)
    with tempfile.TemporaryDirectory() as tmp, contextlib.closing(processes):
        base = Path(tmp)
        with SiteServer(None) as server:
            links = "".join(f'<a href="/tzyw/a/{i}.html">{i}</a>' for i in range(pages))
            server.put("/tzyw/index.html", f"<html><body>{links}</body></html>")

            def publish(counter: int, edits: set[int]) -> None:
                for i in range(pages):
                    server.put(
                        f"/tzyw/a/{i}.html",
                        article_html(i, random.Random(seeds[i]), counter, i in edits),
                    )

            publish(318, set())
            size = len(article_html(0, random.Random(seeds[0]), 318, False).encode())
            env = write_config(base, server, pages)
            engine = make_engine(load_settings(env).database_url)
            upgrade(engine)
            engine.dispose()
            first = timed_run(env, processes)
            assert first[2].articles_new == pages, first[2]
            # revisit: conditional requests honoured; 5 % edited since
            for i in edited:
                server.put(f"/tzyw/a/{i}.html", article_html(i, random.Random(seeds[i]), 318, True))
            bare = timed_bare(env, base)  # the same requests, Scrapy alone
            revisit = timed_run(env, processes)
            # full refetch: conditional headers ignored, a counter in every page
            server.conditional = False
            publish(9999, edited)
            full = timed_run(env, processes)
    r, f = revisit[2], full[2]
    print(f"== a revisit run vs a full refetch: {pages:,} articles of {size / 1000:.0f} KB, "
          f"{len(edited)} edited, {os.cpu_count()} cores, crawl processes "
          f"{'started afresh' if cold else 'started ahead, as the scheduler does'}")  # fmt: skip
    print(
        f"{'run':<16}{'crawl s':>9}{'wall s':>9}{'checked':>9}{'304':>7}{'changed':>9}{'same':>7}{'MB in':>8}"
    )
    for name, (crawl_s, wall_s, run) in (
        ("first crawl", first),
        ("revisit", revisit),
        ("full refetch", full),
    ):
        print(f"{name:<16}{crawl_s:>9.1f}{wall_s:>9.1f}{run.revisits_checked:>9}{run.revisits_not_modified:>7}"
              f"{run.articles_changed:>9}{run.articles_unchanged:>7}{run.bytes_received / 1e6:>8.1f}")  # fmt: skip
    print(f"{'bare Scrapy':<16}{bare[0]:>9.1f}{bare[1]:>9.1f}   (the revisit's requests, "
          "a callback that does nothing)")  # fmt: skip
    assert r.revisits_not_modified == pages - len(edited) and r.articles_changed == len(edited)
    assert f.articles_changed == 0 and f.articles_unchanged == pages
    print(f"ratio revisit / full refetch: {revisit[0] / full[0]:.2f} by crawl time, "
          f"{revisit[1] / full[1]:.2f} by wall time (target < 0.20)")  # fmt: skip
    print(f"floor, bare Scrapy / full refetch: {bare[0] / full[0]:.2f} by crawl time, "
          f"{bare[1] / full[1]:.2f} by wall time")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("select", "run", "both"), default="both")
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--cold", action="store_true", help="start every crawl process afresh")
    parser.add_argument("--bare-spider", help=argparse.SUPPRESS)
    parser.add_argument(
        "--postgres", default=os.environ.get("UFARCHIVE_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    args = parser.parse_args()
    if args.bare_spider:
        bare_spider(args.bare_spider)
        return
    if args.part in ("select", "both"):
        part_select(args.articles, args.postgres)
    if args.part in ("run", "both"):
        part_run(args.pages, args.cold)


if __name__ == "__main__":
    main()
