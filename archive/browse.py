"""What the web UI's browse, sites and changes pages read: articles counted per day (in
Beijing time, as archive.stats counts them), one day's articles, each site's counts, runs
and alerts, and the revisits' findings (article events). Queries only; never imports web
or crawler.

A day is a Beijing day (+08:00, the pages' own clock): an article published at 07:00
+08:00 on the 3rd counts on the 3rd though it is the 2nd in UTC. Counting is one GROUP BY
over a publish-time range (the (site_id, publish_time) index), bucketed by
archive.stats.bucket, so the calendar and `ufarchive stats --by day` agree.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from archive.alerts import active_alerts, site_health
from archive.errors import UfarchiveError
from archive.export import iso, local_iso
from archive.fixity import site_fixity
from archive.models import Article, ArticleEvent, ArticleVersion, CrawlRun, EventKind, Site
from archive.stats import bucket

BEIJING = timezone(timedelta(hours=8))
#: `?kind=` of the changes: the event kinds, and `edited` for `changed` (the UI's word).
KINDS = tuple(k.value for k in EventKind)
KIND_ALIASES = {"edited": EventKind.CHANGED.value}


class BrowseError(UfarchiveError):
    """A malformed month, day or kind in a browse URL (HTTP 400)."""


class SiteNotFoundError(UfarchiveError):
    def __init__(self, name: str) -> None:
        super().__init__(f"site {name}: no such site in the archive")


# --- months and days ------------------------------------------------------------------


def parse_month(text: str) -> date:
    """`YYYY-MM` -> the first day of that month."""
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise BrowseError(f"month {text!r}: use YYYY-MM, e.g. 2024-03") from None


def parse_day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise BrowseError(f"day {text!r}: use YYYY-MM-DD, e.g. 2024-03-01") from None


def shift_month(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def beijing_start(day: date) -> datetime:
    """Midnight of a Beijing day, as an aware datetime."""
    return datetime.combine(day, time(), tzinfo=BEIJING)


def month_grid(month: date) -> list[list[date | None]]:
    """The month's weeks, Monday first; days outside the month are None."""
    weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(month.year, month.month)
    return [[d if d.month == month.month else None for d in week] for week in weeks]


def site_row(session: Session, name: str) -> Site:
    site = session.scalar(select(Site).where(Site.name == name))
    if site is None:
        raise SiteNotFoundError(name)
    return site


def all_sites(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.name)))


def _in_site(query: Select[Any], site: Site | None) -> Select[Any]:
    return query if site is None else query.where(Article.site_id == site.id)


def day_counts(session: Session, site: Site | None, month: date) -> dict[date, int]:
    """Articles published on each Beijing day of the month (days without any are absent)."""
    key = bucket(session, "day")
    start, end = beijing_start(month), beijing_start(shift_month(month, 1))
    query = (
        select(key.label("day"), func.count().label("n"))
        .where(Article.publish_time >= start, Article.publish_time < end)
        .group_by(key)
    )
    rows = session.execute(_in_site(query, site)).all()
    return {date.fromisoformat(str(day)): int(n) for day, n in rows if day is not None}


def month_counts(session: Session, site: Site | None) -> list[tuple[str, int]]:
    """Articles per Beijing month (`YYYY-MM`), newest first."""
    key = bucket(session, "month")
    query = (
        select(key.label("month"), func.count().label("n"))
        .where(Article.publish_time.is_not(None))
        .group_by(key)
    )
    rows = session.execute(_in_site(query, site)).all()
    return sorted(((str(m), int(n)) for m, n in rows if m is not None), reverse=True)


def undated_count(session: Session, site: Site | None) -> int:
    query = select(func.count()).select_from(Article).where(Article.publish_time.is_(None))
    return int(session.scalar(_in_site(query, site)) or 0)


def latest_month(session: Session, site: Site | None) -> date | None:
    """The Beijing month of the newest publish time (where a calendar opens)."""
    newest = session.scalar(_in_site(select(func.max(Article.publish_time)), site))
    if newest is None:
        return None
    if newest.tzinfo is None:  # SQLite's max() bypasses the column type: stored as UTC
        newest = newest.replace(tzinfo=UTC)
    local = newest.astimezone(BEIJING)
    return date(local.year, local.month, 1)


