"""The crawl's derive process (crawler.derive): search entries and republication clusters
made in a second process give the archive a crawl makes in one, and whatever it did not
derive is derived by the crawl's catch-up."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from archive.models import CrawlRun, SearchDoc
from archive.search import clear_index, search
from crawler.derive import MOST_AT_ONCE, batches
from tests.conftest import fresh_database
from tests.crawlworld import World, make_world
from tests.siteserver import SiteServer
from tests.test_crawl import ALL_SITES, archived


@pytest.fixture
def world(tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]) -> World:
    return make_world(tmp_path, database_url, site_server, ALL_SITES)


def derive_process_ran(world: World) -> list[bool]:
    with world.session() as session:
        stats = session.scalars(select(CrawlRun.stats).order_by(CrawlRun.id)).all()
    return [bool((s or {}).get("ufarchive/derive_process")) for s in stats]


def test_a_crawl_deriving_in_a_second_process_makes_the_same_archive(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    inline = make_world(tmp_path / "inline", database_url, site_server, ALL_SITES)
    inline.configure(derive_process_after=None)
    inline.crawl()
    assert not any(derive_process_ran(inline))
    expected_archive = archived(inline)
    assert sum(1 for row in expected_archive.values() if row[6]) == 6  # three clusters of two

    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    with fresh_database(kind, tmp_path / "other") as other_url:
        other = make_world(tmp_path / "other", other_url, site_server, ALL_SITES)
        other.configure(derive_process_after=0)
        runs = other.crawl()
        assert {run.status for run in runs.values()} == {"succeeded"}
        assert any(derive_process_ran(other))
        assert archived(other) == expected_archive


def test_articles_left_underived_are_derived_by_the_next_run(world: World) -> None:
    """A crawl killed before its derive process (or itself) derived what it stored: the
    site's next run finds those articles missing from the index and derives them."""
    world.crawl("zytzb")
    with world.session() as session:
        before = {h.record["id"] for h in search(session, "统战", limit=100).hits}
    assert before
    with world.session() as session, session.begin():
        clear_index(session)  # as if never derived
    with world.session() as session:
        assert not search(session, "统战", limit=100).hits
    runs = world.crawl("zytzb")
    assert runs["zytzb"].status == "succeeded"
    assert runs["zytzb"].articles_new == 0
    with world.session() as session:
        after = {h.record["id"] for h in search(session, "统战", limit=100).hits}
        indexed = session.scalar(select(SearchDoc.article_id).limit(1))
    assert after == before
    assert indexed is not None


def test_batches_take_what_has_arrived_until_the_end_of_input() -> None:
    read, write = os.pipe()
    os.write(write, b"1,2,3\n4\n")
    os.write(write, (",".join(str(i) for i in range(10, 10 + MOST_AT_ONCE)) + "\n").encode())
    os.close(write)
    got = list(batches(read))
    os.close(read)
    assert [i for batch in got for i in batch] == [1, 2, 3, 4, *range(10, 10 + MOST_AT_ONCE)]
    assert all(len(batch) <= MOST_AT_ONCE for batch in got)
    assert len(got) == 2
