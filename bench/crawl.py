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
import random
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
from tests.siteserver import SiteServer  # noqa: E402

PER_LISTING = 50
CONCURRENCY = 16
PARAGRAPHS = [
    "各民主党派、工商联和无党派人士围绕中心工作深入调研，提出了一批有分量的意见建议。",
    "会议强调，要坚持大团结大联合，最大限度凝聚共识、汇聚力量，为推进中国式现代化贡献智慧和力量。",
    "统战部有关负责同志介绍了今年统一战线工作的总体安排，要求各单位加强协同配合，抓好工作落实。",
    "与会人员一致表示，将进一步增强“四个意识”、坚定“四个自信”、做到“两个维护”，在新征程上展现新作为。",
]


def build_site(root: Path, pages: int) -> None:
    listings = (pages + PER_LISTING - 1) // PER_LISTING
    (root / "tzyw").mkdir(parents=True)
    index = "".join(f'<li><a href="/tzyw/list_{n}.html">第{n}页</a></li>' for n in range(listings))
    (root / "tzyw" / "index.html").write_text(
        f"<html><body><ul>{index}</ul></body></html>", encoding="utf-8"
    )
    for n in range(listings):
        links = "".join(
            f'<li><a href="/tzyw/202403/t20240301_{i}.html">统战要闻{i}</a></li>'
            for i in range(n * PER_LISTING, min(pages, (n + 1) * PER_LISTING))
        )
        (root / "tzyw" / f"list_{n}.html").write_text(
            f"<html><body><ul>{links}</ul></body></html>", encoding="utf-8"
        )
    (root / "tzyw" / "202403").mkdir()
    # distinct articles (random word runs from the stock sentences), as on a real site:
    # identical template text would make every page a republication of every other
    rng = random.Random(5)
    words = [p[i : i + 2] for p in PARAGRAPHS for i in range(0, len(p) - 1, 2)]
    for i in range(pages):
        body = "".join(f"<p>　　{''.join(rng.choices(words, k=40))}。</p>" for _ in range(8))
        html = (
            f'<html><head><meta charset="utf-8"><title>统战要闻第{i}篇_测试统战网</title></head><body>'
            f'<div class="nav">首页 > 统战要闻</div><h1>统战要闻第{i}篇</h1>'
            f'<div class="info">来源：测试统战网　时间：2024-03-01 09:{i % 60:02d}:00</div>'
            f'<div class="content">{body}</div><div class="footer">版权所有 京ICP备00000000号</div></body></html>'
        )
        (root / "tzyw" / "202403" / f"t20240301_{i}.html").write_text(html, encoding="utf-8")


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
