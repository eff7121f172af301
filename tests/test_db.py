"""The archive schema, built by the migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from archive import dedup
from archive.db import (
    SCHEMA_HEAD,
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    stored_revision,
    table_names,
    upgrade,
)
from archive.errors import DatabaseError
from archive.models import (
    Article,
    ArticleVersion,
    Base,
    Cluster,
    Collection,
    CollectionItem,
    CrawlError,
    CrawlRun,
    LshBand,
    Site,
    Snapshot,
    is_modelled,
)

EXPECTED_TABLES = {
    "sites", "articles", "article_versions", "snapshots", "crawl_runs", "crawl_errors",
    "clusters", "lsh_bands", "lsh_tiers", "lsh_keys", "lsh_log", "collections", "collection_items",
    "search_docs",
}  # fmt: skip
BEIJING = timezone(timedelta(hours=8))


def test_upgrade_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(DatabaseError, match="db upgrade"):
            check_schema(engine)
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision() == stored_revision(engine)
        check_schema(engine)
        assert set(table_names(engine)) >= EXPECTED_TABLES
    finally:
        engine.dispose()


def test_the_schema_head_constant_is_alembics_head() -> None:
    """check_schema compares with SCHEMA_HEAD; a new migration must move it too."""
    assert head_revision() == SCHEMA_HEAD, "set archive.db.SCHEMA_HEAD to the new migration"


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": is_modelled}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_nothing_and_back(engine: Engine) -> None:
    command.downgrade(alembic_config(engine), "base")
    assert set(table_names(engine)) <= {"alembic_version"}
    upgrade(engine)
    assert set(table_names(engine)) >= EXPECTED_TABLES


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_lsh_bands_is_a_without_rowid_table_on_sqlite(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'lsh_bands'")).scalar()
    engine.dispose()
    assert sql is not None and "WITHOUT ROWID" in sql.upper()


def insert_site_and_article(conn: Connection, is_original: bool) -> None:
    """Site 1 and its article 1, in SQL that every revision since 0001 accepts."""
    conn.execute(
        text(
            "INSERT INTO sites (id, name, title, created_at) VALUES (1, 'a', 'A', CURRENT_TIMESTAMP)"
        )
    )
    conn.execute(text(
        "INSERT INTO articles (id, site_id, url, canonical_url, status, first_seen, last_seen, version, is_original)"
        " VALUES (1, 1, 'u', 'u', 'live', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, :original)"
    ), {"original": is_original})  # fmt: skip


def test_upgrading_an_archive_keeps_its_rows(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        insert_site_and_article(conn, is_original=False)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT is_original FROM articles WHERE id = 1")).scalar() in (
            True,
            1,
        )
    engine.dispose()


def test_upgrading_to_tiers_keeps_the_band_index(database_url: str) -> None:
    """0003 puts lsh_bands in tiers: the rows already there stay, in tier 0, counted."""
    engine = make_engine(database_url)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        insert_site_and_article(conn, is_original=True)
        conn.execute(
            text("INSERT INTO lsh_bands (band, bucket, article_id) VALUES (:band, :bucket, 1)"),
            [{"band": band, "bucket": -(2**63) + band} for band in range(3)],
        )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tier, band, bucket FROM lsh_bands ORDER BY band")).all()
        tiers = conn.execute(text("SELECT tier, row_count FROM lsh_tiers")).all()
        keys = conn.execute(text("SELECT article_id, buckets FROM lsh_keys")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(0, band, -(2**63) + band) for band in range(3)]
    assert [tuple(r) for r in tiers] == [(0, 3)]
    assert [(r[0], bytes(r[1])) for r in keys] == [
        (1, struct.pack("<3q", *(-(2**63) + band for band in range(3))))
    ]


def test_upgrading_to_runs_keeps_the_band_index_and_filters_every_run(
    database_url: str,
) -> None:
    """0006 renumbers the newest tier -1 and makes the biggest and middle tiers runs 0 and 1;
    0009 logs the newest tier's buckets. The next merge gives both runs a filter from their
    rows and fills run 1 (the last). Downgrading puts it back. (On PostgreSQL 0025 makes the
    newest tier's rows run 2, and the next settling gives all three a filter.)"""
    engine = make_engine(database_url)
    upgrade(engine, "0005")
    bucket = {tier: -(2**63) + 10 * tier for tier in range(3)}
    with engine.begin() as conn:
        insert_site_and_article(conn, is_original=True)
        conn.execute(text("DELETE FROM lsh_tiers"))
        conn.execute(
            text("INSERT INTO lsh_bands (tier, band, bucket, article_id) VALUES (:t, 0, :b, 1)"),
            [{"t": tier, "b": bucket[tier]} for tier in range(3)],
        )
        conn.execute(
            text("INSERT INTO lsh_tiers (tier, row_count) VALUES (:t, 1)"),
            [{"t": tier} for tier in range(3)],
        )
    upgrade(engine)
    postgresql = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT tier, bucket FROM lsh_bands ORDER BY tier")).all()
        if postgresql:  # 0025: the newest tier's rows are a run of their own, the log empty
            assert [tuple(r) for r in rows] == [(0, bucket[0]), (1, bucket[1]), (2, bucket[2])]
            assert dedup.logged_buckets(conn) == set()
            assert dedup.stored_runs(conn) == {0: (1, None), 1: (1, None), 2: (1, None)}
            dedup.settle_tiers(conn, dedup.NEWEST_ROWS)
            runs = dedup.stored_runs(conn)
            filters = dedup.run_filters(conn, runs)
            assert runs.keys() == {0, 1, 2}
            for run in range(3):
                words = filters[run]
                assert words is not None
                assert dedup.may_contain(words, np.array([bucket[run]], dtype=np.int64)).all()
    if postgresql:
        engine.dispose()
        return
    with engine.begin() as conn:
        assert [tuple(r) for r in rows] == [(-1, bucket[2]), (0, bucket[0]), (1, bucket[1])]
        assert dedup.logged_buckets(conn) == {bucket[2]}
        assert dedup.stored_runs(conn) == {0: (1, None), 1: (1, None)}
        dedup.settle_tiers(conn, dedup.NEWEST_ROWS)
        runs = dedup.stored_runs(conn)
        assert runs.keys() == {0, 1} and runs[0][0] == 1 and runs[1][0] == 2  # counted rows
        filters = dedup.run_filters(conn, runs)
        for run, held in ((0, [bucket[0]]), (1, [bucket[1], bucket[2]])):
            words = filters[run]
            assert words is not None
            assert dedup.may_contain(words, np.array(held, dtype=np.int64)).all()
        assert dedup.logged_buckets(conn) == set()
        rows = conn.execute(text("SELECT tier, bucket FROM lsh_bands ORDER BY bucket")).all()
        assert [tuple(r) for r in rows] == [(0, bucket[0]), (1, bucket[1]), (1, bucket[2])]
    command.downgrade(alembic_config(engine), "0005")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tier, bucket FROM lsh_bands ORDER BY bucket")).all()
        tiers = conn.execute(text("SELECT tier, row_count FROM lsh_tiers ORDER BY tier")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(0, bucket[tier]) for tier in range(3)]
    assert [tuple(r) for r in tiers] == [(0, 3), (2, 0)]


def test_foreign_keys_are_enforced(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), session_factory() as s, s.begin():
        s.add(
            Article(
                site_id=4242, url="https://x.gov.cn/a.html", canonical_url="https://x.gov.cn/a.html"
            )
        )


def test_a_full_article_graph_round_trips(session_factory: sessionmaker[Session]) -> None:
    published = datetime(2024, 2, 7, 10, 29, 35, tzinfo=BEIJING)
    with session_factory() as s, s.begin():
        site = Site(name="zytzb", title="中共中央统一战线工作部")
        run = CrawlRun(site=site, trigger="manual", responses_by_status={"200": 3, "404": 1})
        run.errors.append(
            CrawlError(
                url="https://www.zytzb.gov.cn/x.html", kind="http_404", message="404 Not Found"
            )
        )
        article = Article(
            site=site,
            url="https://www.zytzb.gov.cn/tzyw/1.jhtml",
            canonical_url="https://www.zytzb.gov.cn/tzyw/1.jhtml",
            publish_time=published,
        )
        snapshot = Snapshot(
            article=article,
            url=article.url,
            status_code=200,
            headers={"Content-Type": "text/html"},
            warc_file="warc/ufarchive-00001.warc.gz",
            warc_offset=0,
            warc_length=2048,
            warc_record_id="<urn:uuid:0f0e>",
            payload_digest="sha1:ABC",
            etag='"abc"',
        )
        s.add_all([run, article, snapshot])
        s.flush()
        for number, body in ((1, "统一战线是党的重要法宝。"), (2, "統一戰線是黨的重要法寶。")):
            s.add(ArticleVersion(
                article=article, version=number, title="统战要闻", publish_time=published,
                publish_time_offset=480, source="中央统战部网站", editor="张三、李四", body=body,
                images=[{"src": "https://www.zytzb.gov.cn/a.jpg", "caption": "6月5日，会议现场"}],
                content_hash=f"{number:064d}", snapshot_id=snapshot.id,
            ))  # fmt: skip
        article.version = 2
        cluster = Cluster(original_reason="earliest publish_time")
        s.add(cluster)
        s.flush()
        cluster.original_article_id = article.id
        article.cluster_id, article.is_original = cluster.id, True
        s.add(LshBand(tier=0, band=3, bucket=-(2**63) + 5, article_id=article.id))
        s.add(Collection(name="侨务", items=[CollectionItem(article_id=article.id, note="重点")]))

    with session_factory() as s:
        article = s.scalars(select(Article)).one()
        assert article.publish_time == published  # aware, in UTC, equal as an instant
        assert article.publish_time is not None and article.publish_time.tzinfo == UTC
        assert [v.body for v in article.versions] == [
            "统一战线是党的重要法宝。",
            "統一戰線是黨的重要法寶。",
        ]
        assert article.versions[0].images == [
            {"src": "https://www.zytzb.gov.cn/a.jpg", "caption": "6月5日，会议现场"}
        ]
        assert (
            article.snapshots[0].warc_offset == 0
            and article.snapshots[0].headers["Content-Type"] == "text/html"
        )
        run = s.scalars(select(CrawlRun)).one()
        assert run.status == "running" and run.responses_by_status == {"200": 3, "404": 1}
        assert [e.kind for e in run.errors] == ["http_404"]
        cluster = s.get_one(Cluster, article.cluster_id)
        assert cluster.original_article_id == article.id
        assert s.scalars(select(LshBand.bucket)).one() == -(2**63) + 5
        assert s.scalars(select(Collection)).one().items[0].note == "重点"


def test_versions_are_unique_per_article(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        site = Site(name="a", title="A")
        article = Article(site=site, url="u", canonical_url="u")
        s.add(article)
        s.flush()
        s.add(ArticleVersion(article_id=article.id, version=1, body="x", content_hash="h"))
    with pytest.raises(IntegrityError), session_factory() as s, s.begin():
        s.add(ArticleVersion(article_id=article.id, version=1, body="y", content_hash="h2"))


def test_naive_datetimes_are_refused(session_factory: sessionmaker[Session]) -> None:
    from sqlalchemy.exc import StatementError

    with pytest.raises(StatementError, match="naive datetime"), session_factory() as s, s.begin():
        s.add(Site(name="n", title="N", created_at=datetime(2024, 1, 1)))


def test_bad_urls_are_one_line_errors(tmp_path: object) -> None:
    with pytest.raises(DatabaseError, match="not a SQLAlchemy URL"):
        make_engine("not a url")
    with pytest.raises(DatabaseError, match="unsupported driver"):
        make_engine("postgresql+nosuchdriver://x@127.0.0.1/db")
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseError, match=r"127\.0\.0\.1"):
        upgrade(engine)


def test_check_schema_survives_a_connection_the_server_ended(postgres_url: str) -> None:
    """A PostgreSQL restart (here: an administrator ending the session) just after a
    command's connection was checked out and pinged: the schema check opening the command
    tries again on a new connection instead of failing it (CI saw `ufarchive crawl` end
    with exit 2 so, its crawl done, while reading the alerts)."""
    from sqlalchemy import event

    engine = make_engine(postgres_url)
    upgrade(engine)
    admin = make_engine(postgres_url)
    ended: list[int] = []

    def end_it_once(dbapi_connection: object, _record: object, _proxy: object) -> None:
        if not ended:
            pid = dbapi_connection.info.backend_pid  # type: ignore[attr-defined]
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            ended.append(pid)

    event.listen(engine.pool, "checkout", end_it_once)  # after the pool's pre-ping
    try:
        check_schema(engine)  # raised DatabaseError "terminating connection ..." before
        assert len(ended) == 1
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != ended[0]
    finally:
        admin.dispose()
        engine.dispose()
    # a database that cannot be reached still fails, after the short retry
    unreachable = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseError, match=r"127\.0\.0\.1:1"):
        check_schema(unreachable)


