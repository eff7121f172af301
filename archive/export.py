"""The export record of DESIGN.md, streamed from one query, as JSONL or CSV.

Records are generated from a single server-side-streamed query (no full load in
memory); files are written to a temporary name and renamed at the end, so an
interrupted export never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from archive.errors import UfarchiveError
from archive.models import Article, ArticleVersion, Site

#: DESIGN.md's export record, in this order (JSONL keys and CSV columns).
EXPORT_COLUMNS = (
    "id", "url", "canonical_url", "site", "title", "publish_time", "source", "editor", "author",
    "contributor", "body", "first_seen", "last_seen", "content_hash", "version", "cluster_id",
    "is_original", "status", "last_checked", "gone_at",
)  # fmt: skip
FORMATS = ("jsonl", "csv")
BATCH = 500


@dataclass(frozen=True)
class Filters:
    site: str | None = None
    since: datetime | None = None  # published on or after
    until: datetime | None = None  # published before
    article_ids: tuple[int, ...] | None = None


def record_query(filters: Filters = Filters()) -> Select[*tuple[Any, ...]]:
    """Articles with their current version and site, oldest id first."""
    query = (
        select(
            Article.id,
            Article.url,
            Article.canonical_url,
            Site.name.label("site"),
            ArticleVersion.title,
            ArticleVersion.publish_time,
            ArticleVersion.publish_time_offset,
            ArticleVersion.source,
            ArticleVersion.editor,
            ArticleVersion.author,
            ArticleVersion.contributor,
            ArticleVersion.body,
            Article.first_seen,
            Article.last_seen,
            ArticleVersion.content_hash,
            Article.version,
            Article.cluster_id,
            Article.is_original,
            Article.status,
            Article.last_checked,
            Article.gone_at,
        )
        .join(Site, Site.id == Article.site_id)
        .join(
            ArticleVersion,
            and_(
                ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version
            ),
        )
        .order_by(Article.id)
    )
    if filters.site:
        query = query.where(Site.name == filters.site)
    if filters.since:
        query = query.where(Article.publish_time >= filters.since)
    if filters.until:
        query = query.where(Article.publish_time < filters.until)
    if filters.article_ids is not None:
        query = query.where(Article.id.in_(filters.article_ids))
    return query


def iter_records(session: Session, filters: Filters = Filters()) -> Iterator[dict[str, Any]]:
    """Export records, streamed in batches."""
    result = session.execute(record_query(filters).execution_options(yield_per=BATCH))
    for row in result:
        yield to_record(row._mapping)


def to_record(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "url": row["url"],
        "canonical_url": row["canonical_url"],
        "site": row["site"],
        "title": row["title"],
        "publish_time": local_iso(row["publish_time"], row["publish_time_offset"]),
        "source": row["source"],
        "editor": row["editor"],
        "author": row["author"],
        "contributor": row["contributor"],
        "body": row["body"],
        "first_seen": iso(row["first_seen"]),
        "last_seen": iso(row["last_seen"]),
        "content_hash": row["content_hash"],
        "version": row["version"],
        "cluster_id": row["cluster_id"],
        "is_original": bool(row["is_original"]),
        "status": row["status"],
        "last_checked": iso(row["last_checked"]),
        "gone_at": iso(row["gone_at"]),
    }


def local_iso(when: datetime | None, offset_minutes: int | None) -> str | None:
    """An instant in the page's own offset (stored separately; +08:00 when unknown)."""
    if when is None:
        return None
    zone = timezone(timedelta(minutes=offset_minutes if offset_minutes is not None else 480))
    return when.astimezone(zone).isoformat()


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def write_jsonl(records: Iterable[dict[str, Any]], fh: TextIO) -> int:
    count = 0
    for record in records:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(records: Iterable[dict[str, Any]], fh: TextIO) -> int:
    writer = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
        count += 1
    return count


WRITERS: dict[str, Callable[[Iterable[dict[str, Any]], TextIO], int]] = {
    "jsonl": write_jsonl,
    "csv": write_csv,
}


def export_file(
    session: Session,
    path: Path,
    fmt: str,
    filters: Filters = Filters(),
    on_record: Callable[[int], None] | None = None,
) -> int:
    """Write every matching record to `path` (atomically); returns how many."""
    if fmt not in WRITERS:
        raise UfarchiveError(f"--format {fmt}: not implemented yet (have: {', '.join(WRITERS)})")
    directory = path.parent if str(path.parent) else Path()
    if not directory.is_dir():
        raise UfarchiveError(f"{path}: folder {directory} does not exist")
    records = iter_records(session, filters)
    if on_record is not None:
        records = _counting(records, on_record)
    # CSV for spreadsheets: a BOM makes Excel read UTF-8 Chinese text correctly.
    encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            count = WRITERS[fmt](records, fh)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def _counting(
    records: Iterator[dict[str, Any]], on_record: Callable[[int], None]
) -> Iterator[dict[str, Any]]:
    for count, record in enumerate(records, 1):
        if count % 100 == 0:
            on_record(count)
        yield record
