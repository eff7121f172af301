"""Issue 16 around the extractor: encodings and why, mojibake warnings, provenance in
`extract --format json`, `show --format json` and `status`, and `reparse` upgrading an
archive stored before any of it existed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update
from typer.testing import CliRunner

from archive.models import ArticleVersion, Snapshot
from crawler.cli import app
from crawler.extract import extract
from crawler.extract.decode import REASON_HEADER, REASON_META, REASON_UTF8, decode_page, mojibake
from tests.conftest import FIXTURES
from tests.crawlworld import expected, make_world
from tests.siteserver import SiteServer

PAGES = FIXTURES / "pages"
TEXT = "全省统一战线工作会议在省城召开，会议强调要坚持大团结大联合。"


def page(meta: str, body: str = TEXT) -> str:
    return f"<html><head>{meta}<title>t</title></head><body><p>{body}</p></body></html>"


def test_utf8_bytes_win_over_a_gb2312_label_and_say_so() -> None:
    data = page('<meta charset="gb2312">').encode("utf-8")
    decoded = decode_page(data, "text/html; charset=GBK")
    assert TEXT in decoded.text
    assert (decoded.encoding, decoded.reason, decoded.declared) == ("utf-8", REASON_UTF8, "gb18030")
    # GBK bytes stay GBK: the header first, then the page's own label
    gbk = page('<meta charset="gb2312">').encode("gbk")
    assert decode_page(gbk, "text/html; charset=GBK").reason == REASON_HEADER
    assert decode_page(gbk).reason == REASON_META and TEXT in decode_page(gbk).text


def test_mojibake_is_found_and_real_chinese_is_not() -> None:
    wrong = TEXT.encode("utf-8").decode("gb18030", "replace")
    assert mojibake(wrong) and not mojibake(TEXT)
    for truth in PAGES.glob("*.json"):  # no field of the golden corpus looks like mojibake
        expected_ = json.loads(truth.read_text(encoding="utf-8"))["expected"]
        assert not [v for v in expected_.values() if isinstance(v, str) and mojibake(v, 10**6)]


def test_a_page_saved_as_mojibake_gets_an_extraction_warning() -> None:
    # A page whose text was already mis-decoded once and saved so: the bytes are valid
    # UTF-8, the characters are 鍏ㄧ渷缁熶竴... — nothing can decode it right.
    broken = page("", TEXT.encode("utf-8").decode("gb18030", "replace")).encode("utf-8")
    article = extract(broken)
    assert any(w.startswith("mojibake in body") for w in article.warnings), article.warnings
    good = extract((PAGES / "hard-enc-01.html").read_bytes())
    assert good.warnings == [] and good.encoding == "utf-8" and good.encoding_reason == REASON_UTF8


def test_extract_format_json_adds_provenance_and_plain_output_stays(env: dict[str, str]) -> None:
    path = PAGES / "hard-author-02.html"
    url = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["url"]
    plain = CliRunner().invoke(app, ["extract", str(path), "--url", url], env=env)
    assert plain.exit_code == 0, plain.output
    assert list(json.loads(plain.stdout)) == [
        "title", "publish_time", "source", "editor", "author", "contributor", "body", "images",
    ]  # fmt: skip
    full = CliRunner().invoke(
        app, ["extract", str(path), "--url", url, "--format", "json"], env=env
    )
    assert full.exit_code == 0, full.output
    got = json.loads(full.stdout)
    assert {k: got[k] for k in json.loads(plain.stdout)} == json.loads(plain.stdout)
    assert got["author"] == "赵明远、孙丽"
    assert got["provenance"]["author"] == {"rule": "dateline", "raw": "记者赵明远、孙丽"}
    assert got["provenance"]["editor"] == {"rule": "label:责任编辑", "raw": "责任编辑：王芳"}
    assert got["provenance"]["source"]["rule"] == "label:来源"
    assert got["provenance"]["publish_time"]["raw"].startswith("2024-05-20 21:08")
    assert got["provenance"]["title"]["rule"] == "heading:h1"
    assert (got["encoding"], got["encoding_reason"], got["warnings"]) == (
        "utf-8",
        "utf-8 bytes",
        [],
    )


BROKEN = "/tzyw/202403/t20240331_998.html"


def test_status_reports_warnings_and_reparse_upgrades_an_old_archive(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb",))
    server = world.servers["zytzb"]
    listing = (FIXTURES / "sites/zytzb/tzyw/index.html").read_text(encoding="utf-8")
    server.put(
        "/tzyw/index.html", listing.replace("</ul>", f'<li><a href="{BROKEN}">x</a></li></ul>', 1)
    )
    mangled = TEXT.encode("utf-8").decode("gb18030", "replace")
    server.put(BROKEN, page("<title>统战工作会议召开</title>", mangled * 3))
    world.crawl("zytzb")
    truth = expected("zytzb")["articles"]

    status = CliRunner().invoke(app, ["status", "--format", "json"], env=world.env())
    assert status.exit_code == 0, status.output
    (row,) = json.loads(status.stdout)
    assert row["extraction_warnings"] == 1
    text = CliRunner().invoke(app, ["status"], env=world.env())
    assert "warnings" in text.stdout

    # The archive as an older ufarchive left it: no provenance, no decoding recorded.
    with world.session() as session, session.begin():
        session.execute(update(ArticleVersion).values(provenance=None, extractor_version="1.0"))
        session.execute(
            update(Snapshot).values(encoding=None, encoding_reason=None, extract_warnings=None)
        )
    result = CliRunner().invoke(app, ["reparse"], env=world.env())
    assert result.exit_code == 0, result.output
    assert f"checked {len(truth) + 1}: 0 changed (new version)" in result.stdout
    stored = world.articles("zytzb")
    for path, article in stored.items():
        (version,) = world.versions(article.id)  # upgraded in place: no new version
        assert version.provenance and version.extractor_version != "1.0", path
        if path != BROKEN:
            assert version.provenance["title"]["raw"].startswith(truth[path]["title"][:6])
    with world.session() as session:
        snapshots = session.scalars(select(Snapshot)).all()
        assert all(s.encoding == "utf-8" and s.encoding_reason for s in snapshots)
        warned = [s.url for s in snapshots if s.extract_warnings]
    assert warned == [server.url(BROKEN)]
    shown = CliRunner().invoke(
        app, ["show", str(stored[BROKEN].id), "--format", "json"], env=world.env()
    )
    assert json.loads(shown.stdout)["decoding"]["warnings"][0].startswith("mojibake in")
