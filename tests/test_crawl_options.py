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
