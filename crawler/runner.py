"""run_crawl(sites) -> the finished CrawlRun rows; the crawl itself runs in a child process.

Scrapy's reactor cannot be restarted, so every crawl gets a fresh process
(`python -m crawler.runner`, started by `CrawlProcesses`). The parent creates the run rows
first, watches the child, reports progress from the rows' counters, and records the outcome
whatever happens to the child (crash, kill): no run is left `running`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import threading
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
# What a crawl imports before its first request (its Scrapy components included) and at
# its first stored article (archive.store imports dedup and search then): a process started
# ahead (CrawlProcesses) and a worker (crawler.worker) import them before any run needs them.
CRAWL_MODULES = (
    "scrapy.crawler",
    "scrapy.core.engine",
    "scrapy.core.downloader.handlers.http11",
    "crawler.crawlsettings",
    "crawler.spider",
    "crawler.pipelines",
    "crawler.middlewares",
    "crawler.checks",
    "crawler.boundary",
    "crawler.resolver",
    "archive.dedup",
    "archive.search",
)


def import_crawl_modules(*more: str) -> None:
    """Import CRAWL_MODULES (and `more`) now, before a run waits for them."""
    import importlib

    for module in (*CRAWL_MODULES, *more):
        importlib.import_module(module)


class CrawlProcesses:
    """Starts crawl processes. With `ahead` (the scheduler), the next crawl process is
    started when a run ends (`prepare`): it imports Scrapy, Twisted, SQLAlchemy and the
    spider (about 1 s of CPU, a fifth of a revisit run of 2,000 articles: bench/README.md)
    while no run waits for it and none competes with it, then waits on its stdin for the
    run it is given. A crawl process is the caller's own child either way (its pid,
    signals and exit code are plain `subprocess`), and one started ahead is used only
    with the environment it was started with; otherwise the run gets a fresh one."""

    def __init__(self, ahead: bool = False) -> None:
        self.ahead = ahead
        self.closed = False  # by close(): no process is started ahead any more
        self.lock = threading.Lock()
        self.spare: tuple[subprocess.Popen[bytes], dict[str, str]] | None = None

    def start(
        self, args: list[str], log_file: Path, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        """A crawl process running `python -m crawler.runner --log-file LOG_FILE ARGS`."""
        argv = ["--log-file", str(log_file), *args]
        with self.lock:
            spare, self.spare = self.spare, None
        child = None
        if spare is not None:
            if spare[1] == env and self.hand_over(spare[0], argv):
                child = spare[0]
            else:
                self.discard(spare[0])
        if child is None:
            with log_file.open("ab") as log:
                child = subprocess.Popen(
                    [sys.executable, "-m", "crawler.runner", *argv],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                )  # fmt: skip
        return child

    def prepare(self, env: dict[str, str]) -> None:
        """Start a process ahead for the next run (unless one is ready, not `ahead`, or
        closed)."""
        if not self.ahead:
            return
        with self.lock:
            if self.closed or (self.spare is not None and self.spare[0].poll() is None):
                return
            # Its output before it has a run (a failed import) has no log to go to: such a
            # process is found dead when a run comes, which then gets a fresh process.
            spare = subprocess.Popen(
                [sys.executable, "-m", "crawler.runner", "--ahead"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=env,
            )  # fmt: skip
            self.spare = (spare, env)

    @staticmethod
    def hand_over(child: subprocess.Popen[bytes], argv: list[str]) -> bool:
        """Give the waiting process its run; False when it is gone."""
        assert child.stdin is not None
        if child.poll() is not None:
            return False
        try:
            child.stdin.write(json.dumps(argv).encode() + b"\n")
            child.stdin.close()
        except OSError:  # it died meanwhile (BrokenPipeError)
            return False
        return True

    @staticmethod
    def discard(child: subprocess.Popen[bytes]) -> None:
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # it has no run: it exits at end of input
        try:
            child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:  # still importing: nothing of it to keep
            child.kill()
            child.wait()

    def close(self) -> None:
        """Stop the process started ahead, if any, and start none from now on (a run
        ending after this, as the scheduler stops, must not leave one behind)."""
        with self.lock:
            self.closed = True
            spare, self.spare = self.spare, None
        if spare is not None:
            self.discard(spare[0])


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
    processes: CrawlProcesses | None = None,
) -> list[RunView]:
    """Crawl the sites now in a child process (from `processes`, by default a fresh one);
    return their finished runs."""
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
        args = []
        for site, run_id in zip(sites, run_ids, strict=True):
            args += ["--run", f"{site.name}={run_id}"]
        if refresh:
            args.append("--refresh")
        processes = processes or CrawlProcesses()
        env = child_env(settings)
        child = processes.start(args, log_file, env)
        stopped = False
        try:
            while child.poll() is None:
                if on_progress:  # the database may restart under a crawl: wait for it
                    on_progress(retrying(lambda: load_runs(sessions, run_ids), "progress"))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=POLL_SECONDS)  # returns as soon as the child ends
        except KeyboardInterrupt:
            stopped = True
            child.send_signal(signal.SIGINT)  # Scrapy stops gracefully and closes the runs
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
        finally:
            close_orphans(sessions, run_ids, child.returncode, log_file, stopped)
            processes.prepare(env)

        def judge() -> None:
            with sessions() as session, session.begin():
                # alerts follow every run, manual ones too (the scheduler also posts them)
                for run_id in run_ids:
                    judge_run(session, run_id, settings.scheduler)

        retrying(judge, "judging the runs")  # the database may have restarted meanwhile
        runs = retrying(lambda: load_runs(sessions, run_ids, str(log_file)), "loading the runs")
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
    sessions: sessionmaker[Session],
    run_ids: list[int],
    returncode: int | None,
    log_file: Path,
    stopped: bool = False,
) -> None:
    """Runs the child did not close (it crashed or was killed) end as failed or killed.

    A child that was `stopped` (sent SIGTERM or SIGINT) and died of that signal got it
    before Scrapy's handlers, which come with its reactor: while it was still starting,
    before its crawl fetched anything. Its runs end `interrupted`, like any stopped
    crawl's (the scheduler then keeps the site's queue: the one a clean stop left, or none)."""
    if stopped and returncode in (-signal.SIGTERM, -signal.SIGINT):
        status, why = RunStatus.INTERRUPTED, "stopped before its crawl began"
    elif returncode is None:
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

    # What is imported by now lives as long as the process: kept out of the cyclic
    # collector's sight, a full collection scans only what the crawl made. Before, the
    # 21 full collections of a 2,000-page crawl scanned these ~120,000 objects each time
    # (2.0 of its 27 s, bench/revisit.py's first crawl).
    gc.freeze()
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


def wait_for_run() -> list[str] | None:
    """A process started ahead (`--ahead`): import what a crawl needs, then read its run's
    arguments from stdin and send output to its log file; None when none comes (the parent
    closed it, or is gone)."""
    import_crawl_modules()
    line = sys.stdin.readline()
    if not line:
        return None
    argv: list[str] = json.loads(line)
    log_file = argv[argv.index("--log-file") + 1]
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return argv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.runner", description="One crawl process."
    )
    parser.add_argument("--run", action="append", metavar="SITE=RUN_ID")
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--log-file")
    parser.add_argument("--jobdir")
    parser.add_argument("--ahead", action="store_true", help="wait on stdin for the run")
    args = parser.parse_args(argv)
    # Ctrl-C in the terminal reaches the parent only, which forwards ONE SIGINT: Scrapy
    # takes a second SIGINT as "stop now, uncleanly".
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    if args.ahead:
        given = wait_for_run()
        if given is None:
            sys.exit(0)
        args = parser.parse_args(given)
    if not args.run:
        parser.error("the following arguments are required: --run")
    runs = []
    for value in args.run:
        site, _, run_id = value.partition("=")
        runs.append((site, int(run_id)))
    code = crawl_in_this_process(runs, args.refresh, args.log_file, args.jobdir)
    # The interpreter's teardown collects cycles among every object left, 0.3 s for the
    # modules alone: nothing here needs it (files and connections are closed by now).
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
