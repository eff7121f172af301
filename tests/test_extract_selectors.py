"""A site's selectors replace the generic result for their field only (DESIGN.md)."""

from __future__ import annotations

import pytest

from crawler.extract import extract
from tests.conftest import FIXTURES

PAGE = (FIXTURES / "pages" / "zytzb-01.html").read_bytes()
URL = "https://www.zytzb.gov.cn/dfdt/202305/t20230508_639829.html"


def test_each_selector_overrides_only_its_field() -> None:
    generic = extract(PAGE, url=URL)
    got = extract(PAGE, url=URL, selectors={"title": "h2.ft"})
    assert got.title == "——温州市委统战部2022年工作综述"
    assert {**got.to_dict(), "title": None} == {**generic.to_dict(), "title": None}


@pytest.mark.parametrize(
    ("field", "selector", "value"),
    [
        ("source", "xpath://meta[@name='ContentSource']/@content", "中国统一战线杂志"),
        ("source", "css:span.ly", "中国统一战线杂志"),
        ("publish_time", "span.sj", "2023-05-08T10:08:31+08:00"),
        ("publish_time", "xpath://meta[@name='PubDate']/@content", "2023-05-08T10:08:00+08:00"),
        ("editor", "div.bjz", "石建军"),
        ("author", "div.bjz", "石建军"),
        ("title", "xpath://title", "团结奋进新征程 统战聚力谱新篇_中央统战部网站"),
    ],
)
def test_css_and_xpath_selectors(field: str, selector: str, value: str) -> None:
    assert getattr(extract(PAGE, url=URL, selectors={field: selector}), field) == value


def test_body_selector_keeps_the_text_rules() -> None:
    got = extract(PAGE, url=URL, selectors={"body": "div.TRS_Editor"})
    generic = extract(PAGE, url=URL)
    assert got.body == generic.body
    assert got.images == generic.images


@pytest.mark.parametrize("selector", [None, "", "div.nothing-here", "xpath://[", "p[["])
def test_unusable_selectors_leave_the_generic_result(selector: str | None) -> None:
    assert extract(PAGE, url=URL, selectors={"source": selector}) == extract(PAGE, url=URL)
