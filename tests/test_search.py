"""Search: Chinese words of any length in either script, the query language, both backends.

The fixture archive is the three fixture sites crawled for real (simplified, traditional
and GBK pages, with republications). Every text query is checked against an oracle: the
articles whose normalised title or body contain the normalised words, found by plain
substring search. Each test runs on SQLite and on PostgreSQL, against the same oracle, so
the two backends give the same article sets.
"""

from __future__ import annotations

import json
import random
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Integer, cast, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import archive.search
from archive.db import alembic_config, make_engine, upgrade
from archive.models import Article, ArticleVersion, SearchDoc, Site
from archive.search import (
    BEIJING,
    QueryError,
    SearchResult,
    Term,
    index_text,
    parse_query,
    search,
    snippet,
    tokens,
)
from archive.text import normalize
from crawler.cli import app
from tests.conftest import SITES
from tests.crawlworld import CrawledWorlds, World, expected
from tests.siteserver import SiteServer

ALL_SITES = ("zytzb", "tzb_tw", "gbk_city")


def test_han_runs_become_bigrams_and_a_closing_character() -> None:
    assert tokens(normalize("中央統戰部 2024年WeChat")) == [
        "中央", "央统", "统战", "战部", "部", "2024", "年", "wechat",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "中央統戰部 2024年WeChat",
        "",
        "统",
        "一 二",
        "统战_工作 12.5% abc①② ㈠ 豈 ﬁ 丨乛",  # NFKC makes ㈠ "(一)" and ① "1"
        "统(tǒng)战 ＦＵＬＬ　ｗｉｄｔｈ",
        "𠀀字 统𠀀战",  # Han beyond the BMP: hashed bigrams
        "Україна 统战 αβγ 统",
    ],
)
def test_an_entrys_codes_are_its_tokens_codes(text: str) -> None:
    """The codes computed over the whole text (numpy) are `token_code` of every token."""
    from archive.search import entry_codes, search_form, vector_codes

    title, body = text[: len(text) // 3], text
    want = vector_codes(index_text(title), index_text(body))
    got = entry_codes(search_form(title), search_form(body))
    # PostgreSQL's binary int4[]: one dimension, no nulls, int4, then (length 4, code) each
    ndim, nulls, oid = struct.unpack("!iii", got[:12])
    assert (ndim, nulls, oid) == (1, 0, 23)
    count, lower = struct.unpack("!ii", got[12:20])
    assert (count, lower) == (len(want), 1)
    pairs = struct.unpack(f"!{2 * count}i", got[20:])
    assert list(pairs[1::2]) == want and set(pairs[::2]) == {4}
    assert len(want) >= len(tokens(normalize(body))) + 1  # not vacuous: every token coded


def test_punctuation_becomes_a_space_as_the_regular_expression_makes_it() -> None:
    """`_spaced` (numpy over the code points) is `_NOT_WORD.sub(" ", ...)` on every kind of
    character: letters, digits and `_` of every script, runs, surrogates, beyond the BMP."""
    from archive.search import _NOT_WORD, _spaced

    rng = random.Random(5)
    ranges = [(0, 0x300), (0x2000, 0x3100), (0x4E00, 0x4F00), (0xD7F0, 0xE010), (0xFF00, 0x10000)]
    texts = ["", "_", "__a__", "统战，，工作。", "\ud800x", "１２３ＡＢ①㈠™", "𠀀字，", "x\n\ty"]
    for _ in range(2_000):
        texts.append(
            "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(rng.randrange(30)))
        )
    assert [_spaced(t) for t in texts] == [_NOT_WORD.sub(" ", t) for t in texts]


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("统", Term(("统",), prefix=True)),
        ("統戰", Term(("统战",))),
        ("统战部", Term(("统战", "战部"))),
        ("统战2024", Term(("统战", "战", "2024"))),
        ("Ｗｅｃｈａｔ", Term(("wechat",))),
        ("统(tǒng)战", Term(("统战",))),
    ],
)
def test_query_terms_are_normalised_like_the_index(raw: str, want: Term) -> None:
    assert Term.parse(raw) == want


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('"统战', "quote at 1 is not closed"),
        ("OR 统战", "OR needs a term on each side"),
        ("统战 OR", "OR needs a term on each side"),
        ("统战 OR -侨务", "OR cannot join an exclusion"),
        ("publisher:人民网 统战", "unknown field publisher:"),
        ("统战 since:2024-13-01", "since:2024-13-01 is not a date"),
        # found by bench/fuzz.py: a year past int range overflowed, until:9999 ran off
        # the calendar (until: takes the whole year)
        ("统战 since:9999-99-9920242024", "since:9999-99-9920242024 is not a date"),
        ("统战 until:9999", "until:9999 is not a date"),
        ("统战 -until:2024", "-until: means nothing"),
    ],
)
def test_a_malformed_query_gets_a_one_line_error(query: str, problem: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_the_calendar_edges_a_query_may_name() -> None:
    assert parse_query("until:9998-12-31").until == datetime(9999, 1, 1, tzinfo=BEIJING)
    assert parse_query("since:1000").since == datetime(1000, 1, 1, tzinfo=BEIJING)


def test_a_snippet_marks_matches_in_the_pages_own_script() -> None:
    body = "会议指出，中央統戰部部长出席并讲话。" + "其他内容。" * 40 + "統(tǒng)戰工作很重要。"
    got = snippet(body, ["统战"])
    assert got.startswith("会议指出，中央<mark>統戰</mark>部部长") and got.endswith("…")
    assert "<mark>" not in snippet("没有匹配的内容 & <b>", ["统战"])
    assert "&amp; &lt;b&gt;" in snippet("没有匹配的内容 & <b>", ["统战"])


# --- against a crawled archive -----------------------------------------------------------------


@pytest.fixture
def world(crawled: Callable[..., World]) -> World:
    """The three fixture sites crawled (a copy of the session's crawl of them)."""
    return crawled(*ALL_SITES)


@pytest.fixture
def pg_world(
    tmp_path: Path,
    postgres_url: str,
    site_server: Callable[..., SiteServer],
    crawled_worlds: CrawledWorlds,
) -> World:
    """The same world on PostgreSQL only, for what only PostgreSQL does."""
    return crawled_worlds.world(tmp_path, postgres_url, site_server, ALL_SITES)


def texts(world: World) -> dict[int, tuple[str, str]]:
    """article id -> (normalised title, normalised body) of its current version."""
    with world.session() as session:
        rows = session.execute(
            select(Article.id, ArticleVersion.title, ArticleVersion.body).join(
                ArticleVersion,
                (ArticleVersion.article_id == Article.id)
                & (ArticleVersion.version == Article.version),
            )
        )
        return {r[0]: (normalize(r[1] or ""), normalize(r[2] or "")) for r in rows}


def found(world: World, query: str, **options: object) -> set[int]:
    with world.session() as session:
        result = search(session, query, limit=1000, all_copies=True, **options)  # type: ignore[arg-type]
        assert result.total == len(result.hits)
        return {hit.record["id"] for hit in result.hits}


def containing(corpus: dict[int, tuple[str, str]], *words: str) -> set[int]:
    return {
        article_id
        for article_id, (title, body) in corpus.items()
        if all(normalize(w) in title or normalize(w) in body for w in words)
    }


WORDS = [
    "侨", "銅", "堃",  # one character, either script
    "统战", "統戰", "侨务", "僑務", "铜陵", "宗教", "两会",  # two
    "统战工作", "統戰工作", "中华民族", "民主监督", "调研工作",  # four
    "刘堃", "李晓东", "李曉東",  # names
    "全国统战系统深入学习贯彻全国两会精神",  # a whole headline
    "2024",
]  # fmt: skip


def test_words_of_any_length_find_exactly_the_articles_containing_them(world: World) -> None:
    corpus = texts(world)
    assert len(corpus) == 22
    for word in WORDS:
        want = containing(corpus, word)
        assert found(world, word) == want, word
    assert containing(corpus, "统战") == containing(corpus, "統戰")  # the oracle agrees too
    assert len(containing(corpus, "铜陵")) == 1 and len(containing(corpus, "统战")) > 10


def test_phrases_exclusions_and_or(world: World) -> None:
    corpus = texts(world)
    assert found(world, '"全国两会精神"') == containing(corpus, "全国两会精神")
    assert found(world, "统战 侨务") == containing(corpus, "统战", "侨务")
    assert found(world, "统战 -侨务") == containing(corpus, "统战") - containing(corpus, "侨务")
    assert found(world, "侨务 OR 宗教") == containing(corpus, "侨务") | containing(corpus, "宗教")
    assert found(world, "-统战 site:gbk_city") == {
        a.id for a in world.articles("gbk_city").values()
    } - containing(corpus, "统战")
    # bigrams that are all there, but never in this order, are no match
    assert not containing(corpus, "战统") and found(world, "战统") == set()


def test_field_filters_and_dates(world: World) -> None:
    corpus = texts(world)
    by_site = {site: {a.id for a in world.articles(site).values()} for site in ALL_SITES}
    assert found(world, "统战 site:gbk_city") == containing(corpus, "统战") & by_site["gbk_city"]
    assert found(world, "统战", site="tzb_tw") == containing(corpus, "统战") & by_site["tzb_tw"]
    assert found(world, "统战 -site:zytzb") == containing(corpus, "统战") - by_site["zytzb"]
    tw = world.articles("tzb_tw")
    # 李曉東 is stored in traditional script; the simplified name finds it
    assert found(world, "author:李晓东") == {
        tw["/xwzx/tzgz/202402/t20240226_3.html"].id, tw["/xwzx/tzgz/202403/t20240320_6.html"].id
    }  # fmt: skip
    zytzb = world.articles("zytzb")
    assert found(world, "source:人民日报") == {zytzb["/tzyw/202402/t20240220_568102.html"].id}
    assert found(world, "editor:郭磊 统战") == containing(corpus, "统战") & {
        tw[p].id for p, a in expected("tzb_tw")["articles"].items() if a.get("editor") == "郭磊"
    }
    march = {
        a.id
        for site in ALL_SITES
        for a in world.articles(site).values()
        if a.publish_time is not None and (a.publish_time.month, a.publish_time.day) >= (3, 1)
    }
    assert found(world, "统战 since:2024-03-01") == containing(corpus, "统战") & march
    assert found(world, "统战 until:2024-02") == containing(corpus, "统战") - march


def test_clusters_collapse_to_one_hit_unless_all_copies_are_asked_for(world: World) -> None:
    query = "全国统战系统深入学习贯彻全国两会精神"
    with world.session() as session:
        collapsed = search(session, query).hits
        every = search(session, query, all_copies=True).hits
    assert len(every) == 2 and {h.record["site"] for h in every} == {"zytzb", "gbk_city"}
    assert len(collapsed) == 1 and collapsed[0].republications == 1
    assert "body" not in collapsed[0].record
    with world.session() as session:
        (hit,) = [h for h in search(session, "两会精神").hits if h.record["id"] in {e.record["id"] for e in every}]  # fmt: skip
    assert "<mark>两会精神</mark>" in hit.snippet and hit.republications == 1


def test_newest_first_and_relevance(world: World) -> None:
    with world.session() as session:
        newest = search(session, "统战", sort="newest", all_copies=True, limit=50).hits
        ranked = search(session, "侨务", all_copies=True).hits
    times = [h.record["publish_time"] for h in newest]
    assert len(times) > 10 and times == sorted(times, reverse=True)
    # both articles with 侨务 in the title come before those with it in the body only
    titled = [h for h in ranked if "侨务" in normalize(h.record["title"])]
    assert len(titled) == 2 and ranked[:2] == titled
    assert all(h.score is not None and h.score > 0 for h in ranked)


def test_an_edited_article_is_found_by_its_new_text_only(world: World) -> None:
    path = "/xwdt/2024/0304/116.htm"
    server = world.servers["gbk_city"]
    page = (SITES / "gbk_city" / path.lstrip("/")).read_bytes().decode("gb18030")
    assert found(world, "联席会议") and not found(world, "焕然一新")
    server.put(path, page.replace("联席会议", "焕然一新").encode("gbk"))
    world.crawl("gbk_city", refresh=True)
    article = world.articles("gbk_city")[path]
    assert article.version == 2
    assert article.id in found(world, "焕然一新")
    assert article.id not in found(world, "联席会议")


def test_search_and_reindex_from_the_command_line(world: World) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["search", "統戰工作", "--format", "json"], env=world.env())
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits and all({"snippet", "score", "republications", "site"} <= set(h) for h in hits)
    assert "body" not in hits[0]
    before = [h["id"] for h in hits]
    result = runner.invoke(app, ["reindex"], env=world.env())
    assert result.exit_code == 0 and "indexed 22 articles" in result.stdout, result.output
    result = runner.invoke(app, ["search", "统战工作", "--format", "json"], env=world.env())
    assert [h["id"] for h in json.loads(result.stdout)] == before
    result = runner.invoke(app, ["search", "统战工作", "--limit", "3"], env=world.env())
    assert result.exit_code == 0 and "matching articles; 3 shown" in result.stdout
    result = runner.invoke(app, ["search", '"统战'], env=world.env())
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: search query '\"统战': the quote at 1 is not closed"
    ]


