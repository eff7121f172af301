"""Politeness across crawl workers, through Redis: per-domain leases and delay, shared robots.txt.

Scrapy's own limits (CONCURRENT_REQUESTS_PER_DOMAIN, DOWNLOAD_DELAY) hold per process;
with N workers a site would see N times the load. Here every worker takes a lease from
the domain's sorted set in Redis before a download (at most
`crawl.concurrent_requests_per_domain` leases at once, one new one at most every
`crawl.download_delay_seconds`, timed by the Redis server's clock so hosts need not
agree on the time) and gives it back when the response or the error comes. A lease of
a killed worker expires after twice the download timeout. "Domain" is the host and port
(`netloc`): the unit Scrapy's robots.txt handling uses too.

A lease given back rides on the worker's next acquisition (the same script removes it
first), or goes on its own at most RELEASE_SECONDS later: one Redis round trip a request
instead of two (a worker's 7.5 an article -> 6.4, bench/distributed.py). A slot comes
back to the others at most that much later: never a request more at a site, at worst a
few milliseconds fewer.

robots.txt is read once per site per run: the first worker that needs it takes a lock,
downloads it and stores the body under the run's keys; the others wait for it and parse
the same bytes (a failed download is stored as "none", which Scrapy also reads as "all
allowed").
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from redis.exceptions import RedisError
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.reactor import CallLaterOnce

from crawler.distributed import Keys, RunKeys, connect, run_script
from crawler.middlewares import SharedRobotsTxtMiddleware, wait

log = logging.getLogger(__name__)

LEASE_META = "ufarchive_lease"
FULL_POLL_SECONDS = 0.02  # how often a worker asks again for a full domain
RELEASE_SECONDS = 0.05  # the longest a lease given back waits for an acquisition to ride on
RELEASES_A_CALL = 100  # leases given back with one acquisition, at most
# Gives back the leases KEYS[3..] (ARGV[5..], in order), then returns 0 with a lease
# taken, the milliseconds until the delay allows one, or -1 when the domain already has
# its limit of leases.
ACQUIRE_SCRIPT = """
for i = 3, #KEYS do redis.call('ZREM', KEYS[i], ARGV[i + 2]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local nxt = tonumber(redis.call('GET', KEYS[2]) or '0')
if nxt > now then return nxt - now end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], now + tonumber(ARGV[4]), 'PX', tonumber(ARGV[4]) + 1000)
end
return 0
"""


class DomainLeaseMiddleware:
    """Per-domain concurrency and delay for all workers together (see the module doc)."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        url = settings.get("UFARCHIVE_REDIS_URL")
        if not url:
            raise NotConfigured
        self.server = connect(url)
        self.keys = Keys(settings.get("UFARCHIVE_REDIS_PREFIX"))
        self.limit = settings.getint("UFARCHIVE_DOMAIN_CONCURRENCY")
        self.delay_ms = int(settings.getfloat("UFARCHIVE_DOMAIN_DELAY") * 1000)
        self.lease_ms = int((settings.getfloat("DOWNLOAD_TIMEOUT") * 2 + 10) * 1000)
        self.given_back: list[tuple[str, str]] = []  # (leases key, lease) not yet removed
        self.flush_later = CallLaterOnce(self.flush)
        crawler.signals.connect(self.flush, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DomainLeaseMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        domain = self.keys.domain(urlparse_cached(request).netloc)
        lease = uuid.uuid4().hex
        while True:
            answer = self.acquire(domain, lease)
            if answer == 0:
                break
            await wait(answer / 1000 if answer > 0 else FULL_POLL_SECONDS)
        request.meta[LEASE_META] = (domain, lease)

    def acquire(self, domain: str, lease: str) -> int:
        """ACQUIRE_SCRIPT for a lease of `domain`, with the leases given back meanwhile."""
        riders = self.take_given_back()
        keys = [domain + ":leases", domain + ":next", *(key for key, _ in riders)]
        args = [lease, self.lease_ms, self.limit, self.delay_ms, *(held for _, held in riders)]
        try:
            return int(run_script(self.server, ACQUIRE_SCRIPT, keys, args))
        except RedisError:
            self.given_back[:0] = riders  # not removed: the next call or flush tries again
            raise

    def take_given_back(self) -> list[tuple[str, str]]:
        """The oldest leases given back, at most RELEASES_A_CALL, taken off the list."""
        riders = self.given_back[:RELEASES_A_CALL]
        del self.given_back[: len(riders)]
        return riders

    def process_response(self, request: Request, response: Response) -> Response:
        self.release(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self.release(request)

    def release(self, request: Request) -> None:
        held = request.meta.pop(LEASE_META, None)
        if held is not None:
            domain, lease = held
            self.given_back.append((domain + ":leases", lease))
            self.flush_later.schedule(RELEASE_SECONDS)

    def flush(self) -> None:
        """Remove the leases given back that no acquisition took along (and all of them
        when the spider closes). Redis away: they wait for the next call."""
        while self.given_back:
            riders = self.take_given_back()
            pipe = self.server.pipeline(transaction=False)
            for key, lease in riders:
                pipe.zrem(key, lease)
            try:
                pipe.execute()
            except RedisError as exc:
                self.given_back[:0] = riders
                log.warning("could not give back %d domain leases yet: %s", len(riders), exc)
                self.flush_later.schedule(1.0)
                return


class RunRobotsTxtMiddleware(SharedRobotsTxtMiddleware):
    """crawler.middlewares' robots.txt middleware, with the file read once per run for all
    workers."""

    NONE = b"-"  # stored for a robots.txt that could not be read: everything allowed
    LOCK_SECONDS = 60

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.server = connect(crawler.settings.get("UFARCHIVE_REDIS_URL"))
        self.prefix = crawler.settings.get("UFARCHIVE_REDIS_PREFIX")
        self.timeout = crawler.settings.getfloat("DOWNLOAD_TIMEOUT") + 10

    def run_keys(self) -> RunKeys:
        spider: Any = self.crawler.spider
        return Keys(self.prefix).run(spider.run.run_id)

    async def robot_parser(self, request: Request) -> Any:
        netloc = urlparse_cached(request).netloc
        if netloc in self._parsers:
            return await super().robot_parser(request)
        key = self.run_keys().robots(netloc)
        waited = 0.0
        while True:
            stored: Any = self.server.get(key)
            if stored is not None:
                parser_class: Any = self._parserimpl
                parser = (
                    None
                    if stored == self.NONE
                    else build_from_crawler(parser_class, self.crawler, stored[1:])
                )
                self._parsers[netloc] = parser
                return parser
            if self.server.set(key + ":lock", b"1", nx=True, ex=self.LOCK_SECONDS):
                return await super().robot_parser(request)  # downloads; _parse_robots stores
            if waited > self.timeout:  # the one reading it died: take over
                self.server.delete(key + ":lock")
                waited = 0.0
            await wait(0.05)
            waited += 0.05

    async def _parse_robots(self, response: Response, netloc: str, request: Request) -> None:
        self.server.set(self.run_keys().robots(netloc), b"+" + response.body)
        await super()._parse_robots(response, netloc, request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        self.server.set(self.run_keys().robots(netloc), self.NONE)
        super()._robots_error(exc, netloc)