# --- article lists --------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleRow:
    id: int
    site: str
    title: str | None
    url: str
    publish_time: str | None  # ISO 8601 in the page's own offset
    first_seen: str
    status: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _article_rows(session: Session, query: Select[Any]) -> list[ArticleRow]:
    return [
        ArticleRow(
            id=a.id,
            site=name,
            title=v.title,
            url=a.url,
            publish_time=local_iso(v.publish_time, v.publish_time_offset),
            first_seen=a.first_seen.isoformat(),
            status=a.status,
            version=a.version,
        )
        for a, v, name in session.execute(query)
    ]


def _articles() -> Select[Any]:
    """Articles with their current version and site name."""
    columns: list[Any] = [Article, ArticleVersion, Site.name]
    query: Select[Any] = (
        select(*columns)
        .join(Site, Site.id == Article.site_id)
        .join(
            ArticleVersion,
            and_(
                ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version
            ),
        )
    )
    return query


def day_articles(session: Session, site: Site | None, day: date) -> list[ArticleRow]:
    """The articles published on a Beijing day, in publish order."""
    start = beijing_start(day)
    query = (
        _articles()
        .where(Article.publish_time >= start, Article.publish_time < start + timedelta(days=1))
        .order_by(Article.publish_time, Article.id)
    )
    return _article_rows(session, _in_site(query, site))


def recent_articles(session: Session, site: Site, limit: int = 20) -> list[ArticleRow]:
    """The site's articles most recently stored first."""
    query = (
        _articles()
        .where(Article.site_id == site.id)
        .order_by(Article.first_seen.desc(), Article.id.desc())
        .limit(limit)
    )
    return _article_rows(session, query)


# --- sites and runs -------------------------------------------------------------------


def run_dict(run: CrawlRun, site: str) -> dict[str, Any]:
    """A crawl run with its counters: the fields of the CLI's `runs` (crawler.runner.RunView)
    plus trigger and host."""
    return {
        "run_id": run.id, "site": site, "status": run.status, "trigger": run.trigger,
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "message": run.message, "host": run.host, "workers": run.workers,
        "requests": run.requests, "responses_by_status": dict(run.responses_by_status or {}),
        "bytes_received": run.bytes_received, "articles_new": run.articles_new,
        "articles_changed": run.articles_changed, "articles_unchanged": run.articles_unchanged,
        "articles_gone": run.articles_gone, "articles_failed": run.articles_failed,
        "error_count": run.error_count, "revisits_checked": run.revisits_checked,
        "revisits_not_modified": run.revisits_not_modified,
        "revisits_failed": run.revisits_failed, "articles_restored": run.articles_restored,
        "articles_moved": run.articles_moved, "unreachable": run.unreachable,
    }  # fmt: skip


