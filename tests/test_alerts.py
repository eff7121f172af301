"""Alerts and site health on the database (archive.alerts), catch-up arithmetic, the
wall-clock limit of one scheduled crawl, and `ufarchive status` as text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from archive.alerts import active_alerts, judge_run, judge_staleness, site_health
from archive.models import CrawlRun, RunStatus
from archive.settings import SchedulerSettings, load_settings
from archive.store import ensure_site, finish_run, start_run
from crawler.cli import app
from crawler.scheduling import CrawlScheduler, interval_of, next_due
from crawler.sites import Schedule, load_sites
from tests.conftest import write_site
from tests.siteserver import SiteServer
from tests.test_scheduling import slow_site, slow_world

LIMITS = SchedulerSettings()


def add_run(sessions: sessionmaker[Session], status: RunStatus, **counters: object) -> int:
    with sessions() as session, session.begin():
        run = start_run(session, ensure_site(session, "demo", "示例"), "schedule")
        for name, value in counters.items():
            setattr(run, name, value)
        finish_run(session, run.id, status, None if status == RunStatus.SUCCEEDED else "broke")
        return run.id


def judge(sessions: sessionmaker[Session], run_id: int) -> list[str]:
    with sessions() as session, session.begin():
        return [a.kind for a in judge_run(session, run_id, LIMITS)]


def kinds(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return {a.kind for a in active_alerts(session)}


def test_failures_in_a_row_raise_once_and_a_success_clears(
    session_factory: sessionmaker[Session],
) -> None:
    ok = add_run(session_factory, RunStatus.SUCCEEDED, articles_new=3)
    assert judge(session_factory, ok) == []
    raised = []
    for status in (RunStatus.FAILED, RunStatus.INTERRUPTED, RunStatus.TIMEOUT, RunStatus.KILLED):
        raised += judge(session_factory, add_run(session_factory, status))
    assert raised == ["failing"], "raised on the third failure, interrupted runs not counted"
    with session_factory() as session:
        health = site_health(session, "demo")
    assert health.failures_in_a_row == 3 and health.last_status == "killed"
    judge(session_factory, add_run(session_factory, RunStatus.SUCCEEDED, articles_new=1))
    assert kinds(session_factory) == set()


def test_template_changes_raise_no_articles_and_extraction(
    session_factory: sessionmaker[Session],
) -> None:
    no_links = {"ufarchive/listing_pages": 2, "ufarchive/article_links": 0}
    run = add_run(session_factory, RunStatus.SUCCEEDED, stats=no_links)
    assert judge(session_factory, run) == ["no_articles"]
    run = add_run(
        session_factory, RunStatus.SUCCEEDED, articles_new=1, articles_failed=9,
        stats={"ufarchive/listing_pages": 1, "ufarchive/article_links": 10},
    )  # fmt: skip
    assert judge(session_factory, run) == ["extraction"]
    assert kinds(session_factory) == {"extraction"}, "the listing has articles again"
    run = add_run(session_factory, RunStatus.SUCCEEDED, articles_unchanged=9, articles_failed=1)
    judge(session_factory, run)
    assert kinds(session_factory) == set(), "10 % is under the 50 % threshold"


def test_no_success_for_three_intervals_is_stale(session_factory: sessionmaker[Session]) -> None:
    add_run(session_factory, RunStatus.FAILED)
    started = datetime.now(UTC) - timedelta(minutes=10)
    with session_factory() as session, session.begin():
        alert = judge_staleness(session, "demo", timedelta(minutes=5), LIMITS, started)
        assert alert is None, "10 minutes is two intervals"
        alert = judge_staleness(session, "demo", timedelta(minutes=3), LIMITS, started)
        assert alert is not None and alert.kind == "stale" and "never" in alert.message
    run = add_run(session_factory, RunStatus.SUCCEEDED, articles_new=1)
    judge(session_factory, run)
    assert kinds(session_factory) == set()


def test_catch_up_arithmetic() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    now = datetime.now(tz)
    hourly = Schedule(cron="0 * * * *")
    assert interval_of(hourly, tz) == timedelta(hours=1)
    assert next_due(hourly, tz, now - timedelta(hours=2)) <= now, "a missed cron time"
    assert next_due(hourly, tz, now) > now
    every = Schedule(interval_minutes=30)
    assert next_due(every, tz, now - timedelta(minutes=31)) <= now
    assert next_due(every, tz, now - timedelta(minutes=5)) > now
    assert next_due(every, tz, None) <= datetime.now(tz), "never ran: due at once"


@pytest.mark.slow
def test_a_crawl_past_its_wall_clock_limit_ends_as_timeout(
    tmp_path: Path, sqlite_url: str, site_server: Callable[..., SiteServer]
) -> None:
    server = site_server()
    slow_site(server, count=30, delay=0.3)
    world = slow_world(tmp_path, sqlite_url, server)
    settings = load_settings(world.env())
    # the setting counts minutes; 0.05 of one is 3 s
    limits = settings.scheduler.model_copy(update={"crawl_timeout_minutes": 0.05})
    settings = type(settings)(**{**vars(settings), "scheduler": limits})
    scheduler = CrawlScheduler(settings, load_sites(settings.sites_dir))
    try:
        run = scheduler.crawl(scheduler.sites["slow"], "manual")
    finally:
        scheduler.processes.close()  # the crawl process it started for the next run
        scheduler.engine.dispose()
    assert run is not None and run.status == RunStatus.TIMEOUT.value
    assert run.finished_at is not None and "wall-clock limit" in (run.message or "")
    assert 0 < run.articles_new < 30
    assert not scheduler.jobdir("slow").exists(), "a timed-out crawl starts afresh next time"
    with world.session() as session:
        assert session.get_one(CrawlRun, run.run_id).status == "timeout"


def test_status_as_text(env: dict[str, str], config_dir: Path) -> None:
    write_site(config_dir, "demo")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    assert "demo" in result.stdout and "never run" in result.stdout
    assert "cron 0 */2 * * *" in result.stdout
