"""The one write path: articles, versions, snapshots; races between writers; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from archive.models import Article, ArticleEvent, ArticleVersion, Snapshot
from archive.store import (
    ArticleFields,
    Check,
    Fetch,
    Takedown,
    add_snapshot,
    apply_takedown,
    ensure_site,
    record_checks,
    save_article,
    save_new_articles,
)
from archive.warc import WarcLocation

T0 = datetime(2024, 3, 1, 1, 0, tzinfo=UTC)


def fetch(url: str, n: int, at: datetime = T0, status: int = 200) -> Fetch:
    location = WarcLocation("warc/x.warc.gz", n * 1000, 900, f"<urn:uuid:{n:08d}>", f"sha1:{n}")
    return Fetch(url=url, status=status, headers={"ETag": f'"{n}"', "Content-Type": "text/html"}, fetched_at=at,
                 warc=location, payload_length=800)  # fmt: skip


def fields(body: str = "统一战线是党的重要法宝。", title: str = "统战要闻") -> ArticleFields:
    return ArticleFields(
        title=title, publish_time="2024-03-01T09:00:00+08:00", source="中央统战部网站", body=body
    )


@pytest.fixture
def site_id(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as s, s.begin():
        return ensure_site(s, "zytzb", "中央统战部").id


def test_new_same_changed_and_versions_kept(
    session_factory: sessionmaker[Session], site_id: int
) -> None:
    url = "https://www.zytzb.gov.cn/tzyw/1.html#top"
    with session_factory() as s, s.begin():
        article_id, outcome = save_article(s, site_id, fetch(url, 1), fields(), expect_new=True)
    assert outcome == "new"
    with session_factory() as s, s.begin():
        assert save_article(s, site_id, fetch(url, 2, T0 + timedelta(hours=1)), fields()) == (
            article_id,
            "unchanged",
        )
    with session_factory() as s, s.begin():
        assert save_article(s, site_id, fetch(url, 3, T0 + timedelta(hours=2)), fields("更正：" + fields().body)) == (
            article_id, "changed")  # fmt: skip
    with session_factory() as s:
        article = s.get_one(Article, article_id)
        assert article.canonical_url == "https://www.zytzb.gov.cn/tzyw/1.html"
        assert (article.version, article.status) == (2, "live")
        assert article.publish_time == datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
        assert article.last_seen == T0 + timedelta(hours=2) and article.first_seen == T0
        v1, v2 = article.versions
        assert v1.last_seen == T0 + timedelta(hours=1) and v2.first_seen == T0 + timedelta(hours=2)
        assert v1.body == fields().body and v2.body.startswith("更正：")
        assert v1.publish_time_offset == 480
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 3


def test_checked_gone_and_restored_keep_everything(
    session_factory: sessionmaker[Session], site_id: int
) -> None:
    url = "https://a.gov.cn/1.html"
    with session_factory() as s, s.begin():
        article_id, _ = save_article(s, site_id, fetch(url, 1), fields())
    with session_factory() as s, s.begin():  # a 304
        assert record_checks(s, [Check(article_id, T0 + timedelta(days=1))]) == []
    gone = Takedown(article_id, "gone", T0 + timedelta(days=2), {"status": 404})
    with session_factory() as s, s.begin():
        add_snapshot(s, fetch(url, 2, T0 + timedelta(days=2), 404), article_id)
        assert apply_takedown(s, gone)
    with session_factory() as s, s.begin():
        assert not apply_takedown(s, gone)  # already gone: nothing changes
    with session_factory() as s:
        article = s.get_one(Article, article_id)
        assert article.status == "gone" and article.gone_at == T0 + timedelta(days=2)
        assert article.last_seen == T0 + timedelta(days=1)
        assert article.last_checked == T0 + timedelta(days=2)
        assert article.versions[0].last_seen == T0 + timedelta(days=1)
        assert [sn.status_code for sn in article.snapshots] == [200, 404]
    with session_factory() as s, s.begin():  # it came back
        assert (
            save_article(s, site_id, fetch(url, 3, T0 + timedelta(days=3)), fields())[1]
            == "unchanged"
        )
    with session_factory() as s:
        article = s.get_one(Article, article_id)
        assert (article.status, article.gone_at, article.version) == ("live", None, 1)
        events = s.scalars(select(ArticleEvent).order_by(ArticleEvent.id)).all()
        assert [(e.kind, e.detail) for e in events] == [
            ("gone", {"status": 404}),
            ("restored", {"was": "gone"}),
        ]
        assert [e.at for e in events] == [T0 + timedelta(days=2), T0 + timedelta(days=3)]


def test_a_lost_race_for_a_new_url_rolls_back_only_itself(
    session_factory: sessionmaker[Session], site_id: int
) -> None:
    """Another writer stored the URL first: the SAVEPOINT of that page fails, the batch goes on."""
    with session_factory() as s, s.begin():
        first_id, _ = save_article(s, site_id, fetch("https://a.gov.cn/race.html", 1), fields())
    with session_factory() as s, s.begin():
        with pytest.raises(IntegrityError), s.begin_nested():
            save_article(
                s, site_id, fetch("https://a.gov.cn/race.html", 2), fields(), expect_new=True
            )
        with s.begin_nested():
            other_id, outcome = save_article(
                s, site_id, fetch("https://a.gov.cn/other.html", 3), fields(), expect_new=True
            )
        assert outcome == "new"
    with session_factory() as s, s.begin():
        assert save_article(s, site_id, fetch("https://a.gov.cn/race.html", 2), fields()) == (
            first_id,
            "unchanged",
        )
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Article)) == 2
        assert s.scalar(select(func.count()).select_from(ArticleVersion)) == 2
        assert s.get(Article, other_id) is not None
        assert (
            s.scalar(select(func.count()).select_from(Snapshot)) == 3
        )  # the failed one left nothing


def test_new_articles_stored_together_are_each_whole_and_a_lost_race_writes_none(
    session_factory: sessionmaker[Session], site_id: int
) -> None:
    """A crawl's batch of new articles goes in a few multi-row statements: each gets its
    own id (in the order given), snapshot and first version; if one URL was stored by
    another writer meanwhile, none of the batch is written (the caller stores them one by
    one)."""
    pages = [
        (fetch(f"https://a.gov.cn/{n}.html", n, T0 + timedelta(minutes=n)), fields(f"第{n}篇。"))
        for n in range(1, 6)
    ]
    with session_factory() as s, s.begin():
        ids = save_new_articles(s, site_id, pages)
    assert len(set(ids)) == 5
    with session_factory() as s:
        for article_id, (page, page_fields) in zip(ids, pages, strict=True):
            article = s.get_one(Article, article_id)
            assert article.url == page.url and article.version == 1
            [snapshot] = article.snapshots
            assert article.snapshot_id == snapshot.id
            assert snapshot.warc_record_id == page.warc.record_id
            [version] = article.versions
            assert version.body == page_fields.body and version.snapshot_id == snapshot.id
            assert version.first_seen == page.fetched_at == article.first_seen
    racing = [(fetch("https://a.gov.cn/new.html", 7), fields()), pages[2]]
    with session_factory() as s, s.begin(), pytest.raises(IntegrityError), s.begin_nested():
        save_new_articles(s, site_id, racing)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(Article)) == 5
        assert s.scalar(select(func.count()).select_from(Snapshot)) == 5