def runs(session: Session, site: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Crawl runs, newest first (of one site, or all)."""
    query = select(CrawlRun, Site.name).join(Site, Site.id == CrawlRun.site_id)
    if site is not None:
        query = query.where(CrawlRun.site_id == site_row(session, site).id)
    rows = session.execute(query.order_by(CrawlRun.id.desc()).limit(limit))
    return [run_dict(run, name) for run, name in rows]


def article_counts(session: Session) -> dict[int, dict[str, int]]:
    """Per site id: articles by status (live, gone, moved) and in all (`total`)."""
    out: dict[int, dict[str, int]] = {}
    query = select(Article.site_id, Article.status, func.count()).group_by(
        Article.site_id, Article.status
    )
    for site_id, status, n in session.execute(query):
        counts = out.setdefault(site_id, {"total": 0})
        counts[status] = int(n)
        counts["total"] += int(n)
    return out


def site_summary(
    session: Session, site: Site, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """A site as ops see it: article counts, its last run and its outcome, failures in a
    row, the last run's revisits, open alerts, the last fixity check. The keys that
    `ufarchive status --format json` also has mean the same there (it adds the schedule,
    which lives in the site files, not in the archive)."""
    if counts is None:
        counts = article_counts(session).get(site.id, {})
    counts = counts or {}
    health = site_health(session, site.name)
    fixity = site_fixity(session, site.name)
    return {
        "site": site.name, "title": site.title,
        "articles": counts.get("total", 0), "articles_live": counts.get("live", 0),
        "articles_gone": counts.get("gone", 0), "articles_moved": counts.get("moved", 0),
        "last_run": health.last_run_id, "last_started": iso(health.last_started),
        "last_finished": iso(health.last_finished), "last_status": health.last_status,
        "last_success": iso(health.last_success),
        "articles_new": health.articles_new, "articles_changed": health.articles_changed,
        "failures_in_a_row": health.failures_in_a_row, "revisits": health.revisits,
        "unreachable": health.unreachable, "workers": health.last_workers,
        "extraction_warnings": health.extraction_warnings,
        "alerts": [a.to_dict() for a in health.alerts],
        "fixity": fixity.to_dict() if fixity else None,
    }  # fmt: skip


def site_summaries(session: Session) -> list[dict[str, Any]]:
    """Every site in the archive (sites come from the database, not the site files)."""
    counts = article_counts(session)
    sites = session.scalars(select(Site).order_by(Site.name)).all()
    return [site_summary(session, s, counts.get(s.id, {})) for s in sites]


def open_alerts(session: Session, site: str | None = None) -> list[dict[str, str]]:
    return [a.to_dict() for a in active_alerts(session, site)]


# --- changes --------------------------------------------------------------------------


def parse_kind(text: str | None) -> str | None:
    """`?kind=` (empty: every kind)."""
    if not text:
        return None
    kind = KIND_ALIASES.get(text, text)
    if kind not in KINDS:
        raise BrowseError(f"kind {text!r}: use one of {', '.join(KINDS)} (or edited)")
    return kind


@dataclass(frozen=True)
class Change:
    """One finding of a revisit, with the article's current title and where to look."""

    id: int
    at: datetime
    kind: str
    article_id: int
    site: str
    title: str | None
    url: str
    version: int | None
    detail: dict[str, Any]
    run_id: int | None

    @property
    def link(self) -> str:
        """The diff of an edit (the version before and the new one), else the article."""
        if self.kind == EventKind.CHANGED.value and self.version and self.version > 1:
            return f"/articles/{self.article_id}/diff?a={self.version - 1}&b={self.version}"
        return f"/articles/{self.article_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": self.at.isoformat(), "kind": self.kind,
            "article_id": self.article_id, "site": self.site, "title": self.title,
            "url": self.url, "version": self.version, "detail": self.detail,
            "run_id": self.run_id, "link": self.link,
        }  # fmt: skip


def changes(
    session: Session,
    site: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[Change]]:
    """(how many in all, a page of them) of the article events, newest first."""
    where = []
    if site:
        where.append(Article.site_id == site_row(session, site).id)
    kind = parse_kind(kind)
    if kind:
        where.append(ArticleEvent.kind == kind)
    total = session.scalar(
        select(func.count())
        .select_from(ArticleEvent)
        .join(Article, Article.id == ArticleEvent.article_id)
        .where(*where)
    )
    query = (
        select(ArticleEvent, Article.url, ArticleVersion.title, Site.name)
        .join(Article, Article.id == ArticleEvent.article_id)
        .join(Site, Site.id == Article.site_id)
        .join(
            ArticleVersion,
            and_(
                ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version
            ),
        )
        .where(*where)
        .order_by(ArticleEvent.at.desc(), ArticleEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = [
        Change(
            id=e.id,
            at=e.at,
            kind=e.kind,
            article_id=e.article_id,
            site=name,
            title=title,
            url=url,
            version=e.version,
            detail=dict(e.detail or {}),
            run_id=e.run_id,
        )
        for e, url, title, name in session.execute(query)
    ]
    return int(total or 0), rows
