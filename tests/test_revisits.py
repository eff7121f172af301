"""Revisits, as real crawls of a county site that edits and takes down its articles, on
SQLite and PostgreSQL: edits make versions and boilerplate does not; 304s and identical
pages store no second copy; every takedown form is found, none is invented when the site
is down; the policy decides what is due, with a clock the test controls."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner
from warcio.archiveiterator import ArchiveIterator

from archive.alerts import active_alerts
from archive.articles import raw_bytes
from archive.models import Article, ArticleEvent, CrawlRun, Snapshot
from archive.revisit import check_interval, judge_revisits, next_check
from archive.search import search
from archive.settings import RevisitSettings, RevisitTier
from archive.store import (
    ArticleFields,
    Check,
    Fetch,
    due_articles,
    ensure_site,
    known_by_ids,
    record_checks,
    save_article,
)
from archive.warc import WarcLocation
from crawler.cli import app
from tests.conftest import SITES
from tests.crawlworld import World, expected, make_world
from tests.siteserver import SiteServer

SITE = "qxtzb"
PATHS = list(expected(SITE)["articles"])
EDIT_BODY, EDIT_TITLE, EDIT_EDITOR, BOILERPLATE, UNTOUCHED, SIXTH = PATHS


def page(path: str) -> str:
    return (SITES / SITE / path.lstrip("/")).read_text(encoding="utf-8")


@pytest.fixture
def world(crawled: Callable[..., World]) -> World:
    """The county site crawled once (a copy of the session's crawl of it)."""
    world = crawled(SITE)
    assert set(world.articles(SITE)) == set(PATHS)
    return world


def events(world: World, path: str) -> list[tuple[str, dict[str, object]]]:
    article = world.articles(SITE)[path]
    with world.session() as session:
        rows = session.scalars(
            select(ArticleEvent)
            .where(ArticleEvent.article_id == article.id)
            .order_by(ArticleEvent.id)
        ).all()
        return [(e.kind, e.detail) for e in rows]


def snapshots_of(world: World, path: str) -> list[Snapshot]:
    article = world.articles(SITE)[path]
    with world.session() as session:
        return list(
            session.scalars(
                select(Snapshot).where(Snapshot.article_id == article.id).order_by(Snapshot.id)
            )
        )


def test_edits_make_versions_and_boilerplate_changes_do_not(world: World) -> None:
    server = world.servers[SITE]
    server.put(
        EDIT_BODY, page(EDIT_BODY).replace("总结2023年全县统战工作", "回顾2023年全县统战工作成效")
    )
    server.put(EDIT_TITLE, page(EDIT_TITLE).replace("国情考察活动</h1>", "国情考察研修活动</h1>"))
    server.put(EDIT_EDITOR, page(EDIT_EDITOR).replace("责任编辑：孙婷", "责任编辑：周磊"))
    noise = (
        page(BOILERPLATE)
        .replace('<span id="hits">318</span>', '<span id="hits">5021</span>')  # a view counter
        .replace(
            "<h3>相关阅读</h3><ul>", '<h3>相关阅读</h3><ul><li><a href="/x">新的相关文章</a></li>'
        )
        .replace("专题：学习贯彻党的二十大精神", "专题：2025年全国两会")  # another ad
        .replace("Copyright &copy; 2024", "Copyright &copy; 2025")  # the footer's year
        .replace("<p>　　", "<p>\n　　  ")  # re-indented text
    )
    server.put(BOILERPLATE, noise)
    server.clear()
    run = world.crawl()[SITE]
    assert run.status == "succeeded"
    assert (run.revisits_checked, run.articles_changed, run.articles_unchanged) == (6, 3, 3)
    assert run.revisits_not_modified == 2  # UNTOUCHED and SIXTH answered 304
    assert run.articles_new == run.articles_gone == 0
    articles = world.articles(SITE)
    for path in (EDIT_BODY, EDIT_TITLE, EDIT_EDITOR):
        assert articles[path].version == 2 and articles[path].status == "live", path
    assert [articles[p].version for p in (BOILERPLATE, UNTOUCHED, SIXTH)] == [1, 1, 1]
    assert events(world, EDIT_BODY) == [("changed", {"fields": ["body"]})]
    assert events(world, EDIT_TITLE) == [("changed", {"fields": ["title"]})]
    assert events(world, EDIT_EDITOR) == [("changed", {"fields": ["editor"]})]
    assert events(world, BOILERPLATE) == []
    v1, v2 = world.versions(articles[EDIT_BODY].id)
    assert "总结2023年" in v1.body and "回顾2023年全县统战工作成效" in v2.body
    # every version keeps its own snapshot, and the raw bytes of each come back
    with world.session() as session:
        old = raw_bytes(session, world.data_dir, articles[EDIT_BODY].id, 1).decode()
        new = raw_bytes(session, world.data_dir, articles[EDIT_BODY].id, 2).decode()
    assert "总结2023年" in old and "回顾2023年" in new
    # the boilerplate-only page is archived as fetched (its bytes differ), no version
    assert [s.record_type for s in snapshots_of(world, BOILERPLATE)] == ["response", "response"]
    assert len(snapshots_of(world, UNTOUCHED)) == 1  # a 304 stores nothing

    # the archivist's view: versions, the word diff, the history, search and export
    cli = CliRunner()
    env = world.env()
    diff = cli.invoke(app, ["show", str(articles[EDIT_BODY].id), "--diff"], env=env)
    assert diff.exit_code == 0, diff.output
    assert "[-总结-]{+回顾+}" in diff.stdout and "{+成效+}" in diff.stdout
    diff = cli.invoke(
        app, ["show", str(articles[EDIT_TITLE].id), "--diff", "1", "2", "--format", "json"], env=env
    )
    changes = json.loads(diff.stdout)
    assert changes["fields"]["title"]["new"].endswith("国情考察研修活动")
    assert changes["a"] == 1 and changes["b"] == 2
    assert all(op == "equal" for op, _ in changes["body"])
    listed = cli.invoke(app, ["show", str(articles[EDIT_EDITOR].id), "--versions"], env=env)
    assert listed.exit_code == 0 and "editor" in listed.stdout and "history" in listed.stdout
    shown = json.loads(
        cli.invoke(app, ["show", str(articles[EDIT_EDITOR].id), "--format", "json"], env=env).stdout
    )
    assert [e["kind"] for e in shown["events"]] == ["changed"]
    assert shown["last_checked"] is not None and shown["gone_at"] is None
    with world.session() as session:
        edited = {h.record["id"] for h in search(session, "changed:yes", limit=50).hits}
        assert edited == {articles[p].id for p in (EDIT_BODY, EDIT_TITLE, EDIT_EDITOR)}
        assert len(search(session, "统战 changed:no", limit=50).hits) >= 1
    bad = cli.invoke(app, ["search", "status:deleted"], env=env)
    assert bad.exit_code == 2 and "status:deleted is not one of live, gone, moved" in bad.stderr


def test_a_server_that_ignores_conditional_headers_costs_a_get_and_makes_no_version(
    world: World,
) -> None:
    server = world.servers[SITE]
    server.conditional = False
    server.clear()
    run = world.crawl()[SITE]
    requests = [r for r in server.requests if r.url_path in PATHS]
    assert len(requests) == 6 and all("if-none-match" in r.headers for r in requests)
    assert (run.revisits_checked, run.revisits_not_modified, run.articles_unchanged) == (6, 0, 6)
    assert all(a.version == 1 for a in world.articles(SITE).values())
    # a WARC revisit record each, not a second copy of the page
    for path in PATHS:
        first, second = snapshots_of(world, path)
        assert (first.record_type, second.record_type) == ("response", "revisit")
        assert second.refers_to_id == first.id and second.payload_digest == first.payload_digest
    files = {s.warc_file for p in PATHS for s in snapshots_of(world, p)}
    revisits = 0
    for file in files:
        checked = subprocess.run(
            [str(Path(sys.executable).with_name("warcio")), "check", str(world.data_dir / file)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with (world.data_dir / file).open("rb") as fh:
            for record in ArchiveIterator(fh):
                if record.rec_type == "revisit":
                    revisits += 1
                    headers = record.rec_headers
                    assert headers.get_header("WARC-Profile").endswith(
                        "/warc/1.1/revisit/identical-payload-digest"
                    )
                    assert headers.get_header("WARC-Refers-To").startswith("<urn:uuid:")
                    assert record.http_headers.get_statuscode() == "200"
                    assert record.content_stream().read() == b""
    assert revisits == 6


def test_every_takedown_form_and_a_restore(world: World) -> None:
    server = world.servers[SITE]
    new_home = "/xwzx/2024/06/20240601_1100.html"  # where one article moved
    server.delete(EDIT_BODY)  # 404
    server.rule(EDIT_TITLE, status=410)
    server.put(EDIT_EDITOR, page("/error.html"))  # a soft 404 answered with 200
    server.rule(BOILERPLATE, redirect=server.url("/"))  # to the home page
    server.rule(UNTOUCHED, redirect="/xwzx/index.html")  # to a listing
    server.put(new_home, page(SIXTH).replace("县委统战部召开新的", "（重发）县委统战部召开新的"))
    server.rule(SIXTH, redirect=new_home)  # to another article: moved
    run = world.crawl()[SITE]
    assert run.status == "succeeded" and not run.unreachable
    assert (run.articles_gone, run.articles_moved) == (5, 1)
    articles = world.articles(SITE)
    assert {p: articles[p].status for p in PATHS} == {
        EDIT_BODY: "gone", EDIT_TITLE: "gone", EDIT_EDITOR: "gone", BOILERPLATE: "gone",
        UNTOUCHED: "gone", SIXTH: "moved",
    }  # fmt: skip
    assert events(world, EDIT_BODY) == [("gone", {"status": 404})]
    assert events(world, EDIT_TITLE) == [("gone", {"status": 410})]
    assert events(world, EDIT_EDITOR) == [("gone", {"reason": "soft_404", "phrase": "页面不存在"})]
    assert events(world, BOILERPLATE) == [
        ("gone", {"reason": "redirect_home", "location": server.url("/")})
    ]
    assert events(world, UNTOUCHED)[0][1]["reason"] == "redirect_listing"
    moved = articles[SIXTH]
    assert moved.moved_to == server.url(new_home) and new_home in articles
    ((kind, detail),) = events(world, SIXTH)
    assert kind == "moved" and detail["target_article_id"] == articles[new_home].id
    # nothing deleted: every version stays, the evidence of each takedown is archived
    assert all(len(world.versions(a.id)) == 1 for a in articles.values())
    assert [s.status_code for s in snapshots_of(world, EDIT_BODY)] == [200, 404]
    assert [s.status_code for s in snapshots_of(world, EDIT_EDITOR)] == [200, 200]
    with world.session() as session:
        gone = {h.record["id"] for h in search(session, "status:gone", limit=50).hits}
        assert gone == {articles[p].id for p in PATHS[:5]}
        assert {h.record["id"] for h in search(session, "status:moved", limit=50).hits} == {
            moved.id
        }
        assert active_alerts(session, SITE)[0].kind == "mass_gone"  # 5 of 6 in one run

    # it answers again: restored
    server.put(EDIT_BODY, page(EDIT_BODY))
    run = world.crawl()[SITE]
    assert run.articles_restored == 1
    article = world.articles(SITE)[EDIT_BODY]
    assert (article.status, article.gone_at, article.version) == ("live", None, 1)
    assert [k for k, _ in events(world, EDIT_BODY)] == ["gone", "restored"]
    exported = CliRunner().invoke(
        app,
        ["export", "--format", "jsonl", "--output", str(world.root / "a.jsonl")],
        env=world.env(),
    )
    assert exported.exit_code == 0, exported.output
    records = {
        r["url"]: r for r in map(json.loads, (world.root / "a.jsonl").read_text().splitlines())
    }
    assert records[server.url(EDIT_TITLE)]["status"] == "gone"
    assert records[server.url(EDIT_TITLE)]["gone_at"] is not None
    assert records[server.url(EDIT_BODY)]["gone_at"] is None
    assert all(r["last_checked"] for r in records.values())


def test_a_site_that_is_down_marks_nothing_gone(world: World) -> None:
    server = world.servers[SITE]
    for path in PATHS[:5]:
        server.rule(path, status=503)
    server.delete(SIXTH)  # one real 404 among the failures: not trusted either
    run = world.crawl()[SITE]
    assert run.unreachable and run.revisits_failed == 5
    assert run.articles_gone == 0
    assert all(a.status == "live" for a in world.articles(SITE).values())
    assert events(world, SIXTH) == []
    with world.session() as session:
        (alert,) = active_alerts(session, SITE)
    assert alert.kind == "unreachable" and "5 of 6 revisits" in alert.message

    # the whole site down (connection refused): nothing gone either; the failed checks
    # stay due for the next run
    server.stop()
    run = world.crawl()[SITE]
    assert run.unreachable and run.articles_gone == 0 and run.status == "failed"
    assert all(a.status == "live" for a in world.articles(SITE).values())
    with world.session() as session:
        due = due_articles(session, world.articles(SITE)[SIXTH].site_id, datetime.now(UTC), 100)
    assert len(due) == 6


def test_a_robots_txt_that_now_disallows_is_not_a_takedown(world: World) -> None:
    server = world.servers[SITE]
    server.put("/robots.txt", "User-agent: *\nDisallow: /xwzx/2024/\n")
    server.clear()
    run = world.crawl()[SITE]
    assert run.unreachable and run.revisits_failed == 6 and run.articles_gone == 0
    assert not any(r.url_path in PATHS for r in server.requests)
    assert all(a.status == "live" for a in world.articles(SITE).values())


def test_the_budget_caps_a_run_and_the_most_overdue_go_first(world: World) -> None:
    world.configure(extra="  max_revisits: 0.2\n", max_pages=10)  # 2 revisits a run
    ids = {path: a.id for path, a in world.articles(SITE).items()}
    now = datetime.now(UTC)
    overdue = {SIXTH: now - timedelta(days=9), UNTOUCHED: now - timedelta(days=5)}
    with world.session() as session, session.begin():
        for article in session.scalars(select(Article)):
            article.next_check = overdue.get(
                next(p for p, i in ids.items() if i == article.id), now - timedelta(hours=1)
            )
    server = world.servers[SITE]
    server.clear()
    run = world.crawl()[SITE]
    assert run.revisits_checked == 2
    assert sorted(r.url_path for r in server.requests if r.url_path in PATHS) == sorted(
        [SIXTH, UNTOUCHED]
    )


# --- the policy, with a clock the test controls ---------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
POLICY = RevisitSettings()


def test_the_default_tiers() -> None:
    hours = [
        check_interval(POLICY, timedelta(days=d), changed_before=False) / timedelta(hours=1)
        for d in (0, 2.9, 3.1, 29, 31, 364, 366, 3000)
    ]
    assert hours == [0, 0, 24, 24, 168, 168, 720, 720]
    assert check_interval(POLICY, timedelta(days=10), changed_before=True) == timedelta(hours=12)
    # the age counts from the last change: an old article edited yesterday is young again
    assert next_check(POLICY, NOW, NOW - timedelta(days=900), NOW - timedelta(days=1), 2) == NOW
    with pytest.raises(ValueError, match="last tier"):
        RevisitSettings(tiers=(RevisitTier(age_days=3, every_hours=0),))


def fetch(url: str, n: int, at: datetime) -> Fetch:
    location = WarcLocation("warc/x.warc.gz", n * 1000, 900, f"<urn:uuid:{n:08d}>", f"sha1:{n}")
    return Fetch(url=url, status=200, headers={"ETag": f'"{n}"'}, fetched_at=at, warc=location,
                 payload_length=800)  # fmt: skip


def test_due_articles_by_tier_when_due_and_not_before(
    session_factory: sessionmaker[Session],
) -> None:
    """Articles first seen 1 day, 10 days, 100 days and 1,000 days before NOW, checked at
    NOW: each is due again after its tier's interval, not a minute before."""
    ages = {"young": 1, "month": 10, "year": 100, "old": 1000}
    with session_factory() as s, s.begin():
        site_id = ensure_site(s, "t", "t").id
        ids = {}
        for n, (name, days) in enumerate(ages.items()):
            seen = NOW - timedelta(days=days)
            ids[name], _ = save_article(
                s, site_id, fetch(f"https://a.gov.cn/{name}.html", n, seen),
                ArticleFields(title=name, body=f"{name} 统战"),
            )  # fmt: skip
        record_checks(s, [Check(i, NOW) for i in ids.values()], POLICY)
    intervals = {"young": timedelta(0), "month": timedelta(days=1), "year": timedelta(days=7),
                 "old": timedelta(days=30)}  # fmt: skip
    with session_factory() as s:
        for name, interval in intervals.items():
            due_at = NOW + interval
            before = {*due_articles(s, site_id, due_at - timedelta(minutes=1), 10)}
            at = set(due_articles(s, site_id, due_at, 10))
            assert ids[name] not in before, name
            assert ids[name] in at, name
        # most overdue first, at most the budget
        later = due_articles(s, site_id, NOW + timedelta(days=40), 2)
        assert later == [ids["young"], ids["month"]]
        assert [k.article_id for k in known_by_ids(s, later)] == later
        # one range scan of an index that covers the query, no sort, no table read
        plan = explain(s, site_id)
        assert "ix_articles_site_next_check" in plan and "SORT" not in plan.upper(), plan


def explain(session: Session, site_id: int) -> str:
    query = select(Article.id).where(Article.site_id == site_id, Article.next_check <= NOW)
    query = query.order_by(Article.next_check).limit(1000)
    conn = session.connection()
    sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        return " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    conn.exec_driver_sql(
        "SET enable_seqscan = off"
    )  # a tiny table: make the planner show the index
    return " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))


def test_the_verdict_on_a_run() -> None:
    quiet = judge_revisits(
        POLICY, checked=10, failed=0, gone=1, start_requests=1, start_responses_ok=1
    )
    assert not quiet.unreachable and not quiet.mass_gone
    assert judge_revisits(POLICY, 2, 8, 0, 1, 1).unreachable
    assert not judge_revisits(POLICY, 0, 2, 0, 1, 1).unreachable  # too few to tell
    assert judge_revisits(POLICY, 0, 0, 0, 1, 0).unreachable  # no start URL answered
    mass = judge_revisits(POLICY, 10, 0, 6, 1, 1)
    assert mass.mass_gone and not mass.unreachable and "6 of 10" in (mass.message or "")


def test_reparse_and_dedup_rebuild_work_across_versions_and_takedowns(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    world = make_world(tmp_path, database_url, site_server, ("zytzb", "tzb_tw"))
    world.crawl()
    path = next(p for p, a in world.articles("zytzb").items() if a.cluster_id is not None)
    world.servers["zytzb"].delete(path)  # a republished article taken down
    edited = next(p for p in world.articles("tzb_tw") if p != path)
    original = (SITES / "tzb_tw" / edited.lstrip("/")).read_text(encoding="utf-8")
    first = expected("tzb_tw")["articles"][edited]["body_starts"]
    world.servers["tzb_tw"].put(edited, original.replace(first, "【更新】" + first, 1))
    world.servers["tzb_tw"].conditional = False  # revisit records for the others
    world.crawl()
    assert world.articles("zytzb")[path].status == "gone"
    assert world.articles("tzb_tw")[edited].version == 2
    cli = CliRunner()
    result = cli.invoke(app, ["reparse"], env=world.env())
    assert result.exit_code == 0, result.output
    total = len(world.articles("zytzb")) + len(world.articles("tzb_tw"))
    # the latest full page of each article, never a 404 or a revisit record
    assert f"checked {total}: 0 changed" in result.stdout, result.stdout
    result = cli.invoke(app, ["dedup", "--rebuild"], env=world.env())
    assert result.exit_code == 0, result.output
    gone = world.articles("zytzb")[path]
    assert gone.status == "gone" and gone.cluster_id is not None  # it keeps its cluster
    copies = [
        a
        for s in ("zytzb", "tzb_tw")
        for a in world.articles(s).values()
        if a.cluster_id == gone.cluster_id
    ]
    assert len(copies) >= 2


def test_a_redirect_to_another_domain_is_not_a_takedown(world: World) -> None:
    server = world.servers[SITE]
    for path in PATHS:  # the site moved to a host its file does not list (no request leaves)
        server.rule(path, redirect=f"http://localhost:{server.port}{path}")
    run = world.crawl()[SITE]
    assert run.unreachable and run.revisits_failed == 6 and run.articles_gone == 0
    assert all(a.status == "live" for a in world.articles(SITE).values())


# --- what an answer means (crawler.revisits), without a crawl ----------------------------------


def test_soft_404_pages_in_both_scripts_and_what_is_not_one() -> None:
    from crawler.revisits import soft_404_phrase

    shell = "<html><head><title>{t}</title><script>var m='页面不存在';</script></head><body>{b}</body></html>"
    for phrase in ("页面不存在", "頁面不存在", "该信息已删除", "信息已撤回", "資訊已撤回"):
        html = shell.format(t="提示", b=f"<div>对不起，{phrase}！<a href='/'>返回首页</a></div>")
        assert soft_404_phrase(POLICY, html, "提示", "") == phrase
    # a phrase only in a script (a site-wide handler) is not what the page says
    assert (
        soft_404_phrase(POLICY, shell.format(t="图片新闻", b="<img src=a.jpg>"), "图片新闻", "")
        is None
    )
    # an article that quotes the phrase keeps its body: not a soft 404
    body = "有网友反映点击链接后提示页面不存在，" + "统一战线工作取得新成效。" * 30
    assert soft_404_phrase(POLICY, shell.format(t="通报", b=body), "通报", body) is None


def test_where_a_redirect_leads() -> None:
    from crawler.revisits import redirect_kind
    from crawler.sites import SiteConfig

    site = SiteConfig.model_validate({
        "name": "x", "title": "x", "allowed_domains": ["tzb.gov.cn", "www.tzb.gov.cn"],
        "start_urls": ["https://www.tzb.gov.cn/xwzx/"], "article_url_pattern": r"/xwzx/\d{6}/t\d+\.html$",
        "follow_url_pattern": r"/xwzx/index_\d+\.html$", "schedule": {"interval_minutes": 60},
    })  # fmt: skip
    old = "https://www.tzb.gov.cn/xwzx/202401/t1.html"
    assert redirect_kind(site, old, "https://tzb.gov.cn/xwzx/202401/t1.html") == "same"
    assert redirect_kind(site, old, "https://www.tzb.gov.cn/xwzx/202402/t9.html") == "article"
    assert redirect_kind(site, old, "https://www.tzb.gov.cn/") == "home"
    assert redirect_kind(site, old, "https://www.tzb.gov.cn/index.shtml") == "home"
    assert redirect_kind(site, old, "https://www.tzb.gov.cn/xwzx/") == "listing"
    assert redirect_kind(site, old, "https://www.tzb.gov.cn/xwzx/index_3.html") == "listing"
    assert redirect_kind(site, old, "https://www.tzb.gov.cn/404.html") == "other"


def test_a_site_file_overrides_the_revisit_policy(tmp_path: Path) -> None:
    from archive.errors import SiteConfigError
    from crawler.sites import load_site_file

    text = (
        "name: s\ntitle: s\nstart_urls: [https://a.gov.cn/]\nallowed_domains: [a.gov.cn]\n"
        "article_url_pattern: 'x'\nschedule: {interval_minutes: 60}\nrevisit: {revisit}\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text(
        text.replace("{revisit}", "{max_revisits: 0.1, mass_gone_min: 50}"), encoding="utf-8"
    )
    policy = load_site_file(path).revisit_policy(POLICY)
    assert (policy.max_revisits, policy.mass_gone_min, policy.tiers) == (0.1, 50, POLICY.tiers)
    path.write_text(text.replace("{revisit}", "{max_revisits: 3}"), encoding="utf-8")
    with pytest.raises(
        SiteConfigError,
        match=r"s.yaml: revisit: max_revisits: Input should be less than or equal to 1",
    ):
        load_site_file(path)


# --- quick checks (crawler.checks) ---------------------------------------------------------


def run_stats(world: World, run_id: int) -> dict[str, object]:
    with world.session() as session:
        stats: dict[str, object] = session.get_one(CrawlRun, run_id).stats or {}
        return stats


def edit_body(world: World, path: str) -> None:
    first = expected(SITE)["articles"][path]["body_starts"]
    world.servers[SITE].put(path, page(path).replace(first, "【更正】" + first, 1))


def test_quick_checks_ask_each_due_article_once_within_the_crawl_politeness(world: World) -> None:
    settings = world.config_dir / "settings.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8")
        .replace("concurrent_requests_per_domain: 8", "concurrent_requests_per_domain: 2")
        .replace("download_delay_seconds: 0\n", "download_delay_seconds: 0.2\n"),
        encoding="utf-8",
    )
    server = world.servers[SITE]
    edit_body(world, EDIT_BODY)
    server.latency = 0.3
    server.clear()
    run = world.crawl()[SITE]
    asked = [r for r in server.requests if r.url_path in PATHS]
    # once each: the 304s, and the edited page whose 200 the crawl took as its download
    assert sorted(r.url_path for r in asked) == sorted(PATHS)
    assert all("if-none-match" in r.headers for r in asked)
    assert server.max_active <= 2
    starts = sorted(r.at for r in asked)
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.09  # 0.2 s x 0.5..1.5
    stats = run_stats(world, run.run_id)
    assert (stats["ufarchive/quick_checks/304"], stats["ufarchive/quick_checks/other"]) == (5, 1)
    assert (run.revisits_checked, run.revisits_not_modified, run.articles_changed) == (6, 5, 1)
    assert world.articles(SITE)[EDIT_BODY].version == 2
    assert run.responses_by_status["304"] == 5


def test_without_quick_checks_the_crawl_asks_and_finds_the_same(world: World) -> None:
    world.configure(extra="  quick_checks: false\n")
    edit_body(world, EDIT_BODY)
    server = world.servers[SITE]
    server.clear()
    run = world.crawl()[SITE]
    assert sorted(r.url_path for r in server.requests if r.url_path in PATHS) == sorted(PATHS)
    assert not [k for k in run_stats(world, run.run_id) if k.startswith("ufarchive/quick_checks")]
    assert (run.revisits_checked, run.revisits_not_modified, run.articles_changed) == (6, 5, 1)
    assert world.articles(SITE)[EDIT_BODY].version == 2
