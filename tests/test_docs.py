"""The documentation lives in the repository and says what the code does: links resolve
inside the repo (never to ../shared/), and the guides name every column and filter the
code has. Also the one layer rule no other test checks: crawler.extract stands alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from archive.export import EXPORT_COLUMNS
from archive.search import FIELDS

REPO = Path(__file__).resolve().parents[1]
DOCS = [
    "README.md",
    "DEVELOPERS.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("name", DOCS)
def test_links_stay_in_the_repository_and_resolve(name: str) -> None:
    path = REPO / name
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{name} points outside the repository"
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        resolved = (path.parent / target).resolve()
        assert REPO in resolved.parents and resolved.exists(), f"{name}: broken link {target}"


def test_the_readme_points_into_docs() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for doc in (
        "architecture",
        "operations",
        "configuration",
        "reliability",
        "searching",
        "exports",
    ):
        assert f"(docs/{doc}.md)" in text


def test_the_guides_name_every_export_column_and_search_filter() -> None:
    exports = (REPO / "docs" / "exports.md").read_text(encoding="utf-8")
    for column in EXPORT_COLUMNS:
        assert f"| `{column}` |" in exports, f"docs/exports.md lacks the column {column}"
    searching = (REPO / "docs" / "searching.md").read_text(encoding="utf-8")
    for name in FIELDS:
        assert f"`{name}:" in searching, f"docs/searching.md lacks the filter {name}:"


def test_extraction_imports_neither_scrapy_nor_the_database() -> None:
    code = (
        "import sys, crawler.extract\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'scrapy', 'twisted', 'sqlalchemy', 'archive'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