def test_large_values_are_written_with_lz4_on_postgresql(postgres_url: str) -> None:
    """Migration 0024: a version's body, a search entry's codes and a band filter, all
    large enough to be compressed, are compressed with lz4 (pglz, PostgreSQL's default,
    took three times as long on news text and gained nothing); downgraded, pglz again."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    body = "".join(f"统战部第{n}次会议强调坚持大团结大联合。" for n in range(300))
    try:
        with engine.begin() as conn:
            insert_site_and_article(conn, is_original=True)
            conn.execute(
                text(
                    "INSERT INTO article_versions (article_id, version, first_seen, last_seen,"
                    " body, content_hash) VALUES (1, 1, now(), now(), :body, '')"
                ),
                {"body": body},
            )
            stored = conn.execute(
                text("SELECT pg_column_compression(body), body FROM article_versions")
            ).one()
        assert stored == ("lz4", body)
        methods = """SELECT attrelid::regclass::text || '.' || attname, attcompression
            FROM pg_attribute WHERE (attrelid::regclass::text, attname) IN
            (('article_versions', 'body'), ('search_docs', 'vector'), ('lsh_tiers', 'filter'))"""
        with engine.connect() as conn:
            assert dict(conn.execute(text(methods)).all()) == {
                "article_versions.body": "l",
                "search_docs.vector": "l",
                "lsh_tiers.filter": "l",
            }
        command.downgrade(alembic_config(engine), "0023")
        with engine.connect() as conn:
            assert set(dict(conn.execute(text(methods)).all()).values()) == {""}
            # what was stored with lz4 still reads back
            assert conn.execute(text("SELECT body FROM article_versions")).scalar_one() == body
    finally:
        engine.dispose()
