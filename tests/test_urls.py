"""Canonical URLs: two addresses of one page are one article."""

from __future__ import annotations

import pytest

from archive.urls import canonical_url

ALIASES = {"m.zytzb.gov.cn": "www.zytzb.gov.cn"}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://www.zytzb.gov.cn/tzyw/1.html", "https://www.zytzb.gov.cn/tzyw/1.html"),
        ("https://www.zytzb.gov.cn/tzyw/index.html", "https://www.zytzb.gov.cn/tzyw/"),
        ("https://www.zytzb.gov.cn/tzyw/default.htm", "https://www.zytzb.gov.cn/tzyw/"),
        ("https://www.zytzb.gov.cn/tzyw/1.html#comments", "https://www.zytzb.gov.cn/tzyw/1.html"),
        ("https://WWW.ZYTZB.gov.cn:443/tzyw/1.html", "https://www.zytzb.gov.cn/tzyw/1.html"),
        (
            "https://www.zytzb.gov.cn/a?utm_source=wechat&utm_medium=share&id=7",
            "https://www.zytzb.gov.cn/a?id=7",
        ),
        (
            "https://www.zytzb.gov.cn/a?id=7&from=timeline&isappinstalled=0",
            "https://www.zytzb.gov.cn/a?id=7",
        ),
        ("https://www.zytzb.gov.cn/a?b=2&a=1", "https://www.zytzb.gov.cn/a?a=1&b=2"),
        ("http://m.zytzb.gov.cn/tzyw/1.html", "https://www.zytzb.gov.cn/tzyw/1.html"),
        (
            "https://www.zytzb.gov.cn/统战/1.html",
            "https://www.zytzb.gov.cn/%E7%BB%9F%E6%88%98/1.html",
        ),
    ],
)
def test_two_addresses_of_one_page_are_one(a: str, b: str) -> None:
    assert canonical_url(a, ALIASES) == canonical_url(b, ALIASES)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://www.zytzb.gov.cn/a?id=7", "https://www.zytzb.gov.cn/a?id=8"),
        ("https://www.zytzb.gov.cn/tzyw/1.html", "https://www.gdtzb.gov.cn/tzyw/1.html"),
        ("http://127.0.0.1:8001/a.html", "http://127.0.0.1:8002/a.html"),
        ("https://www.zytzb.gov.cn/tzyw/index_2.html", "https://www.zytzb.gov.cn/tzyw/"),
    ],
)
def test_different_pages_stay_different(a: str, b: str) -> None:
    assert canonical_url(a, ALIASES) != canonical_url(b, ALIASES)


@pytest.mark.parametrize(
    ("url", "want"),
    [  # found by fuzzing (tests/fuzzing.py): these raised or were not idempotent
        ("http://[::1]:8080/a.html", "https://[::1]:8080/a.html"),
        ("http://www.zytzb.gov.cn:abc/a.html", "https://www.zytzb.gov.cn:abc/a.html"),
        ("http://www.zytzb.gov.cn:99999/a.html", "https://www.zytzb.gov.cn:99999/a.html"),
        ("HTTP://WWW.ZYTZB.GOV.CN.:443/a.html", "https://www.zytzb.gov.cn/a.html"),
        ("http:///nohost", "http:///nohost"),
    ],
)
def test_odd_urls_have_a_canonical_form_that_is_its_own(url: str, want: str) -> None:
    assert canonical_url(url) == want
    assert canonical_url(want) == want
