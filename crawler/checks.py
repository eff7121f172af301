"""Quick checks: a run's due revisits asked first with a lean HTTP client, before the crawl.

Why: a revisit run is mostly 304s, and through Scrapy's engine each costs about 2 ms of
CPU on this machine (the scheduler, the downloader and spider middleware chains, Twisted's
HTTP client and deferreds; bench/revisit.py: a bare Scrapy spider needs 4 s for 2,000
of them, aiohttp alone 1 s). A 304 has no body to decode, extract or archive.

Each due article is asked once, conditionally, with aiohttp (Scrapy's own dependency, on
the same asyncio loop that Scrapy's reactor runs):
- a 304 becomes the pipeline's page at once (a check: archive.store.record_checks);
- any other answer (200, a redirect, 404/410, 5xx ...) is read whole, within the crawl's
  size limit, and handed to the crawl as that article's request carrying the answer:
  crawler.middlewares.PrefetchedMiddleware gives it back in place of a download, so Scrapy's redirects,
  decompression, retries and the pipeline judge it exactly as a page they fetched. One
  request per article, as before;
- no answer (refused, timeout) or a body past the size limit: the crawl asks itself.

The crawl's rules hold for quick checks too: the site boundary and address rules
(crawler.addresses); names resolved through the crawl's resolver (crawler.resolver:
unlisted non-public addresses refused); robots.txt through the crawl's own middleware
(fetched once, through Scrapy, and shared); the crawl's User-Agent and default headers;
its download timeout; no cookies; no redirects followed here. Politeness per host: at
most the per-domain concurrency in flight and the download delay between two requests,
randomised as Scrapy does, and with AutoThrottle its start delay, adapted by AutoThrottle's
rule. The pass runs before the crawl's first request, so the two never add up. A host
that fails (3 errors, or a 429/503: it asks to slow down) is left to the crawl.

Not used by the workers of a distributed crawl (their politeness is shared through Redis,
crawler.worker), nor with a proxy configured, nor with `revisit.quick_checks: false`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit
from urllib.request import getproxies

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.httpcompression import ACCEPTED_ENCODINGS
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from scrapy.utils.defer import maybe_deferred_to_future
from w3lib.url import safe_url_string

from archive.store import Known
from crawler.addresses import refusal
from crawler.items import FetchedPage
from crawler.middlewares import Answer

log = logging.getLogger(__name__)

#: Requests without an answer from one host before its other checks are left to the crawl.
MAX_ERRORS = 3
#: Statuses that ask a client to slow down: the crawl's retries honour their Retry-After.
SLOW_DOWN = (429, 503)


class CrawlResolver(AbstractResolver):
    """aiohttp's name lookups through the reactor's resolver, which Scrapy has made
    crawler.resolver.GuardedResolver: the same addresses are refused."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        from twisted.internet import reactor

        address: str = await maybe_deferred_to_future(reactor.resolve(host))  # type: ignore[arg-type]
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        result = ResolveResult(
            hostname=host, host=address, port=port, family=kind, proto=0,
            flags=socket.AI_NUMERICHOST,
        )  # fmt: skip
        return [result]

    async def close(self) -> None:
        return None


@dataclass
class Pace:
    """One host's politeness, as Scrapy's downloader slot and AutoThrottle keep it."""

    concurrency: int
    delay: float
    randomize: bool
    throttle: tuple[float, float, float] | None = None  # target concurrency, min, max delay
    next_start: float = 0.0
    errors: int = 0
    left_to_crawl: str | None = None  # why this host's other checks go to the crawl
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.concurrency)

    async def wait_turn(self) -> None:
        """Take a slot (release it after the answer) and keep the delay since the last start."""
        await self.slots.acquire()
        now = asyncio.get_running_loop().time()
        start = max(now, self.next_start)
        gap = self.delay * random.uniform(0.5, 1.5) if self.randomize else self.delay
        self.next_start = start + gap
        if start > now:
            await asyncio.sleep(start - now)

    def answered(self, latency: float, status: int | None) -> None:
        if status is None:
            self.errors += 1
            if self.errors >= MAX_ERRORS:
                self.left_to_crawl = f"{self.errors} requests without an answer"
            return
        if status in SLOW_DOWN:
            self.left_to_crawl = f"it answered {status}"
        if self.throttle is None:
            return
        # AutoThrottle's rule (scrapy.extensions.throttle): halfway to latency / target,
        # within its bounds, and never lower after an answer that is not a 200 (error
        # pages and 304s are small and make a server look faster than it is).
        target_concurrency, lowest, highest = self.throttle
        target = latency / target_concurrency
        wanted = max(lowest, min(highest, max(target, (self.delay + target) / 2)))
        if status == 200 or wanted > self.delay:
            self.delay = wanted


def unavailable(crawler: Crawler) -> str | None:
    """Why quick checks cannot keep the crawl's rules in this process, or None."""
    if getproxies():  # Scrapy's HttpProxyMiddleware would send the crawl through it
        return "a proxy is configured"
    from twisted.internet import reactor

    if not hasattr(reactor, "_asyncioEventloop"):
        return "Scrapy does not run on asyncio's loop"
    return None


