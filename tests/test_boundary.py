"""No request leaves a site: redirects, feeds, sitemaps and `<base>` pointing at another
loopback address (127.0.0.9, not in the site file) are refused and recorded, and that
address's server sees nothing. The private and link-local ranges are tested on the
address filter alone: tests send traffic to loopback only, never anywhere else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from twisted.internet.error import DNSLookupError

from archive.models import Article, CrawlError
from crawler.addresses import address_refusal, internal_kind, parse_address, refusal
from crawler.resolver import GuardedResolver
from tests.conftest import SITES
from tests.crawlworld import TEST_SETTINGS, World, make_world
from tests.siteserver import SiteServer

OTHER_LOOPBACK = "127.0.0.9"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.0.1", "private"),
        ("10.255.255.254", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.9", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT
        ("224.0.0.1", "multicast"),
        ("172.32.0.1", None),  # just outside 172.16/12
        ("11.0.0.1", None),
        ("2001:4860:4860::8888", None),
        ("220.181.38.148", None),
    ],
)
def test_the_address_filter_knows_the_non_public_ranges(address: str, kind: str | None) -> None:
    parsed = parse_address(address)
    assert parsed is not None
    assert internal_kind(parsed) == kind
    refused = address_refusal("intranet.example.gov.cn", parsed, ["example.gov.cn"])
    assert (refused is not None) == (kind is not None)
    if kind:
        assert f"a {kind} address that the site file does not list" in refused  # type: ignore[operator]
        # listed exactly, by name or by address, it may be reached
        assert (
            address_refusal("intranet.example.gov.cn", parsed, ["intranet.example.gov.cn"]) is None
        )
        assert address_refusal("intranet.example.gov.cn", parsed, [str(parsed)]) is None


@pytest.mark.parametrize(
    ("url", "allowed", "why"),
    [
        ("http://www.example.gov.cn/a.html", ["example.gov.cn"], None),
        ("https://sub.www.example.gov.cn/a.html", ["www.example.gov.cn"], None),
        (
            "http://example.gov.cn.evil.org/a.html",
            ["example.gov.cn"],
            "not in the site's allowed_domains",
        ),
        ("http://evilexample.gov.cn/", ["example.gov.cn"], "not in the site's allowed_domains"),
        ("http://127.0.0.9:8000/x", ["127.0.0.1"], "not in the site's allowed_domains"),
        ("http://127.0.0.1:8000/x", ["127.0.0.1"], None),
        ("http://[::1]:8000/x", ["::1"], None),
        ("http://[::1]:8000/x", ["example.gov.cn"], "not in the site's allowed_domains"),
        ("http://10.1.2.3/", ["10.1.2.3"], None),
        ("ftp://www.example.gov.cn/a", ["example.gov.cn"], "only http and https"),
        ("file:///etc/passwd", ["example.gov.cn"], "only http and https"),
        ("http:///nohost", ["example.gov.cn"], "no host"),
    ],
)
def test_requests_are_refused_outside_allowed_domains(
    url: str, allowed: list[str], why: str | None
) -> None:
    got = refusal(url, allowed)
    assert (got is None) if why is None else (got is not None and why in got)


def test_the_resolver_refuses_a_name_that_leads_to_an_unlisted_internal_address() -> None:
    resolver = GuardedResolver(None, 0, 5.0, listed=["www.example.gov.cn", "10.9.9.9"])
    assert resolver.check("220.181.38.148", "news.example.gov.cn") == "220.181.38.148"
    assert resolver.check("10.0.0.5", "www.example.gov.cn") == "10.0.0.5"  # listed by name
    assert resolver.check("10.9.9.9", "db.example.gov.cn") == "10.9.9.9"  # listed by address
    for address in ("10.0.0.5", "172.20.1.1", "192.168.0.10", "169.254.169.254", "127.0.0.1"):
        with pytest.raises(DNSLookupError, match="does not list"):
            resolver.check(address, "intranet.example.gov.cn")


# --- a real crawl against two loopback servers -----------------------------------------


LEAKY_LISTING = """<html><head><meta charset="utf-8"><title>统战要闻</title>
<base href="{other}/">
</head><body><ul>
<li><a href="tzyw/202403/t20240314_571208.html">相对链接经 base 指向别处</a></li>
<li><a href="{other}/tzyw/202402/t20240226_568990.html">绝对链接指向别处</a></li>
<li><a href="{base}/tzyw/202403/t20240308_570511.html">本站文章</a></li>
<li><a href="{base}/tzyw/202403/t20240301_569873.html">本站文章（重定向到别处）</a></li>
</ul></body></html>"""

LEAKY_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>统战要闻</title>
<item><title>别处</title><link>{other}/tzyw/202402/t20240220_568102.html</link></item>
<item><title>本站</title><link>{base}/tzyw/202402/t20240207_567432.html</link></item>
</channel></rss>"""

