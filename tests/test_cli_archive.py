"""The archive commands as users run them: crawl, runs, show, export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive.export import EXPORT_COLUMNS
from crawler.cli import app
from tests.crawlworld import World, expected, make_world
from tests.siteserver import SiteServer

SHOW_VERSION_KEYS = ["version", "first_seen", "last_seen", "title", "publish_time", "source", "editor",
                     "author", "contributor", "body", "content_hash"]  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]) -> World:
    return make_world(tmp_path, database_url, site_server, ("tzb_tw", "gbk_city"))


def ufarchive(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ufarchive")), *args], cwd=world.root,
        env={**os.environ, **world.env()}, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_crawl_runs_and_show_as_a_real_process(world: World) -> None:
    result = ufarchive(world, "crawl")
    assert result.returncode == 0, result.stderr
    for site in ("tzb_tw", "gbk_city"):
        line = next(line for line in result.stdout.splitlines() if f" {site} " in line)
        assert "succeeded" in line and f" {len(expected(site)['articles'])} " in line
    listed = ufarchive(world, "runs")
    assert listed.returncode == 0 and listed.stdout.count("succeeded") == 2
    article = world.articles("gbk_city")["/xwdt/2024/0322/131.htm"]
    shown = ufarchive(world, "show", str(article.id), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert list(detail) == [*EXPORT_COLUMNS, "versions", "republications", "moved_to", "events"]
    assert detail["title"] == expected("gbk_city")["articles"]["/xwdt/2024/0322/131.htm"]["title"]
    assert detail["site"] == "gbk_city" and detail["version"] == 1 and detail["status"] == "live"
    assert [list(v) for v in detail["versions"]] == [SHOW_VERSION_KEYS]
    assert detail["republications"] == []
    text = ufarchive(world, "show", str(article.id))
    assert text.returncode == 0 and detail["title"] in text.stdout and "versions" in text.stdout
    raw = subprocess.run(
        [str(Path(sys.executable).with_name("ufarchive")), "show", str(article.id), "--raw"], cwd=world.root,
        env={**os.environ, **world.env()}, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    served = (Path(__file__).parent / "fixtures/sites/gbk_city/xwdt/2024/0322/131.htm").read_bytes()
    assert raw.returncode == 0 and raw.stdout == served


def test_a_failed_site_run_makes_crawl_exit_non_zero(world: World) -> None:
    world.servers["tzb_tw"].rule("/xwzx/tzgz/index.html", status=503)
    world.servers["tzb_tw"].rule("/atom.xml", status=404)
    result = ufarchive(world, "crawl")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: tzb_tw: run ")
    assert "Traceback" not in result.stderr


def test_crawl_user_mistakes(world: World) -> None:
    result = CliRunner().invoke(app, ["crawl", "nosuch"], env=world.env())
    assert result.exit_code == 2 and "no site file for nosuch" in result.stderr
    result = CliRunner().invoke(app, ["show", "12345"], env=world.env())
    assert (
        result.exit_code == 2 and result.stderr.strip() == "error: article 12345: no such article"
    )


def test_export_jsonl_and_csv(world: World, tmp_path: Path) -> None:
    world.crawl()
    total = sum(len(expected(s)["articles"]) for s in ("tzb_tw", "gbk_city"))
    out = tmp_path / "all.jsonl"
    result = CliRunner().invoke(
        app, ["export", "--format", "jsonl", "--output", str(out)], env=world.env()
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == total and f"wrote {total} articles" in result.stderr
    assert all(list(r) == list(EXPORT_COLUMNS) for r in records)
    by_url = {r["url"].removeprefix(world.servers[r["site"]].base): r for r in records}
    for site in ("tzb_tw", "gbk_city"):
        for path, fields in expected(site)["articles"].items():
            assert by_url[path]["title"] == fields["title"]
            assert by_url[path]["publish_time"] == fields["publish_time"]
            assert by_url[path]["status"] == "live" and by_url[path]["version"] == 1
    csv_out = tmp_path / "gbk.csv"
    result = CliRunner().invoke(
        app, ["export", "--format", "csv", "-o", str(csv_out), "--site", "gbk_city", "--since", "2024-03-11",
              "--until", "2024-03-19"], env=world.env(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with csv_out.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    want = {
        p
        for p, f in expected("gbk_city")["articles"].items()
        if "2024-03-11" <= f["publish_time"][:10] <= "2024-03-18"
    }
    assert {r["url"].removeprefix(world.servers["gbk_city"].base) for r in rows} == want
    assert all(r["site"] == "gbk_city" for r in rows)


def test_export_never_leaves_half_a_file(world: World, tmp_path: Path) -> None:
    world.crawl()
    result = CliRunner().invoke(
        app,
        ["export", "--format", "jsonl", "-o", str(tmp_path / "missing" / "x.jsonl")],
        env=world.env(),
    )
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = CliRunner().invoke(
        app, ["export", "--format", "parquet", "-o", str(tmp_path / "x.parquet")], env=world.env()
    )
    assert result.exit_code == 2 and "not implemented yet" in result.stderr
    assert not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".x.*"))
