"""Republication clusters: copies across sites and scripts join, distinct stories stay apart."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import opencc
import pytest
from sqlalchemy import Connection, Engine, event, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from archive import dedup
from archive.db import make_engine, make_sessionmaker, upgrade
from archive.dedup import (
    BANDS,
    Member,
    choose_original,
    comparison_text,
    content_key,
    is_copy,
    prepare,
    shingle_hashes,
    signature,
    similarity,
)
from archive.models import Article, Cluster, LshBand, LshTier, Site
from archive.settings import load_settings
from archive.store import ARTICLES, VERSIONS
from crawler.cli import app
from crawler.extract import extract
from crawler.runner import run_crawl
from tests.conftest import SITES
from tests.crawlworld import World, expected, make_world
from tests.siteserver import SiteServer

ALL_SITES = ("zytzb", "tzb_tw", "gbk_city")


def fixture_bodies() -> dict[tuple[str, str], str]:
    bodies = {}
    for site in ALL_SITES:
        for path in expected(site)["articles"]:
            bodies[(site, path)] = extract((SITES / site / path.lstrip("/")).read_bytes()).body
    return bodies


def republication_pairs() -> set[frozenset[tuple[str, str]]]:
    pairs = set()
    for site in ALL_SITES:
        for path, origin in expected(site).get("republished_from", {}).items():
            pairs.add(frozenset({(site, path), (origin["site"], origin["path"])}))
    return pairs


BODIES = fixture_bodies()
PAIRS = republication_pairs()
BASE = max((b for b in BODIES.values()), key=len)  # the longest fixture article
S2T = opencc.OpenCC("s2t")


def test_comparison_text_ignores_script_punctuation_spacing_and_pinyin() -> None:
    assert comparison_text("統(tǒng)一戰(zhàn)線，是黨的　重要法寶！") == comparison_text(
        "统一战线是党的重要法宝"
    )
    assert comparison_text("２０２４年") == comparison_text("2024年")
    assert content_key(S2T.convert(BASE)) == content_key(BASE)


def test_signatures_are_datasketchs_minhash() -> None:
    from datasketch import MinHash

    hashes = shingle_hashes(comparison_text(BASE))
    minhash = MinHash(num_perm=128, seed=1, hashfunc=int, scheme="affine32")
    minhash.update_batch(hashes)
    assert (signature(hashes) == minhash.hashvalues).all()


def test_the_fixture_world_has_three_republications() -> None:
    assert len(PAIRS) == 3


@pytest.mark.parametrize(
    ("a", "b"),
    list(itertools.combinations(sorted(BODIES), 2)),
    ids=lambda k: k[1] if isinstance(k, tuple) else k,
)
def test_fixture_articles_cluster_exactly_when_republished(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    copy = is_copy(prepare(1, BODIES[a]).hashes, prepare(2, BODIES[b]).hashes)
    assert copy == (frozenset({a, b}) in PAIRS), similarity(
        prepare(1, BODIES[a]).hashes, prepare(2, BODIES[b]).hashes
    )


def sentences(text: str) -> list[str]:
    return [s + "。" for s in text.replace("\n", "").split("。") if s]


KINDS: dict[str, Callable[[str], str]] = {
    "traditional script": lambda t: S2T.convert(t),
    "other boilerplate": lambda t: (
        "来源：某某市统战部网站　编辑：王芳\n"
        + t
        + "\n版权所有：某某市委统战部　备案号：皖ICP备00000000号\n分享到：微信 微博"
    ),
    "a sentence added": lambda t: (
        t + "\n会后，与会人员还就下一步工作进行了深入交流，一致表示将认真贯彻落实会议精神。"
    ),
    "truncated": lambda t: "".join(sentences(t)[: max(2, len(sentences(t)) * 6 // 10)]),
    "a sentence cut": lambda t: "".join(sentences(t)[1:]),
    "pinyin leaks": lambda t: S2T.convert(t).replace("統", "統(tǒng)").replace("戰", "戰(zhàn)"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_copy_is_a_copy(kind: str) -> None:
    original, copy = prepare(1, BASE), prepare(2, KINDS[kind](BASE))
    assert is_copy(original.hashes, copy.hashes), similarity(original.hashes, copy.hashes)
    assert set(original.keys) & set(copy.keys), "LSH must make them candidates"


def test_shared_boilerplate_or_opening_does_not_make_a_copy() -> None:
    opening = "为深入学习贯彻习近平新时代中国特色社会主义思想，全面贯彻落实中央统战工作会议精神，按照市委统一部署，"
    boilerplate = ("（本文来源：某某市委统战部。转载请注明出处。欢迎关注统一战线微信公众号，获取更多统战资讯。"
                   "联系电话：0000-0000000　地址：某某市人民路1号）") * 2  # fmt: skip
    longest = sorted(BODIES, key=lambda k: len(BODIES[k]))[-8:]
    for a, b in itertools.combinations(longest, 2):
        if frozenset({a, b}) in PAIRS:
            continue
        x, y = (
            prepare(1, opening + BODIES[a] + boilerplate),
            prepare(2, opening + BODIES[b] + boilerplate),
        )
        assert not is_copy(x.hashes, y.hashes), similarity(x.hashes, y.hashes)


def member(
    article_id: int, site: str, when: datetime | None, source: str | None, seen: int = 0
) -> Member:
    return Member(
        article_id, article_id, (site, site), when, source, datetime(2024, 3, 1, seen, tzinfo=UTC)
    )


def test_the_original_is_the_earliest_then_the_site_others_name() -> None:
    early, late = datetime(2024, 3, 1, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    chosen, why = choose_original(
        [member(1, "省委统战部网站", late, None), member(2, "中央统战部", early, None)]
    )
    assert chosen.article_id == 2 and why.startswith("earliest publish time")
    chosen, why = choose_original([
        member(1, "中国统一战线", early, "中央统战部网站", seen=1),
        member(2, "中央统战部", early, "中央统战部", seen=2),
        member(3, "铜陵统战", early, "中央统战部网站", seen=3),
    ])  # fmt: skip
    assert chosen.article_id == 2 and "named as 来源 by 2 other copies" in why
    chosen, why = choose_original(
        [member(1, "甲", None, None, seen=5), member(2, "乙", None, None, seen=4)]
    )
    assert chosen.article_id == 2 and why == "no publish times; first seen"


# --- in the archive, after real crawls --------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]) -> World:
    return make_world(tmp_path, database_url, site_server, ALL_SITES)


def clusters_by_path(world: World) -> set[frozenset[tuple[str, str]]]:
    by_cluster: dict[int, set[tuple[str, str]]] = {}
    for site in ALL_SITES:
        for path, article in world.articles(site).items():
            if article.cluster_id is not None:
                by_cluster.setdefault(article.cluster_id, set()).add((site, path))
    return {frozenset(members) for members in by_cluster.values()}


def test_crawled_republications_cluster_with_their_original(world: World) -> None:
    world.crawl()
    assert clusters_by_path(world) == PAIRS
    with world.session() as session:
        for cluster in session.scalars(select(Cluster)):
            original = session.get_one(Article, cluster.original_article_id)
            assert original.site.name == "zytzb" and original.is_original
            assert cluster.size == 2 and cluster.original_reason
        singles = session.scalars(select(Article).where(Article.cluster_id.is_(None))).all()
        assert singles and all(a.is_original for a in singles)
        copies = session.scalars(
            select(Article).where(Article.cluster_id.is_not(None), ~Article.is_original)
        ).all()
        assert {a.site.name for a in copies} == {"tzb_tw", "gbk_city"}
    copy = world.articles("gbk_city")["/xwdt/2024/0311/120.htm"]
    result = CliRunner().invoke(app, ["show", str(copy.id), "--format", "json"], env=world.env())
    detail = json.loads(result.stdout)
    assert detail["is_original"] is False and detail["cluster_id"] == copy.cluster_id
    (other,) = detail["republications"]
    assert (
        other["site"] == "zytzb"
        and other["is_original"] is True
        and other["url"].endswith("t20240308_570511.html")
    )
    # a rebuild from stored text finds the same clusters
    result = CliRunner().invoke(app, ["dedup", "--rebuild"], env=world.env())
    assert result.exit_code == 0, result.output
    assert "3 republication clusters holding 6 articles" in result.stdout
    assert clusters_by_path(world) == PAIRS


def test_an_edited_copy_stays_a_version_and_in_its_cluster_until_it_no_longer_matches(
    world: World,
) -> None:
    world.crawl()
    server = world.servers["gbk_city"]
    path = "/xwdt/2024/0311/120.htm"
    page = (SITES / "gbk_city" / path.lstrip("/")).read_bytes().decode("gb18030")
    first = expected("gbk_city")["articles"][path]["body_starts"]
    server.put(path, page.replace(first, "（更新）" + first, 1).encode("gbk"))
    world.crawl("gbk_city", refresh=True)
    article = world.articles("gbk_city")[path]
    assert article.version == 2 and article.cluster_id is not None
    assert clusters_by_path(world) == PAIRS
    # rewritten into another story: it leaves, and its former original stands alone
    other = BODIES[("zytzb", "/tzyw/202402/t20240220_568102.html")]
    start = page.index(first)
    last = expected("gbk_city")["articles"][path]["body_ends"]
    end = page.index(last) + len(last)
    rewritten = page[:start] + "</p><p>".join(reversed(other.split("\n"))) + page[end:]
    server.put(path, rewritten.encode("gb18030"))
    world.crawl("gbk_city", refresh=True)
    article = world.articles("gbk_city")[path]
    assert article.version == 3
    assert frozenset(
        {("gbk_city", path), ("zytzb", "/tzyw/202403/t20240308_570511.html")}
    ) not in clusters_by_path(world)
    assert world.articles("zytzb")["/tzyw/202403/t20240308_570511.html"].is_original


def test_two_crawl_processes_cluster_what_they_write_at_once(world: World) -> None:
    errors: list[BaseException] = []

    def crawl(name: str) -> None:
        try:
            run_crawl([name], settings=load_settings(world.env()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=crawl, args=(name,)) for name in ("zytzb", "tzb_tw")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    want = {pair for pair in PAIRS if all(site in ("zytzb", "tzb_tw") for site, _ in pair)}
    assert clusters_by_path(world) == want


def store_and_cluster(s: Session, number: int, body: str, now: datetime) -> None:
    """Article `number` of site 1 with this body, clustered as the crawler does."""
    s.execute(insert(ARTICLES).values(
        id=number, site_id=1, url=f"https://x.gov.cn/{number}.html",
        canonical_url=f"https://x.gov.cn/{number}.html", first_seen=now, last_seen=now,
        version=1))  # fmt: skip
    s.execute(insert(VERSIONS).values(
        article_id=number, version=1, first_seen=now, last_seen=now, body=body,
        content_hash=""))  # fmt: skip
    dedup.cluster_articles(s, [number])


def test_copies_are_found_across_tier_merges(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tiny tiers, the fixture articles, stored one at a time, push the band index
    through several merges; every republication still finds its original, whichever
    tier the original's bands sit in by then."""
    monkeypatch.setattr(dedup, "NEWEST_ROWS", 2 * BANDS)
    monkeypatch.setattr(dedup, "RUN_ROWS", 4 * BANDS)
    keys = sorted(BODIES)
    now = datetime.now(UTC)
    with session_factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
    for number, key in enumerate(keys, start=1):
        with session_factory() as s, s.begin():
            store_and_cluster(s, number, BODIES[key], now)
    with session_factory() as s:
        tiers = dict(s.execute(select(LshBand.tier, func.count()).group_by(LshBand.tier)).all())
        counted = dict(s.execute(select(LshTier.tier, LshTier.row_count)).all())
        filters = dict(s.execute(select(LshTier.tier, LshTier.filter)).all())
        groups: dict[int, set[tuple[str, str]]] = {}
        for number, cluster in s.execute(select(Article.id, Article.cluster_id)):
            if cluster is not None:
                groups.setdefault(cluster, set()).add(keys[number - 1])
        held = {
            run: np.array(list(s.scalars(select(LshBand.bucket).where(LshBand.tier == run))))
            for run in tiers
            if run >= 0
        }
    with session_factory() as s:
        logged = dedup.logged_buckets(s.connection())
    runs = sorted(held)
    assert len(runs) >= 3 and runs == list(range(len(runs)))  # runs, numbered in order
    assert all(tiers[run] >= 4 * BANDS for run in runs[:-1])  # full
    for run in runs:  # each filter, grown settling by settling from the log, holds all its
        # run's (on PostgreSQL, rows written straight into the current run since the last
        # settling are in the log)
        through = dedup.may_contain(np.frombuffer(filters[run], dtype="<u8"), held[run])
        assert (through | (np.isin(held[run], list(logged)) & (run == runs[-1]))).all()
    assert tiers[runs[-1]] <= 4 * BANDS + 2 * BANDS  # the current run, open or just full
    assert sum(tiers.values()) == sum(counted.values())
    assert tiers.get(dedup.NEWEST_TIER, 0) < 2 * BANDS
    found = {frozenset(p) for g in groups.values() for p in itertools.combinations(g, 2)}
    assert found == PAIRS


