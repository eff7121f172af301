"""`ufarchive schedule` as ops run it: a real process, real crawl processes, real seconds.

Sites on 2-second intervals run again and again without overlapping; SIGTERM mid-crawl
checkpoints and the next start resumes; site files change under a running scheduler;
two schedulers share one PostgreSQL; a breaking site raises an alert (and the webhook
gets it); /metrics parses with prometheus_client's own parser.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from archive.models import Article, CrawlRun, Site
from tests.conftest import SITES
from tests.crawlworld import World, make_world
from tests.siteserver import SiteServer

SCHEDULER_SETTINGS = """\
scheduler:
  max_concurrent_crawls: 2
  misfire_grace_seconds: 30
  metrics_port: 0
  alert_failures_in_a_row: 2
  alert_webhook_url: {webhook}
logging:
  format: json
"""


def set_schedule(world: World, site: str, schedule: str) -> None:
    path = world.config_dir / "sites" / f"{site}.yaml"
    text = path.read_text(encoding="utf-8").replace("schedule: {interval_minutes: 60}", schedule)
    path.write_text(text, encoding="utf-8")


def add_scheduler_settings(world: World, webhook: str = "null") -> None:
    path = world.config_dir / "settings.yaml"
    path.write_text(
        path.read_text(encoding="utf-8") + SCHEDULER_SETTINGS.format(webhook=webhook),
        encoding="utf-8",
    )


class Scheduler:
    """`ufarchive schedule` in a subprocess; its JSON-lines log in a file."""

    def __init__(self, world: World, name: str = "scheduler") -> None:
        self.log_path = world.root / f"{name}.log"
        self.log_fh = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crawler", "schedule"],
            env={**os.environ, **world.env()},
            stdin=subprocess.DEVNULL, stdout=self.log_fh, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line})
        return out

    def saw(self, text: str) -> bool:
        return any(text in str(line.get("message")) for line in self.lines())

    def port(self) -> int:
        for line in self.lines():
            message = str(line.get("message"))
            if message.startswith("metrics on http://"):
                return int(message.split("/")[2].rsplit(":", 1)[1])
        raise AssertionError("no metrics line yet")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port()}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log_fh.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_fh.close()


@pytest.fixture
def schedulers() -> Iterator[Callable[..., Scheduler]]:
    started: list[Scheduler] = []

    def start(world: World, name: str = "scheduler") -> Scheduler:
        scheduler = Scheduler(world, name)
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.kill()


def wait_for(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


def runs_of(world: World, site: str | None = None) -> list[CrawlRun]:
    with world.session() as session:
        query = select(CrawlRun).join(Site).order_by(CrawlRun.id)
        if site:
            query = query.where(Site.name == site)
        return list(session.scalars(query))


def finished(world: World, site: str | None = None) -> list[CrawlRun]:
    return [r for r in runs_of(world, site) if r.finished_at is not None]


def assert_no_overlap(runs: list[CrawlRun]) -> None:
    spans = sorted((r.started_at, r.finished_at) for r in runs if r.finished_at is not None)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and end <= start, f"runs overlap: {spans}"


def status_json(world: World) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "crawler", "status", "--format", "json"],
        env={**os.environ, **world.env()}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_site_on_a_2_second_interval_runs_repeatedly_without_overlap(
    tmp_path: Path,
    database_url: str,
    site_server: Callable[..., SiteServer],
    schedulers: Callable[..., Scheduler],
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb",))
    add_scheduler_settings(world)
    set_schedule(world, "zytzb", "schedule: {interval_seconds: 2}")
    scheduler = schedulers(world)
    wait_for(lambda: len(finished(world, "zytzb")) >= 3, 60, "three finished runs")
    status, body = scheduler.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, body = scheduler.get("/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    key = ("ufarchive_crawl_runs_total", (("site", "zytzb"), ("status", "succeeded")))
    assert samples[key] >= 1
    new = ("ufarchive_articles_total", (("outcome", "new"), ("site", "zytzb")))
    assert samples[new] == len(world.articles("zytzb")) > 0
    assert any(name == "ufarchive_crawl_duration_seconds_count" for name, _ in samples)
    assert scheduler.stop() == 0
    runs = runs_of(world, "zytzb")
    assert all(r.finished_at is not None for r in runs), "no run is left running"
    assert_no_overlap(runs)
    assert runs[0].trigger == "catchup" and {r.trigger for r in runs[1:]} == {"schedule"}
    assert [r.status for r in runs if r.status != "interrupted"] == ["succeeded"] * len(
        [r for r in runs if r.status != "interrupted"]
    )
    # later runs find nothing new: the archive holds each article once
    assert sum(r.articles_new for r in runs) == len(world.articles("zytzb"))
    [row] = status_json(world)
    assert row["site"] == "zytzb" and row["last_run"] == runs[-1].id
    assert row["failures_in_a_row"] == 0 and row["alerts"] == []


ARTICLE = """<html><head><meta charset="utf-8"><title>{title}</title></head><body>
<h1>{title}</h1><div class="info">来源：慢站　时间：2024-03-{day:02d} 09:00:00</div>
<div class="content"><p>　　第{n}号通知：{title}。统一战线第{n}次调研围绕中心工作，凝聚共识{n}项。</p>
<p>　　会议编号{n}强调，要坚持大团结大联合，最大限度汇聚力量，推进第{n}项工作。</p></div>
</body></html>"""
TITLES = [
    "侨务",
    "宗教",
    "民族",
    "党外",
    "港澳",
    "台湾",
    "海外",
    "新阶层",
    "民营",
    "网络",
    "知识",
    "青年",
]


def slow_site(server: SiteServer, count: int, delay: float) -> list[str]:
    """A listing of `count` articles, each answering after `delay` seconds."""
    paths = [f"/slow/202403/t202403{n:02d}_{n}.html" for n in range(1, count + 1)]
    for n, path in enumerate(paths, 1):
        title = f"{TITLES[n % len(TITLES)]}工作会议第{n}次召开"
        server.put(path, ARTICLE.format(title=title, n=n, day=n % 28 + 1))
        server.rule(path, delay=delay)
    links = "".join(f'<li><a href="{p}">第{i}篇</a></li>' for i, p in enumerate(paths, 1))
    server.put("/slow/index.html", f"<html><body><ul>{links}</ul></body></html>")
    server.put("/robots.txt", "User-agent: *\nAllow: /\n")
    return paths


def slow_world(tmp_path: Path, database_url: str, server: SiteServer) -> World:
    world = make_world(tmp_path, database_url, lambda *_: server, ())
    world.servers["slow"] = server
    (world.config_dir / "settings.yaml").write_text(
        "crawl: {download_delay_seconds: 0, autothrottle: false, concurrent_requests: 1,"
        " concurrent_requests_per_domain: 1, retry_times: 0}\n"
        + SCHEDULER_SETTINGS.format(webhook="null"),
        encoding="utf-8",
    )
    (world.config_dir / "sites" / "slow.yaml").write_text(
        f"name: slow\ntitle: 慢站\nstart_urls: [{server.url('/slow/index.html')}]\n"
        f"allowed_domains: [{server.host}]\narticle_url_pattern: '/slow/\\d{{6}}/t\\d+_\\d+\\.html$'\n"
        "schedule: {interval_minutes: 60}\n",
        encoding="utf-8",
    )
    return world


@pytest.mark.slow
def test_sigterm_mid_crawl_then_restart_resumes_without_losing_or_duplicating(
    tmp_path: Path,
    database_url: str,
    site_server: Callable[..., SiteServer],
    schedulers: Callable[..., Scheduler],
) -> None:
    server = site_server()
    paths = slow_site(server, count=20, delay=0.3)
    world = slow_world(tmp_path, database_url, server)
    first = schedulers(world, "first")
    wait_for(lambda: len(world.articles("slow")) >= 3, 60, "a few articles stored")
    assert first.stop() == 0
    [run] = runs_of(world, "slow")
    assert run.status == "interrupted" and run.finished_at is not None
    stored = len(world.articles("slow"))
    assert 3 <= stored < len(paths), "the crawl was stopped mid-way"
    jobdir = world.data_dir / "jobs" / "slow"
    assert (jobdir / "requests.seen").exists(), "Scrapy checkpointed its queue"

    second = schedulers(world, "second")  # the site is not due for an hour: it resumes
    wait_for(lambda: len(finished(world, "slow")) == 2, 60, "the resumed run to finish")
    assert second.stop() == 0
    runs = runs_of(world, "slow")
    assert [r.status for r in runs] == ["interrupted", "succeeded"]
    assert runs[1].trigger == "catchup"
    articles = world.articles("slow")
    assert sorted(articles) == sorted(paths), "nothing lost"
    assert sum(r.articles_new for r in runs) == len(paths), "nothing stored twice"
    assert all(a.version == 1 for a in articles.values())
    # the resumed run revisits what the first stored (conditionally, README "Revisits")
    full = [
        r.url_path
        for r in server.requests
        if r.url_path in paths and "if-none-match" not in r.headers
    ]
    assert sorted(full) == sorted(paths), "no article fetched twice in full"
    assert not jobdir.exists(), "a finished crawl leaves no checkpoint behind"


@pytest.mark.slow
def test_site_file_changes_are_picked_up_live_and_a_broken_one_keeps_the_old_config(
    tmp_path: Path,
    sqlite_url: str,
    site_server: Callable[..., SiteServer],
    schedulers: Callable[..., Scheduler],
) -> None:
    world = make_world(tmp_path, sqlite_url, site_server, ("zytzb", "tzb_tw"))
    add_scheduler_settings(world)
    tw_file = world.config_dir / "sites" / "tzb_tw.yaml"
    tw_text = tw_file.read_text(encoding="utf-8")
    tw_file.unlink()
    scheduler = schedulers(world)
    wait_for(lambda: len(finished(world, "zytzb")) == 1, 60, "the catch-up run of zytzb")
    tw_file.write_text(tw_text, encoding="utf-8")  # a site added
    wait_for(lambda: len(finished(world, "tzb_tw")) == 1, 60, "the new site to run")
    # a broken file: reported, the running config kept (zytzb stays scheduled)
    zytzb = world.config_dir / "sites" / "zytzb.yaml"
    good = zytzb.read_text(encoding="utf-8")
    zytzb.write_text(good.replace("schedule: {interval_minutes: 60}", "schedule: {every: 2}"))
    wait_for(lambda: scheduler.saw("config not reloaded"), 30, "the broken file reported")
    # fixed and rescheduled to 2 s, announced by SIGHUP: it runs again and again
    zytzb.write_text(
        good.replace("schedule: {interval_minutes: 60}", "schedule: {interval_seconds: 2}")
    )
    scheduler.process.send_signal(signal.SIGHUP)
    wait_for(lambda: len(finished(world, "zytzb")) >= 3, 60, "zytzb on its new schedule")
    tw_file.unlink()  # a site removed
    wait_for(lambda: scheduler.saw("unscheduled tzb_tw"), 30, "tzb_tw unscheduled")
    assert scheduler.stop() == 0
    assert len(runs_of(world, "tzb_tw")) == 1
    assert_no_overlap(runs_of(world, "zytzb"))


@pytest.mark.slow
def test_two_schedulers_on_postgresql_never_overlap_on_a_site(
    tmp_path: Path,
    postgres_url: str,
    site_server: Callable[..., SiteServer],
    schedulers: Callable[..., Scheduler],
) -> None:
    world = make_world(tmp_path, postgres_url, site_server, ("zytzb",))
    add_scheduler_settings(world)
    set_schedule(world, "zytzb", "schedule: {interval_seconds: 2}")
    one, two = schedulers(world, "one"), schedulers(world, "two")
    wait_for(lambda: len(finished(world, "zytzb")) >= 4, 90, "four runs between the two")
    assert one.saw("another scheduler is crawling it") or two.saw(
        "another scheduler is crawling it"
    )
    assert one.stop() == 0 and two.stop() == 0
    runs = runs_of(world, "zytzb")
    assert all(r.finished_at is not None for r in runs)
    assert_no_overlap(runs)
    with world.session() as session:
        assert len(session.scalars(select(Article)).all()) == len(world.articles("zytzb"))


class Webhook:
    """A local endpoint that records the JSON POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_a_site_that_breaks_raises_alerts_in_the_log_in_status_and_on_the_webhook(
    tmp_path: Path,
    sqlite_url: str,
    site_server: Callable[..., SiteServer],
    schedulers: Callable[..., Scheduler],
) -> None:
    webhook = Webhook()
    try:
        world = make_world(tmp_path, sqlite_url, site_server, ("zytzb",))
        add_scheduler_settings(world, webhook=webhook.url)
        set_schedule(world, "zytzb", "schedule: {interval_seconds: 2}")
        server = world.servers["zytzb"]
        # the template changes: the listing answers, but no link on it is an article
        server.put("/tzyw/index.html", "<html><body><a href='/other/1.html'>x</a></body></html>")
        server.delete("/rss.xml")
        scheduler = schedulers(world)
        wait_for(lambda: any(a["kind"] == "no_articles" for a in webhook.received), 60,
                 "the no_articles alert on the webhook")  # fmt: skip
        # then the site goes down: two failed runs in a row
        server.rule("/tzyw/index.html", status=500)
        wait_for(lambda: any(a["kind"] == "failing" for a in webhook.received), 60,
                 "the failing alert on the webhook")  # fmt: skip
        assert scheduler.saw("ALERT zytzb failing")
        [row] = status_json(world)
        assert {a["kind"] for a in row["alerts"]} >= {"failing"}
        assert row["failures_in_a_row"] >= 2 and row["last_status"] in ("failed", "running")
        hook = next(a for a in webhook.received if a["kind"] == "failing")
        assert hook["site"] == "zytzb" and "runs in a row failed" in hook["message"]
        # it recovers: the alert clears
        server.rule("/tzyw/index.html", status=200)
        server.put("/tzyw/index.html", (SITES / "zytzb" / "tzyw" / "index.html").read_bytes())
        wait_for(lambda: status_json(world)[0]["alerts"] == [] or None, 60, "alerts cleared")
        assert scheduler.stop() == 0
    finally:
        webhook.close()


