"""The one write path into the archive: sites, runs, fetched articles, versions, snapshots.

The caller opens the transaction (`with Session() as s, s.begin():`); every function here
does its part inside it, so an article, its snapshot and its version land together or
not at all. Nothing is ever deleted: an edit becomes a new version, a page that went
away is marked `gone` (or `moved`), and each such change is an `article_events` row.
Every check of a known article sets when it is next due (`archive.revisit`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive.export import local_iso
from archive.models import (
    Article,
    ArticleEvent,
    ArticleStatus,
    ArticleVersion,
    CrawlError,
    CrawlRun,
    EventKind,
    RunStatus,
    SearchDoc,
    Site,
    Snapshot,
    utcnow,
)
from archive.revisit import next_check
from archive.settings import RevisitSettings
from archive.urls import canonical_url
from archive.warc import WarcLocation

#: The fields whose change makes a new version, in DESIGN.md's order.
VERSIONED_FIELDS = ("title", "publish_time", "source", "editor", "author", "contributor", "body")

Outcome = Literal["new", "changed", "unchanged"]
# The tables behind the models, for Core statements on the hot path.
ARTICLES = cast(Table, Article.__table__)
SNAPSHOTS = cast(Table, Snapshot.__table__)
VERSIONS = cast(Table, ArticleVersion.__table__)
EVENTS = cast(Table, ArticleEvent.__table__)
DEFAULT_POLICY = RevisitSettings()


@dataclass(frozen=True)
class Known:
    """What the crawler needs to know about a stored article to check it again politely:
    the validators of its latest full response and, to archive an identical page as a
    WARC revisit record, that response's payload digest, record id, URL and time."""

    article_id: int
    url: str
    status: str
    fetched_at: datetime | None
    etag: str | None
    last_modified: str | None
    payload_digest: str | None = None
    record_id: str | None = None
    snapshot_url: str | None = None
    snapshot_id: int | None = None


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
    record_type: str = "response"  # or "revisit" (identical payload, refers_to_id)
    refers_to_id: int | None = None
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

    def comparable(self) -> list[str | None]:
        """The versioned fields as compared between versions: whitespace runs are one
        space (a re-indented page is not an edit), times as instants."""
        when, _ = self.parsed_publish_time()
        return [
            when.isoformat() if name == "publish_time" and when else squeeze(getattr(self, name))
            for name in VERSIONED_FIELDS
        ]

    def content_hash(self) -> str:
        """The version identity: a hash of every versioned field, as compared."""
        values = self.comparable()
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


_SPACES = re.compile(r"\s+")


def squeeze(value: str | None) -> str | None:
    """Whitespace runs (any kind: ideographic spaces, no-break spaces) as one space."""
    if value is None:
        return None
    return _SPACES.sub(" ", value).strip() or None


def version_fields(version: ArticleVersion) -> ArticleFields:
    """A stored version as the fields extraction would give (for comparing)."""
    when = local_iso(version.publish_time, version.publish_time_offset)
    return ArticleFields(
        title=version.title, publish_time=when, source=version.source, editor=version.editor,
        author=version.author, contributor=version.contributor, body=version.body,
    )  # fmt: skip


def changed_fields(old: ArticleFields, new: ArticleFields) -> list[str]:
    """The versioned fields whose values differ, as compared (`comparable`)."""
    return [
        name
        for name, a, b in zip(VERSIONED_FIELDS, old.comparable(), new.comparable(), strict=True)
        if a != b
    ]


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
    session: Session,
    site: Site,
    trigger: str = "manual",
    pid: int | None = None,
    distributed: bool = False,
) -> CrawlRun:
    """A new run row. A distributed run (crawler.distributed) counts its workers from 0;
    its coordinator, not a crawl process of this host, watches it."""
    import socket

    run = CrawlRun(
        site_id=site.id, trigger=trigger, pid=pid, host=socket.gethostname(),
        workers=0 if distributed else None,
    )  # fmt: skip
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
    revisits_checked: int = 0
    revisits_not_modified: int = 0
    revisits_failed: int = 0
    articles_restored: int = 0
    articles_moved: int = 0
    unreachable: bool = False


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


