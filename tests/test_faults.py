"""Fault trials, bounded for CI (bench/faults.py runs them at volume and for the figures of
docs/reliability.md): crawls and the scheduler killed with SIGKILL, database connections
ended by the server mid-crawl, a full data dir, a hostile site. After each, the archive
is whole (tests/faults.py `problems`)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from archive.models import CrawlError, CrawlRun
from tests.bigsite import build_site
from tests.faults import (
    Archive,
    kill_crawl_at,
    kill_scheduler_at,
    measured_crawl,
    problems,
    schedule_until_success,
)
from tests.hostilesite import HostileSite
from tests.siteserver import SiteServer

PAGES = 80


@pytest.fixture(scope="module")
def big_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteServer]:
    root = tmp_path_factory.mktemp("bigsite")
    build_site(root, PAGES)
    with SiteServer(root) as server:
        yield server


def archive_of(root: Path, database_url: str, server: SiteServer, **kwargs: object) -> Archive:
    return Archive(
        root,
        database_url,
        server.url("/tzyw/index.html"),
        server.host,
        **kwargs,  # type: ignore[arg-type]
    )


def test_crawls_killed_at_random_moments_lose_nothing(
    tmp_path: Path, sqlite_url: str, big_site: SiteServer
) -> None:
    archive = archive_of(tmp_path, sqlite_url, big_site).configure()
    # a crawl still storing when the kill lands, on a fast machine too: the last 50 pages
    # take >= 0.15 s to fetch (16 at a time), and a crawl process now exits at once
    big_site.latency = 0.05
    try:
        for after, delay in ((0, 1.0), (30, 0.05)):  # while it starts, while it stores
            assert kill_crawl_at(archive, delay, after_articles=after) != "finished before the kill"
            assert problems(archive) == []
    finally:
        big_site.latency = 0.0
    statuses = [r.status for r in archive.runs()]
    # a kill that lands after the run was closed (its process was exiting) leaves it succeeded
    assert statuses[0] == "killed" and statuses[1] in ("killed", "succeeded"), statuses
    result = archive.crawl()
    assert result.returncode == 0, result.stderr
    assert problems(archive, pages=PAGES) == []


def test_a_scheduler_killed_with_its_crawls_recovers(
    tmp_path: Path, sqlite_url: str, big_site: SiteServer
) -> None:
    archive = archive_of(tmp_path, sqlite_url, big_site).configure()
    # the crawl is still running when the kill lands, on a fast machine too: the stored
    # count it waits for shows at the crawl's first flush (1 s), and 80 pages at 8 at a
    # time take 10 x 0.25 s (0.02 s was too little once crawl processes started faster)
    big_site.latency = 0.25
    try:
        kill_scheduler_at(archive, 0.0, after_articles=20)
    finally:
        big_site.latency = 0.0
    runs = archive.runs()
    assert runs and runs[-1].status == "running"  # its process died with it
    assert schedule_until_success(archive) == 0
    runs = archive.runs()
    assert runs[0].status == "killed" and "gone" in (runs[0].message or "")
    assert problems(archive, pages=PAGES) == []


def test_database_connections_ended_mid_crawl_are_retried(
    tmp_path: Path, postgres_url: str, big_site: SiteServer
) -> None:
    """What a PostgreSQL restart does to a crawl, on the test's own database only (the
    server is shared): every connection is ended by the server, several times."""
    archive = archive_of(tmp_path, postgres_url, big_site).configure()
    name = make_url(postgres_url).database
    admin = create_engine(
        make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    crawl = subprocess.Popen(
        [*archive_cmd(), "crawl"], env=archive.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    ended = rounds = 0
    big_site.latency = 0.15  # a crawl long enough to be cut several times on a fast machine
    try:
        wait_for_writes(archive)
        while rounds < 5 and crawl.poll() is None:
            with admin.connect() as conn:
                cut = len(conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name},
                ).all())  # fmt: skip
            ended += cut
            rounds += bool(cut)
            time.sleep(0.5)
        _, stderr = crawl.communicate(timeout=300)
    finally:
        big_site.latency = 0.0
        admin.dispose()
        if crawl.poll() is None:
            crawl.kill()
    assert rounds >= 3, f"the crawl ended before its connections were cut 3 times ({ended})"
    assert crawl.returncode == 0, stderr
    assert [r.status for r in archive.runs()] == ["succeeded"]
    assert problems(archive, pages=PAGES) == []


def archive_cmd() -> list[str]:
    from tests.faults import UFARCHIVE

    return UFARCHIVE


def wait_for_writes(archive: Archive, timeout: float = 60) -> None:
    """Until the crawl process has opened its run and stored something."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception), archive.session() as session:
            run = session.scalars(select(CrawlRun)).first()  # type: ignore[attr-defined]
            if run is not None and run.pid and run.articles_new:
                return
        time.sleep(0.1)
    raise AssertionError("the crawl stored nothing")


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_data_dir_fails_the_run_in_one_line_and_corrupts_nothing(
    tmp_path: Path, big_site: SiteServer
) -> None:
    database = f"sqlite:///{tmp_path / 'db' / 'ufarchive.sqlite3'}"  # not on the full disk
    with small_filesystem(tmp_path / "data", "96k") as data:
        archive = archive_of(tmp_path, database, big_site, data_dir=data).configure()
        result = archive.crawl()
        assert result.returncode == 1
        failed = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(failed) == 1 and "No space left on device" in failed[0], result.stderr
        [run] = archive.runs()
        assert run.status == "failed" and "No space left on device" in (run.message or "")
        assert problems(archive) == []
        # space again: the next run stores what the full disk refused
        subprocess.run(["mount", "-o", "remount,size=64m", str(data)], check=True)
        result = archive.crawl()
        assert result.returncode == 0, result.stderr
        assert problems(archive, pages=PAGES) == []


