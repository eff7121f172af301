"""Reading one article as archivists do: its record, every version, its republications, raw bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from archive.errors import UfarchiveError
from archive.export import iso, json_record, local_iso, record_query, typed
from archive.models import Article, ArticleEvent, ArticleVersion, Cluster, Site, Snapshot
from archive.warc import read_record, warc_path


class ArticleNotFoundError(UfarchiveError):
    def __init__(self, article_id: int) -> None:
        super().__init__(f"article {article_id}: no such article")


# One article's export record and where it moved to: built once (SQLAlchemy then reuses
# its compiled form), not through iter_records' selection machinery, which an article
# page paid for on every view (bench/web.py: a tenth of the page's time).
_RECORD = record_query().add_columns(Article.moved_to).where(Article.id == bindparam("article_id"))


def article_detail(session: Session, article_id: int) -> dict[str, Any]:
    """DESIGN.md's `show --format json`: the export record plus `versions`,
    `republications`, `moved_to` and `events` (what revisits found, oldest first), and
    (issue 16) `provenance` (why each field of the current version is what it is: the
    rule and the raw string) and `decoding` (the page's codec, why, and warnings)."""
    return article_with_versions(session, article_id)[0]


def article_with_versions(
    session: Session, article_id: int
) -> tuple[dict[str, Any], list[ArticleVersion]]:
    """`article_detail` and the article's versions, oldest first (the last is current)."""
    row = session.execute(_RECORD, {"article_id": article_id}).first()
    if row is None:
        raise ArticleNotFoundError(article_id)
    record = json_record(typed(row[:-1]))
    versions = list(
        session.scalars(
            select(ArticleVersion)
            .where(ArticleVersion.article_id == article_id)
            .order_by(ArticleVersion.version)
        )
    )
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
            "provenance": v.provenance,
            "extractor_version": v.extractor_version,
        }
        for v in versions
    ]
    record["republications"] = republications(session, article_id, record["cluster_id"])
    record["moved_to"] = row[-1]
    record["events"] = events(session, article_id)
    current = versions[-1] if versions else None
    record["provenance"] = current.provenance if current else None
    record["decoding"] = decoding(session, article_id)
    return record, versions


def decoding(session: Session, article_id: int) -> dict[str, Any] | None:
    """How the article's latest decoded page was decoded (codec, why) and what its
    extraction warned about; None when no page of it was decoded (an archive older than
    these columns, until `ufarchive reparse`)."""
    snapshot = session.scalars(
        select(Snapshot)
        .where(Snapshot.article_id == article_id, Snapshot.encoding.is_not(None))
        .order_by(Snapshot.id.desc())
        .limit(1)
    ).first()
    if snapshot is None:
        return None
    return {
        "encoding": snapshot.encoding,
        "reason": snapshot.encoding_reason,
        "warnings": list(snapshot.extract_warnings or []),
    }


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


# --- the web UI's article page (issue 14): a version's capture, its WARC record, its cluster


class VersionNotFoundError(UfarchiveError):
    def __init__(self, article_id: int, version: int, last: int) -> None:
        super().__init__(f"article {article_id}: no version {version} (it has 1 to {last})")


def article_version(
    session: Session, article_id: int, version: int | None = None
) -> tuple[ArticleVersion, Snapshot | None]:
    """One version of an article (the current one by default) and the snapshot it was
    extracted from (None for a version stored without one)."""
    article = session.get(Article, article_id)
    if article is None:
        raise ArticleNotFoundError(article_id)
    number = article.version if version is None else version
    row = session.scalars(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article_id, ArticleVersion.version == number
        )
    ).one_or_none()
    if row is None:
        raise VersionNotFoundError(article_id, number, article.version)
    snapshot = session.get(Snapshot, row.snapshot_id) if row.snapshot_id is not None else None
    return row, snapshot


def record_bytes(data_dir: Path, snapshot: Snapshot) -> bytes:
    """The exact bytes of the snapshot's WARC record (one gzip member), as fixity reads them."""
    path = warc_path(data_dir, snapshot.warc_file)
    try:
        with path.open("rb") as fh:
            fh.seek(snapshot.warc_offset)
            data = fh.read(snapshot.warc_length)
    except OSError as exc:
        raise UfarchiveError(f"{path}: cannot read WARC file: {exc.strerror or exc}") from None
    if len(data) != snapshot.warc_length:
        raise UfarchiveError(f"{path}: WARC record at {snapshot.warc_offset} is cut short")
    return data


def captured_page(session: Session, data_dir: Path, snapshot: Snapshot) -> tuple[bytes, Snapshot]:
    """The page body a snapshot archived: its response record's payload, or, for a revisit
    record (identical payload, none stored), the payload of the response it refers to."""
    response = snapshot
    if snapshot.record_type == "revisit" and snapshot.refers_to_id is not None:
        response = session.get(Snapshot, snapshot.refers_to_id) or snapshot
    record = read_record(data_dir, response.warc_file, response.warc_offset)
    return record.payload, response


def cluster_credit(session: Session, cluster_id: int | None) -> dict[str, Any] | None:
    """The republication cluster: its size, the member credited as the original and why
    (archive.dedup.choose_original's stored reason)."""
    if cluster_id is None:
        return None
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        return None
    return {
        "id": cluster.id,
        "size": cluster.size,
        "original_article_id": cluster.original_article_id,
        "original_reason": cluster.original_reason,
    }


def version_list(session: Session, article_id: int) -> list[dict[str, Any]]:
    """The article's versions, oldest first, without their text: number, first and last
    seen, title (what a page needs to let one pick versions)."""
    rows = session.execute(
        select(
            ArticleVersion.version,
            ArticleVersion.first_seen,
            ArticleVersion.last_seen,
            ArticleVersion.title,
        )
        .where(ArticleVersion.article_id == article_id)
        .order_by(ArticleVersion.version)
    )
    return [
        {"version": r.version, "first_seen": iso(r.first_seen), "last_seen": iso(r.last_seen),
         "title": r.title}
        for r in rows
    ]  # fmt: skip
