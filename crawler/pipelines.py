"""FetchedPage -> the archive: extract, write the WARC record, then store (the one write path).

Order matters for "nothing half-written": WARC records reach the disk (fdatasync) before
the transaction that points at them commits, and an article's row, snapshot and version
commit together. A crash in between leaves unreferenced WARC records, never a dangling
row; the articles of an uncommitted batch are simply not known yet and are fetched again
on the next run.

Article pages are committed in groups (up to BATCH_SIZE pages or BATCH_SECONDS): one
fdatasync and one commit per group instead of per page. Each page has its own SAVEPOINT,
so one bad page (or a race with another crawl process over a new URL) costs only itself.
Measured with bench/crawl.py: per-page syncs and commits kept the crawl below half a bare
spider's rate on this machine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from scrapy.crawler import Crawler
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from twisted.internet import task

from archive.store import (
    ArticleFields,
    Fetch,
    mark_gone,
    mark_seen,
    save_article,
    save_unparsed,
    update_derived,
)
from crawler.extract import EXTRACTOR_VERSION, Article, extract
from crawler.extract.decode import Decoded, decode_page
from crawler.items import FetchedPage
from crawler.runstate import RunState

log = logging.getLogger(__name__)

BATCH_SIZE = 50
BATCH_SECONDS = 0.5
DEADLOCK_RETRIES = 3


def is_deadlock(exc: OperationalError) -> bool:
    """PostgreSQL's deadlock_detected or serialization_failure (SQLite waits instead)."""
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")


@dataclass
class Pending:
    item: FetchedPage
    fetch: Fetch
    fields: ArticleFields | None  # None: extraction failed, keep the raw page only
    problem: str = ""


def article_fields(article: Article) -> ArticleFields:
    """What the archive stores of an extracted article: its fields and their provenance."""
    return ArticleFields.from_dict(article.to_dict(), EXTRACTOR_VERSION, article.provenance_dict())


def record_decoding(fetch: Fetch, decoded: Decoded, warnings: list[str] | None) -> None:
    """The codec, why it was chosen, and the extraction's warnings, for the snapshot."""
    fetch.encoding, fetch.encoding_reason = decoded.encoding, decoded.reason
    fetch.extract_warnings = warnings