def test_postgresql_writes_band_rows_straight_into_the_current_run(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a batch's band rows go into the current run of `lsh_bands_runs`, and
    the newest tier (`lsh_bands_newest`) stays empty: no rows moved by merges, none
    deleted (moving each row once more was a tenth of clustering's time, bench/dedup.py).
    Runs still fill in turn, and a rebuild, one transaction, clusters the same."""
    monkeypatch.setattr(dedup, "NEWEST_ROWS", 2 * BANDS)
    monkeypatch.setattr(dedup, "RUN_ROWS", 4 * BANDS)
    engine = make_engine(postgres_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with engine.connect() as conn:
        partitions = {str(name): str(bound) for name, bound in conn.execute(text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'lsh_bands'::regclass"
        ))}  # fmt: skip
    assert partitions == {"lsh_bands_newest": "FOR VALUES IN ('-1')", "lsh_bands_runs": "DEFAULT"}
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()))

    with factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
    newest = []
    for number, key in enumerate(sorted(BODIES), start=1):
        with factory() as s, s.begin():
            store_and_cluster(s, number, BODIES[key], now)
        with factory() as s:
            newest.append(s.scalar(text("SELECT count(*) FROM lsh_bands_newest")))
    with factory() as s:
        before = {frozenset(g) for g in clusters_of(s)}
        runs = dict(s.execute(select(LshBand.tier, func.count()).group_by(LshBand.tier)).all())
    crawled = [s for s in statements if "lsh_bands" in s and s.startswith(("DELETE", "INSERT"))]
    statements.clear()
    with factory() as s, s.begin():
        dedup.rebuild(s, batch=2)
    rebuilt = [s for s in statements if "lsh_bands" in s and s.startswith(("DELETE", "INSERT"))]
    with factory() as s:
        after = {frozenset(g) for g in clusters_of(s)}
        left = s.scalar(text("SELECT count(*) FROM lsh_bands_newest"))
    event.remove(engine, "before_cursor_execute", keep)
    engine.dispose()
    assert newest == [0] * len(BODIES) and left == 0
    assert not crawled and not rebuilt, (crawled, rebuilt)  # (the rows go in by COPY)
    assert len(runs) >= 3 and sorted(runs) == list(range(len(runs)))
    assert all(runs[run] >= 4 * BANDS for run in range(len(runs) - 1))  # full, in turn
    assert after == before and len(before) >= 3


def test_migration_0025_moves_the_newest_tiers_rows_into_a_run(postgres_url: str) -> None:
    """A PostgreSQL archive from before: rows in the newest tier (written by the code of
    revision 0024) become a run of their own without a filter, the log is emptied, and a
    copy of an article whose rows were moved still finds it."""
    engine = make_engine(postgres_url)
    upgrade(engine, "0024")
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    original, copy = sorted(PAIRS, key=sorted)[0]
    with factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
        store_version(s, 1, 1, BODIES[original], now)
        item = prepare(1, BODIES[original])
        dedup.write_bands(s.connection(), [(band, bucket, 1) for band, bucket in item.keys])
        s.execute(insert(LshTier).values(tier=-1, row_count=BANDS))
        s.execute(text("INSERT INTO lsh_log (id, buckets) VALUES (7, '\\x00')"))
    upgrade(engine)
    with factory() as s:
        moved = dict(s.execute(select(LshBand.tier, func.count()).group_by(LshBand.tier)).all())
        tiers = {t: (n, f is None) for t, n, f in s.execute(
            select(LshTier.tier, LshTier.row_count, LshTier.filter))}  # fmt: skip
        logged = s.scalar(text("SELECT count(*) FROM lsh_log"))
    assert moved == {0: BANDS} and logged == 0
    assert tiers == {-1: (0, True), 0: (BANDS, True)}
    with factory() as s, s.begin():
        store_and_cluster(s, 2, BODIES[copy], now)
    with factory() as s:
        clusters = list(s.scalars(select(Article.cluster_id).order_by(Article.id)))
    engine.dispose()
    assert clusters[0] is not None and clusters == [clusters[0]] * 2


def clusters_of(s: Session) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for number, cluster in s.execute(select(Article.id, Article.cluster_id)):
        if cluster is not None:
            groups.setdefault(cluster, []).append(number)
    return [g for g in groups.values() if len(g) > 1]


def test_a_changed_text_replaces_its_bands(session_factory: sessionmaker[Session]) -> None:
    """Clustering an article again takes its old buckets out of every tier."""
    now = datetime.now(UTC)
    texts = sorted(BODIES.values(), key=len)[-2:]
    with session_factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
        s.execute(insert(ARTICLES).values(
            id=1, site_id=1, url="https://x.gov.cn/1.html", canonical_url="https://x.gov.cn/1.html",
            first_seen=now, last_seen=now, version=1))  # fmt: skip
        s.execute(insert(VERSIONS).values(
            article_id=1, version=1, first_seen=now, last_seen=now, body=texts[0], content_hash=""))  # fmt: skip
        dedup.cluster_articles(s, [1])
        s.execute(dedup.ARTICLES.update().values(version=2))
        s.execute(insert(VERSIONS).values(
            article_id=1, version=2, first_seen=now, last_seen=now, body=texts[1], content_hash=""))  # fmt: skip
        dedup.settle_tiers(s.connection(), dedup.NEWEST_ROWS)  # the old rows now sit in a run
        dedup.cluster_articles(s, [1])
    with session_factory() as s:
        buckets = set(s.scalars(select(LshBand.bucket)))
    assert buckets == {bucket for _, bucket in prepare(1, texts[1]).keys}


def test_a_run_filter_lets_every_stored_bucket_through_and_few_others() -> None:
    """No false negative (a copy would be missed); false positives only cost a seek."""
    rng = np.random.default_rng(7)
    stored = rng.integers(-(2**63), 2**63 - 1, size=dedup.RUN_ROWS, dtype=np.int64)  # a full run
    absent = rng.integers(-(2**63), 2**63 - 1, size=200_000, dtype=np.int64)
    words = dedup.bloom_filter(stored)
    assert len(words) * 64 == len(stored) * dedup.FILTER_BITS
    assert dedup.may_contain(words, stored).all()
    assert dedup.may_contain(words, absent).mean() < 0.005
    assert not dedup.may_contain(dedup.bloom_filter(stored[:0]), absent[:1000]).any()


def test_runs_are_asked_only_through_their_filters(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sealed run keeps its filter in lsh_tiers; a copy of an article in it is still found,
    and another process (an empty filter cache) reads the same filter back."""
    monkeypatch.setattr(dedup, "NEWEST_ROWS", 1 * BANDS)
    monkeypatch.setattr(dedup, "RUN_ROWS", 1 * BANDS)
    original, copy = sorted(PAIRS, key=sorted)[0]
    now = datetime.now(UTC)
    with session_factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
    for number, key in enumerate((original, copy), start=1):
        if number == 2:
            dedup._FILTERS.clear()
        with session_factory() as s, s.begin():
            store_and_cluster(s, number, BODIES[key], now)
            if number == 1:  # (PostgreSQL writes into runs: the next is open already)
                opened = {0, 1} if dedup.writes_runs(s.connection()) else {0}
                assert dedup.stored_runs(s.connection()).keys() == opened
    with session_factory() as s:
        runs = s.execute(
            select(LshTier.tier, LshTier.filter, LshTier.stamp).where(LshTier.tier >= 0)
        )
        (run, blob, stamp), second, *_ = runs.all()
        clusters = [c for c in s.scalars(select(Article.cluster_id).order_by(Article.id))]
    assert (run, second[0]) == (0, 1) and blob and stamp is not None
    words = np.frombuffer(blob, dtype="<u8")
    assert dedup.may_contain(
        words, np.array([b for _, b in prepare(1, BODIES[original]).keys])
    ).all()
    assert clusters[0] is not None and clusters == [clusters[0]] * 2


def test_the_newest_tier_is_asked_through_the_log(
    session_factory: sessionmaker[Session],
) -> None:
    """Every batch logs its buckets; another process (empty caches) reads the log and finds
    a copy of an article still in the newest tier, and a batch rolled back leaves the
    log, and the cache of it, as they were."""
    original, copy = sorted(PAIRS, key=sorted)[0]
    other = next(key for key in sorted(BODIES) if all(key not in pair for pair in PAIRS))
    now = datetime.now(UTC)
    with session_factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
        store_and_cluster(s, 1, BODIES[original], now)
    keys = {bucket for _, bucket in prepare(1, BODIES[original]).keys}
    dedup._LOGGED.clear()
    dedup._FILTERS.clear()
    with session_factory() as s:
        assert dedup.logged_buckets(s.connection()) == keys
        # no run filled yet: all in the newest tier, or (PostgreSQL) in the first run
        assert all(rows == 0 for rows, _ in dedup.stored_runs(s.connection()).values())
    with session_factory() as s:
        store_and_cluster(s, 3, BODIES[other], now)
        assert dedup.logged_buckets(s.connection()) > keys
        s.rollback()
    with session_factory() as s:
        assert dedup.logged_buckets(s.connection()) == keys
    with session_factory() as s, s.begin():
        store_and_cluster(s, 2, BODIES[copy], now)
    with session_factory() as s:
        clusters = list(s.scalars(select(Article.cluster_id).order_by(Article.id)))
    assert clusters[0] is not None and clusters == [clusters[0]] * 2


def rows_read(node: dict[str, Any]) -> int:
    """The most rows any node of an EXPLAIN (ANALYZE, FORMAT JSON) plan read."""
    read = node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
    return max([read, *(rows_read(child) for child in node.get("Plans", []))])


def rows_read_by_first(
    engine: Engine, table: str, run: Callable[[Connection], Any]
) -> tuple[Any, int]:
    """`run(conn)`'s result, and the rows_read of the first statement it sent that names
    `table`, run again under EXPLAIN ANALYZE in the same transaction (as it was planned;
    an executemany with its first row)."""
    statements: list[tuple[str, object]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(
        conn: object, cursor: object, statement: str, params: Any, context: object, many: bool
    ) -> None:
        statements.append((statement, params[0] if many else params))

    with engine.begin() as conn:
        result = run(conn)
        (statement, params), *_ = [(st, p) for st, p in statements if table in st]
        plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", params).scalar()
    event.remove(engine, "before_cursor_execute", keep)
    return result, rows_read(plan[0]["Plan"])


def test_postgresql_looks_buckets_up_by_key_whatever_its_statistics_say(postgres_url: str) -> None:
    """A run that merges filled after the last ANALYZE looks small to the planner; asked
    for a batch's buckets, PostgreSQL must still probe the key for each, not read the run
    (with `bucket IN (...)` it read all 50,000 rows here for 300 buckets). The band rows
    of a batch go in as one statement, and come back whole."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    rng = np.random.default_rng(3)
    stored = rng.integers(-(2**62), 2**62, size=50_000, dtype=np.int64)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE lsh_bands"))  # empty: every tier looks small from now on
        dedup.write_bands(conn, [(n % BANDS, int(b), n // BANDS + 1) for n, b in enumerate(stored)])
        conn.execute(text("UPDATE lsh_bands SET tier = 0"))  # a run, filled by merges
    asked = [int(b) for b in stored[:150]] + [int(b) for b in rng.integers(2**62, 2**63 - 1, 150)]
    found, read = rows_read_by_first(
        engine,
        "lsh_bands",
        lambda conn: list(dedup.find_buckets(conn, [(0, asked), (dedup.NEWEST_TIER, asked[:10])])),
    )
    engine.dispose()
    assert sorted(found) == sorted((int(b), n // BANDS + 1) for n, b in enumerate(stored[:150]))
    assert read <= 310  # the buckets asked, not the run


def archive_never_analyzed(postgres_url: str, articles: int = 100_000) -> Engine:
    """Articles put straight into the tables (no ANALYZE: the planner guesses from the
    tables' sizes), the first 10,000 in 5,000 clusters of two; each body '统战'."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(Site.__table__).values(id=1, name="a", title="A"))
        conn.execute(
            text(
                "INSERT INTO clusters (id, size, created_at, updated_at)"
                " SELECT g, 2, now(), now() FROM generate_series(1, 5000) g"
            )
        )
        conn.execute(
            text(
                "INSERT INTO articles (id, site_id, url, canonical_url, status, first_seen,"
                " last_seen, version, is_original, cluster_id, content_hash)"
                " SELECT g, 1, 'https://www.example.cn/' || g, 'https://www.example.cn/' || g,"
                " 'live', now(), now(), 1, true, CASE WHEN g <= 10000 THEN (g + 1) / 2 END,"
                " md5(g::text) || md5(g::text) FROM generate_series(1, :n) g"
            ),
            {"n": articles},
        )
        conn.execute(
            text(
                "INSERT INTO article_versions (article_id, version, first_seen, last_seen,"
                " source, body, content_hash) SELECT g, 1, now(), now(), '来源' || g, '统战', ''"
                " FROM generate_series(1, :n) g"
            ),
            {"n": articles},
        )
    return engine


def test_postgresql_reads_a_clusters_members_by_key_whatever_its_statistics_say(
    postgres_url: str,
) -> None:
    """An archive never ANALYZEd (new or bulk-loaded, autovacuum off or not yet round): the
    planner guesses a cluster's members from the size of articles, whose rows are wide,
    and the rows of article_versions from its main table, narrow (the bodies live apart):
    reading two clusters' members and their versions' 来源, it hashed the whole of
    article_versions (30 ms a batch at 200,000 articles in bench/dedup.py). It must probe
    the versions' key for each member."""
    engine = archive_never_analyzed(postgres_url)
    _, read = rows_read_by_first(
        engine, "article_versions", lambda conn: dedup.refresh_clusters(conn, [7, 4000])
    )
    with engine.connect() as conn:
        originals = conn.execute(
            text("SELECT id, original_article_id FROM clusters WHERE id IN (7, 4000) ORDER BY id")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in originals] == [(7, 13), (4000, 7999)]  # the members were read
    assert read <= 10  # the four members, not the table


def test_postgresql_writes_a_batchs_articles_by_key_whatever_its_statistics_say(
    postgres_url: str,
) -> None:
    """On an archive never ANALYZEd, reading a batch's articles by `id IN (...)` was planned
    as a scan of every article, and their new content hashes and clusters went in one
    UPDATE joined to the batch, planned as a hash of every article (7 and 20 ms a batch at
    40,000 in bench/dedup.py, growing with the archive). Both find each row by its key, and
    only the rows that change are written."""
    engine = archive_never_analyzed(postgres_url, 40_000)  # (from 100,000 the IN was probed)
    batch = list(range(30_001, 30_501))
    state, read = rows_read_by_first(
        engine, "FROM articles", lambda conn: dedup.stored_state(conn, [*batch, 90_000])
    )
    assert state[30_001] == (hashlib.md5(b"30001").hexdigest() * 2, None) and len(state) == 500
    assert read <= 501  # the ids asked, one probe each, not the table

    def cluster(conn: Connection) -> None:
        with Session(bind=conn) as session:
            dedup.cluster_articles(session, batch)

    _, read = rows_read_by_first(engine, "UPDATE articles SET content_hash", cluster)
    with engine.connect() as conn:
        hashes = set(
            conn.execute(select(Article.content_hash).where(Article.id.in_(batch))).scalars()
        )
        untouched = conn.execute(
            text(
                "SELECT content_hash = md5('30501') || md5('30501') FROM articles WHERE id = 30501"
            )
        ).scalar()
    engine.dispose()
    assert hashes == {content_key("统战")}  # every one rewritten, '统战' the text
    assert untouched is True  # the next article as it was
    assert read <= 1  # its own row, not the table


def test_postgresql_probes_the_current_run_by_key_though_it_was_empty_when_planned(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs' partition starts empty (0 pages after a vacuum); the driver prepares a
    statement run five times, and PostgreSQL may then keep one generic plan for it, made
    for an empty table: a sequential scan for each bucket asked, slower with each batch as
    it fills (2.3 s a batch of 500 at 20,000 articles, bench/dedup.py, when new rows went
    to a newest tier that each merge emptied). Filled behind the cached plan's back, the
    current run is still read by key."""
    monkeypatch.setattr(dedup, "NEWEST_ROWS", 10**9)  # no settling: the run only fills
    engine = make_engine(postgres_url)
    upgrade(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM lsh_bands_runs"))  # 0 pages, 0 rows
    now = datetime.now(UTC)
    body = BODIES[sorted(BODIES)[0]]
    read = "SELECT pg_stat_get_xact_tuples_returned('lsh_bands_runs'::regclass)"
    with engine.connect() as conn:  # one connection: its prepared statements and plans
        with Session(bind=conn) as s, s.begin():
            s.add(Site(id=1, name="fixtures", title="fixtures"))
        for number in range(1, 16):  # copies: each asks the run for the buckets of the last
            with Session(bind=conn) as s, s.begin():
                store_and_cluster(s, number, body, now)
        rng = np.random.default_rng(5)
        with engine.begin() as other:  # 50,000 rows more, no vacuum, no ANALYZE
            dedup.write_bands(other, [(n % BANDS, int(b), 1_000 + n // BANDS) for n, b in
                                      enumerate(rng.integers(-(2**62), 2**62, 50_000))], 0)  # fmt: skip
        with Session(bind=conn) as s, s.begin():
            before = int(s.scalar(text(read)))
            store_and_cluster(s, 16, body, now)
            scanned = int(s.scalar(text(read))) - before
            cluster = s.scalar(select(Article.cluster_id).where(Article.id == 16))
            assert cluster is not None and cluster == s.scalar(
                select(Article.cluster_id).where(Article.id == 1)
            )
    engine.dispose()
    assert scanned == 0, scanned  # by key (50,630 rows read by the generic plan)


def store_version(s: Session, number: int, version: int, body: str, now: datetime) -> None:
    """Article `number` of site 1 at this version (stored, not clustered: as a crawl stores)."""
    if version == 1:
        s.execute(insert(ARTICLES).values(
            id=number, site_id=1, url=f"https://x.gov.cn/{number}.html",
            canonical_url=f"https://x.gov.cn/{number}.html", first_seen=now, last_seen=now,
            version=1))  # fmt: skip
    else:
        s.execute(ARTICLES.update().where(ARTICLES.c.id == number).values(version=version))
    s.execute(insert(VERSIONS).values(
        article_id=number, version=version, first_seen=now, last_seen=now, body=body,
        content_hash=""))  # fmt: skip


def test_a_waiting_process_compares_before_the_lock_and_sees_what_was_stored_meanwhile(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a process that finds another clustering compares its batch with the
    stored articles while it waits for the lock, then, under it, reads only the bodies it
    has not scored at their current version and needs: a copy stored meanwhile joins the
    cluster, a candidate edited meanwhile is scored again (its old score would make a false
    copy)."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    one, two, other = sorted({comparison_text(b): b for b in BODIES.values()}.values(), key=len)[
        -3:
    ]
    assert not any(is_copy(shingle_hashes(comparison_text(a)), shingle_hashes(comparison_text(b)))
                   for a, b in itertools.combinations((one, two, other), 2))  # fmt: skip
    now = datetime.now(UTC)
    with factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
    for number, body in ((1, one), (2, two)):
        with factory() as s, s.begin():
            store_and_cluster(s, number, body, now)
    reads: list[tuple[str, list[int]]] = []
    phase = ["before the lock"]
    real = dedup.current_bodies

    def reading(conn: object, article_ids: list[int]) -> object:
        ids = sorted(article_ids)
        if ids:
            reads.append((phase[0], ids))
        return real(conn, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(dedup, "current_bodies", reading)
    holder = factory()
    holder.begin()
    holder.execute(select(func.pg_advisory_xact_lock(dedup.CLUSTER_LOCK)))
    errors: list[BaseException] = []

    def waiting() -> None:
        try:
            with factory() as s, s.begin():
                store_version(s, 10, 1, S2T.convert(one), now)  # copies of 1 and 2
                store_version(s, 11, 1, two, now)
                dedup.cluster_articles(
                    s, [10, 11], [prepare(10, S2T.convert(one)), prepare(11, two)]
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=waiting)
    thread.start()
    with engine.connect() as watch:
        for _ in range(200):
            blocked = watch.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).scalar_one()
            if blocked:
                break
            threading.Event().wait(0.05)
        assert blocked, "the second process never waited for the lock"
    assert sorted(i for phase, ids in reads for i in ids if phase == "before the lock") == [1, 2]
    # while it waits: another copy of 1 is stored and clustered, and 2 is edited out of
    # being a copy (a new version, not derived yet: its old buckets still stand)
    store_and_cluster(holder, 12, one, now)
    store_version(holder, 2, 2, other, now)
    phase[0] = "under the lock"
    reads.clear()
    holder.commit()
    holder.close()
    thread.join(timeout=60)
    assert not errors
    # 2 read again (edited); 1's score kept, not read; 12 not read either: it is in the
    # cluster of 1, which the copy already matched
    assert sorted(i for _, ids in reads for i in ids) == [2]
    with factory() as s:
        cluster = dict(s.execute(select(Article.id, Article.cluster_id)).all())
    assert cluster[1] is not None and cluster[1] == cluster[10] == cluster[12]
    assert cluster[11] is None and cluster[2] is None
    engine.dispose()


def test_a_stored_articles_hashes_are_kept_for_later_batches_read_only() -> None:
    """`stored_hashes`: a candidate's comparison hashes are computed once for a body and
    then served from memory (the same stored articles come back batch after batch); the
    array is read-only, so no caller can spoil it for the next; another body, even one
    differing by a character, gets its own."""
    body = "中共中央统战部召开座谈会，听取各民主党派中央和全国工商联负责人意见建议。" * 4
    other = body[:-3] + "要求。"  # (the last 建议 made 要求)
    before = dedup.stored_hashes.cache_info().hits
    first = dedup.stored_hashes(body)
    assert np.array_equal(first, shingle_hashes(comparison_text(body))) and len(first) > 20
    assert dedup.stored_hashes(body) is first
    assert dedup.stored_hashes.cache_info().hits == before + 1
    with pytest.raises(ValueError):
        first[0] = 0
    misses = dedup.stored_hashes.cache_info().misses
    assert np.array_equal(dedup.stored_hashes(other), shingle_hashes(comparison_text(other)))
    assert dedup.stored_hashes.cache_info().misses == misses + 1
    assert not np.array_equal(dedup.stored_hashes(other), first)


def test_a_batch_reads_its_candidates_together_and_writes_only_what_changes(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new copy of a story stored 30 times is scored against one of them (the rest of
    the cluster is skipped once that one proves a copy); the batch's stored candidates
    are read in one statement; and only the rows whose cluster or original mark changes
    are written (the copy), not every article of the batch and member of the cluster."""
    now = datetime.now(UTC)
    others = [b for k, b in sorted(BODIES.items()) if not is_copy(
        shingle_hashes(comparison_text(b)), shingle_hashes(comparison_text(BASE)))][:4]  # fmt: skip

    def stored(s: Session, number: int, body: str) -> None:  # as archive.store inserts
        s.execute(insert(ARTICLES).values(
            id=number, site_id=1, url=f"https://x.gov.cn/{number}.html",
            canonical_url=f"https://x.gov.cn/{number}.html", first_seen=now, last_seen=now,
            version=1, content_hash=content_key(body)))  # fmt: skip
        s.execute(insert(VERSIONS).values(
            article_id=number, version=1, first_seen=now, last_seen=now, body=body,
            content_hash=""))  # fmt: skip

    story = {n: f"{BASE}（第{n}次转载，来源：某某网）" for n in range(1, 32)}
    with session_factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
        for number in range(1, 31):
            stored(s, number, story[number])
        dedup.cluster_articles(s, list(range(1, 31)))
    reads: list[list[int]] = []
    real = dedup.current_bodies

    def reading(conn: Any, article_ids: Any) -> Any:
        if ids := sorted(article_ids):
            reads.append(ids)
        return real(conn, ids)

    monkeypatch.setattr(dedup, "current_bodies", reading)
    written: list[int] = []
    batch = {31: story[31], **{40 + n: body for n, body in enumerate(others)}}
    with session_factory() as s, s.begin():
        engine = s.get_bind()

        def listener(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("UPDATE articles"):
                written.append(cursor.rowcount)

        event.listen(engine, "after_cursor_execute", listener)
        try:
            for number, body in batch.items():
                stored(s, number, body)
            dedup.cluster_articles(s, list(batch), [prepare(n, b) for n, b in batch.items()])
        finally:
            event.remove(engine, "after_cursor_execute", listener)
        clusters = dict(s.execute(select(Article.id, Article.cluster_id)).all())
    assert clusters[31] is not None and clusters[31] == clusters[1]
    assert all(clusters[n] is None for n in batch if n != 31)
    assert len(reads) == 1, reads  # one statement for the batch
    assert len([a for a in reads[0] if a in story]) == 1, reads  # one of the 30 copies
    assert sum(written) == 2, written  # the copy's cluster, then its original mark
