"""Real crawls of the fixture world, on SQLite and PostgreSQL: what is fetched, stored and kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from archive.db import make_engine
from archive.models import Article, CrawlError, CrawlRun, Snapshot
from archive.search import search
from archive.warc import iter_records, read_record
from crawler.cli import app
from tests.crawlworld import World, expected, make_world
from tests.siteserver import SiteServer

ALL_SITES = ("zytzb", "tzb_tw", "gbk_city")


@pytest.fixture
def world(tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]) -> World:
    return make_world(tmp_path, database_url, site_server, ALL_SITES)


def test_first_crawl_stores_every_article_of_every_site(world: World) -> None:
    runs = world.crawl()
    assert {name: run.status for name, run in runs.items()} == dict.fromkeys(ALL_SITES, "succeeded")
    for site in ALL_SITES:
        truth = expected(site)
        stored = world.articles(site)
        assert set(stored) == set(truth["articles"]), site
        assert runs[site].articles_new == len(truth["articles"])
        for path, fields in truth["articles"].items():
            versions = world.versions(stored[path].id)
            assert [v.version for v in versions] == [1]
            assert versions[0].title == fields["title"], path
            assert "\ufffd" not in (versions[0].title or "") + versions[0].body
        assert runs[site].requests >= len(truth["articles"])
        assert runs[site].responses_by_status.get("200", 0) >= len(truth["articles"])
    # GBK declared only in <meta> (as gb2312, with GBK-only characters): decoded as GB18030.
    assert any(
        "堃" in (world.versions(a.id)[0].title or "") for a in world.articles("gbk_city").values()
    )


def test_robots_txt_is_obeyed_and_errors_are_recorded(world: World) -> None:
    world.crawl("zytzb")
    server = world.servers["zytzb"]
    truth = expected("zytzb")
    fetched = {r.url_path for r in server.requests}
    assert "/robots.txt" in fetched
    assert not fetched & set(truth["disallowed"]), "fetched a robots-disallowed page"
    with world.session() as session:
        errors = session.scalars(select(CrawlError)).all()
        assert [(e.kind, e.url) for e in errors] == [
            ("http_404", server.url(p)) for p in truth["missing"]
        ]


def test_every_snapshot_points_at_a_readable_warc_record(world: World) -> None:
    world.crawl()
    snapshots = world.snapshots()
    # every article page; the listed link that answers 404 is an error, not an archived page
    assert len(snapshots) == sum(len(expected(s)["articles"]) for s in ALL_SITES)
    files = {s.warc_file for s in snapshots}
    for snapshot in snapshots:
        record = read_record(world.data_dir, snapshot.warc_file, snapshot.warc_offset)
        assert record.record_type == "response" and record.url == snapshot.url
        assert record.status == snapshot.status_code == 200
        assert len(record.payload) == snapshot.payload_length
    for file in files:
        records = list(
            iter_records(world.data_dir / file, check_digests=True)
        )  # raises on a bad digest
        assert [r.record_type for r in records].count("response") == sum(
            s.warc_file == file for s in snapshots
        )
        assert records[0].record_type == "warcinfo"
        checked = subprocess.run(
            [str(Path(sys.executable).with_name("warcio")), "check", str(world.data_dir / file)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # The archived bytes are exactly what the server sent (GBK stays GBK).
    path = "/xwdt/2024/0322/131.htm"
    article = world.articles("gbk_city")[path]
    with world.session() as session:
        snapshot = session.scalars(select(Snapshot).where(Snapshot.article_id == article.id)).one()
    payload = read_record(world.data_dir, snapshot.warc_file, snapshot.warc_offset).payload
    served = (
        Path(__file__).parent / "fixtures" / "sites" / "gbk_city" / path.lstrip("/")
    ).read_bytes()
    assert payload == served


def test_recrawl_revisits_the_due_conditionally_and_a_304_stores_nothing(
    crawled: Callable[..., World],
) -> None:
    world = crawled(*ALL_SITES)
    snapshots_before = len(world.snapshots())
    for server in world.servers.values():
        server.clear()
    runs = world.crawl()  # every article is days old: due on every run (the first tier)
    for site in ALL_SITES:
        server, truth = world.servers[site], expected(site)
        article_requests = [r for r in server.requests if r.url_path in truth["articles"]]
        assert sorted(r.url_path for r in article_requests) == sorted(truth["articles"]), site
        assert all("if-none-match" in r.headers for r in article_requests)
        assert (
            runs[site].revisits_checked
            == runs[site].revisits_not_modified
            == len(truth["articles"])
        )
        assert runs[site].articles_new == runs[site].articles_changed == 0
    assert len(world.snapshots()) == snapshots_before, "a 304 stores nothing"


def test_without_revisits_a_recrawl_fetches_nothing_known_and_refresh_is_conditional(
    world: World,
) -> None:
    world.configure(revisit=False)
    world.crawl()
    for server in world.servers.values():
        server.clear()
    runs = world.crawl()
    snapshots_before = len(world.snapshots())
    for site in ALL_SITES:
        server, truth = world.servers[site], expected(site)
        fetched = {r.url_path for r in server.requests}
        assert not fetched & set(truth["articles"]), f"{site}: refetched a known article"
        for path in (
            truth.get("feeds", []) + truth.get("sitemaps", []) + [truth["listing_pages"][0]]
        ):
            assert path in fetched, f"{site}: {path} must be fetched on every run"
        assert runs[site].articles_new == runs[site].articles_changed == 0
    assert len(world.snapshots()) == snapshots_before

    for server in world.servers.values():
        server.clear()
    runs = world.crawl(refresh=True)
    for site in ALL_SITES:
        server, truth = world.servers[site], expected(site)
        article_requests = [r for r in server.requests if r.url_path in truth["articles"]]
        assert {r.url_path for r in article_requests} == set(truth["articles"])
        assert all(
            "if-none-match" in r.headers and "if-modified-since" in r.headers
            for r in article_requests
        )
        assert runs[site].articles_unchanged == len(truth["articles"])
    assert len(world.snapshots()) == snapshots_before, "a 304 stores nothing new"


def test_pagination_stops_when_a_listing_brings_nothing_new(
    crawled: Callable[..., World],
) -> None:
    world = crawled("zytzb")
    server = world.servers["zytzb"]
    server.clear()
    world.crawl("zytzb")
    listings = [p for p in server.paths() if p.startswith("/tzyw/index")]
    # page 1 is a start URL; pages 2 and 3 are linked from it, but nothing beyond
    assert listings.count("/tzyw/index.html") == 1
    assert all(listings.count(p) <= 1 for p in listings)


def test_an_edited_page_gets_a_new_version_and_the_old_one_stays(
    crawled: Callable[..., World],
) -> None:
    world = crawled("zytzb")
    server = world.servers["zytzb"]
    path = next(iter(expected("zytzb")["articles"]))
    original = (
        Path(__file__).parent / "fixtures" / "sites" / "zytzb" / path.lstrip("/")
    ).read_text(encoding="utf-8")
    first_line = expected("zytzb")["articles"][path]["body_starts"]
    edited = original.replace(first_line, "【更正】" + first_line, 1)
    assert edited != original
    server.put(path, edited)
    runs = world.crawl("zytzb", refresh=True)
    assert runs["zytzb"].articles_changed == 1
    article = world.articles("zytzb")[path]
    versions = world.versions(article.id)
    assert [v.version for v in versions] == [1, 2]
    assert "【更正】" not in versions[0].body and "【更正】" in versions[1].body
    assert article.version == 2 and article.status == "live"
    assert versions[0].snapshot_id != versions[1].snapshot_id


def test_a_removed_page_becomes_gone_and_nothing_is_deleted(world: World) -> None:
    world.crawl("tzb_tw")
    server = world.servers["tzb_tw"]
    path = next(iter(expected("tzb_tw")["articles"]))
    server.delete(path)
    runs = world.crawl("tzb_tw", refresh=True)
    assert runs["tzb_tw"].articles_gone == 1
    article = world.articles("tzb_tw")[path]
    assert article.status == "gone" and article.gone_at is not None
    assert len(world.versions(article.id)) == 1
    with world.session() as session:
        statuses = sorted(
            s.status_code
            for s in session.scalars(select(Snapshot).where(Snapshot.article_id == article.id))
        )
    assert statuses == [200, 404]


def test_a_feed_that_says_changed_brings_a_conditional_refetch(world: World) -> None:
    world.configure(revisit=False)
    world.crawl("zytzb")
    server = world.servers["zytzb"]
    feed = (Path(__file__).parent / "fixtures" / "sites" / "zytzb" / "rss.xml").read_text(
        encoding="utf-8"
    )
    first_pubdate = feed.split("<pubDate>")[2].split("</pubDate>")[0]  # the first item's
    server.put("/rss.xml", feed.replace(first_pubdate, "Mon, 07 Dec 2099 10:00:00 +0800", 1))
    server.clear()
    world.crawl("zytzb")
    article_paths = set(expected("zytzb")["articles"])
    refetched = [r for r in server.requests if r.url_path in article_paths]
    assert len(refetched) == 1
    assert "if-none-match" in refetched[0].headers


def test_a_failing_site_fails_its_run(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb", "tzb_tw"))
    world.servers["zytzb"].rule("/tzyw/index.html", status=500)
    world.servers["zytzb"].rule("/rss.xml", status=500)
    runs = world.crawl()
    assert runs["zytzb"].status == "failed" and "no start URL" in (runs["zytzb"].message or "")
    assert runs["tzb_tw"].status == "succeeded"
    with world.session() as session:
        run = session.get_one(CrawlRun, runs["zytzb"].run_id)
        assert {e.kind for e in run.errors} == {"http_500"}
        assert run.finished_at is not None


def test_scrapy_crawl_news_runs_the_same_spider(world: World) -> None:
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [str(Path(sys.executable).with_name("scrapy")), "crawl", "news", "-a", "site=tzb_tw", "-s", "LOG_LEVEL=WARNING"],
        cwd=repo, env={**world.env(), "PATH": str(Path(sys.executable).parent)}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert set(world.articles("tzb_tw")) == set(expected("tzb_tw")["articles"])
    with world.session() as session:
        run = session.scalars(select(CrawlRun)).one()
        assert run.status == "succeeded" and run.articles_new == len(expected("tzb_tw")["articles"])


def test_nothing_stored_twice(crawled: Callable[..., World]) -> None:
    world = crawled(*ALL_SITES)
    world.crawl(refresh=True)
    with world.session() as session:
        urls = session.scalars(select(Article.canonical_url)).all()
    assert len(urls) == len(set(urls))


def test_two_crawl_processes_at_once_store_each_article_once(world: World) -> None:
    import threading

    from archive.settings import load_settings
    from crawler.runner import RunView, run_crawl

    results: list[list[RunView]] = []

    def crawl() -> None:
        results.append(run_crawl(["zytzb"], refresh=True, settings=load_settings(world.env())))

    threads = [threading.Thread(target=crawl) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    runs = [run for result in results for run in result]
    assert [run.status for run in runs] == ["succeeded", "succeeded"], [run.message for run in runs]
    truth = expected("zytzb")["articles"]
    stored = world.articles("zytzb")
    assert set(stored) == set(truth)
    assert all(len(world.versions(a.id)) == 1 for a in stored.values())
    assert sum(run.articles_new for run in runs) == len(truth)
    assert all(run.articles_new + run.articles_unchanged == len(truth) for run in runs), [
        (
            r.articles_new,
            r.articles_unchanged,
            r.articles_failed,
            r.error_count,
            r.requests,
            r.responses_by_status,
            r.message,
        )
        for r in runs
    ]


def archived(world: World) -> dict[tuple[str, str], tuple[object, ...]]:
    """Each article by (site, path): its current fields, text hash, whether it is the
    original, the paths of its cluster, and the words (of a few) that find it."""
    words = ("统战", "統戰工作", "侨务", "宗教", "民主监督", "调研工作", "刘堃", "李曉東", "2024")
    with world.session() as session:
        hits = {
            word: {h.record["id"] for h in search(session, word, limit=1000, all_copies=True).hits}
            for word in words
        }
    paths = {a.id: (site, path) for site in ALL_SITES for path, a in world.articles(site).items()}
    members: dict[int, set[tuple[str, str]]] = {}
    for site in ALL_SITES:
        for path, a in world.articles(site).items():
            if a.cluster_id is not None:
                members.setdefault(a.cluster_id, set()).add((site, path))
    return {
        paths[a.id]: (
            (v := world.versions(a.id)[-1]).title, v.body, v.source, a.publish_time,
            a.content_hash, a.is_original,
            frozenset(members.get(a.cluster_id, set()) if a.cluster_id else ()),
            frozenset(w for w in words if a.id in hits[w]),
        )
        for site in ALL_SITES
        for a in world.articles(site).values()
    }  # fmt: skip


def test_what_a_crawl_derives_is_what_a_rebuild_from_stored_text_gives(world: World) -> None:
    """The crawl clusters and indexes each batch as it stores it; `reindex` and `dedup
    --rebuild` make both again from the stored text: the archive stays the same."""
    world.crawl()
    ours = archived(world)
    assert len(ours) == 22
    assert sum(1 for row in ours.values() if row[6]) == 6  # three clusters of two
    for command in (["reindex"], ["dedup", "--rebuild"]):
        result = CliRunner().invoke(app, command, env=world.env())
        assert result.exit_code == 0, result.output
    assert archived(world) == ours


REFUSED = "/tzyw/202403/t20240308_570511.html"
REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON articles WHEN instr(NEW.url, '570511') > 0"
        " BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused by a test trigger'; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON articles FOR EACH ROW"
        " WHEN (strpos(NEW.url, '570511') > 0) EXECUTE FUNCTION refuse()",
    ],
}


def test_a_page_the_database_refuses_fails_the_run_and_is_stored_next_time(world: World) -> None:
    """A page whose rows the database refuses (a trigger here; a broken constraint or a
    full disk in life) costs only itself: it becomes an error of kind "store", the run
    fails and says so, the other pages are stored, and the next run stores it."""
    engine = make_engine(world.database_url)
    with engine.begin() as conn:
        for statement in REFUSE[engine.dialect.name]:
            conn.exec_driver_sql(statement)
    run = world.crawl("zytzb")["zytzb"]
    assert run.status == "failed" and run.message.startswith(
        "1 pages could not be stored (errors of kind 'store'), the first: "
    )
    assert "refused by a test trigger" in run.message
    with world.session() as session:
        errors = session.execute(
            select(CrawlError.url, CrawlError.message).where(CrawlError.kind == "store")
        ).all()
    assert [url for url, _ in errors] == [world.servers["zytzb"].url(REFUSED)]
    assert "refused by a test trigger" in errors[0][1] and "\n" not in errors[0][1]
    stored = world.articles("zytzb")
    assert REFUSED not in stored and len(stored) == 9
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse" + (" ON articles" if engine.dialect.name == "postgresql" else ""))  # fmt: skip
    engine.dispose()
    run = world.crawl("zytzb")["zytzb"]
    assert run.status == "succeeded" and run.articles_new == 1
    assert REFUSED in world.articles("zytzb") and len(world.articles("zytzb")) == 10


def test_a_crawl_process_started_ahead_takes_the_next_run_and_only_with_its_environment(
    world: World, tmp_path: Path
) -> None:
    """The scheduler's CrawlProcesses: the process started ahead crawls the next run (its
    pid is the run's, its output goes to the run's log); a run with other settings, or
    after that process died, gets a fresh process; close() stops the one waiting."""
    from archive.settings import load_settings
    from crawler.runner import CrawlProcesses, run_crawl

    settings = load_settings(world.env())
    processes = CrawlProcesses(ahead=True)
    try:
        (first,) = run_crawl(["zytzb"], settings=settings, processes=processes)
        assert processes.spare is not None
        ahead = processes.spare[0]
        (second,) = run_crawl(["zytzb"], refresh=True, settings=settings, processes=processes)
        assert [first.status, second.status] == ["succeeded", "succeeded"], second.message
        with world.session() as session:
            pids = {row.id: row.pid for row in session.execute(select(CrawlRun.id, CrawlRun.pid))}
        assert pids[second.run_id] == ahead.pid != pids[first.run_id]
        assert ahead.returncode == 0
        assert second.articles_unchanged == len(expected("zytzb")["articles"])
        log = Path(second.log_file or "").read_text(encoding="utf-8")
        assert "Spider closed (finished)" in log and "Spider opened" in log

        # another archive (its own data dir): never the process started for this one
        assert processes.spare is not None
        waiting = processes.spare[0]
        other = dict(world.env(), UFARCHIVE_DATA_DIR=str(tmp_path / "other-data"))
        other_settings = load_settings(other)
        from archive.db import upgrade

        engine = make_engine(other_settings.database_url)
        upgrade(engine)
        engine.dispose()
        (third,) = run_crawl(["zytzb"], settings=other_settings, processes=processes)
        assert third.status == "succeeded", third.message
        assert waiting.poll() is not None  # not left behind, unused
        # a process started ahead that died: the run gets a fresh one
        assert processes.spare is not None
        dead = processes.spare[0]
        dead.kill()
        dead.wait()
        (fourth,) = run_crawl(["zytzb"], settings=other_settings, processes=processes)
        assert fourth.status == "succeeded", fourth.message
        assert fourth.requests > 0
    finally:
        processes.close()
    assert processes.spare is None
    assert all(p.poll() is not None for p in (ahead, waiting, dead))


def wait_until_reading_stdin(pid: int, timeout: float = 60) -> None:
    """Until the process blocks in read(2) on its stdin (Linux: /proc/PID/syscall)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/syscall").read_text().split()[:2] == ["0", "0x0"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never waited on its stdin")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("started", ["ahead", "afresh"])
