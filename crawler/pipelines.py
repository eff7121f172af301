"""FetchedPage -> the archive: extract, write the WARC record, then store (the one write path).

Order matters for "nothing half-written": the WARC record is on disk (fsynced) before
the transaction that points at it commits, and article, snapshot and version commit
together. A crash in between leaves an unreferenced WARC record, never a dangling row.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler
from sqlalchemy.exc import IntegrityError

from archive.store import ArticleFields, Fetch, mark_gone, mark_seen, save_article, save_unparsed
from crawler.extract import EXTRACTOR_VERSION, extract
from crawler.items import FetchedPage
from crawler.runstate import RunState

log = logging.getLogger(__name__)


class ArchivePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ArchivePipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, FetchedPage):
            return item
        run: RunState = self.crawler.spider.run  # type: ignore[union-attr]
        if item.status == 304:
            self.store_not_modified(run, item)
        elif item.status in (404, 410):
            self.store_gone(run, item)
        else:
            self.store_page(run, item)
        item.body = b""  # the bytes are in the WARC file; do not keep them in memory
        return item

    def store_not_modified(self, run: RunState, item: FetchedPage) -> None:
        if item.known is None:
            return
        with run.sessions() as session, session.begin():
            mark_seen(session, item.known.article_id, item.fetched_at)
        run.counters.articles_unchanged += 1
        item.outcome = "not_modified"

    def store_gone(self, run: RunState, item: FetchedPage) -> None:
        if item.known is None:
            # A listed link that never worked: an error to fix, not a page to preserve (it
            # would be archived again on every run).
            run.error(item.url, f"http_{item.status}", f"{item.status} {item.reason}")
            item.outcome = "missing"
            return
        fetch = self.archive_raw(run, item)  # the evidence that the page went away
        with run.sessions() as session, session.begin():
            changed = mark_gone(session, item.known.article_id, fetch)
        if changed:
            run.counters.articles_gone += 1
        item.outcome = "gone"

    def store_page(self, run: RunState, item: FetchedPage) -> None:
        site = run.site
        try:
            article = extract(item.body, url=item.url, selectors=site.selectors.given())
        except Exception as exc:
            log.exception("extract() raised on %s", item.url)
            article = None
            problem = f"extraction raised {type(exc).__name__}: {exc}"
        else:
            problem = "no title and no body found"
        fields = ArticleFields.from_dict(article.to_dict(), EXTRACTOR_VERSION) if article else None
        if fields is None or (not fields.title and not fields.body):
            fetch = self.archive_raw(run, item)
            with run.sessions() as session, session.begin():
                save_unparsed(session, fetch, item.known.article_id if item.known else None)
            run.error(item.url, "extract", problem)
            run.counters.articles_failed += 1
            item.outcome = "failed"
            return
        if site.keywords and not any(
            k in f"{fields.title or ''}\n{fields.body}" for k in site.keywords
        ):
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("ufarchive/keyword_filtered")
            item.outcome = "filtered"
            return
        fetch = self.archive_raw(run, item)
        outcome = self.save(run, fetch, fields)
        setattr(
            run.counters, f"articles_{outcome}", getattr(run.counters, f"articles_{outcome}") + 1
        )
        item.outcome = outcome

    def save(self, run: RunState, fetch: Fetch, fields: ArticleFields) -> str:
        # Two crawl processes may insert the same new URL at once: the loser of the unique
        # canonical_url race retries and finds the winner's row.
        for attempt in (1, 2):
            try:
                with run.sessions() as session, session.begin():
                    return save_article(session, run.site_id, fetch, fields)[1]
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def archive_raw(self, run: RunState, item: FetchedPage) -> Fetch:
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
        )