# In Known's field order (rows become Knowns by position: per-name access on Row cost
# 30 us a row, most of selecting a run's due revisits; bench/revisit.py), then the key.
_KNOWN_COLUMNS = (
    ARTICLES.c.id,
    ARTICLES.c.url,
    ARTICLES.c.status,
    SNAPSHOTS.c.fetched_at,
    SNAPSHOTS.c.etag,
    SNAPSHOTS.c.last_modified,
    SNAPSHOTS.c.payload_digest,
    SNAPSHOTS.c.warc_record_id,
    SNAPSHOTS.c.url,
    SNAPSHOTS.c.id,
    ARTICLES.c.canonical_url,
)
_KNOWN_FROM = ARTICLES.outerjoin(SNAPSHOTS, SNAPSHOTS.c.id == ARTICLES.c.snapshot_id)


def known_articles(session: Session, site_id: int) -> dict[str, Known]:
    """Every stored article of a site by canonical URL, with its latest full response."""
    rows = session.connection().execute(
        select(*_KNOWN_COLUMNS).select_from(_KNOWN_FROM).where(ARTICLES.c.site_id == site_id)
    )
    return {row[-1]: Known(*row[:-1]) for row in rows}


def due_articles(session: Session, site_id: int, now: datetime, limit: int) -> list[int]:
    """The ids of the site's articles due for a revisit at `now`, most overdue first, at
    most `limit`: a range scan of ix_articles_site_next_check that reads nothing else (about
    1 ms for 1,000 of 200,000 articles; reading their rows too took 10-30, bench/revisit.py).
    `known_by_ids` reads what their requests need, a batch at a time."""
    if limit <= 0:
        return []
    return list(
        session.connection().scalars(
            select(ARTICLES.c.id)
            .where(ARTICLES.c.site_id == site_id, ARTICLES.c.next_check <= now)
            .order_by(ARTICLES.c.next_check)
            .limit(limit)
        )
    )


def known_by_ids(session: Session, article_ids: Sequence[int]) -> list[Known]:
    """These articles as the crawler needs them, in the order given."""
    rows = session.connection().execute(
        select(*_KNOWN_COLUMNS[:-1]).select_from(_KNOWN_FROM).where(ARTICLES.c.id.in_(article_ids))
    )
    found = {row[0]: Known(*row[:10]) for row in rows}
    return [found[i] for i in article_ids if i in found]


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
        "record_type": fetch.record_type,
        "refers_to_id": fetch.refers_to_id,
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


def add_snapshots(session: Session, fetches: Sequence[tuple[Fetch, int | None]]) -> None:
    """Many snapshots in one statement (a revisit run's records)."""
    if fetches:
        session.execute(insert(SNAPSHOTS), [snapshot_values(f, a) for f, a in fetches])


def add_snapshot(session: Session, fetch: Fetch, article_id: int | None) -> Snapshot:
    snapshot = Snapshot(**snapshot_values(fetch, article_id))
    session.add(snapshot)
    session.flush()
    return snapshot


