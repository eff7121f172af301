"""`ufarchive extract FILE`: the JSON of `Article.to_dict()` on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crawler.cli import app
from tests.conftest import SITES, write_site

GBK_PAGE = SITES / "gbk_city" / "xwdt" / "2024" / "0322" / "131.htm"


def test_extract_prints_the_article_as_json(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app,
        ["extract", str(GBK_PAGE), "--url", "http://www.example.gov.cn/xwdt/2024/0322/131.htm"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert list(got) == [
        "title",
        "publish_time",
        "source",
        "editor",
        "author",
        "contributor",
        "body",
        "images",
    ]
    assert (
        got["title"] == "市政协副主席刘堃带队开展民主监督调研"
    )  # 堃 is GBK-only: decoded as GB18030
    assert got["publish_time"] == "2024-03-22T00:00:00+08:00"
    assert got["images"][0]["src"].startswith("http://www.example.gov.cn/UploadFiles/")
    assert "\ufffd" not in result.stdout


def test_extract_with_a_sites_selectors(env: dict[str, str], config_dir: Path) -> None:
    write_site(config_dir, "city", "selectors: {title: 'xpath://title', source: 'td.title'}\n")
    result = CliRunner().invoke(app, ["extract", str(GBK_PAGE), "--site", "city"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"].startswith("市政协副主席刘堃带队开展民主监督调研")
    assert (
        json.loads(result.stdout)["title"] != "市政协副主席刘堃带队开展民主监督调研"
    )  # <title> has the site suffix


def test_extract_errors_are_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["extract", str(tmp_path / "missing.html")], env=env)
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'missing.html'}: cannot read: No such file or directory"
    )
    result = CliRunner().invoke(app, ["extract", str(GBK_PAGE), "--site", "nosuch"], env=env)
    assert result.exit_code == 2 and "nosuch.yaml" in result.stderr
