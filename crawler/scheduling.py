"""`ufarchive schedule`: APScheduler jobs that run each site's crawl in a process of its own.

One job per site from its `schedule` (cron or interval), with `max_instances=1`, coalescing
and a misfire grace time set on purpose (APScheduler's defaults -- 1 s grace, no
coalescing -- are what made Gerapy's schedules "miss"). The job pool has
`max_concurrent_crawls` threads: that is the global limit, a job waiting for a thread
still counts as its site's one instance. Every crawl:

- takes the site's lock in the database (archive.locks), so two schedulers on one
  PostgreSQL never crawl a site at once (ops may run two for failover);
- runs `python -m crawler.runner` with a Scrapy JOBDIR of its own (data/jobs/SITE) and a
  wall-clock limit (SIGTERM, then SIGKILL); whatever happens its crawl_runs row is closed
  (timeout, killed, failed) by runner.close_orphans;
- keeps its JOBDIR only when it was stopped by us (status `interrupted`): the next
  start runs that site at once and Scrapy resumes the queue.

SIGTERM/SIGINT stop taking work and send ONE SIGTERM to each crawl (Scrapy stops
gracefully on it); a second signal kills them. SIGHUP or a changed site file reloads the
sites; a broken file is logged and the running config kept. `/healthz` and `/metrics`
are served on `scheduler.metrics_host:metrics_port`.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from archive import redact
from archive.alerts import AlertView, judge_run, judge_staleness, site_health
from archive.db import check_schema, make_engine, make_sessionmaker, retrying
from archive.errors import ConfigError, SiteConfigError
from archive.fixity import AuditStoppedError, FixityView, run_audit, seal_unfinished, site_fixity
from archive.locks import site_lock
from archive.models import CrawlRun, RunStatus, utcnow
from archive.redact import redact_url
from archive.search import refresh_common_codes
from archive.settings import LoggingSettings, Settings, cron_trigger
from archive.store import ensure_site, finish_run, start_run
from crawler.runner import (
    CrawlProcesses,
    RunView,
    child_env,
    close_dead_runs,
    close_orphans,
    load_runs,
)
from crawler.sites import Schedule, SiteConfig, check_sites

log = logging.getLogger("ufarchive.schedule")

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 60  # after SIGTERM a crawl gets this long to checkpoint, then SIGKILL
HEALTH_CHECK_SECONDS = 5  # how often staleness is judged and site files are looked at
VERIFY_JOB = "(fixity audit)"  # not a site name: those match [a-z0-9_-]+
COUNTS_JOB = "(search counts)"
COUNTS_MINUTES = 10  # how often the search index's common codes are looked at (PostgreSQL)
COUNTS_ADDED = 100  # codes newly common counted at a time (writers wait: ~70 ms each at 1M)


# --- triggers ---------------------------------------------------------------------------


def make_trigger(schedule: Schedule, timezone: ZoneInfo) -> CronTrigger | IntervalTrigger:
    if schedule.cron:
        return cron_trigger(schedule.cron, timezone)
    return IntervalTrigger(
        seconds=interval_of(schedule, timezone).total_seconds(), timezone=timezone
    )


def interval_of(schedule: Schedule, timezone: ZoneInfo) -> timedelta:
    """The time between two runs (for a cron: between its next two fire times)."""
    if schedule.interval_minutes:
        return timedelta(minutes=schedule.interval_minutes)
    if schedule.interval_seconds:
        return timedelta(seconds=schedule.interval_seconds)
    assert schedule.cron
    trigger = cron_trigger(schedule.cron, timezone)
    now = datetime.now(timezone)
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    return second - first if first and second else timedelta(days=1)


def next_due(schedule: Schedule, timezone: ZoneInfo, last: datetime | None) -> datetime:
    """When a site is next due after its last successful run (now when it never ran)."""
    now = datetime.now(timezone)
    if last is None:
        return now
    if schedule.cron:
        trigger = cron_trigger(schedule.cron, timezone)
        due = trigger.get_next_fire_time(None, last + timedelta(seconds=1))
        return due or now
    return last + interval_of(schedule, timezone)


def load_timezone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.scheduler.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            settings.config_dir / "settings.yaml",
            "scheduler.timezone",
            f"unknown time zone {settings.scheduler.timezone!r}",
        ) from None


# --- the scheduler ----------------------------------------------------------------------


class CrawlScheduler:
    """The sites' jobs, the running crawls, and what they report."""

    def __init__(self, settings: Settings, sites: list[SiteConfig]) -> None:
        self.settings = settings
        self.timezone = load_timezone(settings)
        self.sites = {s.name: s for s in sites}
        self.engine = make_engine(settings.database_url, writer=True)
        self.sessions = make_sessionmaker(self.engine)
        self.metrics = Metrics()
        self.started_at = utcnow()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        # a crawl process always started ahead: a run waits for no imports
        self.processes = CrawlProcesses(ahead=settings.crawl.mode != "distributed")
        self.active = 0
        self.catchup: set[str] = set()
        self._redis: Any = None
        config = settings.scheduler
        self.scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(max_workers=config.max_concurrent_crawls),
                # the fixity audit reads every WARC file: never in a crawl's slot
                "fixity": ThreadPoolExecutor(max_workers=1),
                "upkeep": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": config.misfire_grace_seconds,
            },
            timezone=self.timezone,
        )

    # --- jobs
    def start(self) -> None:
        check_schema(self.engine)
        seal_unfinished(self.settings.data_dir)  # torn tails of crawls that died with us
        for run_id in close_dead_runs(self.sessions, self.settings.scheduler.crawl_timeout_minutes):
            log.warning("run %d was left running by a process that died: closed as killed", run_id)
        self.drop_stale_jobdirs()
        if self.settings.crawl.mode == "distributed":
            self.adopt()
        self.processes.prepare(child_env(self.settings))  # none in distributed mode
        self.scheduler.start()
        for site in self.sites.values():
            self.add_job(site, catch_up=True)
        self.metrics.sites.set(len(self.sites))
        cron = self.settings.scheduler.verify_cron
        if cron:
            self.scheduler.add_job(
                self.run_verify, cron_trigger(cron, self.timezone),
                id=VERIFY_JOB, name=VERIFY_JOB, executor="fixity", replace_existing=True,
            )  # fmt: skip
            log.info("scheduled the fixity audit: cron %s", cron)
        if self.engine.dialect.name == "postgresql":
            self.scheduler.add_job(
                self.run_counts, IntervalTrigger(minutes=COUNTS_MINUTES, timezone=self.timezone),
                id=COUNTS_JOB, name=COUNTS_JOB, executor="upkeep", replace_existing=True,
            )  # fmt: skip

    def run_counts(self) -> None:
        """Keep the document counts of the codes that have become common in the search index
        (archive.search.refresh_common_codes), so that counting a common word stays quick
        as the archive grows; writers holding the index for 2 s put it off to next time."""
        try:
            with self.sessions() as session, session.begin():
                done = refresh_common_codes(session.connection(), wait=False, most=COUNTS_ADDED)
        except SQLAlchemyError as exc:
            log.info("search counts not refreshed (%s): again in %d minutes",
                     str(exc).splitlines()[0], COUNTS_MINUTES)  # fmt: skip
            return
        if done.added:
            log.info("search counts: %d codes newly common, %d kept", done.added, done.kept)

    def run_verify(self) -> None:
        """The scheduled fixity audit: its result goes to `status`, damage to an alert."""
        started = time.monotonic()
        try:
            report, raised = run_audit(
                self.sessions, self.settings.data_dir, trigger="schedule",
                should_stop=self.stopping.is_set,
            )  # fmt: skip
        except AuditStoppedError:
            log.info("the fixity audit stopped with the scheduler; it runs again at its next time")
            return
        except Exception:
            log.exception("the fixity audit failed")
            return
        log.log(
            logging.INFO if report.clean else logging.ERROR,
            "fixity audit %s: %d records in %d files checked in %.0f s, %d damaged, "
            "%d unreferenced, %d torn tails set aside", "clean" if report.clean else "DAMAGED",
            report.records, report.files, time.monotonic() - started, len(report.problems),
            len(report.unreferenced), len(report.torn),
        )  # fmt: skip
        for alert in raised:
            self.alert(alert)

    def add_job(self, site: SiteConfig, catch_up: bool) -> None:
        trigger = make_trigger(site.schedule, self.timezone)
        kwargs: dict[str, Any] = {}
        if catch_up and self.is_due(site):
            self.catchup.add(site.name)
            kwargs["next_run_time"] = datetime.now(self.timezone)
        self.scheduler.add_job(
            self.run_site, trigger, args=[site.name], id=site.name, name=site.name,
            replace_existing=True, **kwargs,
        )  # fmt: skip
        log.info("scheduled %s: %s%s", site.name, site.schedule.describe(),
                 " (catching up: runs now)" if kwargs else "")  # fmt: skip

    def is_due(self, site: SiteConfig) -> bool:
        """At start: never succeeded, last success older than its interval, a missed cron
        time, or a crawl we stopped that left a JOBDIR to resume."""
        if self.jobdir(site.name).exists():
            return True
        with self.sessions() as session:
            last = site_health(session, site.name).last_success
        return next_due(site.schedule, self.timezone, last) <= datetime.now(self.timezone)

    def drop_stale_jobdirs(self) -> None:
        """A crawl's queue (JOBDIR) is resumed only after a clean stop (`interrupted`): a
        crawl killed outright had marked as seen requests whose pages it never stored
        (bench/faults.py found such a resumed run storing nothing); it starts afresh."""
        for name in self.sites:
            jobdir = self.jobdir(name)
            if not jobdir.exists():
                continue
            with self.sessions() as session:
                last = site_health(session, name).last_status
            if last != RunStatus.INTERRUPTED.value:
                shutil.rmtree(jobdir, ignore_errors=True)
                log.warning(
                    "%s: its last crawl did not stop cleanly (%s): starting afresh", name, last
                )

    def next_run(self, name: str) -> datetime | None:
        job = self.scheduler.get_job(name)
        return job.next_run_time if job is not None else None

    def jobdir(self, name: str) -> Path:
        return self.settings.data_dir / "jobs" / name

    # --- one crawl
    def run_site(self, name: str) -> None:
        with self.lock:
            if self.stopping.is_set():
                return
            self.active += 1
        try:
            site = self.sites.get(name)
            if site is None:
                return
            trigger = "catchup" if name in self.catchup else "schedule"
            self.catchup.discard(name)
            with site_lock(self.engine, name) as taken:
                if not taken:
                    log.info("%s: skipped, another scheduler is crawling it", name)
                    return
                timeout = self.settings.scheduler.crawl_timeout_minutes
                for run_id in close_dead_runs(self.sessions, timeout, site=name):
                    log.warning("%s: run %d was left running by a process that died: "
                                "closed as killed", name, run_id)  # fmt: skip
                run = self.crawl(site, trigger)
            if run is not None:
                self.record(run)
        except Exception:
            log.exception("%s: the crawl job failed", name)
        finally:
            with self.lock:
                self.active -= 1

    def crawl(self, site: SiteConfig, trigger: str) -> RunView | None:
        with self.sessions() as session, session.begin():
            distributed = self.settings.crawl.mode == "distributed"
            site_row = ensure_site(session, site.name, site.title)
            run_id = start_run(session, site_row, trigger, distributed=distributed).id
        if distributed:
            return self.crawl_distributed(site, run_id)
        log_file = self.settings.data_dir / "logs" / f"crawl-{run_id}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        jobdir = self.jobdir(site.name)
        args = ["--run", f"{site.name}={run_id}", "--jobdir", str(jobdir)]
        limit = self.settings.scheduler.crawl_timeout_minutes * 60
        with self.lock:
            if self.stopping.is_set():
                with self.sessions() as session, session.begin():
                    finish_run(session, run_id, RunStatus.INTERRUPTED, "scheduler stopping")
                return None
            child = self.processes.start(args, log_file, child_env(self.settings))
            self.children[site.name] = child
        log.info("%s: run %d started (%s, pid %d)", site.name, run_id, trigger, child.pid)
        self.metrics.running.inc()
        timed_out = False
        try:
            timed_out = watch(child, limit)
        finally:
            with self.lock:
                self.children.pop(site.name, None)
            self.metrics.running.dec()
            stopped = self.stopping.is_set() or timed_out  # we sent it SIGTERM
            close_orphans(self.sessions, [run_id], child.returncode, log_file, stopped)
            self.processes.prepare(child_env(self.settings))  # none once stop() closed them
            if timed_out:
                with self.sessions() as session, session.begin():
                    row = session.get_one(CrawlRun, run_id)
                    row.status = RunStatus.TIMEOUT.value
                    row.message = f"stopped after the wall-clock limit of {limit} s"
        run = retrying(lambda: load_runs(self.sessions, [run_id], str(log_file)), "the run")[0]
        if run.status != RunStatus.INTERRUPTED.value:
            shutil.rmtree(jobdir, ignore_errors=True)  # done (or broken): start afresh next time
        log.info("%s: run %d %s: %d new, %d changed, %d failed, %d errors%s", site.name,
                 run.run_id, run.status, run.articles_new, run.articles_changed,
                 run.articles_failed, run.error_count, f": {run.message}" if run.message else "")  # fmt: skip
        return run

    # --- distributed mode (crawl.mode: distributed): the crawl is the workers'
    def crawl_distributed(self, site: SiteConfig, run_id: int) -> RunView | None:
        """Push the run into Redis and watch it until the workers have drained it. When the
        scheduler stops first, the run goes on in Redis and the next start watches it."""
        from crawler import distributed

        try:
            server = self.redis()
            runs = distributed.enqueue_runs(self.settings, server, [(site, run_id)])
        except RedisError as exc:
            with self.sessions() as session, session.begin():
                finish_run(session, run_id, RunStatus.FAILED, f"Redis unreachable: {exc}")
            return load_runs(self.sessions, [run_id])[0]
        log.info("%s: run %d queued for the workers", site.name, run_id)
        return self.watch_distributed(site.name, runs)

    def watch_distributed(self, name: str, runs: list[Any]) -> RunView | None:
        from crawler import distributed

        keys = distributed.Keys(self.settings.crawl.redis_key_prefix)
        self.metrics.running.inc()
        try:
            done = distributed.watch_runs(
                self.redis(), keys, self.sessions, runs, stop=self.stopping
            )
        finally:
            self.metrics.running.dec()
        if not done:
            log.info("%s: run %d left to the workers; the next start watches it", name,
                     runs[0].run_id)  # fmt: skip
            return None
        run = load_runs(self.sessions, [runs[0].run_id])[0]
        log.info("%s: run %d %s: %d new, %d changed, %d failed, %d errors, %s workers%s",
                 name, run.run_id, run.status, run.articles_new, run.articles_changed,
                 run.articles_failed, run.error_count, run.workers,
                 f": {run.message}" if run.message else "")  # fmt: skip
        return run

    def redis(self) -> Any:
        if self._redis is None:
            from crawler.distributed import connect

            self._redis = connect(self.settings.redis_url)
        return self._redis

    def adopt(self) -> None:
        """Watch the runs a stopped scheduler left in Redis (distributed mode), each in a
        thread of its own under its site's lock, as if this scheduler had started them."""
        from crawler import distributed

        try:
            runs = distributed.adopt_runs(self.settings, self.redis(), self.sites)
        except RedisError as exc:
            log.warning("runs left in Redis not looked at (%s)", exc)
            return
        locked = []
        for progress in runs:
            tried = threading.Event()
            locked.append(tried)
            threading.Thread(
                target=self.adopt_one, args=(progress, tried), name=f"adopt-{progress.run_id}",
                daemon=True,
            ).start()  # fmt: skip
        for tried in locked:  # the sites' locks are held before their jobs can start
            tried.wait(timeout=30)

    def adopt_one(self, progress: Any, tried: threading.Event) -> None:
        from archive.models import CrawlRun

        with self.lock:
            self.active += 1
        try:
            with self.sessions() as session:
                row = session.get(CrawlRun, progress.run_id)
                name = row.site.name if row is not None else None
            if name is None:
                return
            with site_lock(self.engine, name) as taken:
                tried.set()
                if not taken:
                    return
                log.info("%s: watching run %d, left in Redis by an earlier start", name,
                         progress.run_id)  # fmt: skip
                run = self.watch_distributed(name, [progress])
            if run is not None:
                self.record(run)
        except Exception:
            log.exception("run %d: watching it failed", progress.run_id)
        finally:
            tried.set()
            with self.lock:
                self.active -= 1

    def record(self, run: RunView) -> None:
        self.metrics.observe(run)

        def judge() -> list[AlertView]:
            with self.sessions() as session, session.begin():
                return judge_run(session, run.run_id, self.settings.scheduler)

        raised = retrying(judge, "judging the run")  # the database may have restarted
        for alert in raised:
            self.alert(alert)

    def check_staleness(self) -> None:
        for site in list(self.sites.values()):
            interval = interval_of(site.schedule, self.timezone)
            with self.sessions() as session, session.begin():
                alert = judge_staleness(
                    session, site.name, interval, self.settings.scheduler, self.started_at
                )
            if alert is not None:
                self.alert(alert)

    def alert(self, alert: AlertView) -> None:
        log.warning("ALERT %s %s: %s", alert.site, alert.kind, alert.message,
                    extra={"alert": alert.to_dict()})  # fmt: skip
        self.metrics.alerts.labels(alert.site, alert.kind).inc()
        url = self.settings.scheduler.alert_webhook_url
        if url:
            threading.Thread(target=post_alert, args=(url, alert), daemon=True).start()

    # --- reload
    def reload(self) -> bool:
        """Re-read the site files; apply them only if every one is valid."""
        try:
            sites, errors = check_sites(self.settings.sites_dir)
        except SiteConfigError as exc:
            sites, errors = [], [exc]
        if errors:
            for error in errors:
                log.error("config not reloaded, keeping the running one: %s", error)
            return False
        new = {s.name: s for s in sites}
        for name in set(self.sites) - set(new):
            if self.scheduler.get_job(name):
                self.scheduler.remove_job(name)
            log.info("unscheduled %s (its site file is gone)", name)
        old = self.sites
        self.sites = new
        for name, site in new.items():
            if name not in old:
                self.add_job(site, catch_up=True)
            elif site.schedule != old[name].schedule:
                self.scheduler.reschedule_job(
                    name, trigger=make_trigger(site.schedule, self.timezone)
                )
                log.info("rescheduled %s: %s", name, site.schedule.describe())
        self.metrics.sites.set(len(new))
        return True

    # --- stopping
    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Take no new work; SIGTERM the crawls (they checkpoint); wait for them."""
        with self.lock:
            self.stopping.set()
            children = list(self.children.items())
        self.scheduler.shutdown(wait=False)
        self.processes.close()
        for name, child in children:
            log.info(
                "%s: stopping its crawl (pid %d); it resumes at the next start", name, child.pid
            )
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while True:
            with self.lock:
                if self.active == 0:
                    break
            if time.monotonic() > deadline:
                self.kill()
                deadline = time.monotonic() + 30
            time.sleep(POLL_SECONDS)
        self.engine.dispose()

    def kill(self) -> None:
        with self.lock:
            children = list(self.children.values())
        for child in children:
            child.kill()


def watch(child: subprocess.Popen[bytes], limit: float) -> bool:
    """Wait for the crawl process; past `limit` seconds SIGTERM it, and SIGKILL it if it
    has not stopped STOP_GRACE_SECONDS later. Returns whether the limit was hit."""
    deadline = time.monotonic() + limit
    kill_at: float | None = None
    while True:
        try:
            child.wait(timeout=POLL_SECONDS)
            return kill_at is not None
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if kill_at is None and now > deadline:
            child.send_signal(signal.SIGTERM)
            kill_at = now + STOP_GRACE_SECONDS
        elif kill_at is not None and now > kill_at:
            child.kill()


def post_alert(url: str, alert: AlertView) -> None:
    body = json.dumps({"source": "ufarchive", **alert.to_dict()}, ensure_ascii=False).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError as exc:  # the URL carries a token: never logged whole
        log.error("alert webhook %s failed: %s", redact_url(url), exc)


# --- metrics and health -----------------------------------------------------------------


class Metrics:
    """Prometheus metrics of this scheduler process (its own registry)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "ufarchive_crawl_runs", "Crawl runs by outcome.", ["site", "status"], registry=r
        )
        self.articles = Counter(
            "ufarchive_articles", "Articles by outcome.", ["site", "outcome"], registry=r
        )
        self.errors = Counter(
            "ufarchive_crawl_errors", "Errors recorded by crawls.", ["site"], registry=r
        )
        self.requests = Counter(
            "ufarchive_crawl_requests", "HTTP requests made.", ["site"], registry=r
        )
        self.duration = Histogram(
            "ufarchive_crawl_duration_seconds", "Wall-clock time of a crawl.", ["site"],
            buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, float("inf")), registry=r,
        )  # fmt: skip
        self.last_success = Gauge(
            "ufarchive_last_success_timestamp_seconds", "End of the last successful run.",
            ["site"], registry=r,
        )  # fmt: skip
        self.revisits = Counter(
            "ufarchive_revisits", "Revisits of known articles by outcome (checked: answered, "
            "not_modified: 304, failed: no usable answer).", ["site", "outcome"], registry=r,
        )  # fmt: skip
        self.unreachable = Counter(
            "ufarchive_unreachable_runs", "Runs that found the site down.", ["site"], registry=r
        )
        self.alerts = Counter("ufarchive_alerts", "Alerts raised.", ["site", "kind"], registry=r)
        self.running = Gauge("ufarchive_crawls_running", "Crawls running now.", registry=r)
        self.sites = Gauge("ufarchive_sites_scheduled", "Sites with a job.", registry=r)

    def observe(self, run: RunView) -> None:
        self.runs.labels(run.site, run.status).inc()
        for outcome in ("new", "changed", "unchanged", "gone", "moved", "restored", "failed"):
            self.articles.labels(run.site, outcome).inc(getattr(run, f"articles_{outcome}"))
        for outcome in ("checked", "not_modified", "failed"):
            self.revisits.labels(run.site, outcome).inc(getattr(run, f"revisits_{outcome}"))
        if run.unreachable:
            self.unreachable.labels(run.site).inc()
        self.errors.labels(run.site).inc(run.error_count)
        self.requests.labels(run.site).inc(run.requests)
        if isinstance(run.started_at, datetime) and isinstance(run.finished_at, datetime):
            self.duration.labels(run.site).observe(
                (run.finished_at - run.started_at).total_seconds()
            )
            if run.ok:
                self.last_success.labels(run.site).set(run.finished_at.timestamp())

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