def save_article(
    session: Session,
    site_id: int,
    fetch: Fetch,
    fields: ArticleFields,
    expect_new: bool = False,
    policy: RevisitSettings = DEFAULT_POLICY,
) -> tuple[int, Outcome]:
    """Store a fetched article page: new article, new version, or the same version seen again.

    Returns (article id, outcome). A new article -- most of what a crawl stores -- is
    written with Core statements; the ORM's unit of work cost three times as much per
    article in bench/crawl.py, and the crawl's storage step is on its critical path.
    With `expect_new` (the crawler did not know the URL) the lookup is skipped: if another
    process stored the URL meanwhile, the unique canonical URL raises IntegrityError and
    the caller retries without it. A known article that was gone or moved is restored.
    """
    canonical = fetch.canonical_url or canonical_url(fetch.url)
    article = None
    if not expect_new:
        article = session.scalars(
            select(Article).where(Article.canonical_url == canonical)
        ).one_or_none()
    now = fetch.fetched_at
    if article is None:
        return save_new_articles(session, site_id, [(fetch, fields)], policy)[0], "new"
    snapshot = add_snapshot(session, fetch, article.id)
    article.snapshot_id = snapshot.id
    restore(session, article, now, fetch.run_id)
    outcome = add_version_if_changed(session, article, fields, snapshot.id, now, fetch.run_id)
    touch(article, now, policy)
    return article.id, outcome


def save_new_articles(
    session: Session,
    site_id: int,
    pages: Sequence[tuple[Fetch, ArticleFields]],
    policy: RevisitSettings = DEFAULT_POLICY,
) -> list[int]:
    """Store pages of articles the archive does not have, a first version each; their ids,
    in order. Four statements for all of them (multi-row INSERTs, `insertmanyvalues`):
    one at a time, a new article took four round trips, and a crawl's batch of 50 new
    articles is most of what it stores (bench/crawl.py). A URL another process stored
    meanwhile raises IntegrityError for the lot; the caller stores them one by one."""
    if not pages:
        return []
    times = [fields.parsed_publish_time() for _, fields in pages]
    rows = []
    for (fetch, fields), (publish_time, _) in zip(pages, times, strict=True):
        now = fetch.fetched_at
        rows.append({
            "site_id": site_id, "url": fetch.url,
            "canonical_url": fetch.canonical_url or canonical_url(fetch.url),
            "first_seen": now, "last_seen": now, "version": 1, "publish_time": publish_time,
            "content_hash": fields.body_hash(), "last_checked": now, "last_changed": now,
            "next_check": next_check(policy, now, now, now, 1),
        })  # fmt: skip
    article_ids = list(
        session.scalars(
            insert(ARTICLES).returning(ARTICLES.c.id, sort_by_parameter_order=True), rows
        )
    )
    snapshot_ids = list(
        session.scalars(
            insert(SNAPSHOTS).returning(SNAPSHOTS.c.id, sort_by_parameter_order=True),
            [snapshot_values(f, a) for (f, _), a in zip(pages, article_ids, strict=True)],
        )
    )
    session.execute(
        update(ARTICLES).where(ARTICLES.c.id == bindparam("article")),
        [{"article": a, "snapshot_id": s} for a, s in zip(article_ids, snapshot_ids, strict=True)],
    )
    versions = []
    for (fetch, fields), (publish_time, offset), article_id, snapshot_id in zip(
        pages, times, article_ids, snapshot_ids, strict=True
    ):
        versions.append(
            version_values(
                article_id, 1, fields, fields.content_hash(), publish_time, offset, snapshot_id,
                fetch.fetched_at,
            )
        )  # fmt: skip
    session.execute(insert(VERSIONS), versions)
    return article_ids


def touch(article: Article, at: datetime, policy: RevisitSettings) -> None:
    """The article was checked at `at` and found live: seen, and due again per the policy."""
    article.last_seen = max(article.last_seen, at)
    article.last_checked = at
    article.next_check = next_check(
        policy, at, article.first_seen, article.last_changed, article.version
    )


