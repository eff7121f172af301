"""Site health: what `ufarchive status` shows, and the alerts raised and cleared on it.

Alert kinds (thresholds in `scheduler:` of settings.yaml):
  failing      the site's last N runs all failed (`alert_failures_in_a_row`)
  no_articles  listing pages answered but no link on them matched `article_url_pattern`
               (the site changed its template or its URLs)
  extraction   extraction failed on more than X % of a run's article pages
               (`alert_extraction_failed_percent`; a template change inside the article)
  stale        no successful run for `alert_stale_intervals` of the site's intervals
  unreachable  most of a run's revisits (or every start URL) got no usable answer: the
               site was down, moved domain or now refuses us in robots.txt; nothing was
               marked gone (archive.revisit)
  mass_gone    more than `revisit.mass_gone_share` of a run's revisits were gone: a purge
               or a changed template; the takedowns are recorded, ops decide
A kind stays raised (one row, `cleared_at` null) until a run shows it is gone. This
module decides and records; sending (log, webhook) is the scheduler's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.models import Alert, CrawlRun, RunStatus, Site, utcnow
from archive.settings import SchedulerSettings

FAILING = "failing"
NO_ARTICLES = "no_articles"
EXTRACTION = "extraction"
STALE = "stale"
UNREACHABLE = "unreachable"
MASS_GONE = "mass_gone"
#: The run's stats key where the crawler leaves its verdict on a mass takedown.
MASS_GONE_STAT = "ufarchive/mass_gone"
REVISIT_STAT = "ufarchive/revisit_verdict"
# Runs that count as failures in a row; an interrupted run (scheduler stopped) does not.
FAILED_STATUSES = (RunStatus.FAILED.value, RunStatus.TIMEOUT.value, RunStatus.KILLED.value)


@dataclass(frozen=True)
class AlertView:
    site: str
    kind: str
    message: str
    raised_at: datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "site": self.site,
            "kind": self.kind,
            "message": self.message,
            "raised_at": self.raised_at.isoformat(),
        }


@dataclass(frozen=True)
class SiteHealth:
    site: str
    last_run_id: int | None
    last_started: datetime | None
    last_finished: datetime | None
    last_status: str | None
    articles_new: int
    articles_changed: int
    failures_in_a_row: int
    last_success: datetime | None
    alerts: list[AlertView]
    # the last run's revisits: checked, not_modified (304), changed, gone, moved, restored,
    # failed; and whether the site was unreachable
    revisits: dict[str, int] | None = None
    unreachable: bool = False


def revisit_counts(run: CrawlRun) -> dict[str, int]:
    return {
        "checked": run.revisits_checked, "not_modified": run.revisits_not_modified,
        "changed": run.articles_changed, "gone": run.articles_gone, "moved": run.articles_moved,
        "restored": run.articles_restored, "failed": run.revisits_failed,
    }  # fmt: skip


def site_health(session: Session, site: str) -> SiteHealth:
    """The last run of a site and its streak of failures (finished runs only count)."""
    site_row = session.scalar(select(Site).where(Site.name == site))
    if site_row is None:
        return SiteHealth(site, None, None, None, None, 0, 0, 0, None, [])
    runs = session.scalars(
        select(CrawlRun)
        .where(CrawlRun.site_id == site_row.id)
        .order_by(CrawlRun.id.desc())
        .limit(50)
    ).all()
    last = runs[0] if runs else None
    streak = 0
    for run in runs:
        if run.finished_at is None or run.status == RunStatus.INTERRUPTED.value:
            continue
        if run.status not in FAILED_STATUSES:
            break
        streak += 1
    last_success = session.scalar(
        select(CrawlRun.finished_at)
        .where(CrawlRun.site_id == site_row.id, CrawlRun.status == RunStatus.SUCCEEDED.value)
        .order_by(CrawlRun.id.desc())
        .limit(1)
    )
    return SiteHealth(
        site=site,
        last_run_id=last.id if last else None,
        last_started=last.started_at if last else None,
        last_finished=last.finished_at if last else None,
        last_status=last.status if last else None,
        articles_new=last.articles_new if last else 0,
        articles_changed=last.articles_changed if last else 0,
        failures_in_a_row=streak,
        last_success=last_success,
        alerts=active_alerts(session, site),
        revisits=revisit_counts(last) if last else None,
        unreachable=bool(last and last.unreachable),
    )


def active_alerts(session: Session, site: str | None = None) -> list[AlertView]:
    query = select(Alert, Site.name).join(Site).where(Alert.cleared_at.is_(None)).order_by(Alert.id)
    if site is not None:
        query = query.where(Site.name == site)
    return [AlertView(name, a.kind, a.message, a.raised_at) for a, name in session.execute(query)]


def set_alert(
    session: Session, site_id: int, kind: str, message: str | None, run_id: int | None = None
) -> Alert | None:
    """Raise (message given) or clear (None) one kind for a site; returns a NEW alert only."""
    current = session.scalar(
        select(Alert).where(
            Alert.site_id == site_id, Alert.kind == kind, Alert.cleared_at.is_(None)
        )
    )
    if message is None:
        if current is not None:
            current.cleared_at = utcnow()
        return None
    if current is not None:
        current.message = message
        return None
    alert = Alert(site_id=site_id, kind=kind, message=message, run_id=run_id)
    session.add(alert)
    session.flush()
    return alert


def judge_run(session: Session, run_id: int, limits: SchedulerSettings) -> list[AlertView]:
    """Raise or clear the run-based alerts of the run's site; returns those newly raised."""
    run = session.get_one(CrawlRun, run_id)
    site = run.site
    raised: list[Alert | None] = []
    if run.status == RunStatus.INTERRUPTED.value:
        return []
    health = site_health(session, site.name)
    n = limits.alert_failures_in_a_row
    raised.append(
        set_alert(
            session, site.id, FAILING,
            f"{health.failures_in_a_row} runs in a row failed; last: {run.status}: {run.message}"
            if health.failures_in_a_row >= n else None,
            run_id,
        )
    )  # fmt: skip
    if run.status == RunStatus.SUCCEEDED.value:
        stats = run.stats or {}
        listing_pages = int(stats.get("ufarchive/listing_pages", 0))
        article_links = int(stats.get("ufarchive/article_links", 0))
        no_articles = None
        if listing_pages and not article_links and not run.articles_new + run.articles_changed:
            no_articles = (
                f"{listing_pages} listing pages answered but no link on them is an article; "
                "has the site changed its template or URLs (article_url_pattern)?"
            )
        raised.append(set_alert(session, site.id, NO_ARTICLES, no_articles, run_id))
        pages = (
            run.articles_new + run.articles_changed + run.articles_unchanged + run.articles_failed
        )
        share = 100.0 * run.articles_failed / pages if pages else 0.0
        extraction = None
        if run.articles_failed and share > limits.alert_extraction_failed_percent:
            extraction = (
                f"extraction failed on {run.articles_failed} of {pages} article pages "
                f"({share:.0f} %); has the article template changed (selectors)?"
            )
        raised.append(set_alert(session, site.id, EXTRACTION, extraction, run_id))
        raised.append(set_alert(session, site.id, STALE, None, run_id))
    if run.finished_at is not None:
        verdict = str((run.stats or {}).get(REVISIT_STAT) or "")
        unreachable = f"the site looked down: {verdict}; nothing was marked gone"
        raised.append(
            set_alert(
                session, site.id, UNREACHABLE, unreachable if run.unreachable else None, run_id
            )
        )
        mass_gone = (run.stats or {}).get(MASS_GONE_STAT)
        raised.append(
            set_alert(session, site.id, MASS_GONE, verdict if mass_gone else None, run_id)
        )
    return [AlertView(site.name, a.kind, a.message, a.raised_at) for a in raised if a]


def judge_staleness(
    session: Session, site: str, interval: timedelta, limits: SchedulerSettings, since: datetime
) -> AlertView | None:
    """Raise `stale` when the site has had no success for N intervals (counted from its
    last success, or from `since`, when the scheduler started, if it never succeeded)."""
    site_row = session.scalar(select(Site).where(Site.name == site))
    if site_row is None:
        return None
    health = site_health(session, site)
    reference = health.last_success or since
    overdue = utcnow() - reference
    n = limits.alert_stale_intervals
    message = None
    if overdue > n * interval:
        when = health.last_success.isoformat(timespec="seconds") if health.last_success else "never"
        message = f"no successful run for {n} intervals (last success: {when})"
    alert = set_alert(session, site_row.id, STALE, message)
    return AlertView(site, alert.kind, alert.message, alert.raised_at) if alert else None
