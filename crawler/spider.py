"""ONE generic spider, driven by a site file; no Python per site.

`scrapy crawl news -a site=NAME` or `ufarchive crawl NAME`. It follows listing pages
(`follow_url_pattern`), fetches article pages (`article_url_pattern`), reads feeds and
sitemaps (indexes and `lastmod`), stays inside `allowed_domains`, and is bounded by
`max_pages` and the depth limit. Known articles are fetched again when they are due for
a revisit (archive.revisit: by age and history, within `revisit.max_revisits` of the
budget, most overdue first; asked first, by crawler.checks), when a feed or sitemap says
they changed, or with `refresh`; always conditionally. Pagination stops at a listing page that brings no
article the archive lacks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import task
from twisted.python.failure import Failure

from archive.db import check_schema, make_engine, make_sessionmaker
from archive.models import RunStatus, utcnow
from archive.revisit import revisit_budget
from archive.settings import load_settings
from archive.store import (
    Known,
    due_articles,
    ensure_site,
    known_articles,
    known_by_ids,
    start_run,
)
from archive.warc import WarcFileWriter
from crawler.boundary import RefusedRequestError
from crawler.extract.decode import decode_html
from crawler.items import FetchedPage
from crawler.links import feed_entries, page_links, sitemap_entries
from crawler.middlewares import META_KEY, Answer
from crawler.runstate import RunState
from crawler.sites import SiteConfig, load_site_file

log = logging.getLogger(__name__)

ARTICLE_STATUSES = [304, 404, 410]
REVISIT_BATCH = 200
FLUSH_SECONDS = 1.0


class NewsSpider(scrapy.Spider):
    name = "news"
    run: RunState
    allowed_domains: list[str]

    def __init__(
        self,
        site: str | None = None,
        run_id: str | int | None = None,
        refresh: str | bool = False,
        trigger: str = "manual",
        **kwargs: Any,
    ) -> None:
        if not site:
            raise ValueError("the news spider needs a site: scrapy crawl news -a site=NAME")
        super().__init__(name=self.name, **kwargs)
        self.site_name = site
        self.given_run_id = int(run_id) if run_id not in (None, "") else None
        self.refresh = refresh is True or str(refresh).lower() in ("1", "true", "yes")
        self.trigger = trigger
        self.scheduled: set[str] = set()
        self.budget_used = 0
        self._flusher: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> NewsSpider:
        spider: NewsSpider = super().from_crawler(crawler, *args, **kwargs)
        spider.run = spider.open_run()
        spider.allowed_domains = list(spider.site.allowed_domains)
        crawler.signals.connect(spider.on_opened, signal=signals.spider_opened)
        crawler.signals.connect(spider.on_closed, signal=signals.spider_closed)
        crawler.signals.connect(spider.on_spider_error, signal=signals.spider_error)
        return spider

    # --- the run ----------------------------------------------------------------------------

    @property
    def site(self) -> SiteConfig:
        site: SiteConfig = self.run.site
        return site

    def open_run(self) -> RunState:
        settings = load_settings()
        site = load_site_file(settings.sites_dir / f"{self.site_name}.yaml")
        engine = make_engine(settings.database_url, writer=True)
        check_schema(engine)
        sessions = make_sessionmaker(engine)
        policy = site.revisit_policy(settings.revisit)
        with sessions() as session, session.begin():
            site_row = ensure_site(session, site.name, site.title)
            if self.given_run_id is None:
                run_id = start_run(session, site_row, self.trigger, pid=os.getpid()).id
            else:
                from archive.models import CrawlRun

                run = session.get_one(CrawlRun, self.given_run_id)
                run.pid = os.getpid()
                run_id = run.id
            known = known_articles(session, site_row.id)
            limit = revisit_budget(policy, site.max_pages)
            due = due_articles(session, site_row.id, utcnow(), limit)
            site_id = site_row.id
        warc = WarcFileWriter(
            settings.data_dir, settings.crawl.warc_max_bytes, prefix=f"ufarchive-{site.name}"
        )
        return RunState(
            settings, site, site_id, run_id, engine, sessions, warc, known, policy=policy, due=due
        )

    def on_opened(self, spider: scrapy.Spider) -> None:
        if spider is not self:
            return
        # Scrapy filters in its handler: it puts the root logger at NOTSET on every crawl()
        # and its own "scrapy" logger at DEBUG, so each response and item built a DEBUG
        # record only to drop it ("Crawled (200)", "Scraped from": 3.7 % of a worker's
        # time, py-spy). The level on the loggers skips that. Set once the spider is open:
        # crawl() resets the root's level after it has made the spider (from_crawler).
        level = self.crawler.settings.get("LOG_LEVEL")
        for name in ("", "scrapy"):
            logging.getLogger(name).setLevel(level)
        self._flusher = task.LoopingCall(self.flush)
        self._flusher.start(FLUSH_SECONDS, now=False)

    def flush(self) -> None:
        assert self.crawler.stats is not None
        self.run.flush(self.crawler.stats.get_stats())

    def on_closed(self, spider: scrapy.Spider, reason: str) -> None:
        if spider is not self:
            return
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        status, message = RunStatus.SUCCEEDED, None
        if reason == "shutdown":
            status, message = RunStatus.INTERRUPTED, "stopped before the end (shutdown)"
        elif reason != "finished":
            status, message = RunStatus.FAILED, f"crawl ended early: {reason}"
        elif self.run.start_requests and not self.run.start_responses_ok:
            status, message = RunStatus.FAILED, "no start URL, feed or sitemap answered"
        if self.run.unstored and status == RunStatus.SUCCEEDED:
            status = RunStatus.FAILED
            message = (
                f"{self.run.unstored} pages could not be stored (errors of kind 'store'), "
                f"the first: {self.run.first_store_error}"
            )
        assert self.crawler.stats is not None
        self.run.finish(status, message, self.crawler.stats.get_stats())

    def on_spider_error(self, failure: Failure, response: Response, spider: scrapy.Spider) -> None:
        if spider is self:
            self.run.error(response.url, "spider", failure.getErrorMessage())

    # --- requests -----------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Request | FetchedPage]:
        later: list[Request] = []  # revisits the quick checks leave to the crawl
        asked_all = False  # by quick checks
        if self.run.due and self.run.policy.quick_checks:
            from crawler import checks  # aiohttp: 0.2 s of import, for runs with revisits

            reason = checks.unavailable(self.crawler)
            if reason is None:
                try:
                    async for answer in self.quick_checks(later):
                        yield answer
                    asked_all = True
                except Exception:  # a bug here must not cost the run its revisits
                    log.exception("quick checks failed; the crawl asks the rest itself")
            else:
                log.info("no quick checks: %s", reason)
        site = self.site
        for url, callback in (
            *((u, self.parse_listing) for u in site.start_urls),
            *((u, self.parse_feed) for u in site.feed_urls),
            *((u, self.parse_sitemap) for u in site.sitemap_urls),
        ):
            request = self.request(url, callback, kind="start")
            if request is not None:
                self.run.start_requests += 1
                yield request
        for request in later:
            yield request
        if not asked_all:  # known_request() skips the articles already asked
            for request in self.revisit_requests():
                yield request

    def due_batches(self) -> Iterator[list[Known]]:
        """The run's due articles, read a batch at a time as they are asked."""
        due = self.run.due
        for start in range(0, len(due), REVISIT_BATCH):
            with self.run.sessions() as session:  # closed before the batch is asked
                batch = known_by_ids(session, due[start : start + REVISIT_BATCH])
            yield batch

    def revisit_requests(self) -> Iterator[Request]:
        """Conditional requests for the run's due articles, read as the scheduler asks."""
        for batch in self.due_batches():
            for known in batch:
                request = self.known_request(known, kind="revisit")
                if request is not None:
                    yield request

    async def quick_checks(self, later: list[Request]) -> AsyncIterator[Request | FetchedPage]:
        """The due articles asked by crawler.checks before any other request of the run
        (so the two never add up at a site; a run with many due articles, at a polite
        delay, reaches its listing pages that much later): a 304 as the pipeline's page,
        another answer as the article's request carrying it (no second download); the
        requests that got no answer into `later`, for after the pass (they download, and
        must not add to its requests in flight)."""
        from crawler.checks import QuickChecks

        started = time.monotonic()
        async with QuickChecks(self.crawler, self.site.allowed_domains) as checker:
            batches = self.due_batches()
            batch = next(batches, None)
            # the next batch is asked while this one's answers go through the pipeline
            asking = asyncio.ensure_future(checker.check(batch)) if batch else None
            try:
                while batch is not None and asking is not None:
                    answers = await asking
                    following = next(batches, None)
                    asking = asyncio.ensure_future(checker.check(following)) if following else None
                    for item in self.after_quick_checks(batch, answers, later):
                        yield item
                    batch = following
            finally:
                if asking is not None and not asking.done():
                    asking.cancel()
        stats = self.crawler.stats
        assert stats is not None
        counts = {
            k: stats.get_value(f"ufarchive/quick_checks/{k}", 0) for k in ("304", "other", "none")
        }
        log.info("quick checks: %d 304, %d other answers, %d left to the crawl, in %.1f s",
                 counts["304"], counts["other"], counts["none"], time.monotonic() - started)  # fmt: skip

    def request(self, url: str, callback: Any, kind: str, **kwargs: Any) -> Request | None:
        """A request within the run's page budget (`max_pages`), or None once it is spent."""
        if not self.take_budget():
            return None
        return self.make_request(url, callback, kind, **kwargs)

    def make_request(self, url: str, callback: Any, kind: str, **kwargs: Any) -> Request:
        """`request` with its page of the budget already taken."""
        meta = {"kind": kind, **kwargs.pop("meta", {})}
        if kind == "start" and self.settings.get("JOBDIR"):
            # A resumed crawl (JOBDIR) has seen its start URLs: fetch them again anyway, so
            # the run sees its site answer and picks up what was published meanwhile.
            kwargs["dont_filter"] = True
        return Request(url, callback=callback, errback=self.on_error, meta=meta, **kwargs)

    def take_budget(self) -> bool:
        """One page of the run's budget (`max_pages`), if any is left."""
        if self.budget_used >= self.site.max_pages:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("ufarchive/max_pages_reached")
            return False
        self.budget_used += 1
        return True

    def article_request(self, url: str, updated: datetime | None = None) -> Request | None:
        """Fetch an article unless the archive has it unchanged; conditionally if it has it."""
        canonical = self.site.canonical(url)
        if not self.is_allowed(url):
            return None
        known = self.run.known.get(canonical)
        if known is not None:
            if canonical in self.scheduled:
                return None
            if not self.refresh and not is_newer(updated, known):
                assert self.crawler.stats is not None
                self.crawler.stats.inc_value("ufarchive/known_skipped")
                return None
            return self.known_request(known, kind="article", url=url)
        meta: dict[str, Any] = {"handle_httpstatus_list": ARTICLE_STATUSES}
        if not self.claim(canonical, meta):
            return None
        return self.make_request(url, self.parse_article, kind="article", meta=meta)

    def claim(self, canonical: str, meta: dict[str, Any]) -> bool:
        """Schedule a new article's URL once a run, within the page budget. (`meta`: its
        request's, for a claim made where the request is queued.)"""
        if canonical in self.scheduled or not self.take_budget():
            return False
        self.scheduled.add(canonical)
        return True

    def known_request(self, known: Known, kind: str, url: str | None = None) -> Request | None:
        """A conditional request for a stored article (a revisit, a refresh, a feed update),
        once a run; its answer is a check of the article (crawler.pipelines)."""
        canonical = self.site.canonical(known.url)
        if canonical in self.scheduled:
            return None
        headers: dict[str, str] = {}
        if known.etag:
            headers["If-None-Match"] = known.etag
        if known.last_modified:
            headers["If-Modified-Since"] = known.last_modified
        request = self.request(
            url or known.url,
            self.parse_article,
            kind=kind,
            headers=headers,
            meta={"known": known, "handle_httpstatus_list": ARTICLE_STATUSES},
            dont_filter=True,
        )
        if request is not None:
            self.scheduled.add(canonical)
        return request

    def after_quick_checks(
        self, batch: list[Known], answers: list[FetchedPage | Answer | None], later: list[Request]
    ) -> Iterator[Request | FetchedPage]:
        """A 304 as the pipeline's page; another answer as the article's request carrying
        it; no answer: the article's request, into `later`."""
        for known, answer in zip(batch, answers, strict=True):
            if isinstance(answer, FetchedPage):
                if self.take_budget():  # (the due articles are within it: archive.revisit)
                    self.scheduled.add(self.site.canonical(known.url))
                    yield answer
                continue
            request = self.known_request(known, kind="revisit")
            if request is None:
                continue
            if answer is None:
                later.append(request)
            else:
                request.meta[META_KEY] = answer
                yield request

    def is_allowed(self, url: str) -> bool:
        return self.site.is_allowed_host(urlsplit(url).hostname or "")

    # --- callbacks --------------------------------------------------------------------------

    def parse_listing(self, response: Response) -> Iterator[Request]:
        self.note_start(response)
        text = decode_html(response.body, header(response, b"Content-Type"))[0]
        article_re, follow_re = self.site.article_re, self.site.follow_re
        new_articles = 0
        listings: list[str] = []
        assert self.crawler.stats is not None
        # For the scheduler's "listing pages answer but yield no articles" alert.
        self.crawler.stats.inc_value("ufarchive/listing_pages")
        for url in page_links(text, response.url):
            if not self.is_allowed(url):
                continue
            if article_re.search(url):
                self.crawler.stats.inc_value("ufarchive/article_links")
                if self.site.canonical(url) not in self.run.known:
                    new_articles += 1
                request = self.article_request(url)
                if request is not None:
                    yield request
            elif follow_re is not None and follow_re.search(url):
                listings.append(url)
        depth = int(response.meta.get("depth", 0))
        if depth > 0 and new_articles == 0 and self.run.settings.crawl.stop_pagination_when_no_new:
            assert self.crawler.stats is not None
            self.crawler.stats.inc_value("ufarchive/pagination_stopped")
            return
        for url in listings:
            request = self.request(url, self.parse_listing, kind="listing")
            if request is not None:
                yield request

    def parse_feed(self, response: Response) -> Iterator[Request]:
        self.note_start(response)
        for entry in feed_entries(response.body, response.url):
            request = self.article_request(entry.url, entry.updated)
            if request is not None:
                yield request

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        self.note_start(response)
        kind, entries = sitemap_entries(response.body, response.url)
        if kind == "unknown":
            self.run.error(response.url, "sitemap", "not a sitemap or sitemap index")
        for entry in entries:
            if kind == "sitemapindex":
                if self.is_allowed(entry.url):
                    request = self.request(entry.url, self.parse_sitemap, kind="sitemap")
                    if request is not None:
                        yield request
            elif self.site.article_re.search(entry.url):
                request = self.article_request(entry.url, entry.updated)
                if request is not None:
                    yield request

    def parse_article(self, response: Response) -> Iterator[FetchedPage]:
        request = response.request
        assert request is not None
        yield FetchedPage(
            url=response.url,
            method=request.method,
            request_headers=[
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, vs in request.headers.items()
                for v in vs
            ],
            status=response.status,
            reason=reason_phrase(response.status),
            headers=[
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, vs in response.headers.items()
                for v in vs
            ],
            body=response.body,
            fetched_at=datetime.now(UTC),
            ip_address=str(response.ip_address) if response.ip_address else None,
            known=request.meta.get("known"),
            requested_url=(request.meta.get("redirect_urls") or [request.url])[0],
        )

    def note_start(self, response: Response) -> None:
        if response.meta.get("kind") == "start" and response.status == 200:
            self.run.start_responses_ok += 1

    def on_error(self, failure: Failure) -> None:
        if isinstance(failure.value, RefusedRequestError):
            return  # crawler.boundary recorded it
        request = getattr(failure, "request", None)
        url = None
        if request is not None:  # after redirects, name the URL the site linked
            url = (request.meta.get("redirect_urls") or [request.url])[0]
        kind, message = classify_failure(failure)
        known = request.meta.get("known") if request is not None else None
        if known is not None:  # a check without an answer: not a takedown (archive.revisit)
            self.run.failed_checks.append(known.article_id)
        if kind == "robots":
            return  # obeying robots.txt is not an error; Scrapy counts it in the stats
        self.run.error(url, kind, message)


