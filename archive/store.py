"""The one write path into the archive: sites, runs, fetched articles, versions, snapshots.

The caller opens the transaction (`with Session() as s, s.begin():`); every function here
does its part inside it, so an article, its snapshot and its version land together or
not at all. Nothing is ever deleted: an edit becomes a new version, a page that went
away is marked `gone`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive.models import (
    Article,
    ArticleStatus,
    ArticleVersion,
    CrawlError,
    CrawlRun,
    RunStatus,
    Site,
    Snapshot,
    utcnow,
)
from archive.urls import canonical_url
from archive.warc import WarcLocation

#: The fields whose change makes a new version, in DESIGN.md's order.
VERSIONED_FIELDS = ("title", "publish_time", "source", "editor", "author", "contributor", "body")

Outcome = Literal["new", "changed", "unchanged"]
# The tables behind the models, for Core statements on the hot path.
ARTICLES = cast(Table, Article.__table__)
SNAPSHOTS = cast(Table, Snapshot.__table__)
VERSIONS = cast(Table, ArticleVersion.__table__)


@dataclass(frozen=True)
class Known:
    """What the crawler needs to know about a stored article to refetch it politely."""

    article_id: int
    url: str
    status: str
    fetched_at: datetime | None
    etag: str | None
    last_modified: str | None


@dataclass
class Fetch:
    """One HTTP exchange as archived: the response and where its WARC record lies."""

    url: str
    status: int
    headers: dict[str, str]
    fetched_at: datetime
    warc: WarcLocation
    payload_length: int
    run_id: int | None = None
    canonical_url: str | None = None  # given by the crawler (with the site's URL aliases)
    encoding: str | None = None  # the codec the page was decoded with, and why
    encoding_reason: str | None = None
    extract_warnings: list[str] | None = None  # what looked wrong in the extracted fields

    @property
    def content_type(self) -> str | None:
        return header(self.headers, "content-type")


@dataclass
class ArticleFields:
    """What extraction found; `publish_time` is ISO 8601 with an offset, or None."""

    title: str | None = None
    publish_time: str | None = None
    source: str | None = None
    editor: str | None = None
    author: str | None = None
    contributor: str | None = None
    body: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    extractor_version: str | None = None
    # {field: {"rule", "raw"}}: kept with the version, not part of its identity
    provenance: dict[str, Any] | None = None

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        extractor_version: str | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> ArticleFields:
        return cls(
            **{k: data.get(k) for k in VERSIONED_FIELDS if k != "body"},
            body=data.get("body") or "",
            images=list(data.get("images") or []),
            extractor_version=extractor_version,
            provenance=provenance or None,
        )

    def content_hash(self) -> str:
        """The version identity: a hash of every versioned field."""
        values = [getattr(self, name) for name in VERSIONED_FIELDS]
        return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()

    def body_hash(self) -> str:
        """The exact-duplicate key (dedup's comparison text: either script, no punctuation)."""
        from archive.dedup import content_key

        return content_key(self.body)

    def parsed_publish_time(self) -> tuple[datetime | None, int | None]:
        """(aware datetime, offset in minutes) of `publish_time`; (None, None) if unusable."""
        if not self.publish_time:
            return None, None
        try:
            when = datetime.fromisoformat(self.publish_time)
        except ValueError:
            return None, None
        offset = when.utcoffset()
        if offset is None:
            return None, None
        return when, int(offset.total_seconds() // 60)


def header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


# --- sites and runs ---------------------------------------------------------------------


def ensure_site(session: Session, name: str, title: str) -> Site:
    """The site's row, created on first use (two processes may race to create it)."""
    site = session.scalars(select(Site).where(Site.name == name)).one_or_none()
    if site is None:
        try:
            with session.begin_nested():
                site = Site(name=name, title=title)
                session.add(site)
        except IntegrityError:
            site = session.scalars(select(Site).where(Site.name == name)).one()
    if site.title != title:
        site.title = title
    return site


def start_run(
    session: Session, site: Site, trigger: str = "manual", pid: int | None = None
) -> CrawlRun:
    import socket

    run = CrawlRun(site_id=site.id, trigger=trigger, pid=pid, host=socket.gethostname())
    session.add(run)
    session.flush()
    return run


@dataclass
class RunCounters:
    requests: int = 0
    bytes_received: int = 0
    responses_by_status: dict[str, int] = field(default_factory=dict)
    articles_new: int = 0
    articles_changed: int = 0
    articles_unchanged: int = 0
    articles_gone: int = 0
    articles_failed: int = 0


def update_run(
    session: Session,
    run_id: int,
    counters: RunCounters,
    errors: Sequence[tuple[str | None, str, str]] = (),
    stats: dict[str, Any] | None = None,
) -> None:
    """Write the counters so far and append new errors (url, kind, message)."""
    run = session.get_one(CrawlRun, run_id)
    for name, value in vars(counters).items():
        setattr(run, name, dict(value) if isinstance(value, dict) else value)
    for url, kind, message in errors:
        session.add(CrawlError(run_id=run_id, url=url, kind=kind, message=message[:4000]))
    run.error_count = (run.error_count or 0) + len(errors)
    if stats is not None:
        run.stats = stats


def finish_run(
    session: Session, run_id: int, status: RunStatus, message: str | None = None
) -> None:
    """Close a run once; a run already finished keeps its first outcome."""
    run = session.get_one(CrawlRun, run_id)
    if run.finished_at is not None:
        return
    run.status = status.value
    run.finished_at = utcnow()
    run.message = message


# --- articles ---------------------------------------------------------------------------


def known_articles(session: Session, site_id: int) -> dict[str, Known]:
    """Every stored article of a site by canonical URL, with its last successful fetch."""
    latest = (
        select(Snapshot.article_id, func.max(Snapshot.id).label("snapshot_id"))
        .where(Snapshot.status_code == 200, Snapshot.article_id.is_not(None))
        .group_by(Snapshot.article_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Article.id,
            Article.canonical_url,
            Article.url,
            Article.status,
            Snapshot.fetched_at,
            Snapshot.etag,
            Snapshot.last_modified,
        )
        .outerjoin(latest, latest.c.article_id == Article.id)
        .outerjoin(Snapshot, Snapshot.id == latest.c.snapshot_id)
        .where(Article.site_id == site_id)
    )
    return {
        row.canonical_url: Known(
            row.id, row.url, row.status, row.fetched_at, row.etag, row.last_modified
        )
        for row in rows
    }


def snapshot_values(fetch: Fetch, article_id: int | None) -> dict[str, Any]:
    return {
        "article_id": article_id,
        "run_id": fetch.run_id,
        "url": fetch.url,
        "fetched_at": fetch.fetched_at,
        "status_code": fetch.status,
        "headers": dict(fetch.headers),
        "content_type": fetch.content_type,
        "etag": header(fetch.headers, "etag"),
        "last_modified": header(fetch.headers, "last-modified"),
        "payload_length": fetch.payload_length,
        "warc_file": fetch.warc.file,
        "warc_offset": fetch.warc.offset,
        "warc_length": fetch.warc.length,
        "warc_record_id": fetch.warc.record_id,
        "payload_digest": fetch.warc.payload_digest,
        "encoding": fetch.encoding,
        "encoding_reason": fetch.encoding_reason,
        "extract_warnings": fetch.extract_warnings or None,
    }


def version_values(
    article_id: int,
    number: int,
    fields: ArticleFields,
    content_hash: str,
    publish_time: datetime | None,
    offset: int | None,
    snapshot_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "article_id": article_id, "version": number, "first_seen": now, "last_seen": now,
        "title": fields.title, "publish_time": publish_time, "publish_time_offset": offset,
        "source": fields.source, "editor": fields.editor, "author": fields.author,
        "contributor": fields.contributor, "body": fields.body, "images": fields.images,
        "content_hash": content_hash, "snapshot_id": snapshot_id,
        "extractor_version": fields.extractor_version, "provenance": fields.provenance,
    }  # fmt: skip


def add_snapshot(session: Session, fetch: Fetch, article_id: int | None) -> Snapshot:
    snapshot = Snapshot(**snapshot_values(fetch, article_id))
    session.add(snapshot)
    session.flush()
    return snapshot


def save_article(
    session: Session, site_id: int, fetch: Fetch, fields: ArticleFields, expect_new: bool = False
) -> tuple[int, Outcome]:
    """Store a fetched article page: new article, new version, or the same version seen again.

    Returns (article id, outcome). A new article -- most of what a crawl stores -- is
    written with three Core INSERTs; the ORM's unit of work cost three times as much per
    article in bench/crawl.py, and the crawl's storage step is on its critical path.
    With `expect_new` (the crawler did not know the URL) the lookup is skipped: if another
    process stored the URL meanwhile, the unique canonical URL raises IntegrityError and
    the caller retries without it.
    """
    canonical = fetch.canonical_url or canonical_url(fetch.url)
    article = None
    if not expect_new:
        article = session.scalars(
            select(Article).where(Article.canonical_url == canonical)
        ).one_or_none()
    now = fetch.fetched_at
    if article is None:
        publish_time, offset = fields.parsed_publish_time()
        content_hash = fields.content_hash()
        article_id = session.execute(
            insert(ARTICLES).returning(ARTICLES.c.id),
            {
                "site_id": site_id, "url": fetch.url, "canonical_url": canonical, "first_seen": now,
                "last_seen": now, "version": 1, "publish_time": publish_time,
                "content_hash": fields.body_hash(),
            },
        ).scalar_one()  # fmt: skip
        snapshot_id = session.execute(
            insert(SNAPSHOTS).returning(SNAPSHOTS.c.id),
            snapshot_values(fetch, article_id),
        ).scalar_one()
        session.execute(
            insert(VERSIONS),
            version_values(
                article_id, 1, fields, content_hash, publish_time, offset, snapshot_id, now
            ),
        )
        return article_id, "new"
    snapshot = add_snapshot(session, fetch, article.id)
    article.last_seen = now
    if article.status == ArticleStatus.GONE:
        article.status = ArticleStatus.CHANGED if article.version > 1 else ArticleStatus.LIVE
        article.gone_at = None
    return article.id, add_version_if_changed(session, article, fields, snapshot.id, now)


def add_version_if_changed(
    session: Session, article: Article, fields: ArticleFields, snapshot_id: int | None, at: datetime
) -> Literal["changed", "unchanged"]:
    """A new version when any versioned field differs from the current one; else touch it."""
    current = session.scalars(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article.id, ArticleVersion.version == article.version
        )
    ).one()
    content_hash = fields.content_hash()
    if current.content_hash == content_hash:
        current.last_seen = max(current.last_seen, at)
        if fields.provenance and current.provenance != fields.provenance:
            # the same fields, read by a newer extractor that says why (reparse)
            current.provenance = fields.provenance
            current.extractor_version = fields.extractor_version
        return "unchanged"
    publish_time, offset = fields.parsed_publish_time()
    article.version += 1
    article.status = ArticleStatus.CHANGED
    article.publish_time = publish_time
    article.content_hash = fields.body_hash()
    session.flush()
    session.execute(
        insert(VERSIONS),
        version_values(
            article.id, article.version, fields, content_hash, publish_time, offset, snapshot_id, at
        ),
    )
    return "changed"


def adopt_unparsed(
    session: Session, snapshot: Snapshot, site_id: int, fields: ArticleFields, canonical: str
) -> int | None:
    """A page kept without an article (extraction had failed) becomes its article now.

    None when the URL has an article by now (a later fetch succeeded): the page is then
    only attached to it, and that article's own versions stand.
    """
    existing = session.scalar(select(Article.id).where(Article.canonical_url == canonical))
    if existing is not None:
        snapshot.article_id = existing
        return None
    publish_time, offset = fields.parsed_publish_time()
    at = snapshot.fetched_at
    article = Article(
        site_id=site_id, url=snapshot.url, canonical_url=canonical, first_seen=at, last_seen=at,
        version=1, publish_time=publish_time, content_hash=fields.body_hash(),
    )  # fmt: skip
    session.add(article)
    session.flush()
    snapshot.article_id = article.id
    session.execute(
        insert(VERSIONS),
        version_values(
            article.id, 1, fields, fields.content_hash(), publish_time, offset, snapshot.id, at
        ),
    )
    return article.id


def mark_seen(session: Session, article_id: int, at: datetime) -> None:
    """A conditional request answered 304: the article is as stored; nothing new is kept."""
    article = session.get_one(Article, article_id)
    article.last_seen = at
    current = session.scalars(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article_id, ArticleVersion.version == article.version
        )
    ).one()
    current.last_seen = at


def mark_gone(session: Session, article_id: int, fetch: Fetch | None) -> bool:
    """A known article answers 404/410: mark it gone (once), keep everything. True if it changed."""
    article = session.get_one(Article, article_id)
    if fetch is not None:
        add_snapshot(session, fetch, article_id)
    if article.status == ArticleStatus.GONE:
        return False
    article.status = ArticleStatus.GONE
    article.gone_at = fetch.fetched_at if fetch else utcnow()
    return True


def save_unparsed(session: Session, fetch: Fetch, article_id: int | None) -> Snapshot:
    """A page whose extraction failed: keep the raw snapshot so that `reparse` can retry."""
    return add_snapshot(session, fetch, article_id)


def update_derived(session: Session, article_ids: Sequence[int]) -> None:
    """Bring what is derived from these articles' current text up to date, in the caller's
    transaction: their republication clusters and their search index entries."""
    from archive.dedup import cluster_articles
    from archive.search import index_articles

    if article_ids:
        cluster_articles(session, article_ids)
        index_articles(session, article_ids)