@pytest.mark.slow
def test_the_global_limit_bounds_crawls_running_at_once(
    tmp_path: Path,
    sqlite_url: str,
    site_server: Callable[..., SiteServer],
    schedulers: Callable[..., Scheduler],
) -> None:
    world = make_world(tmp_path, sqlite_url, site_server, ("zytzb", "tzb_tw", "gbk_city"))
    add_scheduler_settings(world)
    path = world.config_dir / "settings.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "max_concurrent_crawls: 2", "max_concurrent_crawls: 1"
        ),
        encoding="utf-8",
    )
    scheduler = schedulers(world)
    wait_for(lambda: len(finished(world)) == 3, 90, "the three catch-up runs")
    assert scheduler.stop() == 0
    runs = runs_of(world)
    assert sorted(r.site_id for r in runs) == [1, 2, 3], "one run a site"
    assert {(r.trigger, r.status) for r in runs} == {("catchup", "succeeded")}
    assert_no_overlap(runs)


def test_the_scheduler_crawls_each_run_in_the_process_it_started_ahead(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    """Started, the scheduler has a crawl process waiting; a run is crawled by it (the run's
    pid), and the next process is started when the run ends; stop() leaves none behind."""
    from archive.settings import load_settings
    from crawler.scheduling import CrawlScheduler
    from crawler.sites import load_sites

    server = site_server()
    slow_site(server, count=3, delay=0)
    world = slow_world(tmp_path, database_url, server)
    assert world.crawl("slow")["slow"].status == "succeeded"  # not due: no catch-up run
    settings = load_settings(world.env())
    scheduler = CrawlScheduler(settings, load_sites(settings.sites_dir))
    scheduler.processes.prepare({})  # a process of another environment: never used
    stale = scheduler.processes.spare
    scheduler.start()  # replaces nothing: one is waiting (its environment is checked at use)
    try:
        runs = []
        for _ in range(2):
            spare = scheduler.processes.spare
            assert spare is not None and spare[0].poll() is None
            run = scheduler.crawl(scheduler.sites["slow"], "manual")
            assert run is not None and run.status == "succeeded", run and run.message
            runs.append((run.run_id, spare[0]))
        with world.session() as session:
            pids = {r.id: r.pid for r in session.scalars(select(CrawlRun))}
        assert stale is not None and pids[runs[0][0]] != stale[0].pid  # another environment
        assert pids[runs[1][0]] == runs[1][1].pid  # started when the first run ended
        assert scheduler.processes.spare is not None
        waiting = scheduler.processes.spare[0]
    finally:
        scheduler.stop(grace=5)
    assert scheduler.processes.spare is None
    assert waiting.poll() is not None and stale[0].poll() is not None
