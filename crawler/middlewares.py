"""Downloader middlewares that replace two of Scrapy's.

Retries that wait: Scrapy's RetryMiddleware reschedules a failed request at once; a
struggling government server then gets hit again immediately. BackoffRetryMiddleware
(reading the same RETRY_* settings) waits before handing the retry back:
`retry_backoff_seconds * 2**n`, or what `Retry-After` asks for, capped at
`retry_after_max_seconds`.

robots.txt for every request: SharedRobotsTxtMiddleware (see its docstring).

A quick check's answer instead of a download: PrefetchedMiddleware (crawler.checks).

Meta-refresh redirects looked for only where the word is: QuickMetaRefreshMiddleware.
"""

from __future__ import annotations

import email.utils
import ipaddress
import re
import time
from dataclasses import dataclass

from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse, Request, Response
from scrapy.responsetypes import responsetypes
from scrapy.robotstxt import RobotParser
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import load_object
from scrapy.utils.response import response_status_message
from twisted.internet import task

RETRY_AFTER_CODES = (429, 503)
#: The request meta key of an answer the crawl takes instead of downloading.
META_KEY = "ufarchive_prefetched"


class BackoffRetryMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("RETRY_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.max_retry_times = settings.getint("RETRY_TIMES")
        self.retry_http_codes = {int(x) for x in settings.getlist("RETRY_HTTP_CODES")}
        self.exceptions_to_retry = tuple(
            load_object(x) if isinstance(x, str) else x
            for x in settings.getlist("RETRY_EXCEPTIONS")
        )
        self.backoff = settings.getfloat("UFARCHIVE_RETRY_BACKOFF_SECONDS", 1.0)
        self.retry_after_max = settings.getfloat("UFARCHIVE_RETRY_AFTER_MAX_SECONDS", 300.0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        return cls(crawler)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        retry = self.retry(request, response_status_message(response.status))
        if retry is None:
            return response
        await wait(self.delay_for(request, response))
        return retry

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        if not isinstance(exception, self.exceptions_to_retry) or request.meta.get(
            "dont_retry", False
        ):
            return None
        retry = self.retry(request, exception)
        if retry is not None:
            await wait(self.delay_for(request, None))
        return retry

    def retry(self, request: Request, reason: str | Exception) -> Request | None:
        assert self.crawler.spider is not None
        return get_retry_request(
            request,
            reason=reason,
            spider=self.crawler.spider,
            max_retry_times=int(request.meta.get("max_retry_times", self.max_retry_times)),
        )

    def delay_for(self, request: Request, response: Response | None) -> float:
        attempt = int(request.meta.get("retry_times", 0))
        delay: float = self.backoff * (2**attempt)
        if response is not None and response.status in RETRY_AFTER_CODES:
            asked = parse_retry_after(response.headers.get(b"Retry-After"))
            if asked is not None:
                delay = min(asked, self.retry_after_max)
        return delay


async def wait(seconds: float) -> None:
    # imported here: importing the reactor installs one, and this module is imported
    # (by crawler.spider) before Scrapy installs the asyncio reactor
    from twisted.internet import reactor

    if seconds > 0:
        await maybe_deferred_to_future(task.deferLater(reactor, seconds, lambda: None))


def parse_retry_after(value: bytes | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# "refresh" in any case, in an ASCII-compatible charset or in UTF-16/32 (NULs between).
_REFRESH = re.compile(rb"r\x00{0,3}e\x00{0,3}f\x00{0,3}r\x00{0,3}e\x00{0,3}s\x00{0,3}h", re.I)
#: Scrapy looks for the tag in the first 4,096 characters: at most 4 bytes each, and a BOM.
_REFRESH_BYTES = 4096 * 4 + 4


def may_refresh(body: bytes) -> bool:
    """Could Scrapy find a meta refresh in this page? False only if the word is not in
    the part it reads, in any charset."""
    return _REFRESH.search(body, 0, _REFRESH_BYTES) is not None


class QuickMetaRefreshMiddleware(MetaRefreshMiddleware):
    """Scrapy's MetaRefreshMiddleware, which decodes every HTML page (its encoding
    sniffed) and works out its base URL before it looks for the tag: 3 % of a crawl's
    time (py-spy, bench/crawl.py), for a tag few pages have. A look at the bytes for the
    word comes first; pages that have it go through Scrapy's middleware as before."""

    def process_response(
        self, request: Request, response: Response, spider: object = None
    ) -> Request | Response:
        if isinstance(response, HtmlResponse) and not may_refresh(response.body):
            return response
        return super().process_response(request, response)


class SharedRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy 2.19's RobotsTxtMiddleware, with robots.txt applied to every request that
    waited for it.

    Requests that reach the middleware while robots.txt is being fetched all await one
    Deferred; its callback chain hands the parser to the first of them and None (the
    first waiter's return value) to the rest, which are then let through unchecked. A
    run that starts with many requests to one host (its revisits) fetched pages that
    robots.txt disallowed (tests/test_revisits.py shows it). The parser is in
    `_parsers` by the time the Deferred fires, so each waiter reads it from there.
    """

    async def robot_parser(self, request: Request) -> RobotParser | None:
        parser = await super().robot_parser(request)
        current = self._parsers.get(urlparse_cached(request).netloc)
        return current if isinstance(current, RobotParser) else parser


@dataclass
class Answer:
    """A quick check's answer other than a 304, for the crawl to judge (crawler.checks)."""

    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    ip_address: str | None

    def response(self, request: Request) -> Response:
        headers: dict[str, list[str]] = {}
        for key, value in self.headers:
            headers.setdefault(key, []).append(value)
        cls = responsetypes.from_args(headers=headers, url=self.url, body=self.body)  # type: ignore[arg-type]
        return cls(
            url=self.url, status=self.status, headers=headers, body=self.body,
            request=request,
            ip_address=ipaddress.ip_address(self.ip_address) if self.ip_address else None,
        )  # fmt: skip


class PrefetchedMiddleware:
    """A downloader middleware, last before the download: a request that carries a
    quick check's answer for its own URL gets that answer instead of a download. The
    answer leaves the request's meta first, so a redirect or a retry made from it (which
    copy the meta) downloads for real."""

    def process_request(self, request: Request) -> Response | None:
        answer = request.meta.pop(META_KEY, None)
        if isinstance(answer, Answer) and answer.url == request.url:
            return answer.response(request)
        return None