def add_version_if_changed(
    session: Session,
    article: Article,
    fields: ArticleFields,
    snapshot_id: int | None,
    at: datetime,
    run_id: int | None = None,
    is_edit: bool = True,
) -> Literal["changed", "unchanged"]:
    """A new version when a versioned field differs from the current one (as compared:
    whitespace alone is not an edit); else the current version is seen again.

    `is_edit`: the page itself changed (a crawl), so the article's history gets a
    `changed` event and its revisits speed up; `reparse` (a better extractor, the same
    page) passes False.
    """
    current = session.scalars(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article.id, ArticleVersion.version == article.version
        )
    ).one()
    changed = changed_fields(version_fields(current), fields)
    if not changed:
        current.last_seen = max(current.last_seen, at)
        if fields.provenance and current.provenance != fields.provenance:
            # the same fields, read by a newer extractor that says why (reparse)
            current.provenance = fields.provenance
            current.extractor_version = fields.extractor_version
        return "unchanged"
    publish_time, offset = fields.parsed_publish_time()
    article.version += 1
    article.publish_time = publish_time
    article.content_hash = fields.body_hash()
    if is_edit:
        article.last_changed = at
    session.flush()
    session.execute(
        insert(VERSIONS),
        version_values(
            article.id, article.version, fields, fields.content_hash(), publish_time, offset,
            snapshot_id, at,
        ),
    )  # fmt: skip
    if is_edit:
        add_event(
            session, article.id, EventKind.CHANGED, at, run_id, {"fields": changed},
            version=article.version,
        )  # fmt: skip
    return "changed"


def add_event(
    session: Session,
    article_id: int,
    kind: EventKind,
    at: datetime,
    run_id: int | None,
    detail: dict[str, Any],
    version: int | None = None,
) -> None:
    session.execute(
        insert(EVENTS),
        {
            "article_id": article_id, "run_id": run_id, "at": at, "kind": kind.value,
            "version": version, "detail": detail,
        },
    )  # fmt: skip


def restore(session: Session, article: Article, at: datetime, run_id: int | None) -> bool:
    """A gone or moved article answers with its page again: live, with a `restored` event."""
    if article.status == ArticleStatus.LIVE:
        return False
    detail: dict[str, Any] = {"was": article.status}
    if article.moved_to:
        detail["moved_to"] = article.moved_to
    article.status = ArticleStatus.LIVE
    article.gone_at = None
    article.moved_to = None
    article.last_changed = at
    add_event(session, article.id, EventKind.RESTORED, at, run_id, detail)
    return True


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
        version=1, publish_time=publish_time, content_hash=fields.body_hash(), last_checked=at,
        last_changed=at, next_check=at, snapshot_id=snapshot.id,
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


@dataclass(frozen=True)
class Check:
    """A known article answered and is as stored: 304, or a page identical to its last."""

    article_id: int
    at: datetime
    run_id: int | None = None


def record_checks(
    session: Session, checks: Sequence[Check], policy: RevisitSettings = DEFAULT_POLICY
) -> list[int]:
    """Known articles found as stored: seen and checked now, due again per the policy; a
    gone or moved one is restored. Returns the ids restored. Nothing else is written:
    a 304 keeps no snapshot (a page identical to its last keeps a revisit record, which
    the caller stores with `add_snapshots`).

    Core statements, three for a batch: a revisit run is mostly these, and the ORM's
    objects cost 2.5 ms a check (bench/revisit.py). The rare restore goes through the ORM.
    """
    if not checks:
        return []
    ids = list(dict.fromkeys(c.article_id for c in checks))
    rows = {
        row[0]: row
        for start in range(0, len(ids), 500)
        for row in session.connection().execute(
            select(
                ARTICLES.c.id, ARTICLES.c.first_seen, ARTICLES.c.last_changed,
                ARTICLES.c.version, ARTICLES.c.status, ARTICLES.c.last_seen,
            ).where(ARTICLES.c.id.in_(ids[start : start + 500]))
        )
    }  # fmt: skip
    restored = [c for c in checks if rows[c.article_id][4] != ArticleStatus.LIVE]
    for check in restored:  # back: an event, and the age counts from now
        restore(session, session.get_one(Article, check.article_id), check.at, check.run_id)
    session.flush()
    back = {c.article_id: c.at for c in restored}
    updates, versions = [], []
    for check in checks:
        _, first_seen, last_changed, version, _, last_seen = rows[check.article_id]
        changed = back.get(check.article_id, last_changed)
        updates.append({
            "a_id": check.article_id, "seen": max(last_seen, check.at), "at": check.at,
            "due": next_check(policy, check.at, first_seen, changed, version),
        })  # fmt: skip
        versions.append({"a_id": check.article_id, "v": version, "at": check.at})
    session.execute(
        update(ARTICLES)
        .where(ARTICLES.c.id == bindparam("a_id"))
        .values(
            last_seen=bindparam("seen"), last_checked=bindparam("at"), next_check=bindparam("due")
        ),
        updates,
    )
    session.execute(
        update(VERSIONS)
        .where(VERSIONS.c.article_id == bindparam("a_id"), VERSIONS.c.version == bindparam("v"))
        .values(last_seen=bindparam("at")),
        versions,
    )
    return [c.article_id for c in restored]


