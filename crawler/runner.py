"""run_crawl(sites) -> the finished CrawlRun rows; the crawl itself runs in a child process.

Scrapy's reactor cannot be restarted, so every crawl gets a fresh process
(`python -m crawler.runner`). The parent creates the run rows first, watches the child,
reports progress from the rows' counters, and records the outcome whatever happens to
the child (crash, kill): no run is left `running`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from archive.alerts import judge_run
from archive.db import check_schema, make_engine, make_sessionmaker, retrying
from archive.errors import SiteConfigError
from archive.fixity import seal_unfinished
from archive.models import CrawlRun, RunStatus, utcnow
from archive.settings import Settings, load_settings
from archive.store import ensure_site, finish_run, start_run
from crawler.sites import SiteConfig, check_sites

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RunView:
    """A crawl run as the CLI shows it (a detached copy of the row)."""

    run_id: int
    site: str
    status: str
    started_at: object
    finished_at: object
    message: str | None
    requests: int
    responses_by_status: dict[str, int]
    bytes_received: int
    articles_new: int
    articles_changed: int
    articles_unchanged: int
    articles_gone: int
    articles_failed: int
    error_count: int
    log_file: str | None = None
    workers: int | None = None  # crawl workers that took part (a distributed run)
    revisits_checked: int = 0
    revisits_not_modified: int = 0
    revisits_failed: int = 0
    articles_restored: int = 0
    articles_moved: int = 0
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED.value


def select_sites(settings: Settings, names: Sequence[str] | None) -> list[SiteConfig]:
    """The named sites (or all); a broken or unknown site file is a `SiteConfigError`."""
    sites, errors = check_sites(settings.sites_dir, list(names) if names else None)
    if errors:
        raise errors[0]
    if not sites:
        raise SiteConfigError(settings.sites_dir, "(folder)", "no site files to crawl")
    return sites


def run_crawl(
    names: Sequence[str] | None = None,
    *,
    refresh: bool = False,
    trigger: str = "manual",
    on_progress: Callable[[list[RunView]], None] | None = None,
    settings: Settings | None = None,
) -> list[RunView]:
    """Crawl the sites now in a child process; return their finished runs."""
    settings = settings or load_settings()
    sites = select_sites(settings, names)
    engine = make_engine(settings.database_url, writer=True)
    try:
        check_schema(engine)
        seal_unfinished(settings.data_dir)  # torn tails of crawls that died (archive.fixity)
        sessions = make_sessionmaker(engine)
        close_dead_runs(sessions, settings.scheduler.crawl_timeout_minutes)
        run_ids = start_runs(sessions, sites, trigger)
        log_file = settings.data_dir / "logs" / f"crawl-{run_ids[0]}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "crawler.runner", "--log-file", str(log_file)]
        for site, run_id in zip(sites, run_ids, strict=True):
            command += ["--run", f"{site.name}={run_id}"]
        if refresh:
            command.append("--refresh")
        with log_file.open("ab") as log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(settings),
            )
            try:
                while child.poll() is None:
                    if on_progress:  # the database may restart under a crawl: wait for it
                        on_progress(retrying(lambda: load_runs(sessions, run_ids), "progress"))
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(timeout=POLL_SECONDS)  # returns as soon as the child ends
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)  # Scrapy stops gracefully and closes the runs
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                raise
            finally:
                close_orphans(sessions, run_ids, child.returncode, log_file)
        with sessions() as session, session.begin():
            # alerts follow every run, manual ones too (the scheduler also posts them)
            for run_id in run_ids:
                judge_run(session, run_id, settings.scheduler)
        runs = load_runs(sessions, run_ids, str(log_file))
        if on_progress:
            on_progress(runs)
        return runs
    finally:
        engine.dispose()


def start_runs(
    sessions: sessionmaker[Session],
    sites: Sequence[SiteConfig],
    trigger: str = "manual",
    distributed: bool = False,
) -> list[int]:
    """A new run row for each site (its site row made on first use); their ids."""
    with sessions() as session, session.begin():
        return [
            start_run(
                session, ensure_site(session, s.name, s.title), trigger, distributed=distributed
            ).id
            for s in sites
        ]


def child_env(settings: Settings) -> dict[str, str]:
    """The child sees exactly the settings the parent resolved (config, data, database)."""
    from archive.settings import ENV_CONFIG, ENV_DATA_DIR, ENV_DATABASE_URL

    return {
        **os.environ,
        ENV_CONFIG: str(settings.config_dir.resolve()),
        ENV_DATA_DIR: str(settings.data_dir.resolve()),
        ENV_DATABASE_URL: settings.database_url,
    }


def close_orphans(
    sessions: sessionmaker[Session], run_ids: list[int], returncode: int | None, log_file: Path
) -> None:
    """Runs the child did not close (it crashed or was killed) end as failed or killed."""
    if returncode is None:
        status, why = RunStatus.KILLED, "crawl process did not stop"
    elif returncode < 0:
        status, why = RunStatus.KILLED, f"crawl process killed by signal {-returncode}"
    else:
        status, why = RunStatus.FAILED, f"crawl process exited with code {returncode}"

    def close() -> None:
        with sessions() as session, session.begin():
            for run_id in run_ids:
                finish_run(session, run_id, status, f"{why}; see {log_file}")

    retrying(close, "closing the runs")


def close_dead_runs(
    sessions: sessionmaker[Session], timeout_minutes: float, site: str | None = None
) -> list[int]:
    """Runs still `running` whose process is gone (a scheduler or a machine killed with its
    crawls) end as `killed`; returns their ids. On this host a run is dead when its crawl
    process is, or, before a crawl process took it (no pid yet), when it is older than
    10 minutes; a run of another host when it started longer ago than the wall-clock limit
    of a crawl. With `site` (the caller holds the site's lock: no crawl of it can be
    running), every run of that site still `running` is dead."""
    import socket

    from archive.models import Site

    here = socket.gethostname()
    now = utcnow()
    closed = []
    with sessions() as session, session.begin():
        # distributed runs (workers counted) are watched by their coordinator, which adopts
        # them again after a restart (crawler.distributed), never by a crawl process's pid
        query = select(CrawlRun).where(
            CrawlRun.status == RunStatus.RUNNING.value, CrawlRun.workers.is_(None)
        )
        if site is not None:
            query = query.join(Site).where(Site.name == site)
        for run in session.scalars(query):
            if site is not None:
                dead = run.pid is None or run.host != here or not is_alive(run.pid)
            elif run.host == here and run.pid is not None:
                dead = not is_alive(run.pid)
            elif run.host == here:
                dead = run.started_at < now - timedelta(minutes=10)
            else:
                dead = run.started_at < now - timedelta(minutes=timeout_minutes + 5)
            if dead:
                finish_run(session, run.id, RunStatus.KILLED,
                           "its crawl process was gone when the archive next started a crawl")  # fmt: skip
                closed.append(run.id)
    return closed


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_runs(
    sessions: sessionmaker[Session], run_ids: list[int], log_file: str | None = None
) -> list[RunView]:
    with sessions() as session:
        rows = session.scalars(
            select(CrawlRun).where(CrawlRun.id.in_(run_ids)).order_by(CrawlRun.id)
        ).all()
        return [run_view(row, log_file) for row in rows]


def run_view(row: CrawlRun, log_file: str | None = None) -> RunView:
    return RunView(
        run_id=row.id, site=row.site.name, status=row.status, started_at=row.started_at,
        finished_at=row.finished_at, message=row.message, requests=row.requests,
        responses_by_status=dict(row.responses_by_status or {}), bytes_received=row.bytes_received,
        articles_new=row.articles_new, articles_changed=row.articles_changed,
        articles_unchanged=row.articles_unchanged, articles_gone=row.articles_gone,
        articles_failed=row.articles_failed, error_count=row.error_count, log_file=log_file,
        workers=row.workers,
        revisits_checked=row.revisits_checked, revisits_not_modified=row.revisits_not_modified,
        revisits_failed=row.revisits_failed, articles_restored=row.articles_restored,
        articles_moved=row.articles_moved, unreachable=row.unreachable,
    )  # fmt: skip


# --- the child ------------------------------------------------------------------------------


def crawl_in_this_process(
    runs: list[tuple[str, int]], refresh: bool, log_file: str | None, jobdir: str | None = None
) -> int:
    """Run every (site, run id) in one Scrapy process; returns the exit code.

    With `jobdir` (one site; the scheduler's crawls) Scrapy keeps its request queue and
    seen-requests there, so a crawl stopped by SIGTERM resumes where it stopped."""
    from scrapy.crawler import CrawlerProcess

    from crawler.crawlsettings import scrapy_settings
    from crawler.spider import NewsSpider

    settings = load_settings()
    values = scrapy_settings(settings, log_level=settings.logging.level)
    if log_file:
        values["LOG_FILE"] = log_file
        values["LOG_FILE_APPEND"] = True
    values["LOG_INSTALL_ROOT_HANDLER"] = True
    if jobdir:
        values["JOBDIR"] = jobdir
    process = CrawlerProcess(values)
    from archive import redact

    redact.install(redact.secret_values(settings))  # on the handler Scrapy just installed
    for site, run_id in runs:
        process.crawl(NewsSpider, site=site, run_id=run_id, refresh=refresh)
    process.start()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.runner", description="One crawl process."
    )
    parser.add_argument("--run", action="append", required=True, metavar="SITE=RUN_ID")
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--log-file")
    parser.add_argument("--jobdir")
    args = parser.parse_args(argv)
    runs = []
    for value in args.run:
        site, _, run_id = value.partition("=")
        runs.append((site, int(run_id)))
    # Ctrl-C in the terminal reaches the parent only, which forwards ONE SIGINT: Scrapy
    # takes a second SIGINT as "stop now, uncleanly".
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    sys.exit(crawl_in_this_process(runs, args.refresh, args.log_file, args.jobdir))


if __name__ == "__main__":
    main()
