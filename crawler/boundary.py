"""A downloader middleware that keeps every request of a crawl inside its site.

The spider filters the links it reads (pages, feeds, sitemaps, `<base>`), but a redirect
is made by Scrapy, and Scrapy's own OffsiteMiddleware lets through any request marked
`dont_filter` (ours are, when they refetch a known article) and drops the others without
a word. Here every request -- start URLs, links, feed and sitemap entries, every hop of
a redirect, robots.txt -- is checked against the site's `allowed_domains` and the
address rules of crawler.addresses when it is scheduled and again before it is sent;
a refused one is recorded as an error of kind `offsite` (or `redirect_refused` for a
redirect's hop) against the URL the site linked, and never fetched. A host name that
crawler.resolver refused to resolve (it leads to an unlisted non-public address) is
recorded as `address_refused` by `AddressRefusalMiddleware`, which sits before the
retry middleware so that a refusal is not retried.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.error import DNSLookupError

from crawler.addresses import refusal
from crawler.resolver import LISTED, REFUSED

log = logging.getLogger(__name__)


class RefusedRequestError(IgnoreRequest):
    """A request that would leave the site; already recorded when raised."""


class SiteBoundaryMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        crawler.signals.connect(self.request_scheduled, signal=signals.request_scheduled)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    def spider_opened(self, spider: Any) -> None:
        site = getattr(getattr(spider, "run", None), "site", None)
        if site is not None:  # the resolver lets the site's listed hosts resolve anywhere
            LISTED.update(h.lower() for h in site.allowed_domains)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SiteBoundaryMiddleware:
        return cls(crawler)

    def request_scheduled(self, request: Request, spider: Any) -> None:
        self.check(request)  # dropped here, Scrapy calls no errback: check() records it

    def process_request(self, request: Request) -> None:
        self.check(request)

    def check(self, request: Request) -> None:
        spider = self.crawler.spider
        site = getattr(getattr(spider, "run", None), "site", None)
        if site is None:  # not our spider (a test's, a shell): nothing to enforce
            return
        reason = refusal(request.url, site.allowed_domains)
        if reason is not None:
            kind = "redirect_refused" if request.meta.get("redirect_urls") else "offsite"
            refuse(self.crawler, request, kind, reason)


class AddressRefusalMiddleware:
    """Records a lookup crawler.resolver refused (and keeps the retry middleware from
    trying it again): it must sit after RetryMiddleware's priority (see crawlsettings)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AddressRefusalMiddleware:
        return cls(crawler)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if not isinstance(exception, DNSLookupError):
            return
        host = (urlparse_cached(request).hostname or "").lower()
        reason = REFUSED.get(host)
        if reason is not None and getattr(self.crawler.spider, "run", None) is not None:
            refuse(self.crawler, request, "address_refused", reason)


def refuse(crawler: Crawler, request: Request, kind: str, reason: str) -> None:
    """Record the refusal against the URL the site linked, and drop the request."""
    redirects = request.meta.get("redirect_urls") or []
    origin = redirects[0] if redirects else request.url
    message = f"{request.url} refused: {reason}"
    if redirects:
        message = f"redirected to {message}"
    assert crawler.stats is not None
    crawler.stats.inc_value(f"ufarchive/{kind}")
    run = crawler.spider.run  # type: ignore[union-attr]
    run.error(origin, kind, message)
    known = request.meta.get("known")
    if known is not None:  # a revisit refused: a check without an answer (archive.revisit)
        run.failed_checks.append(known.article_id)
    raise RefusedRequestError(message)