class QuickChecks:
    """The quick checks of one run; an async context (it holds the HTTP session)."""

    def __init__(self, crawler: Crawler, allowed_domains: Sequence[str]) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.allowed_domains = tuple(allowed_domains)
        self.user_agent: str = settings["USER_AGENT"]
        self.headers = {
            **{str(k): str(v) for k, v in settings.getdict("DEFAULT_REQUEST_HEADERS").items()},
            "User-Agent": self.user_agent,
            "Accept-Encoding": ", ".join(e.decode() for e in ACCEPTED_ENCODINGS),
        }
        self.timeout = settings.getfloat("DOWNLOAD_TIMEOUT")
        self.maxsize = settings.getint("DOWNLOAD_MAXSIZE")
        self.concurrency = max(
            1,
            min(
                settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN"),
                settings.getint("CONCURRENT_REQUESTS"),
            ),
        )
        self.delay = settings.getfloat("DOWNLOAD_DELAY")
        self.randomize = settings.getbool("RANDOMIZE_DOWNLOAD_DELAY")
        self.throttle: tuple[float, float, float] | None = None
        if settings.getbool("AUTOTHROTTLE_ENABLED"):
            self.throttle = (
                settings.getfloat("AUTOTHROTTLE_TARGET_CONCURRENCY"),
                self.delay,
                settings.getfloat("AUTOTHROTTLE_MAX_DELAY"),
            )
            self.delay = max(self.delay, settings.getfloat("AUTOTHROTTLE_START_DELAY"))
        self.paces: dict[str, Pace] = {}
        assert crawler.engine is not None
        self.robots = next(
            (
                mw
                for mw in crawler.engine.downloader.middleware.middlewares
                if isinstance(mw, RobotsTxtMiddleware)
            ),
            None,
        )
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> QuickChecks:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency * 4,
            limit_per_host=self.concurrency,
            resolver=CrawlResolver(),
            ssl=False,  # as Scrapy's default TLS context: no certificate checks
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auto_decompress=False,  # the crawl decompresses a handed-over answer
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def check(self, known: Sequence[Known]) -> list[FetchedPage | Answer | None]:
        """For each known article: a 304 as the pipeline's page, another answer for the
        crawl to judge, or None (the crawl asks itself)."""
        answers = await asyncio.gather(*(self.check_one(k) for k in known))
        stats = self.crawler.stats
        assert stats is not None
        for answer in answers:
            kind = "304" if isinstance(answer, FetchedPage) else "other" if answer else "none"
            stats.inc_value(f"ufarchive/quick_checks/{kind}")
        return answers

    async def check_one(self, known: Known) -> FetchedPage | Answer | None:
        url = known.url
        netloc = urlsplit(url).netloc
        pace = self.paces.get(netloc)
        if pace is None:
            pace = Pace(self.concurrency, self.delay, self.randomize, self.throttle)
            self.paces[netloc] = pace
        if pace.left_to_crawl or refusal(url, self.allowed_domains) is not None:
            return None
        if not await self.robots_allow(url):
            return None  # the crawl's request is refused, and counted, by the middleware
        await pace.wait_turn()
        try:
            if pace.left_to_crawl:  # decided while this one waited its turn
                return None
            return await self.ask(known, pace)
        finally:
            pace.slots.release()

    async def robots_allow(self, url: str) -> bool:
        if self.robots is None:
            return True
        request = Request(url)
        parser = await self.robots.robot_parser(request)
        try:
            self.robots.process_request_2(parser, request)
        except IgnoreRequest:
            return False
        return True

    async def ask(self, known: Known, pace: Pace) -> FetchedPage | Answer | None:
        assert self.session is not None
        headers = dict(self.headers)
        if known.etag:
            headers["If-None-Match"] = known.etag
        if known.last_modified:
            headers["If-Modified-Since"] = known.last_modified
        # the URL as Scrapy's Request spells it (the crawl matches its answer by it), sent
        # as is (yarl would otherwise normalise its percent-encoding again)
        url = safe_url_string(known.url)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with self.session.get(
                yarl.URL(url, encoded=True), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                transport = response.connection.transport if response.connection else None
                peer = transport.get_extra_info("peername") if transport else None
                raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
                body = b"" if status == 304 else await self.read(response)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            pace.answered(0.0, None)
            log.debug("quick check of %s: %s; the crawl asks again", known.url, exc)
            return None
        pace.answered(loop.time() - started, status)
        if pace.left_to_crawl:
            log.info("quick checks of %s stop: %s", urlsplit(known.url).netloc, pace.left_to_crawl)
        if body is None:
            return None  # past the size limit: the crawl asks, and records too_large
        ip = str(peer[0]) if peer else None
        if status != 304:
            return Answer(url, status, raw, body, ip)
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value("downloader/request_count")
        stats.inc_value("downloader/request_method_count/GET")
        stats.inc_value("downloader/response_count")
        stats.inc_value("downloader/response_status_count/304")
        stats.inc_value("downloader/response_bytes", header_bytes(304, "Not Modified", raw))
        return FetchedPage(
            url=known.url, method="GET", request_headers=list(headers.items()), status=304,
            reason="Not Modified", headers=raw, body=b"", fetched_at=datetime.now(UTC),
            ip_address=ip, known=known, requested_url=known.url,
        )  # fmt: skip

    async def read(self, response: aiohttp.ClientResponse) -> bytes | None:
        """The body, or None past DOWNLOAD_MAXSIZE (the connection is then dropped)."""
        chunks, size = [], 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if self.maxsize and size > self.maxsize:
                response.close()
                return None
            chunks.append(chunk)
        return b"".join(chunks)


def header_bytes(status: int, reason: str, headers: Sequence[tuple[str, str]]) -> int:
    """A bodiless answer's size as Scrapy's DownloaderStats counts one."""
    return len(f"HTTP/1.1 {status} {reason}\r\n") + sum(len(k) + len(v) + 4 for k, v in headers) + 2
