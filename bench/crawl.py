"""Crawl throughput: ufarchive end to end into SQLite vs a bare Scrapy spider, same local site.

A generated site of N article pages (default 5,000) is served on 127.0.0.1. Both crawlers
fetch the index, the listing pages and every article with the same concurrency and no
politeness delay. The bare spider stores nothing: it is the ceiling on this machine.
ufarchive extracts, writes WARC (fsynced) and commits each article to SQLite.
Prints articles/s for both, the ratio, and the peak RSS of ufarchive's crawl process.

    .venv/bin/python bench/crawl.py [--pages 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archive.db import make_engine, upgrade  # noqa: E402
from archive.settings import load_settings  # noqa: E402
from crawler.runner import run_crawl  # noqa: E402
from tests.bigsite import build_site  # noqa: E402
from tests.siteserver import SiteServer  # noqa: E402

CONCURRENCY = 16


def run_ufarchive(base: Path, server: SiteServer) -> tuple[float, int]:
    config = base / "config"
    (config / "sites").mkdir(parents=True)
    (config / "settings.yaml").write_text(
        "crawl:\n  download_delay_seconds: 0\n  autothrottle: false\n"
        f"  concurrent_requests: {CONCURRENCY}\n  concurrent_requests_per_domain: {CONCURRENCY}\n",
        encoding="utf-8",
    )
    (config / "sites" / "bench.yaml").write_text(
        f"name: bench\ntitle: bench\nstart_urls: [{server.url('/tzyw/index.html')}]\n"
        f"allowed_domains: [{server.host}]\narticle_url_pattern: '/tzyw/\\d{{6}}/t\\d+_\\d+\\.html$'\n"
        "follow_url_pattern: '/tzyw/list_\\d+\\.html$'\nschedule: {interval_minutes: 60}\nmax_pages: 1000000\n",
        encoding="utf-8",
    )
    env = {"UFARCHIVE_CONFIG": str(config), "UFARCHIVE_DATA_DIR": str(base / "data")}
    settings = load_settings(env)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    started = time.perf_counter()
    (run,) = run_crawl(["bench"], settings=settings)
    elapsed = time.perf_counter() - started
    if run.status != "succeeded":
        raise SystemExit(f"ufarchive run {run.status}: {run.message}")
    return elapsed, run.articles_new


BARE_SPIDER = textwrap.dedent(
    """
    import json, resource, sys, time, scrapy
    from scrapy.crawler import CrawlerProcess

    class Bare(scrapy.Spider):
        name = "bare"
        start_urls = [sys.argv[1]]
        count = 0
        def parse(self, response):
            for href in response.css("a::attr(href)").getall():
                callback = self.parse_article if "/202403/" in href else self.parse
                yield response.follow(href, callback)
        def parse_article(self, response):
            Bare.count += 1

    process = CrawlerProcess({"LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": True, "CONCURRENT_REQUESTS": int(sys.argv[2]),
                              "CONCURRENT_REQUESTS_PER_DOMAIN": int(sys.argv[2]), "DOWNLOAD_DELAY": 0,
                              "REMOTE_CONTROL_ENABLED": False, "TELNETCONSOLE_ENABLED": False})
    process.crawl(Bare)
    process.start()
    print(json.dumps({"articles": Bare.count, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    """
)


def run_bare(server: SiteServer) -> tuple[float, int, int]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(BARE_SPIDER)  # a file: Scrapy reads callbacks' source, which `-c` has not
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, fh.name, server.url("/tzyw/index.html"), str(CONCURRENCY)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        Path(fh.name).unlink()
    elapsed = time.perf_counter() - started
    data = json.loads(result.stdout.strip().splitlines()[-1])
    return elapsed, int(data["articles"]), int(data["rss_kb"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        build_site(base / "site", args.pages)
        with SiteServer(base / "site") as server:
            ours_s, ours_n = run_ufarchive(base / "ours", server)
            ours_rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            bare_s, bare_n, bare_rss_kb = run_bare(server)
    ours_rate, bare_rate = ours_n / ours_s, bare_n / bare_s
    print(
        f"pages: {args.pages}, concurrency {CONCURRENCY}, {os.cpu_count()} cores, both times include process start"
    )
    print(f"{'crawler':<28}{'articles':>10}{'seconds':>10}{'articles/s':>12}{'peak RSS MB':>13}")
    print(
        f"{'ufarchive (SQLite, WARC)':<28}{ours_n:>10}{ours_s:>10.1f}{ours_rate:>12.0f}{ours_rss_kb / 1024:>13.0f}"
    )
    print(
        f"{'bare Scrapy (stores nothing)':<28}{bare_n:>10}{bare_s:>10.1f}{bare_rate:>12.0f}{bare_rss_kb / 1024:>13.0f}"
    )
    print(
        f"ratio ufarchive / bare: {ours_rate / bare_rate:.2f} (target >= 0.5); peak RSS target < 500 MB"
    )


if __name__ == "__main__":
    main()
