"""The archive's tables as SQLAlchemy 2.0 typed models; the migrations create them.

Sites have articles; an article has versions (what its text and metadata were, oldest
first, never deleted), snapshots (each fetch, pointing into a WARC file) and events (what
revisits found: edited, gone, moved, restored); crawl runs keep their counters and
errors; alerts flag sites that need a look; fixity audits record each verification of
the WARC files; clusters group an article with its republications; LSH bands index
clusters in the database; collections are analysts' saved sets.
Times are stored in UTC and come back timezone-aware on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so that Alembic's batch mode can alter them on SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# A JSON column whose Python None is SQL NULL (so `IS NULL` finds it), not JSON 'null'.
NullableJSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


#: lsh_bands's partitions on PostgreSQL (migration 0022): the newest tier and the runs
LSH_PARTITIONS = ("lsh_bands_newest", "lsh_bands_runs")
#: The GIN index of search_docs.vector on PostgreSQL, in two partial indexes: even doc_ids
#: and odd ones (migration 0023, archive.search.GIN_HALVES)
SEARCH_GIN_HALVES = ("ix_search_docs_vector_0", "ix_search_docs_vector_1")


def is_modelled(name: str | None, type_: str, parent_names: object = None) -> bool:
    """Alembic's include_name hook: the SQLite FTS5 table of the search index (and the
    shadow tables FTS5 makes for it), lsh_bands's partitions and the halves of the
    search index's GIN index on PostgreSQL are made by migrations, outside the models."""
    if name is None:
        return True
    if type_ == "table":
        return not (name.startswith("search_fts") or name in LSH_PARTITIONS)
    return not (type_ == "index" and name in SEARCH_GIN_HALVES)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, stored as UTC, aware UTC datetimes out (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the archive stores aware times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ArticleStatus(enum.StrEnum):
    """Whether the page is still there (an edited page stays live: see its versions)."""

    LIVE = "live"
    GONE = "gone"  # 404/410, a soft 404, or a redirect to the home page or a listing
    MOVED = "moved"  # redirected to another article (`moved_to`)


class EventKind(enum.StrEnum):
    """What a revisit found out about an article (one `article_events` row each)."""

    CHANGED = "changed"
    GONE = "gone"
    MOVED = "moved"
    RESTORED = "restored"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    KILLED = "killed"
    INTERRUPTED = "interrupted"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSONType,
    }


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    articles: Mapped[list[Article]] = relationship(back_populates="site")


class CrawlRun(Base):
    """One crawl of one site: when, how it ended, and what it counted."""

    __tablename__ = "crawl_runs"
    __table_args__ = (Index("ix_crawl_runs_site_started", "site_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING.value)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual|schedule|catchup
    pid: Mapped[int | None]
    host: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)  # why it failed, in one line
    requests: Mapped[int] = mapped_column(default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, default=0)
    responses_by_status: Mapped[dict[str, Any]] = mapped_column(default=dict)
    articles_new: Mapped[int] = mapped_column(default=0)
    articles_changed: Mapped[int] = mapped_column(default=0)
    articles_unchanged: Mapped[int] = mapped_column(default=0)
    articles_gone: Mapped[int] = mapped_column(default=0)
    articles_failed: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    # Revisits of known articles (archive.revisit): answered, of which 304; failed
    # (no answer, 5xx, robots.txt); and the state changes they found.
    revisits_checked: Mapped[int] = mapped_column(default=0)
    revisits_not_modified: Mapped[int] = mapped_column(default=0)
    revisits_failed: Mapped[int] = mapped_column(default=0)
    articles_restored: Mapped[int] = mapped_column(default=0)
    articles_moved: Mapped[int] = mapped_column(default=0)
    # Most revisits (or every start URL) failed: the site was down, so nothing was marked gone.
    unreachable: Mapped[bool] = mapped_column(Boolean, default=False)
    stats: Mapped[dict[str, Any] | None]  # the crawler's own stats, for diagnosis
    # Crawl workers that took part (a distributed run); null for a run of one process.
    workers: Mapped[int | None]

    site: Mapped[Site] = relationship()
    errors: Mapped[list[CrawlError]] = relationship(back_populates="run", order_by="CrawlError.id")


class CrawlError(Base):
    __tablename__ = "crawl_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("crawl_runs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    url: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(64))  # e.g. http_500, timeout, extract, too_large
    message: Mapped[str] = mapped_column(Text)

    run: Mapped[CrawlRun] = relationship(back_populates="errors")


