"""Reading one article as archivists do: its record, every version, its republications, raw bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.errors import UfarchiveError
from archive.export import Filters, iso, iter_records, local_iso
from archive.models import Article, ArticleEvent, ArticleVersion, Site, Snapshot
from archive.warc import read_record


class ArticleNotFoundError(UfarchiveError):
    def __init__(self, article_id: int) -> None:
        super().__init__(f"article {article_id}: no such article")


def article_detail(session: Session, article_id: int) -> dict[str, Any]:
    """DESIGN.md's `show --format json`: the export record plus `versions`,
    `republications`, `moved_to` and `events` (what revisits found, oldest first)."""
    records = list(iter_records(session, Filters(article_ids=(article_id,))))
    if not records:
        raise ArticleNotFoundError(article_id)
    record = records[0]
    versions = session.scalars(
        select(ArticleVersion)
        .where(ArticleVersion.article_id == article_id)
        .order_by(ArticleVersion.version)
    ).all()
    record["versions"] = [
        {
            "version": v.version,
            "first_seen": iso(v.first_seen),
            "last_seen": iso(v.last_seen),
            "title": v.title,
            "publish_time": local_iso(v.publish_time, v.publish_time_offset),
            "source": v.source,
            "editor": v.editor,
            "author": v.author,
            "contributor": v.contributor,
            "body": v.body,
            "content_hash": v.content_hash,
        }
        for v in versions
    ]
    record["republications"] = republications(session, article_id, record["cluster_id"])
    record["moved_to"] = session.scalar(select(Article.moved_to).where(Article.id == article_id))
    record["events"] = events(session, article_id)
    return record


def events(session: Session, article_id: int) -> list[dict[str, Any]]:
    """The article's history as revisits found it: changed, gone, moved, restored."""
    rows = session.scalars(
        select(ArticleEvent)
        .where(ArticleEvent.article_id == article_id)
        .order_by(ArticleEvent.at, ArticleEvent.id)
    )
    return [
        {
            "at": iso(e.at),
            "kind": e.kind,
            "version": e.version,
            "detail": e.detail,
            "run_id": e.run_id,
        }
        for e in rows
    ]


def republications(
    session: Session, article_id: int, cluster_id: int | None
) -> list[dict[str, Any]]:
    """The other members of the article's cluster (empty until the dedup issue clusters)."""
    if cluster_id is None:
        return []
    rows = session.execute(
        select(Article.id, Site.name, Article.url, Article.publish_time, Article.is_original)
        .join(Site, Site.id == Article.site_id)
        .where(Article.cluster_id == cluster_id, Article.id != article_id)
        .order_by(Article.publish_time, Article.id)
    )
    return [
        {
            "id": r.id,
            "site": r.name,
            "url": r.url,
            "publish_time": local_iso(r.publish_time, None),
            "is_original": bool(r.is_original),
        }
        for r in rows
    ]


def raw_bytes(
    session: Session, data_dir: Path, article_id: int, version: int | None = None
) -> bytes:
    """The exact archived response body of the article's current (or given) version."""
    article = session.get(Article, article_id)
    if article is None:
        raise ArticleNotFoundError(article_id)
    number = version or article.version
    snapshot = session.scalars(
        select(Snapshot)
        .join(ArticleVersion, ArticleVersion.snapshot_id == Snapshot.id)
        .where(ArticleVersion.article_id == article_id, ArticleVersion.version == number)
    ).one_or_none()
    if snapshot is None:
        raise UfarchiveError(f"article {article_id}: version {number} has no archived snapshot")
    return read_record(data_dir, snapshot.warc_file, snapshot.warc_offset).payload


def site_names(session: Session) -> list[str]:
    return list(session.scalars(select(Site.name).order_by(Site.name)))
