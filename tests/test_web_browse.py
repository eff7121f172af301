"""The web UI's browse part on SQLite and PostgreSQL: the calendar of articles per Beijing
day (counts equal those computed here from the rows), a day's articles, the sites' ops
view with runs and alerts, the changes (page, filters, Atom, JSON), stored markup shown as
text everywhere; and `schedule --web` (what `make run` starts) as a real process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from archive.alerts import FAILING, set_alert
from archive.browse import BEIJING
from archive.db import make_engine, upgrade
from archive.models import Article, ArticleEvent, CrawlRun, Site
from tests.conftest import fresh_database
from tests.exportworld import ARTICLES, EDITED_BODY, GONE_URL, T0
from tests.webworld import XSS, XSS_URL, WebWorld, make_web_world

ATOM = "{http://www.w3.org/2005/Atom}"
EDITED_URL = ARTICLES[-1][1]
ESCAPED_SCRIPT = "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;"


def _build(root: Path, url: str) -> WebWorld:
    """The web world plus what only ops pages show: two runs of zytzb (one failed, with
    an alert) and a revisit finding on the XSS article (moved to a URL with markup)."""
    world = make_web_world(root, url)
    with world.session() as session:
        site = session.scalars(select(Site).where(Site.name == "zytzb")).one()
        session.add(
            CrawlRun(
                site_id=site.id, started_at=T0, finished_at=T0 + timedelta(minutes=5),
                status="succeeded", trigger="schedule", articles_new=4, articles_changed=1,
                requests=12,
            )
        )  # fmt: skip
        failed = CrawlRun(
            site_id=site.id, started_at=T0 + timedelta(hours=2),
            finished_at=T0 + timedelta(hours=2, minutes=1), status="failed",
            message="start URL answered 503", error_count=3,
        )  # fmt: skip
        session.add(failed)
        session.flush()
        set_alert(session, site.id, FAILING, "1 runs in a row failed; last: failed", failed.id)
        session.add(
            ArticleEvent(
                article_id=world.ids[XSS_URL], at=T0 + timedelta(days=4), kind="moved",
                detail={"target_url": f"https://www.zytzb.gov.cn/new?{XSS}"},
            )
        )  # fmt: skip
    return world


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebWorld]:
    root = tmp_path_factory.mktemp(f"browse-{request.param}")
    with fresh_database(request.param, root) as url:
        yield _build(root, url)


@pytest.fixture(scope="module")
def client(world: WebWorld) -> Iterator[TestClient]:
    with world.client() as client:
        yield client


def expected_days(world: WebWorld, site: str | None = None) -> Counter[date]:
    """Articles per Beijing publish day, counted here from the rows."""
    with world.session() as session:
        query = select(Article.publish_time, Site.name).join(Site)
        return Counter(
            when.astimezone(BEIJING).date()
            for when, name in session.execute(query)
            if when is not None and site in (None, name)
        )


def calendar_cells(page: str) -> dict[date, int]:
    return {
        date.fromisoformat(d): int(n)
        for d, n in re.findall(r'data-day="([\d-]+)" data-count="(\d+)"', page)
    }


def test_the_calendar_counts_what_was_published_each_beijing_day(
    world: WebWorld, client: TestClient
) -> None:
    for site in (None, "zytzb", "tzb_tw", "gbk_city"):
        expected = expected_days(world, site)
        assert expected
        for month in ("2024-03", "2024-04"):
            query = f"month={month}" + (f"&site={site}" if site else "")
            page = client.get(f"/browse?{query}")
            assert page.status_code == 200
            cells = calendar_cells(page.text)
            in_month = {d: n for d, n in expected.items() if d.strftime("%Y-%m") == month}
            assert {d: n for d, n in cells.items() if n} == in_month, (site, month)
            assert len(cells) == 31 if month == "2024-03" else 30
            api = client.get(f"/api/calendar?{query}").json()
            assert api["days"] == {d.isoformat(): n for d, n in sorted(in_month.items())}
            assert api["total"] == sum(in_month.values())
            for day in in_month:  # each counted day links to its list
                path = f"/browse/{site}/{day}" if site else f"/browse/{day}"
                assert f'href="{path}"' in page.text
    # 07:00 +08:00 on 3 March is 2 March in UTC: counted on the 3rd, as the page says
    zytzb = calendar_cells(client.get("/browse?site=zytzb&month=2024-03").text)
    assert zytzb[date(2024, 3, 3)] == 1 and zytzb[date(2024, 3, 2)] == 0
    # without a month: the newest article's; prev/next months; the undated article noted
    page = client.get("/browse?site=gbk_city").text
    assert "2024 年 4 月" in page
    assert 'href="/browse?site=gbk_city&amp;month=2024-03"' in page
    assert 'href="/browse?site=gbk_city&amp;month=2024-05"' in page
    assert "无发布日期：1 篇" in page
    bad = client.get("/browse?month=2024-13")
    assert bad.status_code == 400 and "YYYY-MM" in bad.text and "Traceback" not in bad.text
    assert client.get("/browse?site=nosuch").status_code == 404
    assert client.get("/api/calendar?site=nosuch").json()["detail"].startswith("site nosuch")


def test_a_day_lists_its_articles(world: WebWorld, client: TestClient) -> None:
    page = client.get("/browse/zytzb/2024-03-03")
    assert page.status_code == 200
    formula = world.ids[ARTICLES[1][1]]
    assert f'href="/articles/{formula}"' in page.text
    assert "=HYPERLINK(&#34;http://evil.example/&#34;,&#34;点击查看&#34;)" in page.text
    # every site: the original and its copy on another site
    both = client.get("/browse/2024-03-01")
    for url in (ARTICLES[0][1], "http://www.ycstzb.example.cn/xwdt/2024/0302/135.htm"):
        assert f'href="/articles/{world.ids[url]}"' in both.text
    assert both.text.count("中央统战部召开党外人士座谈会") == 2
    api = client.get("/api/browse/2024-03-01").json()
    assert sorted(a["site"] for a in api) == ["gbk_city", "zytzb"]
    assert (
        client.get("/api/browse/2024-03-01?site=zytzb").json()[0]["id"] == world.ids[ARTICLES[0][1]]
    )
    empty = client.get("/browse/tzb_tw/2024-03-01")
    assert empty.status_code == 200 and "这一天没有文章" in empty.text
    assert client.get("/browse/zytzb/2024-3-1x").status_code == 400
    to_site = client.get("/browse/zytzb", follow_redirects=False)
    assert to_site.status_code == 303 and to_site.headers["location"] == "/browse?site=zytzb"
    assert client.get("/browse/nosuch").status_code == 400
    assert client.get("/browse/nosuch/2024-03-01").status_code == 404
    assert client.get("/api/browse/20240301").status_code == 400


def test_sites_show_counts_runs_outcomes_and_alerts(world: WebWorld, client: TestClient) -> None:
    with world.session() as session:
        counted = Counter(
            name
            for (name,) in session.execute(
                select(Site.name).join(Article, Article.site_id == Site.id)
            )
        )
    page = client.get("/sites").text
    for name in ("zytzb", "tzb_tw", "gbk_city"):
        assert f'href="/sites/{name}"' in page
    sites = {s["site"]: s for s in client.get("/api/sites").json()}
    assert {name: s["articles"] for name, s in sites.items()} == dict(counted)
    assert sites["gbk_city"]["articles_gone"] == 1
    zytzb = sites["zytzb"]
    assert zytzb["last_status"] == "failed" and zytzb["failures_in_a_row"] == 1
    assert [a["kind"] for a in zytzb["alerts"]] == ["failing"]
    assert sites["tzb_tw"]["last_status"] is None and sites["tzb_tw"]["alerts"] == []
    assert "失败" in page and "连续失败</span>" in page and "未抓取" in page

    site = client.get("/sites/zytzb")
    assert site.status_code == 200
    assert "成功" in site.text and "失败" in site.text and "start URL answered 503" in site.text
    assert "1 runs in a row failed" in site.text
    assert f'href="/articles/{world.ids[XSS_URL]}"' in site.text
    runs = client.get("/api/runs?site=zytzb").json()
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    assert runs[0]["error_count"] == 3 and runs[1]["articles_new"] == 4
    assert runs[1]["started_at"] == T0.isoformat()
    assert len(client.get("/api/runs?limit=1").json()) == 1
    assert client.get("/api/runs?site=tzb_tw").json() == []
    detail = client.get("/api/sites/zytzb").json()
    assert len(detail["runs"]) == 2 and detail["recent_articles"]
    missing = client.get("/sites/nosuch")
    assert missing.status_code == 404 and "no such site" in missing.text
    assert client.get("/api/sites/nosuch").status_code == 404
    assert client.get("/api/runs?site=nosuch").status_code == 404
    assert client.get("/api/runs?limit=0").status_code == 400


def test_changes_list_filter_link_and_feed(
    world: WebWorld, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone, edited, moved = world.ids[GONE_URL], world.ids[EDITED_URL], world.ids[XSS_URL]
    page = client.get("/changes").text
    assert page.index(f'href="/articles/{moved}"') < page.index(f'href="/articles/{gone}"')
    assert page.index(f'href="/articles/{gone}"') < page.index(f'href="/articles/{edited}"')
    assert f'href="/articles/{edited}/diff?a=1&amp;b=2"' in page  # an edit: its diff
    assert "云川市召开民族宗教工作会议" in page and "HTTP 404" in page
    api = client.get("/api/changes").json()
    assert api["total"] == 3
    assert [(c["kind"], c["article_id"]) for c in api["changes"]] == [
        ("moved", moved), ("gone", gone), ("changed", edited),
    ]  # fmt: skip
    assert api["changes"][2]["link"] == f"/articles/{edited}/diff?a=1&b=2"
    assert api["changes"][2]["detail"] == {"fields": ["body"]}
    # filters: kind (edited is changed), site, both; JSON paging
    only_gone = client.get("/changes?kind=gone").text
    assert f'href="/articles/{gone}"' in only_gone and f"/articles/{edited}" not in only_gone
    edits = client.get("/api/changes?kind=edited").json()
    assert [c["article_id"] for c in edits["changes"]] == [edited] and edits["total"] == 1
    zytzb = client.get("/api/changes?site=zytzb").json()
    assert [c["article_id"] for c in zytzb["changes"]] == [moved]
    assert client.get("/api/changes?site=zytzb&kind=gone").json()["total"] == 0
    second = client.get("/api/changes?limit=1&offset=1").json()
    assert second["total"] == 3 and [c["article_id"] for c in second["changes"]] == [gone]
    assert client.get("/changes?kind=bogus").status_code == 400
    assert client.get("/api/changes?kind=bogus").status_code == 400
    assert client.get("/changes?site=nosuch").status_code == 404
    # the pager keeps the filters
    import web.pages.browse as pages

    monkeypatch.setattr(pages, "CHANGES_PAGE", 1)
    paged = client.get("/changes?kind=&site=gbk_city&page=2").text
    assert "第 2/2 页" in paged and 'href="/changes?site=gbk_city&amp;page=1"' in paged
    assert f'href="/articles/{edited}"' in paged and f'href="/articles/{gone}"' not in paged

    feed = client.get("/changes.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(feed.content)
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}id") and root.findtext(f"{ATOM}updated")
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 3
    for entry in entries:
        for child in ("id", "title", "updated", "summary"):
            assert entry.findtext(f"{ATOM}{child}"), child
    links = [e.find(f"{ATOM}link").get("href") for e in entries]  # type: ignore[union-attr]
    assert links[2].endswith(f"/articles/{edited}/diff?a=1&b=2")
    assert entries[1].findtext(f"{ATOM}title") == "[删除] 云川市召开民族宗教工作会议"
    filtered = ET.fromstring(client.get("/changes.atom?kind=gone").content)
    assert len(filtered.findall(f"{ATOM}entry")) == 1
    assert client.get("/changes.atom?kind=bogus").status_code == 400


def test_stored_markup_is_text_in_browse_changes_and_the_feed(
    world: WebWorld, client: TestClient
) -> None:
    xss_day = client.get("/browse/zytzb/2024-04-05").text
    changes = client.get("/changes").text
    site = client.get("/sites/zytzb").text
    for page in (xss_day, changes, site):
        assert "统战标题" in page and ESCAPED_SCRIPT in page
        assert "<script>alert" not in page and "<img src=x" not in page
    assert "转到 https://www.zytzb.gov.cn/new?&lt;script&gt;" in changes  # the detail too
    feed = client.get("/changes.atom").text
    assert "<script>" not in feed and "<img src=x" not in feed
    title = ET.fromstring(feed.encode()).find(f"{ATOM}entry/{ATOM}title")
    assert title is not None and title.text == f"[迁移] 统战标题{XSS}"  # text, not markup
    api = client.get("/api/changes?site=zytzb").json()
    assert api["changes"][0]["title"] == f"统战标题{XSS}"  # JSON keeps the stored text


def test_the_edited_article_is_listed_under_its_day_with_its_version(
    world: WebWorld, client: TestClient
) -> None:
    page = client.get("/browse/gbk_city/2024-04-02").text
    assert f'href="/articles/{world.ids[EDITED_URL]}"' in page and "第 2 版" in page
    assert EDITED_BODY not in page  # a list, not the body


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_schedule_with_web_serves_the_ui_and_one_sigint_stops_both(tmp_path: Path) -> None:
    """`make run`: the scheduler and the web UI in one process, one Ctrl-C ends both."""
    web_port, metrics_port = _free_port(), _free_port()
    config = tmp_path / "config"
    (config / "sites").mkdir(parents=True)
    (config / "settings.yaml").write_text(
        f"web: {{port: {web_port}}}\nscheduler: {{metrics_port: {metrics_port}}}\n",
        encoding="utf-8",
    )
    database = f"sqlite:///{tmp_path / 'data' / 'ufarchive.sqlite3'}"
    engine = make_engine(database)
    upgrade(engine)
    engine.dispose()
    env = {
        **os.environ, "UFARCHIVE_CONFIG": str(config), "UFARCHIVE_DATA_DIR": str(tmp_path / "data"),
        "UFARCHIVE_DATABASE_URL": database,
    }  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "crawler", "schedule", "--web"], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{web_port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the web UI did not come up"
                time.sleep(0.1)
        assert health.text == "ok"
        assert httpx.get(f"http://127.0.0.1:{web_port}/sites", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5).status_code == 200
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"web UI on http://127.0.0.1:{web_port}/" in output
    assert "Traceback" not in output