class Alert(Base):
    """A problem with a site that ops should look at (archive.alerts raises and clears it).

    Active while `cleared_at` is null; at most one active alert per site and kind."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_site_kind", "site_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    kind: Mapped[str] = mapped_column(String(32))  # failing | no_articles | extraction | stale
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None]
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id", ondelete="SET NULL"))

    site: Mapped[Site] = relationship()


class FixityAudit(Base):
    """One run of `ufarchive verify` (archive.fixity): what it covered and what it found."""

    __tablename__ = "fixity_audits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual | schedule
    site: Mapped[str | None] = mapped_column(String(64))  # null: every site
    since: Mapped[datetime | None]  # null: every record; else those fetched since
    status: Mapped[str] = mapped_column(String(16), default="running")  # clean|damaged|failed
    files: Mapped[int] = mapped_column(default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    records: Mapped[int] = mapped_column(default=0)
    records_ok: Mapped[int] = mapped_column(default=0)
    damaged: Mapped[int] = mapped_column(default=0)
    unreferenced: Mapped[int] = mapped_column(default=0)
    torn_set_aside: Mapped[int] = mapped_column(default=0)
    damaged_by_site: Mapped[dict[str, Any] | None]
    problems: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)  # the first 200
    message: Mapped[str | None] = mapped_column(Text)  # why a failed audit failed


class Cluster(Base):
    """An article and its republications; `original_article_id` is the one credited."""

    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", use_alter=True, ondelete="SET NULL")
    )
    original_reason: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Article(Base):
    """One article, identified by its canonical URL; its text lives in its versions."""

    __tablename__ = "articles"
    __table_args__ = (
        Index("ix_articles_site_publish", "site_id", "publish_time"),
        Index("ix_articles_publish", "publish_time"),
        # A run's due revisits, most overdue first, are one range scan of this index, which
        # covers the query (id included for PostgreSQL's index-only scans).
        Index("ix_articles_site_next_check", "site_id", "next_check", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    url: Mapped[str] = mapped_column(Text)  # as first fetched
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=ArticleStatus.LIVE.value)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    gone_at: Mapped[datetime | None]
    moved_to: Mapped[str | None] = mapped_column(Text)  # where a `moved` article went
    # Revisits (archive.revisit): when the page was last checked, when its text last
    # changed (or it went or came back), and when it is next due.
    last_checked: Mapped[datetime | None]
    last_changed: Mapped[datetime | None]
    next_check: Mapped[datetime | None]
    # The latest full 200 response: its validators make revisits conditional and its
    # payload digest tells an identical page (archived as a WARC revisit record). No
    # foreign key: adding one made SQLite copy the whole table (migration 0010).
    snapshot_id: Mapped[int | None]
    version: Mapped[int] = mapped_column(default=1)  # the current version's number
    publish_time: Mapped[datetime | None]  # the current version's, for sorting and filters
    # SHA-256 of the comparison text (archive.dedup). Not indexed: exact copies share all
    # their buckets in lsh_bands and are found there.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("clusters.id", ondelete="SET NULL"), index=True
    )
    # True unless a republication cluster credits another member as the original.
    is_original: Mapped[bool] = mapped_column(Boolean, default=True)

    site: Mapped[Site] = relationship(back_populates="articles")
    versions: Mapped[list[ArticleVersion]] = relationship(
        back_populates="article", order_by="ArticleVersion.version"
    )
    snapshots: Mapped[list[Snapshot]] = relationship(
        back_populates="article", order_by="Snapshot.fetched_at"
    )


class Snapshot(Base):
    """One fetch of a page, kept as a WARC record: where it is and what came back."""

    __tablename__ = "snapshots"
    __table_args__ = (
        Index("ix_snapshots_article_fetched", "article_id", "fetched_at"),
        # archive.fixity reads the rows of one WARC file at a time, in file order
        Index("ix_snapshots_warc", "warc_file", "warc_offset"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int] = mapped_column(SmallInteger)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_type: Mapped[str | None] = mapped_column(String(255))
    etag: Mapped[str | None] = mapped_column(String(255))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    payload_length: Mapped[int] = mapped_column(BigInteger, default=0)
    warc_file: Mapped[str] = mapped_column(String(255))  # relative to the data dir
    warc_offset: Mapped[int] = mapped_column(BigInteger)
    warc_length: Mapped[int] = mapped_column(BigInteger)
    warc_record_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload_digest: Mapped[str | None] = mapped_column(String(128))
    # "response", or "revisit": a WARC revisit record (identical payload) that refers to
    # the response `refers_to_id` instead of storing the page again.
    record_type: Mapped[str] = mapped_column(String(16), default="response")
    refers_to_id: Mapped[int | None]  # no foreign key, as Article.snapshot_id
    # How the page was decoded (crawler.extract.decode): the codec, and why ("bom",
    # "utf-8 bytes", "http header", "meta", "detected"); null for pages not decoded.
    encoding: Mapped[str | None] = mapped_column(String(32))
    encoding_reason: Mapped[str | None] = mapped_column(String(32))
    # What looked wrong in the extracted fields (mojibake, U+FFFD); null when nothing did.
    extract_warnings: Mapped[list[str] | None] = mapped_column(NullableJSON)

    article: Mapped[Article | None] = relationship(back_populates="snapshots")
    run: Mapped[CrawlRun | None] = relationship()


class ArticleVersion(Base):
    """What an article said at one time; a new row whenever text or metadata change."""

    __tablename__ = "article_versions"
    __table_args__ = (UniqueConstraint("article_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"))
    version: Mapped[int]
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)
    title: Mapped[str | None] = mapped_column(Text)
    publish_time: Mapped[datetime | None]
    publish_time_offset: Mapped[int | None] = mapped_column(SmallInteger)  # minutes east of UTC
    source: Mapped[str | None] = mapped_column(Text)
    editor: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    contributor: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="")
    images: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)  # [{src, caption}]
    content_hash: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))
    extractor_version: Mapped[str | None] = mapped_column(String(32))
    # Why each field is what it is: {field: {"rule": "label:责任编辑", "raw": "..."}}.
    provenance: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)

    article: Mapped[Article] = relationship(back_populates="versions")


class ArticleEvent(Base):
    """A change of an article found by a revisit: edited (a new version), gone, moved,
    restored. Nothing is deleted; this is the article's history, newest last."""

    __tablename__ = "article_events"
    __table_args__ = (
        Index("ix_article_events_at", "at"),
        Index("ix_article_events_article_at", "article_id", "at"),
        Index("ix_article_events_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # EventKind
    version: Mapped[int | None]  # for `changed`: the new version's number
    # e.g. {"status": 404}, {"reason": "soft_404", "phrase": "页面不存在"},
    # {"target_url": ..., "target_article_id": ...}, {"fields": ["title", "body"]}
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LshBand(Base):
    """MinHash LSH buckets kept in the database, so every crawl process shares one index."""

    __tablename__ = "lsh_bands"
    # WITHOUT ROWID: on SQLite the primary key is the table (42 rows an article; a rowid
    # table would store every row twice, once more in the key's index).
    # The key starts with the tier, then the bucket: a lookup is `tier = T AND bucket IN
    # (the article's 42 buckets)` (buckets are salted with their band, so equal buckets
    # mean equal bands). New rows go to the newest, small tier (-1), whose pages stay few;
    # archive.dedup merges it into the current run (0, 1, ...: see RUN_ROWS there).
    # No index on article_id and no foreign key: both made a merge 7x slower (every moved
    # row rewrote an index entry and looked up its article); an article's rows are found
    # by their keys, which lsh_keys keeps.
    __table_args__ = (
        PrimaryKeyConstraint("tier", "bucket", "band", "article_id"),
        {"sqlite_with_rowid": False},
    )

    tier: Mapped[int] = mapped_column(SmallInteger)
    band: Mapped[int] = mapped_column(SmallInteger)
    bucket: Mapped[int] = mapped_column(BigInteger)
    article_id: Mapped[int] = mapped_column(Integer)


class LshKeys(Base):
    """The buckets an article's current text put into lsh_bands (42 signed 64-bit integers,
    little-endian, band order), so that they can be taken out when the text changes."""

    __tablename__ = "lsh_keys"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    buckets: Mapped[bytes] = mapped_column(LargeBinary)


class LshTier(Base):
    """A tier of lsh_bands (archive.dedup): rows written to it since it was last merged
    (an upper bound on its size: rows deleted when an article changes are not
    subtracted); for a run (tier >= 0), the Bloom filter of its buckets (64-bit words,
    little-endian; NULL until built) and a random stamp that changes whenever the filter
    does."""

    __tablename__ = "lsh_tiers"

    tier: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    filter: Mapped[bytes | None] = mapped_column(LargeBinary)
    stamp: Mapped[int | None] = mapped_column(BigInteger)


class LshLog(Base):
    """The buckets one clustering batch wrote to the newest tier of lsh_bands (on PostgreSQL
    to the current run; signed 64-bit integers, little-endian), under a random id; emptied
    when the tier is merged into a run (when the run's filter is brought up to date). A
    lookup asks the newest tier (the current run) for the buckets the log holds, and a merge
    adds them to the run's filter without reading the run (archive.dedup)."""

    __tablename__ = "lsh_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    buckets: Mapped[bytes] = mapped_column(LargeBinary)


class SearchDoc(Base):
    """An article's entry in the search index (archive.search): which version is indexed
    and its place in newest-first order (`doc_id`, also the rowid of the SQLite FTS5
    table `search_fts`, made by the migrations, not here). On PostgreSQL `vector` holds
    the tokens' int4 codes in text order (archive.search.token_code; GIN-indexed in
    two halves, SEARCH_GIN_HALVES, made by migration 0023 and the index's rebuild); on
    SQLite it stays empty. `site_id` is the article's site,
    kept here so that a site's newest entries come off one index (a `site:` filter)."""

    __tablename__ = "search_docs"
    __table_args__ = (Index("ix_search_docs_site_doc", "site_id", "doc_id"),)

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    doc_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    version: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(Integer)
    vector: Mapped[list[int] | None] = mapped_column(ARRAY(Integer).with_variant(Text(), "sqlite"))


class SearchCommonCode(Base):
    """A token code common enough in the index (PostgreSQL) that its document count is kept
    in `search_code_counts` (archive.search.refresh_common_codes chooses them); empty on
    SQLite, whose FTS5 index counts a token itself."""

    __tablename__ = "search_common_codes"

    code: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class SearchCodeCount(Base):
    """How many index entries hold a common code, as rows to add up: the triggers of
    migration 0021 append one row a code for each statement that inserts, deletes or
    changes entries (+n or -n, never an update: writers never wait on one another's
    rows), and `refresh_common_codes` folds them into one row a code now and then."""

    __tablename__ = "search_code_counts"
    __table_args__ = (Index("ix_search_code_counts_code", "code", postgresql_include=["docs"]),)

    # a statement appends a row for each common code it touches: int8 on PostgreSQL
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    code: Mapped[int] = mapped_column(Integer)
    docs: Mapped[int] = mapped_column(BigInteger)


class CollectionKind(enum.StrEnum):
    SAVED = "saved"  # a query with filters, re-run at export time
    FROZEN = "frozen"  # a fixed list of articles, each at the version it had when added


class Collection(Base):
    """An analyst's named set of articles (archive.collections): a saved query and its
    filters, or a frozen list of items."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default=CollectionKind.FROZEN.value)
    description: Mapped[str | None] = mapped_column(Text)
    query: Mapped[str | None] = mapped_column(Text)  # saved: the search query
    filters: Mapped[dict[str, Any] | None]  # saved: {"site", "since", "until"} (ISO dates)
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    items: Mapped[list[CollectionItem]] = relationship(
        back_populates="collection", cascade="all, delete-orphan"
    )


class CollectionItem(Base):
    """An article in a frozen collection, pinned at the version it had when added."""

    __tablename__ = "collection_items"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), primary_key=True, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)

    collection: Mapped[Collection] = relationship(back_populates="items")


class LoginFailure(Base):
    """A failed login (archive.users.login_blocked): kept in the database so that every
    process of `serve` counts the same attempts; rows older than an hour are deleted."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))  # the client's address
    at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """Someone who logs in to the web UI (archive.users); the password only as an argon2 hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login: Mapped[datetime | None]