def test_a_hostile_site_is_bounded_in_time_and_memory(tmp_path: Path, sqlite_url: str) -> None:
    site = HostileSite().start()
    try:
        archive = Archive(tmp_path, sqlite_url, f"{site.base}/tzyw/index.html", "127.0.0.1",
                          follow=r"/tzyw/links\.html$")  # fmt: skip
        archive.configure(
            timeout=4, max_bytes=8_000_000, max_pages=250,
            extra=f"sitemap_urls: [{site.base}/sitemap.xml.gz]\n",
        )  # fmt: skip
        threading.Timer(120, site.stop).start()  # never outlive the test, whatever happens
        figures = measured_crawl(archive, timeout=300)
    finally:
        site.stop()
    assert figures["seconds"] < 120, figures  # type: ignore[operator]
    assert figures["rss_mb"] < 700, figures  # type: ignore[operator]
    with archive.session() as session:
        errors = {
            e.url.rsplit("/", 1)[-1]: e.kind
            for e in session.scalars(select(CrawlError))  # type: ignore[attr-defined]
            if e.url
        }
    assert errors["t20240504_4.html"] in ("too_large", "timeout")  # endless chunked body
    assert errors["t20240505_5.html"] == "timeout"  # slowloris
    assert errors["t20240506_6.html"] == "too_large"  # gzip bomb
    assert errors["sitemap.xml.gz"] == "sitemap"  # gzip bomb sitemap
    assert problems(archive) == []
    with archive.session() as session:
        from archive.models import Article

        stored = {a.url.rsplit("/", 1)[-1] for a in session.scalars(select(Article))}  # type: ignore[attr-defined]
    assert {"t20240501_1.html", "t20240502_2.html"} <= stored
    # the 5 MB page is stored, or (on a loaded machine) cut by the timeout: bounded either way
    assert "t20240503_3.html" in stored or errors["t20240503_3.html"] == "timeout"


@pytest.mark.parametrize(("last", "kept"), [("killed", False), ("interrupted", True)])
def test_only_a_cleanly_stopped_crawl_resumes_its_queue(
    tmp_path: Path, sqlite_url: str, big_site: SiteServer, last: str, kept: bool
) -> None:
    """A queue left by a crawl killed outright has marked as seen requests whose pages were
    never stored; resumed, its run stored nothing (bench/faults.py, scheduler trial 7)."""
    from archive.models import RunStatus
    from archive.settings import load_settings
    from archive.store import ensure_site, finish_run, start_run
    from crawler.scheduling import CrawlScheduler
    from crawler.sites import load_sites

    archive = archive_of(tmp_path, sqlite_url, big_site).configure()
    settings = load_settings(archive.env())
    scheduler = CrawlScheduler(settings, load_sites(settings.sites_dir))
    try:
        with scheduler.sessions() as session, session.begin():
            run = start_run(session, ensure_site(session, "big", "x"), "schedule", 1)
            finish_run(session, run.id, RunStatus(last), "stopped")
        jobdir = scheduler.jobdir("big")
        (jobdir / "requests.queue").mkdir(parents=True)
        scheduler.drop_stale_jobdirs()
        assert jobdir.exists() is kept
    finally:
        scheduler.engine.dispose()