def classify_failure(failure: Failure) -> tuple[str, str]:
    """A short kind (`http_500`, `timeout`, `too_large`, `redirect_loop` ...) and a message."""
    from scrapy.exceptions import DownloadCancelledError, DownloadTimeoutError

    exc = failure.value
    message = (
        failure.getErrorMessage().strip().splitlines()[0]
        if failure.getErrorMessage().strip()
        else type(exc).__name__
    )
    if isinstance(exc, HttpError):
        status = exc.response.status
        return f"http_{status}", f"{status} {reason_phrase(status)}"
    if isinstance(exc, IgnoreRequest):
        if "max size" in message.lower() or "maxsize" in message.lower():  # a gzip bomb
            return "too_large", message
        if "robots.txt" in message:
            return "robots", message
        if "redirect" in message:
            return "redirect_loop", message
        return "ignored", message
    if isinstance(exc, DownloadCancelledError) or "max size" in message.lower():
        return "too_large", message
    if isinstance(exc, DownloadTimeoutError | TimeoutError) or "timed out" in message.lower():
        return "timeout", message
    return type(exc).__name__, message


def is_newer(updated: datetime | None, known: Known) -> bool:
    """Did a feed or sitemap say the page changed after we last fetched it?"""
    return updated is not None and (known.fetched_at is None or updated > known.fetched_at)


def header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