def serve_http(scheduler: CrawlScheduler, host: str, port: int) -> ThreadingHTTPServer:
    """/healthz (JSON) and /metrics (Prometheus text) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                self.answer(200, CONTENT_TYPE_LATEST, scheduler.metrics.render())
            elif path == "/healthz":
                healthy = scheduler.scheduler.running and not scheduler.stopping.is_set()
                with scheduler.lock:
                    running = sorted(scheduler.children)
                body = {
                    "status": "ok" if healthy else "stopping",
                    "sites": len(scheduler.sites),
                    "running": running,
                    "started_at": scheduler.started_at.isoformat(timespec="seconds"),
                }
                self.answer(200 if healthy else 503, "application/json", json.dumps(body).encode())
            else:
                self.answer(404, "text/plain", b"not found\n")

        def answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


# --- logging ----------------------------------------------------------------------------


class JsonLineFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message (and an alert, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        alert = getattr(record, "alert", None)
        if alert is not None:
            data["alert"] = alert
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(config: LoggingSettings, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    redact.install(secrets)
    # what ops need to read, not the libraries' chatter (alembic's plugin set-up lines)
    for name in ("apscheduler", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


# --- the main job -----------------------------------------------------------------------


@dataclass
class SiteFiles:
    """Notices a change of the site files (names, sizes, modification times)."""

    folder: Path
    seen: tuple[tuple[str, int, int], ...] = ()

    def snapshot(self) -> tuple[tuple[str, int, int], ...]:
        try:
            files = sorted(self.folder.iterdir())
        except OSError:
            return ()
        out = []
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((path.name, stat.st_size, stat.st_mtime_ns))
        return tuple(out)

    def changed(self) -> bool:
        now = self.snapshot()
        changed, self.seen = now != self.seen, now
        return changed


def run_scheduler(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. The body of `ufarchive schedule`."""
    configure_logging(settings.logging, redact.secret_values(settings))
    sites, errors = check_sites(settings.sites_dir)
    if errors:
        raise errors[0]
    scheduler = CrawlScheduler(settings, sites)
    flags = {"stop": 0, "reload": False}

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        flags["stop"] += 1
        if flags["stop"] > 1:
            log.warning("second %s: killing the crawls", signal.Signals(signum).name)
            scheduler.kill()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        flags["reload"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    config = settings.scheduler
    server = serve_http(scheduler, config.metrics_host, config.metrics_port)
    host, port = server.server_address[:2]
    log.info("metrics on http://%s:%s/metrics, health on /healthz", host, port)
    watcher = SiteFiles(settings.sites_dir)
    watcher.changed()
    scheduler.start()
    log.info("scheduler started: %d sites, at most %d crawls at once", len(sites),
             config.max_concurrent_crawls)  # fmt: skip
    last_check = 0.0
    try:
        while not flags["stop"]:
            time.sleep(POLL_SECONDS)
            if flags["reload"] or watcher.changed():
                flags["reload"] = False
                watcher.changed()
                if scheduler.reload():
                    log.info("config reloaded: %d sites", len(scheduler.sites))
            if time.monotonic() - last_check > HEALTH_CHECK_SECONDS:
                last_check = time.monotonic()
                try:
                    scheduler.check_staleness()
                except Exception:
                    log.exception("health check failed")
        log.info("stopping: no new crawls; running crawls checkpoint and stop")
        scheduler.stop()
    finally:
        server.shutdown()
        server.server_close()
    log.info("scheduler stopped")


# --- status (read by `ufarchive status`, without a running scheduler) -------------------


@dataclass(frozen=True)
class SiteStatus:
    site: str
    schedule: str
    last_run_id: int | None
    last_started: datetime | None
    last_status: str | None
    articles_new: int
    articles_changed: int
    failures_in_a_row: int
    next_run: datetime | None
    alerts: list[AlertView]
    workers: int | None = None  # crawl workers of the last run (distributed mode)
    fixity: FixityView | None = None  # the last `verify` that covered the site
    revisits: dict[str, int] | None = None  # the last run's (archive.alerts.revisit_counts)
    unreachable: bool = False
    extraction_warnings: int = 0  # pages of the last run whose extraction warned

    def describe_revisits(self) -> str:
        r = self.revisits
        if not r or not (r["checked"] or r["failed"]):
            return "-"
        text = (f"{r['checked']} checked: {r['not_modified']} 304, {r['changed']} changed, "
                f"{r['gone']} gone, {r['moved']} moved, {r['restored']} restored")  # fmt: skip
        if r["failed"]:
            text += f"; {r['failed']} failed"
        return text + (" (unreachable)" if self.unreachable else "")

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "site": self.site, "schedule": self.schedule, "last_run": self.last_run_id,
            "last_started": iso(self.last_started), "last_status": self.last_status,
            "articles_new": self.articles_new, "articles_changed": self.articles_changed,
            "failures_in_a_row": self.failures_in_a_row, "next_run": iso(self.next_run),
            "revisits": self.revisits, "unreachable": self.unreachable,
            "alerts": [a.to_dict() for a in self.alerts], "workers": self.workers,
            "extraction_warnings": self.extraction_warnings,
            "fixity": self.fixity.to_dict() if self.fixity else None,
        }  # fmt: skip


