"""`ufarchive stats`: counts by period (Beijing time), site, source and editor, as a table,
CSV or chart, checked against the fixture articles; SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from crawler.cli import app
from tests.exportworld import ARTICLES, ExportWorld, make_export_world


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> ExportWorld:
    return make_export_world(tmp_path, database_url)


def stats(world: ExportWorld, *args: str) -> Any:
    result = CliRunner().invoke(app, ["stats", *args], env=world.env())
    assert result.exit_code == 0, result.output
    return result


def period(published: str, by: str) -> str:
    day = date.fromisoformat(published[:10])  # the fixtures' times are all +08:00
    if by == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return day.isoformat()[: 7 if by == "month" else 10]


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.parametrize("by", ["day", "week", "month"])
def test_counts_by_period_and_site_in_beijing_time(world: ExportWorld, by: str) -> None:
    got = read_csv(stats(world, "--by", by, "--format", "csv").stdout)
    want = Counter(
        (period(f["publish_time"], by), site) for site, _, f in ARTICLES if f["publish_time"]
    )
    sites = sorted({site for _, site in want})
    assert got[0] == [by, *sites, "total"]
    rows = {row[0]: row[1:] for row in got[1:]}
    assert sorted(rows) == sorted({p for p, _ in want})
    for key, cells in rows.items():
        counts = [want.get((key, site), 0) for site in sites]
        assert [int(c) for c in cells] == [*counts, sum(counts)]
    if by == "day":  # 07:00 on 3 March in Beijing is 2 March in UTC
        assert "2024-03-03" in rows and "2024-03-02" not in rows


@pytest.mark.parametrize("by", ["site", "source", "editor"])
def test_counts_by_site_source_and_editor(world: ExportWorld, by: str) -> None:
    got = read_csv(stats(world, "--by", by, "--format", "csv").stdout)
    key = "site" if by == "site" else by
    want = Counter((site if key == "site" else f.get(key)) or "(none)" for site, _, f in ARTICLES)
    assert got[0] == [by, "articles"]
    assert {k: int(n) for k, n in got[1:]} == dict(want)
    assert [int(n) for _, n in got[1:]] == sorted((int(n) for _, n in got[1:]), reverse=True)


def test_a_table_a_query_and_a_collection(world: ExportWorld) -> None:
    table = stats(world, "--by", "month").stdout
    assert "2024-03" in table and "2024-04" in table
    assert f"{len(ARTICLES)} articles; 1 without a publish time" in table
    query = read_csv(stats(world, "統戰", "--by", "site", "--format", "csv").stdout)
    # the edited article's current body (tests.exportworld.EDITED_BODY) says 统战 too
    matching = Counter(
        site
        for site, _, f in ARTICLES
        if any(w in f["title"] + f["body"] for w in ("统战", "統戰"))
    )
    assert {k: int(n) for k, n in query[1:]} == dict(matching)
    runner = CliRunner()
    made = runner.invoke(
        app, ["collections", "create", "tw", "--query", "site:tzb_tw"], env=world.env()
    )
    assert made.exit_code == 0, made.output
    collection = read_csv(
        stats(world, "--collection", "tw", "--by", "day", "--format", "csv").stdout
    )
    assert collection == [
        ["day", "tzb_tw", "total"],
        ["2024-03-10", "1", "1"],
        ["2024-03-11", "1", "1"],
    ]


def test_charts_are_pictures_of_the_counts(world: ExportWorld, tmp_path: Path) -> None:
    png = tmp_path / "days.png"
    stats(world, "--by", "day", "--format", "png", "-o", str(png))
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 800
        assert len(image.convert("L").getcolors(256) or []) > 10  # lines and text, not a blank
    svg = tmp_path / "sources.svg"
    stats(world, "--by", "source", "--format", "svg", "-o", str(svg))
    texts = " ".join(t.text or "" for t in ET.parse(svg).iter() if t.tag.endswith("text"))
    assert "統戰新聞網" in texts and "云川日报" in texts
    weekly = tmp_path / "weeks.svg"
    stats(world, "--by", "week", "--format", "svg", "-o", str(weekly))
    texts = " ".join(t.text or "" for t in ET.parse(weekly).iter() if t.tag.endswith("text"))
    assert all(site in texts for site in ("zytzb", "tzb_tw", "gbk_city"))
    again = tmp_path / "weeks2.svg"
    stats(world, "--by", "week", "--format", "svg", "-o", str(again))
    assert again.read_bytes() == weekly.read_bytes()
    result = CliRunner().invoke(app, ["stats", "--by", "day", "--format", "png"], env=world.env())
    assert result.exit_code == 2 and "--format png: give --output PATH" in result.stderr
