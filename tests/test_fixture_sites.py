"""The fixture world, served: every site answers as its `_expected.json` says.

These sites are what the crawl tests run against, so a broken link or a wrongly
encoded page here would make those tests lie.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from protego import Protego

from tests.conftest import SITES
from tests.siteserver import SiteServer

SITE_NAMES = sorted(p.name for p in SITES.iterdir() if (p / "_expected.json").is_file())


def expected(site: str) -> dict[str, Any]:
    data = json.loads((SITES / site / "_expected.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def declared_charset(html: bytes) -> str:
    head = html[:2048].decode("ascii", "replace").lower()
    for marker in ("charset=", 'charset="'):
        if marker in head:
            value = head.split(marker, 1)[1].lstrip('"')
            return value.split('"')[0].split(";")[0].split(">")[0].strip()
    return "utf-8"


def decode(body: bytes) -> str:
    charset = declared_charset(body)
    # GBK/GB2312 labels decode as GB18030 (WHATWG, w3lib): a superset that never loses a
    # character. Raw bytes straight into lxml would not do: libxml2 stops at the first
    # GBK-only character of a page labelled gb2312 (gbk_city shows it).
    return body.decode("gb18030" if charset in ("gb2312", "gbk", "gb18030") else charset)


def test_there_are_three_sites_with_different_templates() -> None:
    assert {"zytzb", "tzb_tw", "gbk_city"} <= set(SITE_NAMES)


@pytest.mark.parametrize("site", SITE_NAMES)
def test_articles_decode_in_their_declared_charset(
    site: str, site_server: Callable[..., SiteServer]
) -> None:
    server = site_server(site)
    truth = expected(site)
    for path, fields in truth["articles"].items():
        status, body = get(server.url(path))
        assert status == 200, path
        text = decode(body)
        assert "\ufffd" not in text, path
        assert fields["title"] in text, path
    assert not any(get(server.url(p))[0] == 200 for p in truth.get("missing", []))


@pytest.mark.parametrize("site", SITE_NAMES)
def test_robots_feeds_and_sitemaps(site: str, site_server: Callable[..., SiteServer]) -> None:
    server = site_server(site)
    truth = expected(site)
    status, robots_txt = get(server.url("/robots.txt"))
    robots = Protego.parse(robots_txt.decode() if status == 200 else "")
    for path in truth["disallowed"]:
        assert get(server.url(path))[0] == 200, f"{path} exists, only robots.txt forbids it"
        assert not robots.can_fetch(server.url(path), "ufarchive")
    for path in truth["articles"]:
        assert robots.can_fetch(server.url(path), "ufarchive")
    linked: set[str] = set()
    for path in truth.get("feeds", []) + truth.get("sitemaps", []):
        status, body = get(server.url(path))
        assert status == 200, path
        root = etree.fromstring(body)
        for element in root.iter():
            text = (element.text or "").strip() if isinstance(element.tag, str) else ""
            href = element.get("href", "") if isinstance(element.tag, str) else ""
            for value in (text, href):
                if value.startswith("http"):
                    assert value.startswith(server.base), f"{path}: {value} is not on the server"
                    linked.add(value.removeprefix(server.base))
    if truth.get("feeds") or truth.get("sitemaps"):
        assert linked & set(truth["articles"]), f"{site}: feeds/sitemaps link no article"


@pytest.mark.parametrize("site", SITE_NAMES)
def test_listing_pages_link_every_article(
    site: str, site_server: Callable[..., SiteServer]
) -> None:
    server = site_server(site)
    truth = expected(site)
    links: set[str] = set()
    for path in truth["listing_pages"]:
        status, body = get(server.url(path))
        assert status == 200, path
        tree = etree.HTML(decode(body))
        links |= {urllib.parse.urljoin(path, href) for href in tree.xpath("//a/@href")}
    assert set(truth["articles"]) <= links
    assert set(truth["disallowed"]) | set(truth.get("missing", [])) <= links


def test_the_fixture_tree_has_no_stray_files() -> None:
    for site in SITE_NAMES:
        for path in (SITES / site).rglob("*"):
            assert not path.name.endswith((".py", ".pyc", ".orig", ".swp")), path
    assert Path(SITES).is_dir()
