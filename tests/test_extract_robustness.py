"""The golden pages still extract the same when what a template leans on is taken away.

A site never seen has other class names, may use <div> where another uses <h1>, may have
no <meta> and a <title> that is only the site's name. Each variant strips one of these
from every golden page; the fields must not depend on it. This keeps the rules general
(label tables, text density, position) rather than tuned to the corpus's markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import opencc
import pytest

from crawler.extract import extract
from crawler.extract.decode import decode_html
from tests.test_extract_golden import GoldenCase, golden_cases


def no_classes(page: str) -> str:
    return re.sub(r"""\s(?:class|id)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", "", page)


def no_headings(page: str) -> str:
    return re.sub(r"<(/?)h[1-6]\b", r"<\1div", page, flags=re.I)


def site_title(page: str) -> str:
    return re.sub(r"<title>.*?</title>", "<title>某某网站</title>", page, flags=re.S | re.I)


def no_meta(page: str) -> str:
    page = re.sub(r"<meta\b[^>]*>", "", page, flags=re.I)
    return re.sub(r"<script[^>]*ld\+json[^>]*>.*?</script>", "", page, flags=re.S | re.I)


VARIANTS: dict[str, Callable[[str], str]] = {
    "no-classes": no_classes,
    "no-headings": no_headings,
    "site-title": site_title,
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", golden_cases(), ids=str)
def test_same_article_without_template_cues(case: GoldenCase, variant: str) -> None:
    page = VARIANTS[variant](decode_html(case.html)[0])
    got = extract(page, url=case.url).to_dict()
    assert {k: got[k] for k in case.expected} == case.expected


@pytest.mark.parametrize("case", golden_cases(), ids=str)
def test_same_article_without_meta(case: GoldenCase) -> None:
    """Without <meta>/JSON-LD only the seconds they add to a visible time may be lost."""
    got = extract(no_meta(decode_html(case.html)[0]), url=case.url).to_dict()
    expected = dict(case.expected)
    assert (got.pop("publish_time") or "")[:10] == expected.pop("publish_time")[:10]
    assert got == expected


@pytest.mark.parametrize("case", golden_cases(), ids=str)
def test_same_article_in_the_other_script(case: GoldenCase) -> None:
    """A page converted to the other script (opencc) extracts to its converted truth: the
    label table must hold both scripts and the Hong Kong / Taiwan variants (審覈, 編輯)."""
    config = "t2s.json" if case.script == "traditional" else "s2hk.json"
    convert = opencc.OpenCC(config).convert
    got = extract(convert(decode_html(case.html)[0]), url=case.url).to_dict()
    for name, value in case.expected.items():
        if name == "images":
            continue
        want = value if name == "publish_time" or value is None else convert(value)
        assert got[name] == want, name
