"""Collections as analysts use them: saved queries pick up new articles, frozen lists keep
theirs at the versions they had; every command and its mistakes; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crawler.cli import app
from tests.exportworld import ARTICLES, EDITED_BODY, T0, ExportWorld, make_export_world

NEW_URL = "https://www.zytzb.gov.cn/tzyw/202405/t20240501_9.html"
NEW_ARTICLE = {
    "title": "统战部举办新时代统战理论研讨会",
    "publish_time": "2024-05-01T09:00:00+08:00",
    "source": "中央统战部网站",
    "body": "研讨会围绕统一战线理论展开。",
}


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> ExportWorld:
    return make_export_world(tmp_path, database_url)


def run(world: ExportWorld, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=world.env(), input=input)


def ok(world: ExportWorld, *args: str) -> str:
    result = run(world, *args)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def exported(world: ExportWorld, tmp_path: Path, name: str, *extra: str) -> list[dict[str, Any]]:
    out = tmp_path / f"{name}-{len(list(tmp_path.glob('*.jsonl')))}.jsonl"
    ok(world, "export", "--collection", name, "--format", "jsonl", "-o", str(out), *extra)
    return [json.loads(line) for line in out.read_text("utf-8").splitlines()]


def test_a_saved_collection_picks_up_new_articles_and_a_frozen_one_does_not(
    world: ExportWorld, tmp_path: Path
) -> None:
    saved = ok(world, "collections", "create", "统战-saved", "--query", "统战", "--site", "zytzb",
               "--description", "统战 news of the central site", "--by", "analyst1")  # fmt: skip
    assert "created saved collection '统战-saved': 1 articles matching now" in saved
    frozen = ok(
        world, "collections", "create", "统战-frozen", "--frozen-from", "统战", "--site", "zytzb"
    )
    assert "created frozen collection '统战-frozen': 1 articles pinned" in frozen
    before = [r["id"] for r in exported(world, tmp_path, "统战-saved")]
    assert before == [world.ids[ARTICLES[0][1]]]
    assert [r["id"] for r in exported(world, tmp_path, "统战-frozen")] == before
    new_id = world.store("zytzb", NEW_URL, NEW_ARTICLE, T0 + timedelta(days=30))
    assert [r["id"] for r in exported(world, tmp_path, "统战-saved")] == [*before, new_id]
    assert [r["id"] for r in exported(world, tmp_path, "统战-frozen")] == before
    listed = json.loads(ok(world, "collections", "list", "--format", "json"))
    by_name = {c["name"]: c for c in listed}
    assert by_name["统战-saved"]["articles"] == 2 and by_name["统战-frozen"]["articles"] == 1
    assert by_name["统战-saved"]["created_by"] == "analyst1"
    assert by_name["统战-saved"]["filters"] == {"site": "zytzb", "since": None, "until": None}
    manifest = json.loads(
        next(tmp_path.glob("统战-saved-*.jsonl.manifest.json")).read_text("utf-8")
    )
    assert (
        manifest["collection"]["name"] == "统战-saved" and manifest["collection"]["query"] == "统战"
    )
    assert manifest["collection"]["description"] == "统战 news of the central site"


def test_a_frozen_collection_exports_the_versions_it_pinned(
    world: ExportWorld, tmp_path: Path
) -> None:
    site, url, fields = ARTICLES[0]
    article_id = world.ids[url]
    ok(
        world,
        "collections",
        "create",
        "pinned",
        "--ids",
        f"{article_id}, {world.ids[ARTICLES[2][1]]}",
    )
    world.store(site, url, {**fields, "body": EDITED_BODY}, T0 + timedelta(days=3))
    other = world.ids[ARTICLES[2][1]]
    pinned = exported(world, tmp_path, "pinned")
    assert [(r["id"], r["version"], r["body"]) for r in pinned] == [
        (article_id, 1, fields["body"]), (other, 1, ARTICLES[2][2]["body"])
    ]  # fmt: skip
    latest = exported(world, tmp_path, "pinned", "--versions", "latest")
    assert [(r["id"], r["version"], r["body"]) for r in latest] == [
        (article_id, 2, EDITED_BODY), (other, 1, ARTICLES[2][2]["body"])
    ]  # fmt: skip
    every = exported(world, tmp_path, "pinned", "--versions", "all")
    assert [(r["id"], r["version"]) for r in every] == [
        (article_id, 1), (article_id, 2), (world.ids[ARTICLES[2][1]], 1)
    ]  # fmt: skip
    shown = json.loads(ok(world, "collections", "show", "pinned", "--format", "json"))
    assert shown["kind"] == "frozen" and shown["articles"] == 2
    assert [(i["id"], i["version"], i["current_version"]) for i in shown["items"]] == [
        (article_id, 1, 2), (world.ids[ARTICLES[2][1]], 1, 1)
    ]  # fmt: skip
    text = ok(world, "collections", "show", "pinned")
    assert fields["title"] in text and "current" in text


def test_add_remove_rename_delete(world: ExportWorld) -> None:
    ids = [world.ids[url] for _, url, _ in ARTICLES]
    ok(world, "collections", "create", "picks", "--ids", str(ids[0]))
    assert "added 2 articles to 'picks' (1 already in)" in ok(
        world, "collections", "add", "picks", str(ids[0]), str(ids[1]), str(ids[2])
    )
    assert "removed 1 articles from 'picks'" in ok(
        world, "collections", "remove", "picks", str(ids[1])
    )
    assert "renamed 'picks' to '侨务 精选'" in ok(
        world, "collections", "rename", "picks", "侨务 精选"
    )
    listed = ok(world, "collections", "list")
    assert "侨务 精选" in listed and "frozen" in listed and "picks" not in listed
    kept = run(world, "collections", "delete", "侨务 精选", input="n\n")
    assert kept.exit_code == 1 and "侨务 精选" in ok(world, "collections", "list")
    assert "deleted collection '侨务 精选'" in ok(
        world, "collections", "delete", "侨务 精选", "--yes"
    )
    assert "no collections yet" in ok(world, "collections", "list")
    with world.session() as session:  # the articles stay in the archive
        from archive.export import Selection, count_rows, resolve

        assert count_rows(session, resolve(session, Selection())) == len(ARTICLES)


MISTAKES = [
    (["create", "x"], "give one of --query, --frozen-from or --ids"),
    (["create", "x", "--query", "统战", "--ids", "1"], "give one of --query"),
    (["create", "x", "--ids", "1,a"], "--ids 1,a: give article ids separated by commas"),
    (["create", "x", "--ids", "1,99999"], "collection 'x': no such article: 99999"),
    (["create", "x", "--query", '"统战'], "is not closed"),
    (["create", " ", "--query", "统战"], "a name cannot be empty"),
    (["create", "saved", "--query", "统战"], "collection 'saved': exists already"),
    (["add", "saved", "1"], "is a saved query"),
    (["add", "nosuch", "1"], "collection 'nosuch': no such collection"),
    (["rename", "saved", "frozen"], "collection 'frozen': exists already"),
    (["show", "nosuch"], "no such collection"),
    (["delete", "nosuch", "--yes"], "no such collection"),
]


def test_mistakes_are_one_line_and_change_nothing(world: ExportWorld) -> None:
    ok(world, "collections", "create", "saved", "--query", "统战")
    ok(world, "collections", "create", "frozen", "--ids", "1")
    before = ok(world, "collections", "list", "--format", "json")
    for args, message in MISTAKES:
        result = run(world, "collections", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, args
    assert ok(world, "collections", "list", "--format", "json") == before
