"""Golden pages: every fixture page extracts to its truth JSON (tests/fixtures/pages/README.md).

One test per page (ids = page names), so a new page in the corpus is a new test without
touching this file; plus the article pages of the three fixture sites, whose
`_expected.json` gives the fields and how the body starts and ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crawler.extract import TEXT_FIELDS, extract
from tests.conftest import FIXTURES, SITES

PAGES = FIXTURES / "pages"


@dataclass(frozen=True)
class GoldenCase:
    name: str
    html: bytes
    url: str
    expected: dict[str, Any]
    with_: tuple[str, ...]
    without: tuple[str, ...]
    script: str = "simplified"

    def __str__(self) -> str:
        return self.name


def golden_cases() -> list[GoldenCase]:
    cases = []
    for truth_path in sorted(PAGES.glob("*.json")):
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        cases.append(
            GoldenCase(
                name=truth_path.stem,
                html=truth_path.with_suffix(".html").read_bytes(),
                url=truth["url"],
                expected=truth["expected"],
                with_=tuple(truth.get("with", [])),
                without=tuple(truth.get("without", [])),
                script=truth.get("script", "simplified"),
            )
        )
    return cases


#: Pages the extractor cannot get right yet, with why: (name -> reason). Strict xfails,
#: so a page that starts passing must leave this table.
KNOWN_FAILURES: dict[str, str] = {}


def _params() -> list[Any]:
    return [
        pytest.param(case, id=case.name, marks=pytest.mark.xfail(strict=True, reason=reason))
        if (reason := KNOWN_FAILURES.get(case.name))
        else pytest.param(case, id=case.name)
        for case in golden_cases()
    ]


def test_the_corpus_is_there() -> None:
    cases = golden_cases()
    assert len(cases) >= 80
    assert len({c.expected["body"] for c in cases}) == len(cases)


@pytest.mark.parametrize("case", _params())
def test_extract_golden(case: GoldenCase) -> None:
    got = extract(case.html, url=case.url).to_dict()
    assert "\ufffd" not in json.dumps(got, ensure_ascii=False)
    assert list(got) == [*TEXT_FIELDS, "images"]
    for name in TEXT_FIELDS:
        if name != "body":
            assert got[name] == case.expected[name], name
    assert [s for s in case.with_ if s not in got["body"]] == []
    assert [s for s in case.without if s in got["body"]] == []
    assert got["body"].split("\n") == case.expected["body"].split("\n")
    assert got["images"] == case.expected["images"]


@pytest.mark.parametrize("case", _params())
def test_extract_golden_from_text(case: GoldenCase) -> None:
    """Already-decoded text gives the same article as the bytes (the str path of extract)."""
    from crawler.extract.decode import decode_html

    text, _ = decode_html(case.html)
    assert extract(text, url=case.url) == extract(case.html, url=case.url)


# --------------------------------------------------------------------------- fixture sites


def site_articles() -> list[tuple[str, Path, dict[str, Any]]]:
    found = []
    for expected_path in sorted(SITES.glob("*/_expected.json")):
        site = expected_path.parent
        truth = json.loads(expected_path.read_text(encoding="utf-8"))
        for path, fields in truth["articles"].items():
            found.append((f"{site.name}{path}", site / path.lstrip("/"), fields))
    return found


@pytest.mark.parametrize(
    ("name", "page", "fields"), site_articles(), ids=[a[0] for a in site_articles()]
)
def test_extract_fixture_site_article(name: str, page: Path, fields: dict[str, Any]) -> None:
    got = extract(page.read_bytes(), url=f"http://www.example.gov.cn/{name}").to_dict()
    assert "\ufffd" not in json.dumps(got, ensure_ascii=False)
    for key in ("title", "publish_time", "source", "editor", "author", "contributor"):
        assert got[key] == fields[key], key
    assert got["body"].startswith(fields["body_starts"])
    assert got["body"].endswith(fields["body_ends"])
    assert "责任编辑" not in got["body"] and "責任編輯" not in got["body"]
    assert "ICP备" not in got["body"] and "ICP備" not in got["body"]
