"""Per-site options at crawl time: the keyword filter and selectors that override one field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.crawlworld import expected, make_world
from tests.siteserver import SiteServer


def test_keywords_keep_only_matching_articles_and_selectors_override_one_field(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb",))
    site_file = world.config_dir / "sites" / "zytzb.yaml"
    site_file.write_text(
        site_file.read_text(encoding="utf-8")
        + "keywords: [侨务, 侨胞]\nselectors: {editor: 'xpath://div[@class=\"crumbs\"]/a[2]'}\n",
        encoding="utf-8",
    )
    runs = world.crawl("zytzb")
    assert runs["zytzb"].status == "succeeded"
    stored = world.articles("zytzb")
    truth = expected("zytzb")["articles"]
    assert stored, "at least one article mentions 侨务"
    assert len(stored) < len(truth)
    for path, article in stored.items():
        (version,) = world.versions(article.id)
        assert (
            "侨务" in f"{version.title}{version.body}" or "侨胞" in f"{version.title}{version.body}"
        )
        assert version.editor == "统战要闻"  # from the selector, not the page's 责任编辑 line
        assert version.title == truth[path]["title"]  # the other fields stay generic


def test_a_charset_named_only_by_the_http_header_is_used(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb",))
    server = world.servers["zytzb"]
    path = "/tzyw/202403/t20240331_777.html"
    page = (
        "<html><head><title>僑務工作會議召開_測試</title></head><body><h1>僑務工作會議召開</h1>"
        "<div>來源：測試網　時間：2024-03-31 10:00</div><div class='content'>"
        "<p>　　會議強調，要做好新時代僑務工作，凝聚僑心僑力，服務國家發展大局。</p>"
        "<p>　　與會人員表示，將加強海外聯誼，講好中國故事，促進中外人文交流。</p></div></body></html>"
    )
    server.put(path, page.encode("big5"))
    server.rule(path, headers={"Content-Type": "text/html; charset=big5"})
    listing = (Path(__file__).parent / "fixtures/sites/zytzb/tzyw/index.html").read_text(
        encoding="utf-8"
    )
    server.put(
        "/tzyw/index.html", listing.replace("</ul>", f'<li><a href="{path}">x</a></li></ul>', 1)
    )
    world.crawl("zytzb")
    (version,) = world.versions(world.articles("zytzb")[path].id)
    assert version.title == "僑務工作會議召開"
    assert "凝聚僑心僑力" in version.body and "\ufffd" not in version.body