def test_a_crawl_process_stopped_before_its_crawl_starts_ends_its_run_interrupted(
    world: World, tmp_path: Path, signum: signal.Signals, started: str
) -> None:
    """The scheduler stops a crawl just as it starts: the signal reaches the process
    before Scrapy has set up its handlers (they come with the reactor), whether it was
    handed to the process started ahead or started afresh, and its default kills it;
    nothing of the crawl had begun. The run ends `interrupted` (its queue kept for the
    next start), not `killed` (found in CI: a site on a 2 s interval)."""
    from archive.db import make_sessionmaker
    from archive.settings import load_settings
    from crawler.runner import CrawlProcesses, child_env, close_orphans, load_runs, start_runs
    from crawler.sites import check_sites

    settings = load_settings(world.env())
    processes = CrawlProcesses(ahead=started == "ahead")
    env = child_env(settings)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        if started == "ahead":
            processes.prepare(env)
            assert processes.spare is not None
            wait_until_reading_stdin(processes.spare[0].pid)
        sites, _ = check_sites(settings.sites_dir, ["zytzb"])
        (run_id,) = start_runs(sessions, sites)
        log_file = tmp_path / "stopped.log"
        jobdir = tmp_path / "jobdir"
        child = processes.start(
            ["--run", f"zytzb={run_id}", "--jobdir", str(jobdir)], log_file, env
        )
        child.send_signal(signum)  # it has just read its run, or not yet started Python
        child.wait(timeout=60)
        # as the scheduler does, which sent the signal
        close_orphans(sessions, [run_id], child.returncode, log_file, stopped=True)
        (run,) = load_runs(sessions, [run_id])
        assert run.status == "interrupted", run.message
        assert child.returncode == -signum  # the signal's default: the case handled
        assert (run.message or "").startswith("stopped before its crawl began")
        # a crawl process that died of another signal, or of a stop nobody sent, is killed
        (other,) = start_runs(sessions, sites)
        close_orphans(sessions, [other], -signal.SIGKILL, log_file, stopped=True)
        (lone,) = start_runs(sessions, sites)
        close_orphans(sessions, [lone], -signal.SIGTERM, log_file, stopped=False)
        assert [r.status for r in load_runs(sessions, [other, lone])] == ["killed", "killed"]
        # nothing is left half-done: the next crawl finishes the site
        again = world.crawl("zytzb")["zytzb"]
        assert again.status == "succeeded", again.message
        assert len(world.articles("zytzb")) == len(expected("zytzb")["articles"])
    finally:
        processes.close()
        engine.dispose()


