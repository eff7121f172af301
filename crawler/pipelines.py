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

A known article fetched again (a revisit, `--refresh`, or a feed saying it changed) is a
check: a 304, or a page byte for byte as archived (kept as a WARC revisit record, not
extracted again), only records the check; a page whose record differs makes a version;
404/410, a soft 404 and a redirect elsewhere are takedowns, whose evidence is archived at
once but which are applied when the run ends, and not at all if the site turned out to
be unreachable (crawler.revisits, archive.revisit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from scrapy.crawler import Crawler
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from twisted.internet import task

from archive.alerts import MASS_GONE_STAT, REVISIT_STAT
from archive.db import is_disconnect, retrying
from archive.models import utcnow
from archive.revisit import judge_revisits
from archive.store import (
    ArticleFields,
    Check,
    Fetch,
    Takedown,
    add_snapshot,
    add_snapshots,
    apply_takedown,
    derive_underived,
    record_checks,
    record_failed_checks,
    save_article,
    save_new_articles,
    update_derived,
)
from archive.warc import payload_digest
from crawler.derive import DeriveProcess, Deriver
from crawler.extract import EXTRACTOR_VERSION, Article, extract
from crawler.extract.decode import Decoded, decode_page
from crawler.items import FetchedPage
from crawler.revisits import redirect_kind, soft_404_phrase
from crawler.runstate import RunState

log = logging.getLogger(__name__)

BATCH_SIZE = 50
BATCH_SECONDS = 0.5
DEADLOCK_RETRIES = 3

# page: an article page to store; revisit: a known article's page, byte for byte as
# archived (a WARC revisit record); check: a 304; evidence: the answer that shows a
# known article gone or moved (its takedown waits for the end of the run)
PendingKind = Literal["page", "revisit", "check", "evidence"]


def is_deadlock(exc: Exception) -> bool:
    """PostgreSQL's deadlock_detected or serialization_failure (SQLite waits instead)."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("40P01", "40001")


T = TypeVar("T")


def deadlock_retrying(work: Callable[[], T], what: str) -> T:
    """`work()` (one whole transaction), done again when PostgreSQL ended it for a deadlock
    with another process (it rolled back whole), up to DEADLOCK_RETRIES times; done
    again meanwhile while the connection is lost (archive.db.retrying)."""
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return retrying(work, what)
        except OperationalError as exc:
            if not is_deadlock(exc):
                raise
            log.warning("%s: a deadlock with another process (%d); again", what, attempt + 1)
    return retrying(work, what)


@dataclass
class Pending:
    item: FetchedPage
    fetch: Fetch | None  # None for a 304: nothing is archived
    fields: ArticleFields | None  # None: extraction failed, keep the raw page only
    problem: str = ""
    kind: PendingKind = "page"
    as_new: bool = False  # a redirect target: stored as the article at its own URL


@dataclass
class Stored:
    """What storing a batch did: each page's outcome, the pages that could not be stored
    and why, and the new and changed articles to derive now that they have committed."""

    outcomes: list[tuple[Pending, str]]
    failed: list[tuple[Pending, Exception]]
    to_derive: list[int]


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
    #: A crawl of one site hands its derived data to a second process once it is big
    #: enough (`crawl.derive_process_after`, crawler.derive); workers (crawler.worker) are
    #: themselves the unit that scales, and derive in their own process.
    derive_process = True

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.pending: list[Pending] = []
        self.takedowns: list[Takedown] = []
        self.timer: task.LoopingCall | None = None
        self.deriver: Deriver | None = None

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

    async def close_spider(self) -> None:
        # (a coroutine, as Scrapy (2.19 here) asks of a pipeline's close_spider that waits: a
        # Deferred returned was a ScrapyDeprecationWarning in every worker's log)
        self.store_the_rest()
        self.finish_derived()
        self.finish_revisits()

    def store_the_rest(self) -> None:
        """The run's end: no more timed commits; commit what waits."""
        if self.timer is not None and self.timer.running:
            self.timer.stop()
        self.commit(wait=True)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, FetchedPage):
            return item
        if item.known is not None:
            self.run.counters.revisits_checked += 1
        try:
            if item.status == 304:
                self.queue_check(item)
            elif item.status in (404, 410):
                self.queue_gone(item)
            else:
                self.queue_page(item)
        except OSError as exc:  # its WARC record cannot be written (the data dir is full)
            log.error("could not archive %s: %s", item.url, exc)
            self.unstored(item, exc)
        item.body = b""  # the bytes are in the WARC file; do not keep them in memory
        return item

    def enqueue(self, pending: Pending) -> None:
        self.pending.append(pending)
        if len(self.pending) >= BATCH_SIZE:
            self.commit()

    # --- pages ----------------------------------------------------------------------------

    def queue_page(self, item: FetchedPage) -> None:
        run = self.run
        site = run.site
        known = item.known
        redirect = None
        if known is not None and item.requested_url and item.url != item.requested_url:
            redirect = redirect_kind(site, item.requested_url, item.url)
            if redirect not in ("same", "article"):
                self.queue_takedown(
                    item, "gone", {"reason": f"redirect_{redirect}", "location": item.url}
                )
                return
        if (
            known is not None
            and redirect in (None, "same")
            and known.payload_digest is not None
            and known.payload_digest == payload_digest(item.body)
        ):
            self.queue_revisit(item)  # the same bytes: the same record, nothing to extract
            return
        warnings: list[str] | None = None
        # decoded with the response's header too: a charset only the header names
        decoded = decode_page(item.body, header_value(item.headers, "content-type"))
        text = decoded.text
        try:
            article = extract(text, url=item.url, selectors=site.selectors.given())
        except Exception as exc:  # extract() must not raise; if it does, keep the page anyway
            log.exception("extract() raised on %s", item.url)
            fields, problem, text = None, f"extraction raised {type(exc).__name__}: {exc}", ""
        else:
            fields, problem = article_fields(article), ""
            warnings = article.warnings or None
        phrase = soft_404_phrase(
            run.policy, text, fields.title if fields else None, fields.body if fields else None
        )
        if phrase is not None and redirect != "article":
            if known is not None:
                self.queue_takedown(item, "gone", {"reason": "soft_404", "phrase": phrase})
            else:  # a listed link that never worked
                run.error(item.url, "soft_404", f"the page says {phrase}")
                item.outcome = "missing"
            return
        if fields is not None and not fields.title and not fields.body:
            fields, problem = None, "no title and no body found"
        if fields is not None and site.keywords and known is None:
            text = f"{fields.title or ''}\n{fields.body}"
            if not any(keyword in text for keyword in site.keywords):
                assert self.crawler.stats is not None
                self.crawler.stats.inc_value("ufarchive/keyword_filtered")
                item.outcome = "filtered"
                return
        fetch = self.archive_raw(run, item, sync=False)
        record_decoding(fetch, decoded, warnings)
        if redirect == "same" and known is not None:  # the same article at a new address
            fetch.canonical_url = run.site.canonical(known.url)
        elif redirect == "article" and known is not None:
            self.takedowns.append(
                Takedown(
                    known.article_id, "moved", item.fetched_at, {"status": item.status},
                    run.run_id, item.url, fetch.canonical_url,
                )
            )  # fmt: skip
        self.enqueue(Pending(item, fetch, fields, problem, as_new=redirect == "article"))

    def queue_revisit(self, item: FetchedPage) -> None:
        known = item.known
        assert known is not None and known.record_id is not None and known.fetched_at
        assert known.payload_digest is not None
        run = self.run
        location = run.warc.write_revisit(
            item.url,
            method=item.method,
            request_headers=item.request_headers,
            status=item.status,
            reason=item.reason,
            response_headers=item.headers,
            payload_digest=known.payload_digest,
            refers_to=(known.record_id, known.snapshot_url or known.url, known.fetched_at),
            fetched_at=item.fetched_at,
            ip_address=item.ip_address,
            sync=False,
        )
        fetch = self.fetch_of(run, item, location, len(item.body))
        fetch.record_type, fetch.refers_to_id = "revisit", known.snapshot_id
        self.enqueue(Pending(item, fetch, None, kind="revisit"))

    def queue_check(self, item: FetchedPage) -> None:
        if item.known is None:
            return
        self.enqueue(Pending(item, None, None, kind="check"))

    def queue_gone(self, item: FetchedPage) -> None:
        if item.known is None:
            # A listed link that never worked: an error to fix, not a page to preserve (it
            # would be archived again on every run).
            self.run.error(item.url, f"http_{item.status}", f"{item.status} {item.reason}")
            item.outcome = "missing"
            return
        self.queue_takedown(item, "gone", {"status": item.status})

    def queue_takedown(
        self, item: FetchedPage, kind: Literal["gone", "moved"], detail: dict[str, Any]
    ) -> None:
        """Archive the answer now (the evidence); mark the article when the run ends."""
        known = item.known
        assert known is not None
        run = self.run
        self.takedowns.append(Takedown(known.article_id, kind, item.fetched_at, detail, run.run_id))
        self.enqueue(Pending(item, self.archive_raw(run, item, sync=False), None, kind="evidence"))

    # --- storing --------------------------------------------------------------------------

    def commit(self, wait: bool = False) -> None:
        """Sync the WARC file, then store every pending page in one transaction. Pages that
        cannot be stored are recorded as errors of kind "store" and fail the run; they are
        not known to the archive, so the next run fetches them again. While the derive
        process writes, the pages wait for a later call (up to 4 batches), unless `wait`."""
        if not self.pending:
            return
        deriver = self.deriver
        if (
            not wait
            and deriver is not None
            and len(self.pending) < BATCH_SIZE * 4
            and deriver.writer_busy()
        ):
            return
        batch, self.pending = self.pending, []
        try:
            stored = self.store_pages(batch)
        except (SQLAlchemyError, OSError) as exc:  # the batch's transaction rolled back
            self.batch_unstored(batch, exc)
            return
        self.after_store(stored)

    def batch_unstored(self, batch: list[Pending], exc: Exception) -> None:
        """The batch could not be stored: logged (the database's or the disk's error in a
        line; anything else, a bug, with its traceback) and its pages recorded."""
        if isinstance(exc, SQLAlchemyError | OSError):
            log.error("could not store a batch of %d pages: %s", len(batch), exc)
        else:
            log.error("could not store a batch of %d pages", len(batch), exc_info=exc)
        for page in batch:
            if page.item.outcome is None:
                self.unstored(page.item, exc)

    def unstored(self, item: FetchedPage, exc: Exception) -> None:
        self.run.unstored += 1
        item.outcome = "unstored"
        # the driver's error: SQLAlchemy's own adds lines of SQL
        cause = getattr(exc, "orig", None) or exc
        first_line = next(iter(str(cause).strip().splitlines()), "")
        message = f"{type(cause).__name__}: {first_line}"
        self.run.first_store_error = self.run.first_store_error or message
        self.run.error(item.url, "store", f"not stored: {message}")

    def store_pages(self, batch: list[Pending]) -> Stored:
        """Sync the WARC file and store the batch: the database's part of a commit, which
        touches nothing of the run but its sessions and WARC file (a worker runs it in a
        thread, crawler.worker.WorkerPipeline); `after_store` does the counting."""
        run = self.run
        run.warc.sync()
        # Two crawl processes inserting the same new URLs in other orders can each wait
        # for the other's row (PostgreSQL ends one with a deadlock error): the whole batch
        # rolled back, so it is stored again, now past the other's rows.
        outcomes, retry, failed, to_derive = deadlock_retrying(
            lambda: self.store_batch(batch), f"storing a batch of {len(batch)} pages"
        )
        for page in retry:  # now the other row is visible: this becomes an update
            try:
                with run.sessions() as session, session.begin():
                    article_id, outcome = self.store_page(session, page, expect_new=False)
                    if article_id is not None and outcome in ("new", "changed"):
                        update_derived(session, [article_id])
            except SQLAlchemyError as exc:  # not a race after all: this page cannot be stored
                log.exception("could not store %s", page.item.url)
                failed.append((page, exc))
                continue
            outcomes.append((page, outcome))
        return Stored(outcomes, failed, to_derive)

    def after_store(self, stored: Stored) -> None:
        """A stored batch's outcomes counted, its failures recorded, its new and changed
        articles handed to the deriver."""
        for page, cause in stored.failed:
            self.unstored(page.item, cause)
        for page, outcome in stored.outcomes:
            self.count(page, outcome)
        self.hand_over_derived(stored.to_derive)

    def count(self, page: Pending, outcome: str) -> None:
        run = self.run
        page.item.outcome = outcome
        counters = run.counters
        if outcome in ("new", "changed", "unchanged", "failed"):
            counter = f"articles_{outcome}"
            setattr(counters, counter, getattr(counters, counter) + 1)
        if outcome == "failed":
            run.error(page.item.url, "extract", page.problem)
        if page.kind == "check":
            counters.revisits_not_modified += 1
        known = page.item.known
        restored = outcome in ("changed", "unchanged") and not page.as_new
        if known is not None and known.status != "live" and restored:
            counters.articles_restored += 1

    def store_batch(
        self, batch: list[Pending]
    ) -> tuple[
        list[tuple[Pending, str]], list[Pending], list[tuple[Pending, Exception]], list[int]
    ]:
        """Store the pages in one transaction: (outcomes, pages another process stored
        first, pages that could not be stored and why, new and changed articles for the
        deriver once the transaction has committed)."""
        outcomes: list[tuple[Pending, str]] = []
        retry: list[Pending] = []
        failed: list[tuple[Pending, Exception]] = []
        with self.run.sessions() as session, session.begin():
            checks = [page for page in batch if page.kind in ("check", "revisit")]
            if checks:
                try:
                    with session.begin_nested():
                        self.store_checks(session, checks)
                    outcomes.extend((page, "unchanged") for page in checks)
                except SQLAlchemyError as exc:
                    if isinstance(exc, OperationalError) and is_deadlock(exc):
                        raise
                    log.exception("could not record %d checks", len(checks))
                    failed.extend((page, exc) for page in checks)
            to_cluster: list[int] = []
            others = [page for page in batch if page.kind not in ("check", "revisit")]
            fresh = [page for page in others if self.plainly_new(page)]
            pages = [
                (p.fetch, p.fields) for p in fresh if p.fetch is not None and p.fields is not None
            ]
            if len(pages) > 1:  # together, in a few statements (archive.store)
                try:
                    with session.begin_nested():
                        ids = save_new_articles(session, self.run.site_id, pages, self.run.policy)
                except SQLAlchemyError as exc:  # one of them: each is stored on its own below
                    if is_deadlock(exc) or is_disconnect(exc):
                        raise
                else:
                    outcomes.extend((page, "new") for page in fresh)
                    to_cluster.extend(ids)
                    others = [page for page in others if not self.plainly_new(page)]
            for page in others:
                try:
                    with session.begin_nested():
                        article_id, outcome = self.store_page(session, page)
                except IntegrityError:
                    retry.append(page)  # another process stored this URL meanwhile
                    continue
                except SQLAlchemyError as exc:  # this page only: its SAVEPOINT rolled back
                    if is_deadlock(exc) or is_disconnect(exc):
                        raise  # the whole transaction is gone: the batch is stored again
                    log.exception("could not store %s", page.item.url)
                    failed.append((page, exc))
                    continue
                outcomes.append((page, outcome))
                if article_id is not None and outcome in ("new", "changed"):
                    to_cluster.append(article_id)
            if self.deriver is None:
                update_derived(session, to_cluster)  # in the same transaction as the articles
                to_cluster = []
        return outcomes, retry, failed, to_cluster

    def store_checks(self, session: Any, pages: list[Pending]) -> None:
        """304s and identical pages of a batch: their revisit records, then the checks,
        a few statements for the lot (a revisit run is mostly these)."""
        run = self.run
        records: list[tuple[Fetch, int | None]] = []
        checks: list[Check] = []
        for page in pages:
            known = page.item.known
            assert known is not None
            if page.fetch is not None:
                records.append((page.fetch, known.article_id))
            checks.append(Check(known.article_id, page.item.fetched_at, run.run_id))
        add_snapshots(session, records)
        record_checks(session, checks, run.policy)

    @staticmethod
    def plainly_new(page: Pending) -> bool:
        """An article page of a URL the archive did not have, not redirected elsewhere."""
        item = page.item
        return (
            page.kind == "page" and page.fetch is not None and page.fields is not None
            and (page.as_new or item.known is None) and item.url == item.requested_url
        )  # fmt: skip

    def store_page(
        self, session: Any, page: Pending, expect_new: bool | None = None
    ) -> tuple[int | None, str]:
        known = None if page.as_new else page.item.known
        run = self.run
        if page.kind in ("check", "revisit"):  # a retry: one at a time
            self.store_checks(session, [page])
            return None, "unchanged"
        assert page.fetch is not None
        if page.kind == "evidence":
            assert known is not None
            add_snapshot(session, page.fetch, known.article_id)
            return known.article_id, "evidence"
        if page.fields is None:
            add_snapshot(session, page.fetch, known.article_id if known else None)
            return None, "failed"
        if expect_new is None:
            expect_new = self.plainly_new(page)
        return save_article(
            session, run.site_id, page.fetch, page.fields, expect_new, policy=run.policy
        )

    # --- derived data (crawler.derive) -------------------------------------------------------

    def hand_over_derived(self, ids: list[int]) -> None:
        """After a commit: send its new and changed articles to the derive process (if it
        is gone, derive them here; failing that, the run's end does), and start the process
        once the run is big enough."""
        if ids and self.deriver is not None and not self.deriver.send(ids):
            try:
                with self.run.sessions() as session, session.begin():
                    update_derived(session, ids)
            except SQLAlchemyError as exc:  # stored all the same: derive_leftovers at the end
                log.error("could not derive %d stored articles: %s", len(ids), exc)
        after = self.run.settings.crawl.derive_process_after
        if self.deriver is None and self.derive_process and after is not None:
            counters = self.run.counters
            if counters.articles_new + counters.articles_changed >= after:
                try:
                    self.deriver = DeriveProcess(self.run.settings.database_url)
                except OSError as exc:  # no process to be had: derive here, as before
                    log.error("could not start the derive process: %s", exc)
                    self.derive_process = False
                    return
                log.info("deriving in a second process from now on")
                assert self.crawler.stats is not None
                self.crawler.stats.set_value("ufarchive/derive_process", 1)

    def finish_derived(self) -> None:
        """Wait for the deriver (the derive process, or a worker's pass), then derive here
        whatever of the site is still missing from the index (what it could not do, or a
        killed run or worker left)."""
        deriver, self.deriver = self.deriver, None
        if deriver is not None:
            deriver.finish()
        if self.derive_process or deriver is not None:
            self.derive_leftovers()

    def derive_leftovers(self) -> None:
        """Derive the site's articles still missing from the index, in chunks."""
        run = self.run
        try:
            left = derive_underived(run.sessions, run.site_id)
        except SQLAlchemyError as exc:  # the next run tries again
            log.error("could not derive %s's remaining articles: %s", run.site.name, exc)
            return
        if left:
            log.info("derived %d articles the derive process had not", left)

    # --- the end of the run -----------------------------------------------------------------

    def finish_revisits(self) -> None:
        """Judge the run's revisits as a whole, then mark the takedowns (unless the site was
        unreachable) and reschedule the revisits that failed, in one transaction."""
        run = self.run
        counters = run.counters
        gone = sum(1 for t in self.takedowns if t.kind == "gone")
        verdict = judge_revisits(
            run.policy, counters.revisits_checked, len(run.failed_checks), gone,
            run.start_requests, run.start_responses_ok,
        )  # fmt: skip
        counters.revisits_failed = len(run.failed_checks)
        counters.unreachable = verdict.unreachable
        run.verdict = verdict
        stats = self.crawler.stats
        assert stats is not None
        if verdict.message:  # for the run's row, and archive.alerts
            stats.set_value(REVISIT_STAT, verdict.message)
        if verdict.mass_gone:
            stats.set_value(MASS_GONE_STAT, 1)
        if not self.takedowns and not run.failed_checks:
            return
        if verdict.unreachable and self.takedowns:
            log.warning(
                "%s unreachable (%s): %d takedowns not applied",
                run.site.name, verdict.message, len(self.takedowns),
            )  # fmt: skip
        try:
            with run.sessions() as session, session.begin():
                if not verdict.unreachable:
                    for takedown in self.takedowns:
                        if apply_takedown(session, takedown, run.policy):
                            counter = (
                                "articles_gone" if takedown.kind == "gone" else "articles_moved"
                            )
                            setattr(counters, counter, getattr(counters, counter) + 1)
                record_failed_checks(session, run.failed_checks, utcnow(), run.policy)
        except SQLAlchemyError as exc:
            log.exception("could not record the revisits' findings")
            run.error(None, "store", f"takedowns not stored: {type(exc).__name__}")
            run.unstored += len(self.takedowns)
        self.takedowns = []

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
        return self.fetch_of(run, item, location, len(item.body))

    def fetch_of(self, run: RunState, item: FetchedPage, location: Any, length: int) -> Fetch:
        headers: dict[str, str] = {}
        for key, value in item.headers:
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return Fetch(
            url=item.url,
            status=item.status,
            headers=headers,
            fetched_at=item.fetched_at,
            warc=location,
            payload_length=length,
            run_id=run.run_id,
            canonical_url=run.site.canonical(item.url),
        )
