"""DNS that will not lead a crawl to a non-public address its site files do not list.

Scrapy's caching resolver, with one check on every answer (crawler.addresses): a host
name that resolves to a loopback, private, link-local or otherwise non-public address
fails to resolve -- the connection is never opened -- unless a site file of this crawl
lists that host name, or that address, in its `allowed_domains`. This is what stops a
subdomain (or a URL spelling an address in decimal, `http://2130706433/`) that points
inside the network, where the middleware (crawler.boundary) sees only a name.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from scrapy.crawler import Crawler
from scrapy.resolver import CachingThreadedResolver, dnscache
from twisted.internet import defer
from twisted.internet.error import DNSLookupError

from crawler.addresses import address_refusal, parse_address

log = logging.getLogger(__name__)

#: Hosts and addresses that this process's site files list in `allowed_domains`; the
#: boundary middleware adds each site's when its spider opens.
LISTED: set[str] = set()
#: Host names refused in this process and why. Twisted turns a failed lookup into its own
#: "no results" error; crawler.boundary looks the reason up here to record it.
REFUSED: dict[str, str] = {}


class GuardedResolver(CachingThreadedResolver):
    def __init__(
        self, reactor: Any, cache_size: int, timeout: float, listed: Collection[str] | None = None
    ) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.listed = LISTED if listed is None else {h.lower() for h in listed}

    @classmethod
    def from_crawler(cls, crawler: Crawler, reactor: Any) -> GuardedResolver:
        settings = crawler.settings
        cache_size = settings.getint("DNSCACHE_SIZE") if settings.getbool("DNSCACHE_ENABLED") else 0
        return cls(reactor, cache_size, settings.getfloat("DNS_TIMEOUT"))

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> defer.Deferred[str]:
        answer = super().getHostByName(name, timeout)
        answer.addCallback(self.check, name)
        return answer

    def check(self, address: str, name: str) -> str:
        parsed = parse_address(address)
        reason = address_refusal(name, parsed, self.listed) if parsed is not None else None
        if reason is not None:
            dnscache.pop(name, None)  # never served from the cache either
            REFUSED[name.lower()] = reason
            log.warning("DNS: %s refused: %s", name, reason)
            raise DNSLookupError(f"{name}: refused: {reason}")
        return address