#: Runs one crawl process's body and counts the log records it makes by level, from the
#: spider's opening on (before it, Scrapy's start-up makes a few DEBUG ones).
COUNT_RECORDS = """
import logging, sys
made = {}
opened = []
real = logging.Logger.makeRecord
def counting(self, *args, **kwargs):
    record = real(self, *args, **kwargs)
    if record.getMessage() == "Spider opened":
        opened.append(True)
    elif opened:
        made[record.levelno] = made.get(record.levelno, 0) + 1
        if record.levelno == logging.DEBUG:
            print("made at DEBUG:", record.name, record.getMessage()[:80], file=sys.stderr)
    return record
logging.Logger.makeRecord = counting
from crawler.runner import crawl_in_this_process
crawl_in_this_process([(sys.argv[1], int(sys.argv[2]))], False, None)
print(sorted(made.items()))
"""


def test_a_crawl_makes_no_log_record_below_its_level(world: World) -> None:
    """Scrapy logs each response and item at DEBUG and filters in its handler; at INFO a
    crawl must not build those records at all (the logger's level skips them)."""
    import ast
    import logging

    from archive.db import make_sessionmaker
    from archive.settings import load_settings
    from crawler.runner import select_sites, start_runs

    settings = load_settings(world.env())
    assert settings.logging.level == "INFO"
    engine = make_engine(world.database_url)
    try:
        (run_id,) = start_runs(make_sessionmaker(engine), select_sites(settings, ["tzb_tw"]))
    finally:
        engine.dispose()
    result = subprocess.run(
        [sys.executable, "-c", COUNT_RECORDS, "tzb_tw", str(run_id)],
        env={**world.env(), "PATH": str(Path(sys.executable).parent)}, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    made = dict(ast.literal_eval(result.stdout.strip().splitlines()[-1]))
    articles = world.articles("tzb_tw")
    assert set(articles) == set(expected("tzb_tw")["articles"])
    assert made.get(logging.INFO, 0) > 0  # the crawl logs what it should
    assert made.get(logging.DEBUG, 0) == 0, [
        line for line in result.stderr.splitlines() if line.startswith("made at DEBUG")
    ]
