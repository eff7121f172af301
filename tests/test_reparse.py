"""`ufarchive reparse`: a better extraction fixes the archive from the WARC files, without a recrawl."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from archive.models import Snapshot
from crawler.cli import app
from tests.crawlworld import expected, make_world
from tests.siteserver import SiteServer

EMPTY = '<html><head><meta name="x-probe" content="统战工作会议召开"></head><body></body></html>'
EMPTY_PATH = "/tzyw/202403/t20240330_999.html"


def test_reparse_makes_versions_only_where_a_field_changed(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb",))
    server = world.servers["zytzb"]
    listing = (Path(__file__).parent / "fixtures/sites/zytzb/tzyw/index.html").read_text(
        encoding="utf-8"
    )
    server.put(
        "/tzyw/index.html",
        listing.replace("</ul>", f'<li><a href="{EMPTY_PATH}">x</a></li></ul>', 1),
    )
    server.put(EMPTY_PATH, EMPTY)
    runs = world.crawl("zytzb")
    truth = expected("zytzb")["articles"]
    assert runs["zytzb"].articles_new == len(truth) and runs["zytzb"].articles_failed == 1
    with world.session() as session:  # the page without an article is kept, raw
        (unparsed,) = session.scalars(select(Snapshot).where(Snapshot.article_id.is_(None))).all()
        assert unparsed.url == server.url(EMPTY_PATH)
    server.clear()

    # Nothing changed: nothing to do.
    result = CliRunner().invoke(app, ["reparse"], env=world.env())
    assert result.exit_code == 0, result.output
    assert (
        f"checked {len(truth) + 1}: 0 changed (new version), {len(truth)} unchanged, 0 recovered, 1 still"
        in result.stdout
    )

    # "A better extractor": the site now says where the editor and the headline are.
    site_file = world.config_dir / "sites" / "zytzb.yaml"
    site_file.write_text(
        site_file.read_text(encoding="utf-8")
        + "selectors: {editor: 'xpath://div[@class=\"crumbs\"]/a[2]', title: 'xpath://meta[@name=\"x-probe\"]/@content'}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["reparse", "--site", "zytzb"], env=world.env())
    assert result.exit_code == 0, result.output
    assert (
        f"checked {len(truth) + 1}: {len(truth)} changed (new version), 0 unchanged, 1 recovered"
        in result.stdout
    )
    assert server.requests == [], "reparse never fetches"
    stored = world.articles("zytzb")
    assert set(stored) == set(truth) | {EMPTY_PATH}
    for path, article in stored.items():
        versions = world.versions(article.id)
        if path == EMPTY_PATH:
            assert [v.title for v in versions] == ["统战工作会议召开"]
            continue
        assert [v.version for v in versions] == [1, 2]
        assert versions[0].editor == truth[path]["editor"] and versions[1].editor == "统战要闻"
        assert (
            versions[0].body == versions[1].body
            and versions[0].snapshot_id == versions[1].snapshot_id
        )

    result = CliRunner().invoke(app, ["reparse"], env=world.env())
    assert "0 changed (new version)" in result.stdout and "0 recovered" in result.stdout


def test_reparse_of_an_unknown_site_is_a_one_line_error(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb",))
    result = CliRunner().invoke(app, ["reparse", "--site", "nosuch"], env=world.env())
    assert (
        result.exit_code == 2
        and result.stderr.strip() == "error: --site nosuch: the archive has no such site"
    )