def record_failed_checks(
    session: Session, article_ids: Iterable[int], at: datetime, policy: RevisitSettings
) -> None:
    """Revisits that got no usable answer: nothing is known, so nothing changes but when
    they are tried again (when they would have been due after a check)."""
    for article in _articles(session, article_ids).values():
        article.next_check = next_check(
            policy, at, article.first_seen, article.last_changed, article.version
        )


def _articles(session: Session, article_ids: Iterable[int]) -> dict[int, Article]:
    ids = list(dict.fromkeys(article_ids))
    found: dict[int, Article] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(
            (a.id, a) for a in session.scalars(select(Article).where(Article.id.in_(chunk)))
        )
    return found


@dataclass(frozen=True)
class Takedown:
    """What a revisit found: the article is gone (404/410, a soft 404, a redirect to the
    home page or a listing) or moved (redirected to another article, `target_url`)."""

    article_id: int
    kind: Literal["gone", "moved"]
    at: datetime
    detail: dict[str, Any]
    run_id: int | None = None
    target_url: str | None = None
    target_canonical: str | None = None


def apply_takedown(
    session: Session, takedown: Takedown, policy: RevisitSettings = DEFAULT_POLICY
) -> bool:
    """Mark the article gone or moved (once: True when its state changed) with an event.
    Nothing is deleted; the evidence is the snapshot the caller stored."""
    article = session.get_one(Article, takedown.article_id)
    article.last_checked = takedown.at
    status = ArticleStatus.GONE if takedown.kind == "gone" else ArticleStatus.MOVED
    if article.status == status and article.moved_to == takedown.target_url:
        article.next_check = next_check(
            policy, takedown.at, article.first_seen, article.last_changed, article.version
        )
        return False
    detail = dict(takedown.detail)
    if takedown.target_url is not None:
        detail["target_url"] = takedown.target_url
        detail["target_article_id"] = session.scalar(
            select(Article.id).where(Article.canonical_url == takedown.target_canonical)
        )
    article.status = status
    article.gone_at = article.gone_at or takedown.at
    article.moved_to = takedown.target_url
    article.last_changed = takedown.at
    article.next_check = next_check(
        policy, takedown.at, article.first_seen, takedown.at, article.version
    )
    add_event(session, article.id, EventKind(takedown.kind), takedown.at, takedown.run_id, detail)
    return True


def save_unparsed(session: Session, fetch: Fetch, article_id: int | None) -> Snapshot:
    """A page whose extraction failed: keep the raw snapshot so that `reparse` can retry."""
    return add_snapshot(session, fetch, article_id)


def update_derived(session: Session, article_ids: Sequence[int]) -> None:
    """Bring what is derived from these articles' current text up to date, in the caller's
    transaction: their republication clusters and their search index entries."""
    if not article_ids:  # most batches of a revisit run: spare the imports (numpy, ...)
        return
    ids = list(dict.fromkeys(article_ids))
    session.flush()
    for start in range(0, len(ids), DERIVE_CHUNK):
        chunk = ids[start : start + DERIVE_CHUNK]
        apply_derived(session, chunk, prepare_derived(session.connection(), chunk))


