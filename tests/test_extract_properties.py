"""`extract` never raises and stays fast, whatever it is given (hypothesis)."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crawler.extract import Article, extract
from crawler.extract.extractor import _extract
from tests.conftest import FIXTURES

TAGS = ["p", "div", "span", "a", "td", "tr", "table", "h1", "br", "img", "pre", "ruby", "rt"]
WORDS = [
    "来源：",
    "責任編輯:",
    "发布时间：2024-02-07 10:29:35",
    "2024年2月7日",
    "（某某 供稿）",
    "统(tǒng)战",
    "【打印】",
    "。",
    "，",
    "ICP备",
    "&nbsp;",
    "&#12288;",
    "<!--",
    "-->",
    "<![CDATA[",
    "<?xml version='1.0' encoding='gbk'?>",
    "<script>",
    "</script>",
    "<style>",
    '"',
    "'",
    "<",
    ">",
    "/",
    "=",
]


@st.composite
def broken_markup(draw: st.DrawFn) -> str:
    """Tag soup: opening and closing tags in any order, labels, dates, stray syntax."""
    parts = []
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.integers(0, 4))
        tag = draw(st.sampled_from(TAGS))
        if kind == 0:
            attrs = draw(
                st.sampled_from(["", ' style="display:none"', ' src="x.jpg"', " align=center"])
            )
            parts.append(f"<{tag}{attrs}>")
        elif kind == 1:
            parts.append(f"</{tag}>")
        elif kind == 2:
            parts.append(draw(st.sampled_from(WORDS)))
        else:
            parts.append(draw(st.text(max_size=30)))
    return "".join(parts)


def _never_raises(page: bytes | str) -> None:
    # _extract is the extractor without its last-resort guard: hypothesis must find no
    # input that reaches the guard in `extract`.
    article = _extract(page, None, None)
    assert isinstance(article, Article)
    assert isinstance(article.body, str)
    assert extract(page) == article


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(page: bytes) -> None:
    _never_raises(page)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_markup())
def test_broken_markup(page: str) -> None:
    _never_raises(page)
    _never_raises(page.encode("gb18030", "replace"))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=2000))
def test_arbitrary_text(page: str) -> None:
    _never_raises(page)


SELECTOR_TEXT = st.text(alphabet=":[]()#.>+~*=\"'@/ abcpxhtdiv-_0123456789", max_size=16)


@settings(max_examples=200, deadline=None)
@example({"title": ":A"})  # a cssselect ExpressionError hypothesis once found
@example({"body": "xpath:count(//p)"})  # an XPath that returns a number
@given(
    st.dictionaries(
        st.sampled_from(["title", "body", "source", "editor", "author", "publish_time", "x"]),
        st.one_of(
            st.none(),
            SELECTOR_TEXT,
            SELECTOR_TEXT.map(lambda s: f"xpath:{s}"),
            SELECTOR_TEXT.map(lambda s: f"css:{s}"),
        ),
    )
)
def test_arbitrary_selectors(selectors: dict[str, str | None]) -> None:
    page = (FIXTURES / "pages" / "zytzb-01.html").read_bytes()
    article = _extract(page, "https://www.zytzb.gov.cn/a.html", selectors)
    assert isinstance(article, Article)


@pytest.mark.parametrize(
    "page",
    [
        b"",
        "",
        b"   ",
        "\x00\x00",
        "<html></html>",
        "<?xml version='1.0' encoding='utf-8'?><p>x</p>",
    ],
)
def test_empty_input_gives_an_empty_article(page: bytes | str) -> None:
    article = extract(page)
    assert article.title is None and article.publish_time is None and article.body == ""


def test_a_5mb_page_in_bounded_time() -> None:
    """A real page padded to 5 MB (a long text, big sidebars, deep nesting) in under 10 s."""
    page = (FIXTURES / "pages" / "zytzb-01.html").read_text(encoding="utf-8")
    paragraph = "<p>　　统一战线是党克敌制胜、执政兴国的重要法宝，是团结海内外全体中华儿女的重要法宝。</p>\n"
    sidebar = "".join(
        f'<li><a href="/a/{i}.html">相关新闻标题第{i}条</a></li>' for i in range(2000)
    )
    deep = "<div>" * 3000 + "深层文字。" + "</div>" * 3000
    extras = f"<ul>{sidebar}</ul>" * 10 + deep
    count = (5_100_000 - len(page.encode()) - len(extras.encode())) // len(paragraph.encode())
    filler = paragraph * count + extras
    big = page.replace(
        '<p style="text-align: right;">', filler + '<p style="text-align: right;">', 1
    )
    assert len(big.encode("utf-8")) >= 5_000_000
    started = time.perf_counter()
    article = extract(big.encode("utf-8"), url="https://www.zytzb.gov.cn/dfdt/202305/t1.html")
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert article.title == "团结奋进新征程 统战聚力谱新篇"
    assert article.body.count("统一战线是党克敌制胜") == count