LEAKY_SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>{other}/tzyw/202402/t20240202_566780.html</loc></url>
<url><loc>{base}/tzyw/202401/t20240126_565911.html</loc></url>
</urlset>"""

LEAKY_INDEX = """<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{other}/sitemap-other.xml</loc></sitemap>
<sitemap><loc>{base}/sitemap-1.xml</loc></sitemap>
</sitemapindex>"""


def test_no_request_leaves_the_site(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world: World = make_world(tmp_path, database_url, site_server, ())
    site = site_server("zytzb")
    other = SiteServer(SITES / "zytzb", host=OTHER_LOOPBACK).start()
    try:
        values = {"base": site.base, "other": other.base}
        site.put("/leaky/index.html", LEAKY_LISTING.format(**values))
        site.put("/leaky/rss.xml", LEAKY_FEED.format(**values))
        site.put("/leaky/sitemap.xml", LEAKY_INDEX.format(**values))
        site.put("/sitemap-1.xml", LEAKY_SITEMAP.format(**values))
        # an article of the site answers with a redirect to the other address
        site.rule(
            "/tzyw/202403/t20240301_569873.html",
            redirect=f"{other.base}/tzyw/202403/t20240301_569873.html",
        )
        (world.config_dir / "settings.yaml").write_text(
            TEST_SETTINGS.format(depth_limit=5, stop_pagination="true", revisit="true"),
            encoding="utf-8",
        )
        (world.config_dir / "sites" / "leaky.yaml").write_text(
            "\n".join([
                "name: leaky", "title: 测试统战网",
                f"start_urls: [{site.url('/leaky/index.html')}]",
                f"allowed_domains: [{site.host}]",
                r"article_url_pattern: '/tzyw/\d{6}/t\d+_\d+\.html$'",
                f"feed_urls: [{site.url('/leaky/rss.xml')}]",
                f"sitemap_urls: [{site.url('/leaky/sitemap.xml')}]",
                "schedule: {interval_minutes: 60}",
            ]) + "\n",
            encoding="utf-8",
        )  # fmt: skip
        run = world.crawl("leaky")["leaky"]
        assert run.status == "succeeded", run.message
        assert other.requests == [], f"a request left the site: {other.paths()}"
        with world.session() as session:
            stored = {a.url.removeprefix(site.base) for a in session.scalars(select(Article))}
            errors = session.scalars(select(CrawlError)).all()
        assert stored == {
            "/tzyw/202403/t20240308_570511.html",
            "/tzyw/202402/t20240207_567432.html",
            "/tzyw/202401/t20240126_565911.html",
        }
        refused = [(e.kind, e.url, e.message) for e in errors if e.kind == "redirect_refused"]
        assert refused == [(
            "redirect_refused",
            site.url("/tzyw/202403/t20240301_569873.html"),
            f"redirected to {other.base}/tzyw/202403/t20240301_569873.html refused: "
            f"{OTHER_LOOPBACK} is not in the site's allowed_domains",
        )]  # fmt: skip
        # a known article refetched (dont_filter) that now redirects away: refused too
        site.rule(
            "/tzyw/202403/t20240308_570511.html",
            redirect=f"{other.base}/tzyw/202403/t20240308_570511.html",
        )
        run = world.crawl("leaky", refresh=True)["leaky"]
        assert other.requests == [], f"a request left the site: {other.paths()}"
        with world.session() as session:
            kinds = [
                e.url for e in session.scalars(select(CrawlError).where(CrawlError.run_id == run.run_id))
                if e.kind == "redirect_refused"
            ]  # fmt: skip
        assert site.url("/tzyw/202403/t20240308_570511.html") in kinds
    finally:
        other.stop()