def test_relevance_ranks_the_newest_matches_when_there_are_too_many(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relevance ranks at most RANK_WINDOW matches (PG_RANK_WINDOW on PostgreSQL), the
    newest that pass the filters, and says so; with fewer matches it ranks them all."""
    queries = ("统战", "统战 since:2020", "统战 -site:gbk_city")  # and through the filters

    def run(query: str, sort: str) -> SearchResult:
        with world.session() as session:
            return search(session, query, sort=sort, all_copies=True, limit=100)  # type: ignore[arg-type]

    exact = {q: run(q, "relevance") for q in queries}
    newest = {q: run(q, "newest") for q in queries}
    assert all(r.ranked is None and r.total > 5 for r in exact.values())
    monkeypatch.setattr(archive.search, "RANK_WINDOW", 5)
    monkeypatch.setattr(archive.search, "PG_RANK_WINDOW", 5)
    for query in queries:
        windowed = run(query, "relevance")
        ids = [h.record["id"] for h in windowed.hits]
        window = {h.record["id"] for h in newest[query].hits[:5]}
        assert windowed.ranked == 5 and windowed.total == exact[query].total
        assert ids == [h.record["id"] for h in exact[query].hits if h.record["id"] in window]
    result = CliRunner().invoke(app, ["search", "统战"], env=world.env())
    assert result.exit_code == 0
    assert "note: relevance ranks the newest 5 matches" in result.stderr


@pytest.mark.parametrize(
    ("query", "margin", "ranged"),
    [
        ("统战", 2, False),
        ("统战", 0.3, True),
        ("统战 site:zytzb", 2, True),
        ("统战 since:2001-01-01", 0.3, False),
        ("统战部", 2, True),  # a phrase, checked in order
        ("统战部", 0.3, False),
        ("统战部 -民族", 0.3, True),
    ],
)
def test_newest_first_on_postgresql_walks_the_newest_documents_for_a_common_word(
    pg_world: World, monkeypatch: pytest.MonkeyPatch, query: str, margin: float, ranged: bool
) -> None:
    """A word expected in many documents is found newest first (and relevance's window of
    its newest matches) by testing the newest documents that pass the filters, down the
    doc_id index or one site's entries, in as many steps as it takes; the pages are those
    of the GIN plan."""
    world = pg_world
    with world.session() as session:
        session.execute(text("ANALYZE search_docs"))  # the planner's figures, as autovacuum's
        session.commit()
    monkeypatch.setattr(archive.search, "FETCH_SLACK", 0)
    monkeypatch.setattr(archive.search, "PROBE_SLACK", 0)
    # this world is small: the costs that choose the probe, set so that it is chosen, and
    # a first step too short, so that the walk goes on in further steps
    monkeypatch.setattr(archive.search, "GIN_MATCH_SHARE", 1)
    monkeypatch.setattr(archive.search, "PROBE_MARGIN", margin)
    # the steps walk the documents, or their keys and read the GIN index's candidates
    # among them (ranged): the cost of a posting set so that one or the other is chosen
    monkeypatch.setattr(archive.search, "POSTING_SHARE", 1e9 if ranged else 1e-9)
    # what answered each search: "probe" (the walk found the matches), "step" (one step of
    # a walk), "gin" (a page from the GIN plan)
    calls: list[list[str]] = []
    select_, probe_, documents_, ranged_ = (
        archive.search._select,
        archive.search._pg_probe,
        archive.search._pg_documents,
        archive.search._ranged_step,
    )

    def selected(*args: Any, **kwargs: Any) -> Any:
        if args[2] is not None:  # not the count (which goes through _select with filters)
            calls[-1].append("gin")
        return select_(*args, **kwargs)

    def probed(*args: Any, **kwargs: Any) -> Any:
        found = probe_(*args, **kwargs)
        calls[-1].append("probe" if found is not None else "no probe")
        return found

    def documents(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 2 and args[2]:
            calls[-1].append("step")
        return documents_(*args, **kwargs)

    def ranged_step(*args: Any, **kwargs: Any) -> Any:
        calls[-1].append("ranged")
        return ranged_(*args, **kwargs)

    monkeypatch.setattr(archive.search, "_select", selected)
    monkeypatch.setattr(archive.search, "_pg_probe", probed)
    monkeypatch.setattr(archive.search, "_pg_documents", documents)
    monkeypatch.setattr(archive.search, "_ranged_step", ranged_step)

    def run(session: Session, sort: str, **kwargs: Any) -> SearchResult:
        calls.append([])
        return search(session, query, sort=sort, **kwargs)  # type: ignore[arg-type]

    def answered_by_probe() -> bool:  # the walk found the matches, no GIN plan after it
        return any("probe" in c and "gin" not in c for c in calls)

    def most_steps() -> int:
        return max(c.count("step") for c in calls)

    def pages() -> list[list[int]]:
        with world.session() as session:
            total = run(session, "newest", limit=100).total
            return [
                [h.record["id"] for h in run(session, "newest", limit=2, offset=k).hits]
                for k in range(0, total, 2)
            ]

    walked = pages()
    assert answered_by_probe(), calls
    assert any("ranged" in c for c in calls) == ranged, calls
    assert most_steps() > 1 if margin < 1 else most_steps() >= 1, calls
    monkeypatch.setattr(archive.search, "PG_PROBE_MAX", 0)  # the GIN plan only
    calls.clear()
    assert pages() == walked and len(walked) > 2
    assert not any("probe" in c for c in calls), calls

    # relevance's window of the newest matches, found the same way or from the GIN index
    monkeypatch.setattr(archive.search, "PG_RANK_WINDOW", 4)

    def ranked() -> tuple[list[int], int | None]:
        with world.session() as session:
            result = run(session, "relevance", limit=3, all_copies=True)
        return [h.record["id"] for h in result.hits], result.ranked

    calls.clear()
    by_probe = ranked()
    assert answered_by_probe(), calls
    assert any("ranged" in c for c in calls) == ranged, calls
    monkeypatch.setattr(archive.search, "PG_RANK_PROBE_MAX", 0)
    calls.clear()
    assert ranked() == by_probe and by_probe[1] == 4
    assert not any("probe" in c for c in calls), calls


def test_a_walk_bounds_since_by_its_keys_and_checks_its_matches(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk for a since: query goes down the keys from the date's (no article joined to
    each document walked) and checks the articles of its matches: one without a publish
    time, or one whose key lies past its time, is not found; the GIN plan agrees."""
    code = archive.search.token_code("统战")
    with pg_world.session() as session:
        rows = session.execute(
            select(SearchDoc.article_id, Article.publish_time)
            .join(Article, Article.id == SearchDoc.article_id)
            .where(SearchDoc.vector.contains([code]), Article.publish_time.is_not(None))
            .order_by(SearchDoc.doc_id.desc())
        ).all()
        day = rows[len(rows) // 2][1].astimezone(BEIJING).date()
        since = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
        newest = [r[0] for r in rows[:2]]  # keys above the date; their times now not
        session.execute(update(Article).where(Article.id == newest[0]).values(publish_time=None))
        session.execute(
            update(Article)
            .where(Article.id == newest[1])
            .values(publish_time=since - timedelta(days=3))
        )
        session.execute(text("ANALYZE search_docs"))
        session.commit()
        truth = set(
            session.scalars(select(Article.id).where(Article.publish_time >= since))
        ) & containing(texts(pg_world), "统战")
    query = f"统战 since:{day.isoformat()}"
    assert truth and not truth & set(newest) and len(truth) < len(rows)
    monkeypatch.setattr(archive.search, "FETCH_SLACK", 0)
    monkeypatch.setattr(archive.search, "PROBE_SLACK", 0)
    monkeypatch.setattr(archive.search, "GIN_MATCH_SHARE", 1)  # the walk is chosen
    monkeypatch.setattr(archive.search, "POSTING_SHARE", 1e-9)  # walked, not ranged
    monkeypatch.setattr(archive.search, "PROBE_MARGIN", 0.3)  # in several steps
    checked: list[int] = []
    holds = archive.search._since_holds

    def since_holds(conn: Any, parsed: Any, found: list[Any]) -> list[Any]:
        kept = holds(conn, parsed, found)
        checked.append(len(found) - len(kept))
        return kept

    monkeypatch.setattr(archive.search, "_since_holds", since_holds)

    def pages() -> list[int]:  # newest first, two at a time (a walk for each page)
        with pg_world.session() as session:
            return [
                hit.record["id"]
                for k in range(0, len(truth) + 2, 2)
                for hit in search(
                    session, query, sort="newest", limit=2, offset=k, all_copies=True
                ).hits
            ]

    walked = pages()
    assert set(walked) == truth and len(walked) == len(truth)
    assert sum(checked) >= 2, checked  # the two, dropped by the check
    monkeypatch.setattr(archive.search, "PG_PROBE_MAX", 0)  # the GIN plan only
    checked.clear()
    assert pages() == walked and not checked


def test_two_writers_of_entries_at_one_second_take_two_keys(pg_world: World) -> None:
    """Index entries written by two transactions at once (PostgreSQL) that take the same
    free key both end with an entry, at two keys: the second waits for the first's
    commit, then goes on to the next free key."""
    import threading

    from archive.search import Indexable, entry_text, write_entries

    when = datetime(2001, 1, 1, tzinfo=UTC)  # a second no entry holds
    with pg_world.session() as session:
        rows = session.execute(
            select(SearchDoc.article_id, SearchDoc.version, SearchDoc.site_id).limit(2)
        ).all()
        session.execute(
            SearchDoc.__table__.delete().where(SearchDoc.article_id.in_([r[0] for r in rows]))
        )
        session.commit()
    items = [Indexable(r[0], r[1], "统战", f"统一战线 {n}", when, r[2]) for n, r in enumerate(rows)]
    entries = [(item, entry_text(item, vector=True)) for item in items]
    done = threading.Event()

    def second() -> None:
        with pg_world.session() as other:
            write_entries(other.connection(), entries[1:])
            other.commit()
        done.set()

    with pg_world.session() as first:
        write_entries(first.connection(), entries[:1])
        thread = threading.Thread(target=second)
        thread.start()
        assert not done.wait(1.0), "the second writer did not wait for the first's key"
        first.commit()
    thread.join(30)
    assert done.is_set()
    with pg_world.session() as session:
        keys = dict(
            session.execute(
                select(SearchDoc.article_id, SearchDoc.doc_id).where(
                    SearchDoc.article_id.in_([r[0] for r in rows])
                )
            ).all()
        )
    base = int(when.timestamp())
    assert keys == {rows[0][0]: base, rows[1][0]: base + 1}


def test_a_phrase_with_many_candidates_is_counted_from_a_sample_on_postgresql(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past COUNT_READS candidates from the GIN index, search estimates a phrase's count
    from the newest COUNT_SAMPLE of them and says so (CLI: "about"); count_matches stays
    exact, and so does a search below the threshold."""
    with pg_world.session() as session:
        exact = archive.search.count_matches(session, "统战部")
        candidates = session.scalar(
            select(func.count()).where(
                SearchDoc.vector.contains(sorted(set(Term(("统战", "战部")).codes()[0])))
            )
        )
        assert search(session, "统战部").total == exact and exact > 4
        assert not search(session, "统战部").estimated
        monkeypatch.setattr(archive.search, "COUNT_READS", 4)
        whole = search(session, "统战部")  # a sample as big as the candidates: exact again
        assert whole.estimated and whole.total == exact
        monkeypatch.setattr(archive.search, "COUNT_SAMPLE", 4)
        sampled = search(session, "统战部")
        assert sampled.estimated and len(sampled.hits) <= sampled.total <= candidates
        assert archive.search.count_matches(session, "统战部") == exact
        assert search(session, "统战").estimated is False  # one token: the index alone
    result = CliRunner().invoke(app, ["search", "统战部"], env=pg_world.env())
    assert result.exit_code == 0, result.output
    assert f"about {sampled.total:,} matching articles" in result.output


def test_a_phrase_with_few_candidates_reads_them_all_newest_first(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phrase expected rarely (CHECK_SHARE) has its GIN candidates counted before the
    probe is chosen, and one found far more rarely than expected in its first step has
    them counted then: fewer than the steps would cost, and they are read newest first
    without walking keys (`whole`), as many as the page needs (here the archive is made
    to look like a million articles, for the costs). The pages are the GIN plan's."""
    with pg_world.session() as session:
        session.execute(text("ANALYZE search_docs"))
        session.commit()
        conn = session.connection()
        parsed = parse_query("统战部")
        monkeypatch.setattr(archive.search, "_documents", lambda conn: 1_000_000.0)
        monkeypatch.setattr(archive.search, "POSTING_SHARE", 1e9)  # the steps are ranged
        monkeypatch.setattr(archive.search, "CHECK_SHARE", 0.0)
        step = archive.search._first_step(conn, parsed, 40, archive.search.PG_PROBE_MAX)
        assert step is not None and step.ranged and not step.whole, step
        monkeypatch.setattr(archive.search, "CHECK_SHARE", 1.0)  # 13 candidates: read whole
        step = archive.search._first_step(conn, parsed, 40, archive.search.PG_PROBE_MAX)
        assert step is not None and step.whole, step
        exact = archive.search.count_matches(session, "统战部")
    monkeypatch.setattr(archive.search, "FETCH_SLACK", 0)
    monkeypatch.setattr(archive.search, "PROBE_SLACK", 0)
    monkeypatch.setattr(archive.search, "READ_MARGIN", 0.5)  # half those still wanted a step
    steps: list[str] = []  # "keys": a step of known candidates; "range": of keys walked
    ranged_step = archive.search._ranged_step

    def counted(*args: Any, **kwargs: Any) -> Any:
        steps.append("keys" if kwargs.get("keys") is not None else "range")
        return ranged_step(*args, **kwargs)

    monkeypatch.setattr(archive.search, "_ranged_step", counted)

    def pages() -> list[int]:
        with pg_world.session() as session:
            return [
                hit.record["id"]
                for k in range(0, exact + 2, 2)
                for hit in search(
                    session, "统战部", sort="newest", limit=2, offset=k, all_copies=True
                ).hits
            ]

    read_whole = pages()
    assert steps.count("keys") > exact // 2 and "range" not in steps, steps  # steps of 1-2
    # a phrase expected often, found rarely in its first step: counted, then read whole
    monkeypatch.setattr(archive.search, "CHECK_SHARE", 0.0)
    monkeypatch.setattr(archive.search, "DOUBT_RATIO", 0)  # any first step is in doubt
    monkeypatch.setattr(archive.search, "PROBE_MARGIN", 0.3)  # ... and short
    steps.clear()
    assert pages() == read_whole and len(read_whole) == exact > 4
    assert "range" in steps and "keys" in steps, steps  # a first step of keys, then whole
    monkeypatch.setattr(archive.search, "PG_PROBE_MAX", 0)  # the GIN plan only
    steps.clear()
    assert pages() == read_whole and not steps


def test_postgresql_keeps_the_count_of_a_common_code(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The codes in COMMON_DOCS entries or more have their count kept (migration 0021's
    triggers, refresh_common_codes): a one-token word's count comes from it, and stays the
    GIN index's own count through inserts, deletes, changed entries, folds, a TRUNCATE and
    a rebuild."""
    monkeypatch.setattr(archive.search, "COMMON_DOCS", 3)
    code = archive.search.token_code

    def gin(conn: Any, c: int) -> int:
        return int(conn.scalar(text(f"SELECT count(*) FROM search_docs WHERE vector @> '{{{c}}}'")))

    with pg_world.session() as session:
        conn = session.connection()
        assert archive.search._kept_count(conn, code("统战")) is None  # none kept yet
        session.execute(text("ANALYZE search_docs"))
        done = archive.search.refresh_common_codes(conn, wait=False)
        session.commit()
        kept = list(session.scalars(text("SELECT code FROM search_common_codes ORDER BY code")))
        assert done.kept == done.added == len(kept) and code("统战") in kept, done
        assert len(kept) > 100  # not vacuous: many codes of the fixture texts are common

        def agree() -> None:
            conn = session.connection()
            for c in [*kept[:: max(1, len(kept) // 40)], code("统战")]:
                assert archive.search._kept_count(conn, c) == gin(conn, c), c

        agree()
        truth = len(containing(texts(pg_world), "统战"))
        assert archive.search.count_matches(session, "统战") == truth > 4
        counted = session.scalar(text("SELECT count(*) FROM search_code_counts"))
        # an article's entry deleted, then written again, and one changed in place
        victim, other = session.scalars(
            select(SearchDoc.article_id).where(SearchDoc.vector.contains([code("统战")])).limit(2)
        )
        session.execute(text(f"DELETE FROM search_docs WHERE article_id = {victim}"))
        assert archive.search.count_matches(session, "统战") == truth - 1
        archive.search.index_articles(session, [victim])
        session.execute(
            text(f"UPDATE search_docs SET vector = '{{1,2,3}}' WHERE article_id = {other}")
        )
        session.commit()
        assert archive.search.count_matches(session, "统战") == truth - 1
        agree()
        archive.search.index_articles(session, [other])
        session.commit()
        assert session.scalar(text("SELECT count(*) FROM search_code_counts")) > counted
        folded = archive.search.refresh_common_codes(session.connection())
        session.commit()
        assert folded.added == 0 and folded.folded == len(kept), folded
        assert session.scalar(text("SELECT count(*) FROM search_code_counts")) == len(kept)
        agree()
        assert archive.search.count_matches(session, "统战") == truth
        # a rebuild empties the table (TRUNCATE) and counts the common codes afresh
        archive.search.rebuild_index(session)
        session.commit()
        kept = list(session.scalars(text("SELECT code FROM search_common_codes ORDER BY code")))
        assert code("统战") in kept
        agree()
        assert archive.search.count_matches(session, "统战") == truth
        session.execute(text("TRUNCATE search_docs"))
        assert (
            archive.search.count_matches(session, "统战")
            == 0
            == gin(session.connection(), code("统战"))
        )
        session.rollback()


def test_a_postgresql_rebuild_counts_the_common_codes_as_it_tokenises(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild counts the codes a random sample says may be common in its tokenising
    processes (archive.code_counts), not from the GIN index afterwards; a code the sample
    missed is counted from the index, as before. Either way every code in COMMON_DOCS
    entries or more has its count kept, and it is the index's own."""
    monkeypatch.setattr(archive.search, "COMMON_DOCS", 3)
    counted_from_gin: list[int] = []
    count_codes = archive.search._count_codes

    def spied(conn: Any, codes: list[int], parallel: bool) -> list[tuple[int, int]]:
        counted_from_gin.extend(codes)
        return count_codes(conn, codes, parallel)

    monkeypatch.setattr(archive.search, "_count_codes", spied)

    def rebuilt(complete: bool) -> dict[int, int]:
        """{code: count kept} after a rebuild in batches of 5 on two processes, each
        checked against the GIN index; if `complete`, no common code is left out."""
        counted_from_gin.clear()
        with pg_world.session() as session:
            steps: list[str] = []
            done = archive.search.rebuild_index(session, batch=5, workers=2, on_step=steps.append)
            assert done == len(texts(pg_world)) > 10
            assert any("taken at random" in step for step in steps), steps
            conn = session.connection()
            counts = text("SELECT code, sum(docs) FROM search_code_counts GROUP BY code")
            kept = {int(c): int(n) for c, n in conn.execute(counts)}
            assert set(kept) == set(conn.scalars(text("SELECT code FROM search_common_codes")))
            common = conn.scalars(
                text(
                    "SELECT c FROM search_docs, unnest(vector) AS c WHERE c <> 0"
                    " GROUP BY c HAVING count(DISTINCT doc_id) >= 3"
                )
            )
            assert not complete or set(common) <= set(kept)
            for c in list(kept)[:: max(1, len(kept) // 40)]:
                gin = conn.scalar(
                    text(f"SELECT count(*) FROM search_docs WHERE vector @> '{{{c}}}'")
                )
                assert kept[c] == gin, c
            return kept

    whole = rebuilt(complete=True)
    assert len(whole) > 100 and not counted_from_gin  # all counted while tokenising
    monkeypatch.setattr(archive.search, "COUNT_SAMPLE", 2)  # a sample that misses many
    missed = rebuilt(complete=False)
    assert counted_from_gin and set(counted_from_gin) <= set(missed)
    assert all(whole[c] == n for c, n in missed.items())


def test_an_upgrade_to_kept_counts_counts_the_common_codes(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`db upgrade` to revision 0021 counts an index's common codes at once (the scheduler
    would count them a hundred at a time)."""
    monkeypatch.setattr(archive.search, "COMMON_DOCS", 3)
    engine = make_engine(pg_world.database_url)
    command.downgrade(alembic_config(engine), "0020")
    engine.dispose()
    result = CliRunner().invoke(app, ["db", "upgrade"], env=pg_world.env())
    assert result.exit_code == 0, result.output
    assert "schema upgraded from 0020 to 0025" in result.stdout
    counted = int(result.stdout.split("search counts: ")[1].split()[0])
    assert counted > 100, result.stdout
    with pg_world.session() as session:
        code = archive.search.token_code("统战")
        assert archive.search._kept_count(session.connection(), code) == len(
            containing(texts(pg_world), "统战")
        )


def test_the_common_codes_wait_for_no_writer_unless_asked_to(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A code made common is counted under a SHARE lock, so that no entry is written between
    its count and the triggers counting it; the scheduler's refresh (every COUNTS_MINUTES)
    does not wait long for writers (2 s): it leaves everything as it was, and does it the
    next time."""
    from archive.settings import load_settings
    from crawler.scheduling import COUNTS_ADDED, CrawlScheduler
    from crawler.sites import load_sites

    monkeypatch.setattr(archive.search, "COMMON_DOCS", 3)
    settings = load_settings(pg_world.env())
    scheduler = CrawlScheduler(settings, load_sites(settings.sites_dir))
    try:
        with pg_world.session() as writer, pg_world.session() as session:
            session.execute(text("ANALYZE search_docs"))
            session.commit()
            article = writer.scalar(select(SearchDoc.article_id).limit(1))
            writer.execute(text(f"DELETE FROM search_docs WHERE article_id = {article}"))
            started = time.monotonic()
            scheduler.run_counts()  # the writer holds the table: given up after 2 s
            assert 2 <= time.monotonic() - started < 10
            assert session.scalar(text("SELECT count(*) FROM search_common_codes")) == 0
            writer.rollback()
            scheduler.run_counts()  # the hundred most common first (crawls wait meanwhile)
            session.rollback()
            common = session.scalar(text("SELECT count(*) FROM search_common_codes"))
            assert common == COUNTS_ADDED
            while True:  # and the others at the next times
                scheduler.run_counts()
                session.rollback()
                now = session.scalar(text("SELECT count(*) FROM search_common_codes"))
                if now == common:
                    break
                assert now and now <= common + COUNTS_ADDED
                common = now
            code = archive.search.token_code("统战")
            assert archive.search._kept_count(session.connection(), code) == len(
                containing(texts(pg_world), "统战")
            )
    finally:
        scheduler.processes.close()
        scheduler.engine.dispose()


def test_postgresql_expects_a_phrase_as_often_as_its_rarest_bigram(pg_world: World) -> None:
    """The share of documents a query is expected in (which decides the probe) comes from
    ANALYZE's lexeme frequencies: a phrase as its rarest bigram (the bigrams of a word come
    together; the planner multiplies them as if independent), OR adds up, AND multiplies."""
    with pg_world.session() as session:
        session.execute(text("ANALYZE search_docs"))
        session.commit()
        conn = session.connection()
        documents = session.scalar(select(func.count()).select_from(SearchDoc))
        share = {
            q: archive.search._text_share(conn, parse_query(q))
            for q in ("统战工作", "统战", "工作", "统战工作 OR 统战", "统战 工作")
        }
        for q in ("统战工作", "统战", "工作"):
            truth = archive.search.count_matches(session, q) / documents
            assert share[q] == pytest.approx(truth, rel=0.01), q
        stats = archive.search._code_shares(conn)
        assert stats is not None
        code = archive.search.token_code
        independent = stats[0][code("统战")] * stats[0][code("战工")] * stats[0][code("工作")]
        assert share["统战工作"] > 1.5 * independent  # what the planner would expect
        assert share["统战工作 OR 统战"] == pytest.approx(
            min(1.0, share["统战工作"] + share["统战"])
        )
        assert share["统战 工作"] == pytest.approx(share["统战"] * share["工作"])


def test_an_upgrade_to_a_new_index_format_rebuilds_the_index(world: World) -> None:
    """Revision 0007 remakes the SQLite FTS5 table empty, 0020 PostgreSQL's codes; `db
    upgrade` fills the index again."""
    engine = make_engine(world.database_url)
    command.downgrade(alembic_config(engine), "0006")
    sqlite = engine.dialect.name == "sqlite"
    engine.dispose()
    if sqlite:
        assert not found(world, "统战")
    result = CliRunner().invoke(app, ["db", "upgrade"], env=world.env())
    assert result.exit_code == 0, result.output
    # both remade their index in a new format since (SQLite's 0007, PostgreSQL's 0020)
    assert "search index rebuilt: 22 articles" in result.stdout
    assert found(world, "统战") == containing(texts(world), "统战") != set()
    # revision 0019 gave the entries kept through it their sites (PostgreSQL's site: filter)
    city = {a.id for a in world.articles("gbk_city").values()}
    assert found(world, "统战 site:gbk_city") == containing(texts(world), "统战") & city != set()


@pytest.mark.parametrize("slack", [20, 0])
def test_newest_first_reads_forwards_or_backwards_alike(
    world: World, monkeypatch: pytest.MonkeyPatch, slack: int
) -> None:
    """A page holding every match is read oldest first and turned round, a longer list
    newest first (on SQLite); pages come out the same either way."""
    monkeypatch.setattr(archive.search, "FETCH_SLACK", slack)
    with world.session() as session:
        every = [h.record["id"] for h in search(session, "统战", sort="newest", limit=100).hits]
        pages = [
            [h.record["id"] for h in search(session, "统战", sort="newest", limit=2, offset=k).hits]
            for k in range(0, len(every), 2)
        ]
    assert len(every) > 4 and [i for page in pages for i in page] == every


def test_articles_of_one_second_take_the_next_free_keys(
    session_factory: sessionmaker[Session],
) -> None:
    """Pages that give only a date all want midnight: each article gets the first second at
    or after its time that no indexed article holds, batch after batch, as if looked up
    one at a time (what free_keys does without reading a run of held keys per article)."""
    rng = random.Random(3)
    day = datetime(2024, 3, 1, tzinfo=UTC)
    times = [
        day + timedelta(days=rng.choice([0, 0, 0, 1]), seconds=rng.choice([0, 0, 0, 5, 90, 400]))
        for _ in range(300)
    ]
    with session_factory() as s, s.begin():
        s.add(Site(id=1, name="fixtures", title="fixtures"))
        s.execute(insert(Article), [
            {"id": n, "site_id": 1, "url": f"https://x.gov.cn/{n}.html", "canonical_url": f"https://x.gov.cn/{n}.html",
             "publish_time": when, "version": 1} for n, when in enumerate(times, start=1)])  # fmt: skip
        s.execute(insert(ArticleVersion), [
            {"article_id": n, "version": 1, "title": f"统战要闻{n}", "body": "统一战线工作会议召开。",
             "content_hash": ""} for n in range(1, len(times) + 1)])  # fmt: skip
    held: set[int] = set()
    expected: dict[int, int] = {}
    ids = list(range(1, len(times) + 1))
    rng.shuffle(ids)
    start = 0
    while start < len(ids):
        batch = ids[start : start + rng.choice([1, 7, 40])]
        start += len(batch)
        for n in sorted(batch, key=lambda n: (times[n - 1], n)):  # one at a time, naively
            key = archive.search.order_key(times[n - 1])
            while key in held:
                key += 1
            held.add(key)
            expected[n] = key
        with session_factory() as s, s.begin():
            archive.search.index_articles(s, batch)
    with session_factory() as s:
        got = dict(s.execute(select(SearchDoc.article_id, SearchDoc.doc_id)).all())
    assert got == expected


def test_postgresql_finds_phrases_and_prefixes_in_the_codes_as_the_text_has_them(
    postgres_url: str,
) -> None:
    """ufa_hits (migration 0020) on entries' codes: a phrase is its tokens one after
    another (not apart, not across title and body), a one-character prefix any bigram
    that starts with it or it closing a run, occurrences in the title count
    TITLE_WEIGHT times; the codes of a Han bigram or character are exact."""
    code = archive.search.token_code
    pairs = [chr(a) + chr(b) for a in range(0x4E00, 0x4E40) for b in range(0x4E00, 0x4E40)]
    assert len({code(pair) for pair in pairs}) == len(pairs)
    low, high, closing = archive.search.prefix_codes("统") or (0, 0, 0)
    assert all(low <= code("统" + c) <= high for c in "一战龥㐀豈") and code("统") == closing
    assert code("abc") < 0 and code("统战") > 0 and 0 not in {code("a"), code("统"), code("𠀀")}
    engine = make_engine(postgres_url)
    upgrade(engine)
    pages = [
        ("统战要闻", "全国统战部长会议在京召开。统战工作，统一战线。"),  # 0
        ("统一", "工作统战 战线"),  # 1: 统战 and 工作 apart, 战线 after a space
        ("", "α β 统"),  # 2: 统 closing a run
        ("统战工作", "abc统战 统战工作"),  # 3
    ]
    cases = {  # query -> (matching pages, weighted hits of page 3 where it matches)
        "统战工作": ({0, 3}, 5),
        "统战": ({0, 1, 3}, 4 + 2),
        "统": ({0, 1, 2, 3}, 4 + 2),
        "战线": ({0, 1}, None),
        "abc统": ({3}, 1),
        "工作统": ({1}, None),
        "要闻统战": (set(), None),  # across title and body
    }
    try:
        with engine.connect() as conn:
            for query, (matching, hits) in cases.items():
                term = archive.search.Term.parse(query)
                assert term is not None
                found, weighted = set(), None
                for n, (title, body) in enumerate(pages):
                    vector = archive.search.vector_codes(index_text(title), index_text(body))
                    value = cast(literal(vector, ARRAY(Integer)), ARRAY(Integer))
                    # an entry with doc_id n: pages in either half of the GIN index
                    doc = select(literal(n).label("doc_id"), value.label("vector")).subquery()
                    matched = conn.scalar(select(archive.search._term_match(term, doc)))
                    if matched:
                        found.add(n)
                    if n == 3 and matched:
                        weighted = conn.scalar(
                            select(archive.search._term_hits(term, value, first_only=False))
                        )
                assert found == matching, query
                assert weighted == hits, query
    finally:
        engine.dispose()


def test_postgresql_checks_a_words_rarest_code_first(pg_world: World) -> None:
    """`@>` tests a term's codes in a row one after another, and stops at the first an
    entry lacks: every statement of a search checks the rarest (by ANALYZE's statistics)
    first, and the matches are the same."""
    from sqlalchemy import event

    corpus = texts(pg_world)
    with pg_world.session() as session:
        session.execute(text("ANALYZE search_docs"))
        session.commit()
        archive.search._STATS.clear()
        shares, rare = archive.search._code_shares(session.connection()) or ({}, 0.0)
        # a 4-character word of the fixture texts whose bigrams differ most in how common
        words = {b[i : i + 4] for _, b in corpus.values() for i in range(0, len(b) - 4, 7)}
        words = {w for w in words if all("\u4e00" <= ch <= "\u9fff" for ch in w)}

        def spread(word: str) -> float:
            found = [shares.get(c, rare) for c in Term(tuple(word[i:i+2] for i in range(3))).codes()[0]]  # fmt: skip
            return max(found) - min(found)

        word = max(sorted(words), key=spread)
        codes = Term.parse(word).codes()[0]  # type: ignore[union-attr]
        assert spread(word) > 0.3, word  # not vacuous: one bigram far commoner than another
        rarest = min(codes, key=lambda c: (shares.get(c, rare), c))
        assert rarest != min(codes)  # ... and not the first in numeric order either way
        statements: list[str] = []
        engine = session.get_bind()
        record = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
        event.listen(engine, "before_cursor_execute", record)
        try:
            for sort in ("newest", "relevance"):
                found = archive.search.search(session, word, sort=sort, limit=1000)
                assert {h.record["id"] for h in found.hits} == containing(corpus, word), sort
        finally:
            event.remove(engine, "before_cursor_execute", record)
        checks = [s.split("@>", 1)[1] for s in statements if "@>" in s]
        assert checks and all(c.lstrip().startswith(f"'{{{rarest},") for c in checks), checks


@pytest.mark.parametrize("ranged", [False, True])
def test_newest_first_on_postgresql_goes_on_below_when_copies_leave_the_page_short(
    pg_world: World, monkeypatch: pytest.MonkeyPatch, ranged: bool
) -> None:
    """The newest-first probe asks for the page and PROBE_SLACK more; when copies of one
    story collapse into one hit and leave the page short, it goes on below the last match
    it found (not from the top, not through the GIN plan), and the page is the GIN plan's."""
    from archive.models import Cluster

    query = "统战"
    with pg_world.session() as session:
        session.execute(text("ANALYZE search_docs"))
        newest = list(
            session.scalars(
                select(SearchDoc.article_id)
                .where(SearchDoc.vector.contains([archive.search.token_code(query)]))
                .order_by(SearchDoc.doc_id.desc())
                .limit(6)
            )
        )
        # the newest six matches: copies of one story
        cluster = Cluster(size=len(newest))
        session.add(cluster)
        session.flush()
        session.execute(update(Article).where(Article.id.in_(newest)).values(cluster_id=cluster.id))
        session.commit()
    monkeypatch.setattr(archive.search, "PROBE_SLACK", 1)
    monkeypatch.setattr(archive.search, "GIN_MATCH_SHARE", 1)  # the probe chosen, as above
    monkeypatch.setattr(archive.search, "POSTING_SHARE", 1e9 if ranged else 1e-9)
    calls: list[tuple[int, int | None] | str] = []
    probe_, select_ = archive.search._pg_probe, archive.search._select

    def probed(conn: Any, parsed: Any, wanted: int, most: int, **kwargs: Any) -> Any:
        found = probe_(conn, parsed, wanted, most, **kwargs)
        calls.append((wanted, kwargs.get("below")) if found is not None else "no probe")
        return found

    def selected(*args: Any, **kwargs: Any) -> Any:
        if args[2] is not None:
            calls.append("gin")
        return select_(*args, **kwargs)

    monkeypatch.setattr(archive.search, "_pg_probe", probed)
    monkeypatch.setattr(archive.search, "_select", selected)
    with pg_world.session() as session:
        page = [h.record["id"] for h in search(session, query, sort="newest", limit=3).hits]
        copies = [h.record["id"] for h in search(session, query, sort="newest", limit=3,
                                                   all_copies=True).hits]  # fmt: skip
        assert copies == newest[:3]
    assert calls[0] == (4, None) and len(calls) >= 3, calls  # the page and one more, then on
    assert all(isinstance(c, tuple) and c[1] is not None for c in calls[1:-1]), calls
    assert "gin" not in calls and "no probe" not in calls, calls
    assert calls[-1] == (4, None)  # all copies: the first probe filled the page
    monkeypatch.setattr(archive.search, "PG_PROBE_MAX", 0)  # the GIN plan only
    with pg_world.session() as session:
        assert [h.record["id"] for h in search(session, query, sort="newest", limit=3).hits] == page
    assert page[0] == newest[0] and newest[1] not in page and len(page) == 3


def test_nfkc_is_unicodes_nfkc() -> None:
    """archive.text.nfkc takes shortcuts (full-width forms translated first): its results
    are NFKC's on Chinese text, full-width and compatibility forms, combining marks."""
    import unicodedata

    from archive.text import nfkc

    rng = random.Random(7)
    pool = "统戰，：？！（）ＡＢｃ１２　。、“”ｶﾞ①㍿ﬁ\u0301\u0308e\uff21\u0301 abc" + "".join(
        chr(c) for c in range(0xFF01, 0xFF5F)
    )
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
        assert nfkc(text) == unicodedata.normalize("NFKC", text), repr(text)


def _plan(conn: Any, query: Any) -> str:
    compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
    return "\n".join(conn.scalars(text(f"EXPLAIN {compiled}")))


def test_postgresql_finds_a_term_through_both_halves_of_the_gin_index(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GIN index is two partial indexes, even and odd doc_ids (migration 0023): every
    GIN plan (a word, a phrase, alternatives, two clauses, an exclusion's complement) scans
    both halves by `@>` and finds what reading every entry finds. Written alike in both
    halves, alternatives of phrases lose their `@>` to the planner's factoring: both halves
    read whole."""
    from sqlalchemy import and_, or_

    half_names = archive.search.GIN_HALVES
    corpus = texts(pg_world)
    with pg_world.session() as session:
        conn = session.connection()
        halves = set(
            conn.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'search_docs'"))
        )
        assert set(half_names) <= halves and "ix_search_docs_vector" not in halves
        doc_ids = set(conn.scalars(select(SearchDoc.doc_id)))
        assert {d & 1 for d in doc_ids} == {0, 1}  # entries in both halves
        for query, words in [
            ("统战", [("统战",)]),
            ("统战工作", [("统战工作",)]),
            ("统战 OR 侨务", [("统战",), ("侨务",)]),
            ("统战 宗教", [("统战", "宗教")]),
        ]:
            parsed = archive.search.parse_query(query)
            match = archive.search._pg_match(parsed.clauses, [], SearchDoc.__table__)
            counting = select(func.count()).where(match)
            with archive.search._gin_plan(conn):
                plan = _plan(conn, counting)
                counted = conn.scalar(counting)
            assert all(name in plan for name in half_names), (query, plan)
            scans = plan.count("Bitmap Index Scan on ix_search_docs_vector_")
            assert scans == plan.count("Index Cond: (vector @>") >= 2 and "BitmapOr" in plan, plan
            want = set().union(*(containing(corpus, *alt) for alt in words))
            assert counted == len(want) > 0, query
            assert archive.search.count_matches(session, query) == len(want), query

        # The same test written alike in both halves: for alternatives of several tokens
        # the planner takes the halves' conditions out of the OR (common to its arms, once
        # it has taken `@>` out of each), and no GIN plan is left.
        def alike(term: Any, docs: Any) -> Any:
            codes = archive.search._int4s(sorted(set(term.codes()[0])))
            return or_(
                *[
                    and_(archive.search._half(docs.c.doc_id, h), docs.c.vector.bool_op("@>")(codes))
                    for h in (0, 1)
                ]
            )

        for holds, used in [(alike, False), (archive.search._holds, True)]:
            monkeypatch.setattr(archive.search, "_holds", holds)
            parsed = archive.search.parse_query("统战工作 OR 宗教工作")
            match = archive.search._pg_match(parsed.clauses, [], SearchDoc.__table__)
            with archive.search._gin_plan(conn):
                plan = _plan(conn, select(func.count()).where(match))
            # (a half scanned without a condition is read whole: PostgreSQL's full GIN scan)
            scans = plan.count("Bitmap Index Scan on ix_search_docs_vector_")
            assert (scans == plan.count("Index Cond: (vector @>") >= 2) == used, plan
        session.rollback()


def test_a_postgresql_rebuild_builds_both_gin_halves_at_once_and_upgrade_completes_them(
    pg_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild writes the entries by binary COPY (the codes the crawl wrote, exactly),
    then builds the GIN index's two halves from two connections at once (both builds seen
    waiting together behind a lock held on the table), then counts the common codes. A
    half an interrupted rebuild never built is built by `db upgrade`; searches find the
    same meanwhile."""
    import threading

    engine = make_engine(pg_world.database_url)
    sessions = sessionmaker(engine)
    entries = "SELECT article_id, version, site_id, vector FROM search_docs ORDER BY article_id"
    blocker = engine.connect()
    waiting: list[int] = []
    build_gin_halves = archive.search.build_gin_halves

    def build_when_blocked(engine_: Any) -> list[str]:
        # the entries are committed: a lock that stops both builds until the watcher sees them
        blocker.execute(text("LOCK TABLE search_docs IN ROW EXCLUSIVE MODE"))
        return build_gin_halves(engine_)

    def watch() -> None:
        with engine.connect() as conn:
            for _ in range(400):
                pids = conn.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX%'"
                        " AND wait_event_type = 'Lock'"
                    )
                ).all()
                conn.rollback()  # (a transaction sees one snapshot of pg_stat_activity)
                if len(pids) == 2:
                    waiting.extend(pids)
                    break
                time.sleep(0.05)
        blocker.rollback()

    def rebuild() -> None:
        with sessions() as session:
            archive.search.rebuild_index(session, batch=7)

    try:
        with sessions() as session:
            crawled = session.execute(text(entries)).all()
        before = found(pg_world, "统战工作")
        assert len(crawled) > 20 and before
        monkeypatch.setattr(archive.search, "build_gin_halves", build_when_blocked)
        builder = threading.Thread(target=rebuild)
        builder.start()
        watch()
        builder.join(60)
        monkeypatch.undo()
        assert not builder.is_alive()
        assert len(set(waiting)) == 2, waiting  # two builds at once, two server processes
        with sessions() as session:
            assert session.execute(text(entries)).all() == crawled
            valid = session.scalars(
                text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE i.indisvalid AND c.relname LIKE 'ix_search_docs_vector_%'"
                )
            ).all()
            assert sorted(valid) == list(archive.search.GIN_HALVES)
            # a rebuild killed after its entries: one half missing
            session.execute(text(f"DROP INDEX {archive.search.GIN_HALVES[1]}"))
            session.commit()
        assert found(pg_world, "统战工作") == before  # every entry read meanwhile
        result = CliRunner().invoke(app, ["db", "upgrade"], env=pg_world.env())
        assert result.exit_code == 0, result.output
        assert f"built {archive.search.GIN_HALVES[1]}, which an interrupted" in result.stdout
        assert found(pg_world, "统战工作") == before
        again = CliRunner().invoke(app, ["db", "upgrade"], env=pg_world.env())
        assert again.exit_code == 0 and "built" not in again.stdout, again.stdout
    finally:
        blocker.close()
        engine.dispose()