def site_statuses(settings: Settings) -> tuple[list[SiteStatus], list[SiteConfigError]]:
    """Every configured site (and any site with runs but no file any more)."""
    from archive.models import Site

    timezone = load_timezone(settings)
    sites, errors = check_sites(settings.sites_dir)
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
        with make_sessionmaker(engine)() as session:
            names = {s.name: s for s in sites}
            stored = session.scalars(select(Site.name).order_by(Site.name)).all()
            out = []
            for name in sorted(set(names) | set(stored)):
                health = site_health(session, name)
                site = names.get(name)
                next_run = None
                if site is not None:
                    last = health.last_started
                    if site.schedule.cron:
                        next_run = next_due(site.schedule, timezone, datetime.now(timezone))
                    else:
                        next_run = max(
                            next_due(site.schedule, timezone, last), datetime.now(timezone)
                        )
                row = SiteStatus(
                    site=name, schedule=site.schedule.describe() if site else "(no site file)",
                    last_run_id=health.last_run_id, last_started=health.last_started,
                    last_status=health.last_status, articles_new=health.articles_new,
                    articles_changed=health.articles_changed,
                    failures_in_a_row=health.failures_in_a_row, next_run=next_run,
                    alerts=health.alerts, revisits=health.revisits,
                    unreachable=health.unreachable, workers=health.last_workers,
                    extraction_warnings=health.extraction_warnings, fixity=site_fixity(session, name),
                )  # fmt: skip
                out.append(row)
            return out, errors
    finally:
        engine.dispose()