#: Articles derived at a time: one read of their versions, one clustering pass, one
#: index write.
DERIVE_CHUNK = 500


@dataclass
class DerivedWork:
    """What update_derived writes for some articles, computed from the versions that were
    current when they were read: their index entries (tokenised) and their comparison
    data (shingles, MinHash bands). Computing it takes no lock, so another process can do
    it while the crawl commits (crawler.derive)."""

    items: list[Any]  # archive.search.Indexable, one per article that has a current version
    texts: list[Any]  # archive.search.Entry, in the same order
    prepared: list[Any]  # archive.dedup.Prepared, in the same order


def prepare_derived(conn: Any, article_ids: Sequence[int]) -> DerivedWork:
    """Read these articles' current versions and compute their derived data; no writes."""
    from archive.dedup import prepare
    from archive.search import current_items, entry_texts

    items = current_items(conn, article_ids)
    vectors = conn.dialect.name == "postgresql"
    return DerivedWork(
        items, entry_texts(items, vectors), [prepare(item.article_id, item.body) for item in items]
    )


def apply_derived(
    session: Session, article_ids: Sequence[int], work: DerivedWork, recheck: bool = False
) -> None:
    """Write `work` (for `article_ids`), in the caller's transaction. With `recheck` (work
    computed outside this transaction) an article whose current version has changed since
    is derived again here, from the version now current."""
    from archive.dedup import cluster_articles
    from archive.search import index_entries

    items, texts, prepared = work.items, work.texts, work.prepared
    stale: list[int] = []
    if recheck:
        current = {
            row[0]: row[1]
            for row in session.execute(
                select(Article.id, Article.version).where(Article.id.in_(article_ids))
            )
        }
        fresh = [current.get(item.article_id) == item.version for item in items]
        seen = {item.article_id for item in items}
        stale = [i for i in article_ids if i not in seen and i in current]
        stale += [item.article_id for item, ok in zip(items, fresh, strict=True) if not ok]
        items = [x for x, ok in zip(items, fresh, strict=True) if ok]
        texts = [x for x, ok in zip(work.texts, fresh, strict=True) if ok]
        prepared = [x for x, ok in zip(work.prepared, fresh, strict=True) if ok]
        article_ids = [item.article_id for item in items]
    if article_ids:
        # (clustering takes a lock held to the commit on PostgreSQL, so the entries are
        # written under it too: written first, outside it, four crawl workers waited on
        # one another's index keys instead, bench/distributed.py 20 -> 29 s)
        cluster_articles(session, article_ids, prepared)
        index_entries(session.connection(), article_ids, list(zip(items, texts, strict=True)))
    if stale:
        update_derived(session, stale)


def underived(session: Session, site_id: int) -> list[int]:
    """A site's articles whose current version is not (yet) in the search index: left over
    when a derive process (crawler.derive) or its crawl stopped before deriving them."""
    return list(
        session.scalars(
            select(Article.id)
            .join(
                ArticleVersion,
                (ArticleVersion.article_id == Article.id)
                & (ArticleVersion.version == Article.version),
            )
            .outerjoin(SearchDoc, SearchDoc.article_id == Article.id)
            .where(Article.site_id == site_id)
            .where(SearchDoc.version.is_(None) | (SearchDoc.version != Article.version))
            .order_by(Article.id)
        )
    )


def derive_underived(sessions: Callable[[], Session], site_id: int) -> int:
    """Derive the site's articles still missing from the index (`underived`), a transaction
    per DERIVE_CHUNK: what a derive process, a killed run or a dead worker left. Returns
    how many there were."""
    with sessions() as session:
        left = underived(session, site_id)
    for start in range(0, len(left), DERIVE_CHUNK):
        with sessions() as session, session.begin():
            update_derived(session, left[start : start + DERIVE_CHUNK])
    return len(left)
