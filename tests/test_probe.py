"""`ufarchive sites probe`: proposed site files that crawl the fixture sites fully."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crawler.cli import app
from crawler.probe import optional_insert, shape_key, shape_regex, split_url
from crawler.sites import load_site_file
from tests.crawlworld import expected, make_world
from tests.siteserver import SiteServer

LISTING_PAGES = {
    "zytzb": "/tzyw/index.html",
    "tzb_tw": "/xwzx/tzgz/index.html",
    "gbk_city": "/xwdt/index.htm",
}


def regex_of(*urls: str) -> str:
    tokens = [split_url(u) for u in urls]
    return shape_regex([shape_key(tokens[0])], tokens)


def test_shapes_keep_date_folders_exact_and_ids_open() -> None:
    # the central 统战部 site's article shape (issue 17)
    pattern = regex_of(
        "https://www.zytzb.gov.cn/zytzb/2024-11/08/article_2024110814262019636.shtml",
        "https://www.zytzb.gov.cn/zytzb/2024-10/30/article_2024103009150112345.shtml",
    )
    assert pattern == r"/zytzb/\d{4}\-\d{2}/\d{2}/article_\d+\.shtml$"
    assert re.search(pattern, "/zytzb/2025-01/02/article_9.shtml")
    assert not re.search(pattern, "/zytzb/2025-01/02/index.shtml")
    # people.cn style: page numbers glued to the name
    own = list(shape_key(split_url("/GB/372201/index.html"))[-1])
    page = list(shape_key(split_url("/GB/372201/index2.html"))[-1])
    assert optional_insert(own, page) == r"index(\d+)?\.html"


@pytest.mark.parametrize("site", sorted(LISTING_PAGES))
def test_a_probed_site_file_crawls_the_fixture_site_fully(
    site: str, tmp_path: Path, sqlite_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, sqlite_url, site_server, (site,))
    server = world.servers[site]
    path = world.config_dir / "sites" / f"{site}.yaml"
    path.unlink()  # the hand-written file goes; the probe writes its own
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["sites", "probe", server.url(LISTING_PAGES[site]), "--name", site, "--output", str(path)],
        env=world.env(),
    )
    assert result.exit_code == 0, result.output
    proposed = load_site_file(path)
    truth = expected(site)
    # feeds and sitemaps the site advertises are found, and nothing else
    assert [u.removeprefix(server.base) for u in proposed.feed_urls] == truth.get("feeds", [])
    assert [u.removeprefix(server.base) for u in proposed.sitemap_urls] == truth.get(
        "sitemaps", []
    )[:1]
    # the samples printed are real matches
    text = path.read_text(encoding="utf-8")
    samples = re.findall(r"^#   (http\S+)$", text, re.M)
    assert samples and all(
        proposed.article_re.search(u) or (proposed.follow_re and proposed.follow_re.search(u))
        for u in samples
    )
    checked = runner.invoke(app, ["sites", "check", site], env=world.env())
    assert checked.exit_code == 0, checked.output
    run = world.crawl(site)[site]
    assert run.status == "succeeded", run.message
    assert set(world.articles(site)) == set(truth["articles"])


def test_probe_of_a_page_that_fails_is_one_line_and_exit_2(
    site_server: Callable[..., SiteServer],
) -> None:
    server = site_server("zytzb")
    result = CliRunner().invoke(app, ["sites", "probe", server.url("/_status/500")])
    assert result.exit_code == 2
    assert "answered 500" in result.output
    result = CliRunner().invoke(app, ["sites", "probe", "ftp://example.org/"])
    assert result.exit_code == 2 and "not an http(s) URL" in result.output
