"""The export record of DESIGN.md, streamed from one query, in every format analysts open.

What is exported (a `Selection`: a search query, a collection, site and date filters, which
versions) becomes ONE query, read in batches with a server-side cursor; each batch is a
list of typed rows in `EXPORT_COLUMNS` order, and each format (`archive.exporters`) turns
the batches into bytes as they come, so memory stays flat at any size. The same chunks
go to a file (`export_file`: written under a temporary name and renamed, with a manifest
beside it, optionally packed as a BagIt bag) or to a web response (`stream_export`).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, cast

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from archive.errors import UfarchiveError
from archive.models import Article, ArticleVersion, CollectionItem, Site

#: DESIGN.md's export record, in this order (JSONL keys, CSV/XLSX columns, Parquet fields).
EXPORT_COLUMNS = (
    "id", "url", "canonical_url", "site", "title", "publish_time", "source", "editor", "author",
    "contributor", "body", "first_seen", "last_seen", "content_hash", "version", "cluster_id",
    "is_original", "status", "last_checked", "gone_at",
)  # fmt: skip
#: The record's columns by type (the rest are text); Parquet types them, JSON and CSV
#: write times as ISO 8601 (publish_time in the page's own offset, the others in UTC).
TIME_COLUMNS = frozenset({"publish_time", "first_seen", "last_seen", "last_checked", "gone_at"})
INT_COLUMNS = frozenset({"id", "version", "cluster_id"})
BOOL_COLUMNS = frozenset({"is_original"})
FORMATS = ("csv", "jsonl", "parquet", "xlsx", "warc")
Format = Literal["csv", "jsonl", "parquet", "xlsx", "warc"]
Versions = Literal["latest", "all", "pinned"]
BATCH = 1000  # rows a fetch; also the unit the formats encode and progress counts
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "warc": "application/warc",
}
BEIJING_MINUTES = 480  # a page that gives no offset is read as Beijing time

Row = tuple[Any, ...]  # typed values in EXPORT_COLUMNS order


class ExportError(UfarchiveError):
    """An export that cannot be made as asked (bad option, missing folder, unreadable WARC)."""


@dataclass(frozen=True)
class Filters:
    site: str | None = None
    since: datetime | None = None  # published on or after
    until: datetime | None = None  # published before
    article_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Selection:
    """What to export: all of it must hold (a collection's own query and filters too)."""

    query: str | None = None  # the search language of archive.search
    filters: Filters = Filters()
    collection: str | None = None
    # None: a frozen collection's pinned versions, otherwise the latest
    versions: Versions | None = None


@dataclass(frozen=True)
class Resolved:
    """A Selection with its collection read: what the SQL is built from."""

    queries: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    article_ids: tuple[int, ...] | None = None
    collection_id: int | None = None  # restrict to a frozen collection's items
    versions: Versions = "latest"
    collection: dict[str, Any] | None = None  # for the manifest


# --- the one query -------------------------------------------------------------------------


def resolve(session: Session, selection: Selection) -> Resolved:
    """Merge the selection with its collection (a saved one's query and filters, a frozen
    one's items); raise ExportError when the combination means nothing."""
    f = selection.filters
    queries: tuple[str, ...] = (
        (selection.query,) if selection.query and selection.query.strip() else ()
    )
    sites: tuple[str, ...] = (f.site,) if f.site else ()
    since, until = f.since, f.until
    collection_id = None
    described = None
    versions = selection.versions
    if selection.collection is not None:
        from archive.collections import describe, get_collection, saved_filters

        found = get_collection(session, selection.collection)
        described = describe(session, found, count=False)
        if found.kind == "saved":
            saved = saved_filters(found)
            queries += (found.query,) if found.query else ()
            sites += (saved.site,) if saved.site else ()
            since = _latest(since, saved.since)
            until = _earliest(until, saved.until)
        else:
            collection_id = found.id
            versions = versions or "pinned"
    if versions == "pinned" and collection_id is None:
        raise ExportError("--versions pinned: only a frozen collection pins versions")
    if queries:
        from archive.search import parsed_for_search

        parsed_for_search(" ".join(queries))  # a malformed query raises here, not mid-export
    return Resolved(
        queries=queries, sites=sites, since=since, until=until, article_ids=f.article_ids,
        collection_id=collection_id, versions=versions or "latest", collection=described,
    )  # fmt: skip


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(a, b) if a and b else a or b


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(a, b) if a and b else a or b


def _version_join(versions: Versions) -> Any:
    if versions == "all":
        return ArticleVersion.article_id == Article.id
    if versions == "pinned":
        return and_(
            ArticleVersion.article_id == Article.id,
            ArticleVersion.version == CollectionItem.version,
        )
    return and_(ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version)


def selected(session: Session | None, resolved: Resolved, *columns: Any) -> Select[Any]:
    """`columns` of the chosen article versions (one row each), oldest article first."""
    query = select(*columns).select_from(Article).join(Site, Site.id == Article.site_id)
    if resolved.collection_id is not None:
        query = query.join(
            CollectionItem,
            and_(
                CollectionItem.article_id == Article.id,
                CollectionItem.collection_id == resolved.collection_id,
            ),
        )
    query = query.join(ArticleVersion, _version_join(resolved.versions))
    for site in resolved.sites:
        query = query.where(Site.name == site)
    if resolved.since:
        query = query.where(Article.publish_time >= resolved.since)
    if resolved.until:
        query = query.where(Article.publish_time < resolved.until)
    if resolved.article_ids is not None:
        query = query.where(Article.id.in_(resolved.article_ids))
    if resolved.queries:
        from archive.search import matching_ids

        assert session is not None, "a search query needs the session's dialect"
        query = query.where(Article.id.in_(matching_ids(session, " ".join(resolved.queries))))
    if resolved.versions == "all":
        return query.order_by(Article.id, ArticleVersion.version)
    return query.order_by(Article.id)


def _record_columns(versions: Versions) -> list[Any]:
    """The columns `typed` reads, in its order (EXPORT_COLUMNS plus publish_time_offset)."""
    own = versions != "latest"  # a row per version: that version's number and times
    return [
        Article.id, Article.url, Article.canonical_url, Site.name.label("site"),
        ArticleVersion.title, ArticleVersion.publish_time, ArticleVersion.publish_time_offset,
        ArticleVersion.source, ArticleVersion.editor, ArticleVersion.author,
        ArticleVersion.contributor, ArticleVersion.body,
        (ArticleVersion.first_seen if own else Article.first_seen).label("first_seen"),
        (ArticleVersion.last_seen if own else Article.last_seen).label("last_seen"),
        ArticleVersion.content_hash,
        (ArticleVersion.version if own else Article.version).label("version"),
        Article.cluster_id, Article.is_original, Article.status, Article.last_checked,
        Article.gone_at,
    ]  # fmt: skip


RAW_COLUMNS = tuple(c.key for c in _record_columns("latest"))


def record_query(filters: Filters = Filters()) -> Select[Any]:
    """Articles with their current version and site, oldest id first (no search query)."""
    resolved = Resolved(
        sites=(filters.site,) if filters.site else (), since=filters.since,
        until=filters.until, article_ids=filters.article_ids,
    )  # fmt: skip
    return selected(None, resolved, *_record_columns("latest"))


_ZONES: dict[int, tzinfo] = {}


def _zone(offset_minutes: int | None) -> tzinfo:
    minutes = BEIJING_MINUTES if offset_minutes is None else offset_minutes
    zone = _ZONES.get(minutes)
    if zone is None:
        zone = _ZONES[minutes] = UTC if minutes == 0 else timezone(timedelta(minutes=minutes))
    return zone


def typed(raw: Sequence[Any]) -> Row:
    """A row of `_record_columns` as typed values in EXPORT_COLUMNS order: publish_time in
    the page's own offset, the other times in UTC, is_original a bool."""
    (id_, url, canonical, site, title, published, offset, source, editor, author, contributor,
     body, first_seen, last_seen, content_hash, version, cluster_id, is_original, status,
     last_checked, gone_at) = raw  # fmt: skip
    if published is not None:
        published = published.astimezone(_zone(offset))
    return (
        id_, url, canonical, site, title, published, source, editor, author, contributor, body,
        first_seen, last_seen, content_hash, version, cluster_id, bool(is_original), status,
        last_checked, gone_at,
    )  # fmt: skip


def iter_batches(
    session: Session, resolved: Resolved, batch: int = BATCH, ahead: bool = False
) -> Iterator[list[Row]]:
    """The selection's typed rows, `batch` at a time, from a server-side cursor. With
    `ahead`, on PostgreSQL, the next batch is fetched while the caller handles this one
    (`read_ahead`): the caller must not use the session until the iteration ends."""
    query = selected(session, resolved, *_record_columns(resolved.versions))
    connection = session.connection()
    parts: Iterator[Sequence[Any]] = connection.execute(
        query.execution_options(yield_per=batch)
    ).partitions()
    if ahead and connection.dialect.name == "postgresql":
        parts = read_ahead(parts)
    for part in parts:
        yield [typed(row) for row in part]


_T = TypeVar("_T")


def read_ahead(parts: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """`parts`, each read in a thread of its own while the caller handles the ones before
    (up to `depth` ahead). A server-side cursor fetches its next batch only when asked: the
    server then makes rows while the client waits, and waits while the client writes them.
    Read ahead, the two overlap: a JSON Lines export of 40,000 articles on PostgreSQL
    read 27,000 -> 33,700 rows a second (bench/README.md, Export). An error in the thread
    is raised here; closing this generator early (a web client gone) stops the thread
    before it returns, so the connection is free again."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for part in parts:
                if not put(("part", part)):
                    return
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 (raised in the reading thread)
            put(("error", exc))

    thread = threading.Thread(target=fetch, name="export-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def count_rows(session: Session, resolved: Resolved) -> int:
    inner = selected(session, resolved, Article.id).order_by(None).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def iter_records(session: Session, filters: Filters = Filters()) -> Iterator[dict[str, Any]]:
    """Export records (JSON-ready dicts), streamed in batches."""
    resolved = resolve(session, Selection(filters=filters))
    for rows in iter_batches(session, resolved):
        yield from (json_record(row) for row in rows)


def to_record(row: Any) -> dict[str, Any]:
    """The export record of a row of `record_query`."""
    return json_record(typed([row[name] for name in RAW_COLUMNS]))


_TIME_INDEXES = [i for i, name in enumerate(EXPORT_COLUMNS) if name in TIME_COLUMNS]


def json_record(row: Row) -> dict[str, Any]:
    values = list(row)
    for i in _TIME_INDEXES:
        if values[i] is not None:
            values[i] = values[i].isoformat()
    return dict(zip(EXPORT_COLUMNS, values, strict=True))


def local_iso(when: datetime | None, offset_minutes: int | None) -> str | None:
    """An instant in the page's own offset (stored separately; +08:00 when unknown)."""
    if when is None:
        return None
    return when.astimezone(_zone(offset_minutes)).isoformat()


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def parse_fields(text: str | None) -> tuple[str, ...]:
    """`--fields id,title,body` as record columns (all of them when not given)."""
    if not text:
        return EXPORT_COLUMNS
    fields = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in fields if name not in EXPORT_COLUMNS]
    if unknown or not fields:
        raise ExportError(
            f"--fields {text}: unknown field {', '.join(unknown) or '(none given)'} "
            f"(have: {', '.join(EXPORT_COLUMNS)})"
        )
    if len(set(fields)) != len(fields):
        raise ExportError(f"--fields {text}: a field is named twice")
    return fields


# --- formats -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """How a format writes: the columns, CSV's BOM, XLSX's sheet size, the WARC source."""

    fields: tuple[str, ...] = EXPORT_COLUMNS
    bom: bool = True
    xlsx_max_rows: int = 1_048_575  # Excel's rows a sheet, less the header
    parquet_row_group_rows: int = 10_000
    data_dir: Path | None = None  # where the archive's WARC files are (warc)
    name: str = ""  # the file's name (warc: in its warcinfo record)
    description: str = ""  # what the export holds (warc: in its warcinfo record)


@dataclass
class Tally:
    """What went by: rows, per site (for the manifest and the progress bar)."""

    rows: int = 0
    by_site: Counter[str] = field(default_factory=Counter)
    on_rows: Callable[[int], None] | None = None
    skipped: int = 0  # warc: versions without an archived snapshot

    def counted(self, batches: Iterable[list[Row]]) -> Iterator[list[Row]]:
        site = EXPORT_COLUMNS.index("site")
        for rows in batches:
            self.rows += len(rows)
            self.by_site.update(row[site] for row in rows)
            yield rows
            if self.on_rows is not None:
                self.on_rows(self.rows)


def encode(
    session: Session,
    resolved: Resolved,
    fmt: str,
    options: Options,
    tally: Tally,
    index: IO[str] | None = None,
) -> Iterator[bytes]:
    """The selection in format `fmt`, as chunks of bytes (the one generator behind files
    and web responses); a WARC export writes its CDXJ lines to `index` when given."""
    from archive import exporters

    if fmt == "warc":
        if options.fields != EXPORT_COLUMNS:
            raise ExportError("--fields: a WARC export holds the archived records, not fields")
        if options.data_dir is None:
            raise ExportError("--format warc: needs the data dir of the archive's WARC files")
        return exporters.warc_chunks(session, resolved, options, tally, index)
    writer = exporters.WRITERS.get(fmt)
    if writer is None:
        raise ExportError(f"--format {fmt}: unknown format (have: {', '.join(FORMATS)})")
    return writer(tally.counted(iter_batches(session, resolved, ahead=True)), options)


def stream_export(
    session: Session,
    selection: Selection,
    fmt: str,
    options: Options = Options(),
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export as a generator of byte chunks, for a web response (`/api/export`); the
    session must stay open until the generator is exhausted or closed."""
    resolved = resolve(session, selection)
    yield from encode(session, resolved, fmt, options, Tally(on_rows=on_rows))


def open_stream(
    sessions: Callable[[], Session],
    selection: Selection,
    fmt: str,
    options: Options = Options(),
) -> Iterator[bytes]:
    """For a web response (`/api/export`): check the selection and format now, so that a
    bad query or an unknown collection raises before the response starts, and return the
    chunks' generator, which reads in a session of its own (a streamed response outlives
    the request's session)."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt}: unknown (have: {', '.join(FORMATS)})")
    with sessions() as session:
        resolve(session, selection)

    def chunks() -> Iterator[bytes]:
        with sessions() as session, session.begin():
            yield from encode(session, resolve(session, selection), fmt, options, Tally())

    return chunks()


# --- files, manifests, bags ------------------------------------------------------------------


@dataclass
class ExportResult:
    files: list[Path]  # the output, and the CDXJ index of a WARC export
    manifest: Path
    rows: int
    by_site: dict[str, int]
    bag: Path | None = None


def export_file(
    session: Session,
    path: Path,
    fmt: str,
    selection: Selection | Filters = Selection(),
    on_rows: Callable[[int], None] | None = None,
    *,
    options: Options = Options(),
    bag: bool = False,
    database_url: str | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write the selection to `path` with `path.manifest.json` beside it (or, with `bag`,
    a BagIt bag named after `path` holding both). Nothing appears under a final name
    until it is complete: an interrupted export leaves no file behind."""
    if isinstance(selection, Filters):
        selection = Selection(filters=selection)
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt}: unknown format (have: {', '.join(FORMATS)})")
    directory = path.parent if str(path.parent) else Path()
    if not directory.is_dir():
        raise ExportError(f"{path}: folder {directory} does not exist")
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name")
    final = path.parent / path.stem if bag else path
    if bag and final.exists():
        raise ExportError(f"{final}: the bag folder exists already")
    resolved = resolve(session, selection)
    options = replace(
        options, name=path.name, description=options.description or describe(selection)
    )
    if on_total is not None:
        on_total(count_rows(session, resolved))
    tally = Tally(on_rows=on_rows)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=directory))
    try:
        out = staging / path.name
        files = [out]
        if fmt == "warc":
            from archive.exporters import sort_cdxj

            unsorted = staging / "index.unsorted"
            with unsorted.open("x", encoding="utf-8") as lines:
                chunks = encode(session, resolved, fmt, options, tally, lines)
                digests = {out.name: _write_chunks(out, chunks)}
            index = staging / f"{path.name}.cdxj"
            sort_cdxj(unsorted, index)
            unsorted.unlink()
            digests[index.name] = _sha256_file(index)
            files.append(index)
        else:
            digests = {out.name: _write_chunks(out, encode(session, resolved, fmt, options, tally))}
        manifest = staging / f"{path.name}.manifest.json"
        document = manifest_document(
            session, resolved, selection, fmt, options, tally, files, digests, database_url
        )
        manifest.write_text(
            json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        if bag:
            _make_bag(staging, document)
            staging.rename(final)
            return ExportResult(
                [final / "data" / f.name for f in files], final / "data" / manifest.name,
                tally.rows, dict(tally.by_site), bag=final,
            )  # fmt: skip
        placed = []
        for f in [*files, manifest]:  # the manifest last: it vouches for the others
            target = path.parent / f.name
            f.replace(target)
            placed.append(target)
        return ExportResult(placed[:-1], placed[-1], tally.rows, dict(tally.by_site))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_chunks(path: Path, chunks: Iterable[bytes]) -> str:
    """Write chunks to a new file; return their SHA-256 (hashed on the way, not reread)."""
    digest = hashlib.sha256()
    with path.open("xb") as fh:
        for chunk in chunks:
            digest.update(chunk)
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_document(
    session: Session,
    resolved: Resolved,
    selection: Selection,
    fmt: str,
    options: Options,
    tally: Tally,
    files: list[Path],
    digests: dict[str, str],
    database_url: str | None,
) -> dict[str, Any]:
    """`PATH.manifest.json`: what was asked, what came out, and checksums of the files."""
    from importlib.metadata import version

    from archive.db import describe_url, schema_revision

    url = database_url or session.connection().engine.url.render_as_string(hide_password=False)
    document: dict[str, Any] = {
        "tool": "ufarchive",
        "tool_version": version("ufarchive"),
        "schema_version": schema_revision(session),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": describe_url(url),
        "format": fmt,
        "query": selection.query,
        "filters": {
            "site": selection.filters.site,
            "since": iso(selection.filters.since),
            "until": iso(selection.filters.until),
        },
        "collection": resolved.collection,
        "versions": resolved.versions,
        "fields": list(options.fields) if fmt != "warc" else None,
        "records": tally.rows,
        "counts_by_site": dict(sorted(tally.by_site.items())),
        "files": [
            {"name": f.name, "bytes": f.stat().st_size, "sha256": digests[f.name]} for f in files
        ],
    }
    if fmt == "csv":
        document["bom"] = options.bom
    if fmt == "warc":
        document["versions_without_snapshot"] = tally.skipped
    return document


def _make_bag(folder: Path, document: Mapping[str, Any]) -> None:
    """Turn the staging folder into a BagIt bag (files moved under data/, checksummed)."""
    import bagit

    what = document["query"] or (document["collection"] or {}).get("name") or "the archive"
    info = {
        "Source-Organization": "ufarchive",
        "External-Description": f"ufarchive export ({document['format']}) of {what}: "
        f"{document['records']} records",
        "External-Identifier": cast(str, document["files"][0]["name"]),
    }
    bagit.make_bag(str(folder), bag_info=info, checksums=["sha256"])


def describe(selection: Selection) -> str:
    """What a selection holds, in one line (for the WARC's warcinfo record)."""
    f = selection.filters
    parts = [
        f"query {selection.query!r}" if selection.query else "",
        f"collection {selection.collection!r}" if selection.collection else "",
        f"site {f.site}" if f.site else "",
        f"published since {f.since.isoformat()}" if f.since else "",
        f"published before {f.until.isoformat()}" if f.until else "",
        f"versions {selection.versions}" if selection.versions else "",
    ]
    return "ufarchive export: " + (", ".join(p for p in parts if p) or "every article")


def export_summary(result: ExportResult) -> str:
    where = result.bag if result.bag is not None else result.files[0]
    return f"wrote {result.rows} articles to {where}"


def with_versions(selection: Selection, versions: str | None) -> Selection:
    if versions is not None and versions not in ("latest", "all", "pinned"):
        raise ExportError(f"--versions {versions}: use latest, all or pinned")
    return replace(selection, versions=cast("Versions | None", versions))
