"""The crawl's HTTP client (crawler.download): aiohttp, resolving names through crawler.resolver.

The resolver is exercised in a process of its own, as a crawl runs it: Twisted's asyncio
reactor, GuardedResolver installed on it, and a real request to a local server.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.crawlworld import World, expected, make_world
from tests.siteserver import SiteServer

REPO = Path(__file__).resolve().parents[1]

RESOLVE = """
import asyncio, sys
from scrapy.utils.reactor import install_reactor
install_reactor("twisted.internet.asyncioreactor.AsyncioSelectorReactor")
import aiohttp
from twisted.internet import defer, reactor
from crawler.download import CrawlResolver
from crawler.resolver import GuardedResolver

listed = [h for h in sys.argv[1].split(",") if h]
reactor.installResolver(GuardedResolver(reactor, 0, 5.0, listed=listed))

async def main():
    connector = aiohttp.TCPConnector(resolver=CrawlResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        try:
            async with session.get(sys.argv[2]) as response:
                print("status", response.status)
        except aiohttp.ClientConnectorDNSError as exc:
            print("refused", exc.os_error)

def run():
    done = defer.Deferred.fromFuture(asyncio.ensure_future(main()))
    done.addBoth(lambda _: reactor.stop())

reactor.callWhenRunning(run)
reactor.run()
"""


def fetch_by_name(listed: str, url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", RESOLVE, listed, url],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_name_leading_to_an_unlisted_internal_address_is_refused_before_connecting(
    site_server: Callable[..., SiteServer],
) -> None:
    server = site_server("zytzb")
    server.clear()
    url = f"http://localhost:{server.port}/robots.txt"
    # `localhost` is 127.0.0.1: refused unless a site file lists the name or the address
    answer = fetch_by_name("", url)
    assert answer.startswith("refused") and "does not list" in answer, answer
    assert server.requests == []
    assert fetch_by_name("localhost", url) == "status 200"
    assert fetch_by_name("127.0.0.1", url) == "status 200"
    assert [r.path for r in server.requests] == ["/robots.txt", "/robots.txt"]


@pytest.fixture
def world(tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]) -> World:
    return make_world(tmp_path, database_url, site_server, ("tzb_tw",))


def test_a_page_with_a_header_line_over_8_kb_is_stored(world: World) -> None:
    """aiohttp's own limit is 8 KB a header line; portals send bigger cookies."""
    server = world.servers["tzb_tw"]
    path = next(iter(expected("tzb_tw")["articles"]))
    server.rule(path, headers={"Set-Cookie": "JSESSIONID=" + "a1b2c3d4" * 2500})  # 20 KB
    run = world.crawl("tzb_tw")["tzb_tw"]
    assert run.status == "succeeded", run.message
    assert path in world.articles("tzb_tw")
