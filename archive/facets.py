"""Facet and timeline counts of a search's matches (the web UI's search page), the newest
articles, and the copies of a page of hits; never imports web or crawler.

Counts are over every article the query matches, copies included (what
`archive.search.count_matches` counts), read as a few GROUP BYs over
`archive.search.matching_ids`: one over the article rows (site, month, status, edited),
one each for 来源 and 责任编辑 (their text is in the current version). The web UI asks
for them in a request of their own, so a common word's many matches never slow the
result page down. Months are Beijing time, as `archive.stats.bucket` names them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from archive.export import local_iso
from archive.models import Article, ArticleVersion, Site
from archive.stats import bucket, periods_between

FACET_LIMIT = 10  # values listed a facet (the largest counts)
NEWEST = 10  # articles listed under an empty search box


@dataclass
class Facets:
    """Counts of a query's matches. Lists are (value, count), the largest `limit` of each,
    largest first (months: in time order); `timeline` has every month from the first to
    the last, gaps as 0."""

    total: int = 0
    sites: list[tuple[str, int]] = field(default_factory=list)
    months: list[tuple[str, int]] = field(default_factory=list)
    sources: list[tuple[str, int]] = field(default_factory=list)
    editors: list[tuple[str, int]] = field(default_factory=list)
    statuses: list[tuple[str, int]] = field(default_factory=list)
    edited: int = 0  # more than one version
    unedited: int = 0
    undated: int = 0  # no publish time: on no month
    timeline: list[tuple[str, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def pairs(items: list[tuple[str, int]]) -> list[dict[str, Any]]:
            return [{"value": v, "count": n} for v, n in items]

        return {
            "total": self.total,
            "site": pairs(self.sites),
            "month": pairs(self.months),
            "source": pairs(self.sources),
            "editor": pairs(self.editors),
            "status": pairs(self.statuses),
            "edited": {"yes": self.edited, "no": self.unedited},
            "undated": self.undated,
            "timeline": pairs(self.timeline),
        }


def _restricted(query: Select[Any], session: Session, text: str | None) -> Select[Any]:
    if text and text.strip():
        from archive.search import matching_ids

        return query.where(Article.id.in_(matching_ids(session, text)))
    return query


def facet_counts(session: Session, query: str | None, limit: int = FACET_LIMIT) -> Facets:
    """Facets of what `query` matches (every article when it is empty); a malformed
    query raises archive.search.QueryError."""
    month = bucket(session, "month").label("month")
    edited = (Article.version > 1).label("edited")
    base = (
        select(Site.name, month, Article.status, edited, func.count().label("n"))
        .select_from(Article)
        .join(Site, Site.id == Article.site_id)
        .group_by(Site.name, month, Article.status, edited)
    )
    sites: Counter[str] = Counter()
    months: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    facets = Facets()
    for site, when, status, was_edited, n in session.execute(_restricted(base, session, query)):
        count = int(n)
        facets.total += count
        sites[site] += count
        statuses[status] += count
        if was_edited:
            facets.edited += count
        else:
            facets.unedited += count
        if when is None:
            facets.undated += count
        else:
            months[str(when)] += count
    facets.sites = _top(sites, limit)
    facets.statuses = _top(statuses, limit)
    facets.months = sorted(_top(months, limit))  # the busiest months, in time order
    if months:
        every = periods_between(min(months), max(months), "month")
        facets.timeline = [(m, months.get(m, 0)) for m in every]
    facets.sources = _top_text(session, query, ArticleVersion.source, limit)
    facets.editors = _top_text(session, query, ArticleVersion.editor, limit)
    return facets


def _top(counts: Counter[str], limit: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _top_text(
    session: Session, query: str | None, column: Any, limit: int
) -> list[tuple[str, int]]:
    """The most frequent values of a version column among the matches (no empty ones)."""
    n = func.count().label("n")
    counted = (
        select(column, n)
        .select_from(Article)
        .join(
            ArticleVersion,
            and_(
                ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version
            ),
        )
        .where(column.is_not(None), column != "")
        .group_by(column)
        .order_by(n.desc(), column)
        .limit(limit)
    )
    return [(str(v), int(c)) for v, c in session.execute(_restricted(counted, session, query))]


def newest_articles(session: Session, limit: int = NEWEST) -> list[dict[str, Any]]:
    """The latest published articles (for the search page before a query): id, site,
    title, publish_time, status; read newest first down the publish-time index."""
    rows = session.execute(
        select(
            Article.id, Site.name, ArticleVersion.title, ArticleVersion.publish_time,
            ArticleVersion.publish_time_offset, Article.status,
        )
        .join(Site, Site.id == Article.site_id)
        .join(
            ArticleVersion,
            and_(ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version),
        )
        .where(Article.publish_time.is_not(None))
        .order_by(Article.publish_time.desc(), Article.id.desc())
        .limit(limit)
    )  # fmt: skip
    return [
        {"id": r.id, "site": r.name, "title": r.title, "status": r.status,
         "publish_time": local_iso(r.publish_time, r.publish_time_offset)}
        for r in rows
    ]  # fmt: skip


def cluster_members(session: Session, cluster_ids: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Every member of these clusters (id, site, url, title, publish_time, is_original),
    oldest first, in one query: the copies behind a page of collapsed hits."""
    if not cluster_ids:
        return {}
    rows = session.execute(
        select(
            Article.cluster_id, Article.id, Site.name, Article.url, ArticleVersion.title,
            ArticleVersion.publish_time, ArticleVersion.publish_time_offset,
            Article.is_original, Article.status,
        )
        .join(Site, Site.id == Article.site_id)
        .join(
            ArticleVersion,
            and_(ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version),
        )
        .where(Article.cluster_id.in_(sorted(cluster_ids)))
        .order_by(Article.publish_time, Article.id)
    )  # fmt: skip
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.cluster_id, []).append(
            {"id": r.id, "site": r.name, "url": r.url, "title": r.title,
             "publish_time": local_iso(r.publish_time, r.publish_time_offset),
             "is_original": bool(r.is_original), "status": r.status}
        )  # fmt: skip
    return out


def frozen_names(session: Session) -> list[str]:
    """The names of the frozen collections (the ones a search hit can be added to)."""
    from archive.models import Collection, CollectionKind

    return list(
        session.scalars(
            select(Collection.name)
            .where(Collection.kind == CollectionKind.FROZEN.value)
            .order_by(Collection.name)
        )
    )