def header_value(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


class ArchivePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.pending: list[Pending] = []
        self.timer: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ArchivePipeline:
        return cls(crawler)

    @property
    def run(self) -> RunState:
        run: RunState = self.crawler.spider.run  # type: ignore[union-attr]
        return run

    def open_spider(self) -> None:
        self.timer = task.LoopingCall(self.commit)
        self.timer.start(BATCH_SECONDS, now=False)

    def close_spider(self) -> None:
        if self.timer is not None and self.timer.running:
            self.timer.stop()
        self.commit()

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, FetchedPage):
            return item
        if item.status == 304:
            self.store_not_modified(item)
        elif item.status in (404, 410):
            self.store_gone(item)
        else:
            self.queue_page(item)
        item.body = b""  # the bytes are in the WARC file; do not keep them in memory
        return item

    # --- pages with an article ------------------------------------------------------------

    def queue_page(self, item: FetchedPage) -> None:
        run = self.run
        site = run.site
        warnings: list[str] | None = None
        # decoded with the response's header too: a charset only the header names
        decoded = decode_page(item.body, header_value(item.headers, "content-type"))
        try:
            article = extract(decoded.text, url=item.url, selectors=site.selectors.given())
        except Exception as exc:  # extract() must not raise; if it does, keep the page anyway
            log.exception("extract() raised on %s", item.url)
            fields, problem = None, f"extraction raised {type(exc).__name__}: {exc}"
        else:
            fields, problem = article_fields(article), ""
            warnings = article.warnings or None
            if not fields.title and not fields.body:
                fields, problem = None, "no title and no body found"
        if fields is not None and site.keywords:
            text = f"{fields.title or ''}\n{fields.body}"
            if not any(keyword in text for keyword in site.keywords):
                assert self.crawler.stats is not None
                self.crawler.stats.inc_value("ufarchive/keyword_filtered")
                item.outcome = "filtered"
                return
        fetch = self.archive_raw(run, item, sync=False)
        record_decoding(fetch, decoded, warnings)
        self.pending.append(Pending(item, fetch, fields, problem))
        if len(self.pending) >= BATCH_SIZE:
            self.commit()

    def commit(self) -> None:
        """Sync the WARC file, then store every pending page in one transaction. Pages that
        cannot be stored are recorded as errors of kind "store" and fail the run; they are
        not known to the archive, so the next run fetches them again."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        try:
            self.store(batch)
        except (SQLAlchemyError, OSError) as exc:  # the batch's transaction rolled back
            log.exception("could not store a batch of %d pages", len(batch))
            for page in batch:
                if page.item.outcome is None:
                    self.unstored(page, exc)

    def unstored(self, page: Pending, exc: Exception) -> None:
        self.run.unstored += 1
        page.item.outcome = "unstored"
        # the driver's error: SQLAlchemy's own adds lines of SQL
        cause = getattr(exc, "orig", None) or exc
        first_line = next(iter(str(cause).strip().splitlines()), "")
        self.run.error(page.item.url, "store", f"not stored: {type(cause).__name__}: {first_line}")

    def store(self, batch: list[Pending]) -> None:
        run = self.run
        run.warc.sync()
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                outcomes, retry, failed = self.store_batch(batch)
                break
            except OperationalError as exc:
                # Two crawl processes inserting the same new URLs in other orders can each
                # wait for the other's row (PostgreSQL ends one with a deadlock error): the
                # whole batch rolled back, so store it again, now past the other's rows.
                if not is_deadlock(exc) or attempt == DEADLOCK_RETRIES:
                    raise
                log.warning("batch of %d pages hit a deadlock; storing it again", len(batch))
        for page, cause in failed:
            self.unstored(page, cause)
        for page in retry:  # now the other row is visible: this becomes an update
            try:
                with run.sessions() as session, session.begin():
                    article_id, outcome = self.store_page(session, page, expect_new=False)
                    if article_id is not None and outcome in ("new", "changed"):
                        update_derived(session, [article_id])
            except SQLAlchemyError as exc:  # not a race after all: this page cannot be stored
                log.exception("could not store %s", page.item.url)
                self.unstored(page, exc)
                continue
            outcomes.append((page, outcome))
        for page, outcome in outcomes:
            page.item.outcome = outcome
            counter = f"articles_{outcome}"
            setattr(run.counters, counter, getattr(run.counters, counter) + 1)
            if outcome == "failed":
                run.error(page.item.url, "extract", page.problem)

    def store_batch(
        self, batch: list[Pending]
    ) -> tuple[list[tuple[Pending, str]], list[Pending], list[tuple[Pending, Exception]]]:
        """Store the pages in one transaction: (outcomes, pages another process stored
        first, pages that could not be stored and why)."""
        outcomes: list[tuple[Pending, str]] = []
        retry: list[Pending] = []
        failed: list[tuple[Pending, Exception]] = []
        with self.run.sessions() as session, session.begin():
            to_cluster: list[int] = []
            for page in batch:
                try:
                    with session.begin_nested():
                        article_id, outcome = self.store_page(session, page)
                except IntegrityError:
                    retry.append(page)  # another process stored this URL meanwhile
                    continue
                except SQLAlchemyError as exc:  # this page only: its SAVEPOINT rolled back
                    if isinstance(exc, OperationalError) and is_deadlock(exc):
                        raise  # the whole transaction is gone: the batch is stored again
                    log.exception("could not store %s", page.item.url)
                    failed.append((page, exc))
                    continue
                outcomes.append((page, outcome))
                if article_id is not None and outcome in ("new", "changed"):
                    to_cluster.append(article_id)
            update_derived(session, to_cluster)  # in the same transaction as the articles
        return outcomes, retry, failed

    def store_page(
        self, session: Any, page: Pending, expect_new: bool | None = None
    ) -> tuple[int | None, str]:
        known = page.item.known
        if page.fields is None:
            save_unparsed(session, page.fetch, known.article_id if known else None)
            return None, "failed"
        if expect_new is None:
            # a URL the archive did not have, that was not redirected elsewhere
            expect_new = known is None and page.item.url == page.item.requested_url
        return save_article(session, self.run.site_id, page.fetch, page.fields, expect_new)

    # --- 304, 404, 410 ---------------------------------------------------------------------

    def store_not_modified(self, item: FetchedPage) -> None:
        if item.known is None:
            return
        run = self.run
        with run.sessions() as session, session.begin():
            mark_seen(session, item.known.article_id, item.fetched_at)
        run.counters.articles_unchanged += 1
        item.outcome = "not_modified"

    def store_gone(self, item: FetchedPage) -> None:
        run = self.run
        if item.known is None:
            # A listed link that never worked: an error to fix, not a page to preserve (it
            # would be archived again on every run).
            run.error(item.url, f"http_{item.status}", f"{item.status} {item.reason}")
            item.outcome = "missing"
            return
        fetch = self.archive_raw(run, item, sync=True)  # the evidence that the page went away
        with run.sessions() as session, session.begin():
            changed = mark_gone(session, item.known.article_id, fetch)
        if changed:
            run.counters.articles_gone += 1
        item.outcome = "gone"

    # --- the raw page ---------------------------------------------------------------------

    def archive_raw(self, run: RunState, item: FetchedPage, sync: bool) -> Fetch:
        location = run.warc.write_exchange(
            item.url,
            method=item.method,
            request_headers=item.request_headers,
            status=item.status,
            reason=item.reason,
            response_headers=item.headers,
            body=item.body,
            fetched_at=item.fetched_at,
            ip_address=item.ip_address,
            sync=sync,
        )
        headers: dict[str, str] = {}
        for key, value in item.headers:
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return Fetch(
            url=item.url,
            status=item.status,
            headers=headers,
            fetched_at=item.fetched_at,
            warc=location,
            payload_length=len(item.body),
            run_id=run.run_id,
            canonical_url=run.site.canonical(item.url),
        )
