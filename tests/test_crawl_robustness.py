"""A hostile little site: flaky, slow, looping, oversized, trapping. Every run must end, on time,
with what went wrong recorded against the URL."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from archive.models import CrawlError, CrawlRun
from archive.settings import load_settings
from crawler.runner import run_crawl
from tests.crawlworld import TEST_SETTINGS, World
from tests.siteserver import SiteServer

ARTICLE = """<html><head><meta charset="utf-8"><title>{title}_测试统战网</title></head><body>
<div class="nav">首页 > 统战要闻</div>
<h1>{title}</h1>
<div class="info">来源：测试统战网　时间：2024-03-0{n} 09:00:00</div>
<div class="content">
<p>　　{title}。各民主党派、工商联和无党派人士围绕中心工作深入调研，提出有分量的意见建议。</p>
<p>　　会议强调，要坚持大团结大联合，最大限度凝聚共识、汇聚力量，为推进中国式现代化贡献智慧。</p>
</div>
<div class="footer">版权所有：测试统战网　京ICP备00000000号</div></body></html>"""

LISTING = """<html><head><meta charset="utf-8"><title>统战要闻</title></head><body><ul>
{links}
</ul><a href="/tzyw/index_1.html">下一页</a></body></html>"""


def article(n: int, title: str) -> str:
    return ARTICLE.format(n=n, title=title)


def hostile_site(root: Path) -> Path:
    """Articles 1-4 are plain; the listing also links a flaky, a looping, an oversized,
    a rate-limited article and a calendar trap."""
    site = root / "hostile"
    (site / "tzyw" / "202403").mkdir(parents=True)
    names = {
        1: "统一战线工作会议召开",
        2: "民主党派开展专题调研",
        3: "侨联召开全委会议",
        4: "新的社会阶层人士座谈会",
    }
    for n, title in names.items():
        (site / "tzyw" / "202403" / f"t2024030{n}_{n}.html").write_text(
            article(n, title), encoding="utf-8"
        )
    for n, title in {5: "反复出错的页面", 6: "限流的页面"}.items():
        (site / "tzyw" / "202403" / f"t2024030{n}_{n}.html").write_text(
            article(n, title), encoding="utf-8"
        )
    links = [f'<li><a href="/tzyw/202403/t2024030{n}_{n}.html">x</a></li>' for n in range(1, 7)]
    links += [
        '<li><a href="/tzyw/202403/t20240307_7.html">重定向循环</a></li>',
        '<li><a href="/tzyw/202403/t20240308_8.html">超大页面</a></li>',
        '<li><a href="/_trap/0.html">日历</a></li>',
    ]
    (site / "tzyw" / "index.html").write_text(
        LISTING.format(links="\n".join(links)), encoding="utf-8"
    )
    (site / "tzyw" / "index_1.html").write_text(LISTING.format(links=links[0]), encoding="utf-8")
    return site


def configure(world: World, server: SiteServer, stop_pagination: bool = True, depth_limit: int = 50,
              max_pages: int = 2000) -> None:  # fmt: skip
    (world.config_dir / "sites").mkdir(parents=True, exist_ok=True)
    (world.config_dir / "settings.yaml").write_text(
        TEST_SETTINGS.format(
            depth_limit=depth_limit, stop_pagination=str(stop_pagination).lower(), revisit="true"
        ),
        encoding="utf-8",
    )
    (world.config_dir / "sites" / "hostile.yaml").write_text(
        "name: hostile\ntitle: 测试统战网\n"
        f"start_urls: [{server.url('/tzyw/index.html')}]\nallowed_domains: [{server.host}]\n"
        "article_url_pattern: '/tzyw/\\d{6}/t\\d+_\\d+\\.html$'\n"
        "follow_url_pattern: '/tzyw/index(_\\d+)?\\.html$|/_trap/\\d+\\.html$'\n"
        f"schedule: {{interval_minutes: 60}}\nmax_pages: {max_pages}\n",
        encoding="utf-8",
    )


@pytest.fixture
def hostile(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> tuple[World, SiteServer]:
    from archive.db import make_engine, upgrade

    server = site_server(hostile_site(tmp_path))
    server.rule("/tzyw/202403/t20240305_5.html", status=[500, 500, 200])
    server.rule("/tzyw/202403/t20240306_6.html", status=[429, 200], headers={"Retry-After": "1"})
    server.rule("/tzyw/202403/t20240307_7.html", redirect="/_redirect-loop/0")
    server.rule(
        "/tzyw/202403/t20240308_8.html", body=b"<html><body>" + b"x" * 3_000_000 + b"</body></html>"
    )
    world = World(tmp_path, database_url, {"hostile": server})
    configure(world, server)
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    return world, server


def errors_by_kind(world: World) -> dict[str, list[str | None]]:
    with world.session() as session:
        found: dict[str, list[str | None]] = {}
        for error in session.scalars(select(CrawlError).order_by(CrawlError.id)):
            found.setdefault(error.kind, []).append(error.url)
        return found


def test_every_failure_ends_recorded_and_nothing_hangs(hostile: tuple[World, SiteServer]) -> None:
    world, server = hostile
    started = time.monotonic()
    runs = world.crawl("hostile")
    assert time.monotonic() - started < 60
    run = runs["hostile"]
    assert run.status == "succeeded", run.message
    stored = world.articles("hostile")
    # the flaky page (500, 500, 200) and the rate-limited one (429 then 200) are stored
    assert set(stored) == {f"/tzyw/202403/t2024030{n}_{n}.html" for n in range(1, 7)}
    assert server.count("/tzyw/202403/t20240305_5.html") == 3
    errors = errors_by_kind(world)
    assert errors.get("redirect_loop") == [server.url("/tzyw/202403/t20240307_7.html")]
    assert errors.get("too_large") == [server.url("/tzyw/202403/t20240308_8.html")]
    assert "http_500" not in errors and "http_429" not in errors
    # Retry-After: 1 was honoured
    times = [r.at for r in server.requests if r.url_path == "/tzyw/202403/t20240306_6.html"]
    assert len(times) == 2 and times[1] - times[0] >= 0.9
    # the calendar trap brings no article, so paging stops at its first page
    assert [r.url_path for r in server.requests if r.url_path.startswith("/_trap/")] == [
        "/_trap/0.html"
    ]
    assert run.responses_by_status.get("500") == 2 and run.responses_by_status.get("429") == 1


def test_the_depth_limit_ends_a_trap_when_paging_never_stops(
    hostile: tuple[World, SiteServer],
) -> None:
    world, server = hostile
    configure(world, server, stop_pagination=False, depth_limit=4)
    world.crawl("hostile")
    trap = [r.url_path for r in server.requests if r.url_path.startswith("/_trap/")]
    assert trap == [f"/_trap/{n}.html" for n in range(len(trap))]
    assert 1 <= len(trap) <= 4


def test_max_pages_bounds_a_run(hostile: tuple[World, SiteServer]) -> None:
    world, server = hostile
    configure(world, server, stop_pagination=False, max_pages=3)
    world.crawl("hostile")
    fetched = [r.url_path for r in server.requests if r.url_path != "/robots.txt"]
    assert len(fetched) <= 3 + 2  # + the retries of the flaky page, which are the same page


def test_a_killed_crawl_process_leaves_no_run_running(hostile: tuple[World, SiteServer]) -> None:
    world, server = hostile
    server.rule("/tzyw/202403/t20240301_1.html", delay=30)
    result: dict[str, object] = {}

    def crawl() -> None:
        result["runs"] = run_crawl(["hostile"], settings=load_settings(world.env()))

    thread = threading.Thread(target=crawl)
    thread.start()
    deadline = time.monotonic() + 30
    pid = None
    while pid is None and time.monotonic() < deadline:
        with world.session() as session:
            pid = session.scalar(select(CrawlRun.pid))
        time.sleep(0.2)
    assert pid is not None, "the crawl process never recorded its pid"
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=60)
    assert not thread.is_alive()
    (run,) = result["runs"]  # type: ignore[misc]
    assert run.status == "killed" and "signal 9" in (run.message or "")
    with world.session() as session:
        assert session.scalars(select(CrawlRun.status)).all() == ["killed"]


def test_a_meta_refresh_is_followed_in_any_charset(
    tmp_path: Path, database_url: str, site_server: Callable[..., SiteServer]
) -> None:
    """Moved articles whose old address answers with a meta refresh (GBK and upper case;
    UTF-8 after 3,800 characters of comment, beyond 4,096 bytes; UTF-16) are stored at
    their new address; a page without one is not redirected."""
    from archive.db import make_engine, upgrade
    from crawler.middlewares import may_refresh

    server = site_server(hostile_site(tmp_path))
    refresh = '<meta http-equiv="refresh" content="0;url=/tzyw/202403/t202403{new}_{new}.html">'
    moved = {
        11: ('<html><head><META HTTP-EQUIV="Refresh" CONTENT="0; URL=/tzyw/202403/t20240321_21.html">'
             "</head><body>本文已迁移</body></html>", "gbk"),
        12: ("<html><head><!--" + "统战" * 1900 + "-->" + refresh.format(new=22)
             + "</head><body>本文已迁移</body></html>", "utf-8"),
        13: ("<html><head>" + refresh.format(new=23) + "</head><body>本文已迁移</body></html>",
             "utf-16"),
    }  # fmt: skip
    for old, (page, charset) in moved.items():
        body = page.encode(charset)
        assert may_refresh(body)
        server.put(f"/tzyw/202403/t202403{old}_{old}.html", body, encoding=charset)
    for n, new in enumerate((21, 22, 23), start=1):
        server.put(f"/tzyw/202403/t202403{new}_{new}.html", article(n, f"迁移后的文章{new}"))
    assert not may_refresh(article(1, "没有跳转").encode("gbk"))
    links = [f'<li><a href="/tzyw/202403/t202403{old}_{old}.html">x</a></li>' for old in moved]
    links.append('<li><a href="/tzyw/202403/t20240301_1.html">x</a></li>')
    server.put("/tzyw/index.html", LISTING.format(links="\n".join(links)))
    world = World(tmp_path, database_url, {"hostile": server})
    configure(world, server)
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    run = world.crawl("hostile")["hostile"]
    assert run.status == "succeeded", run.message
    stored = world.articles("hostile")
    new = {f"/tzyw/202403/t202403{n}_{n}.html" for n in (21, 22, 23)}
    assert new | {"/tzyw/202403/t20240301_1.html"} <= set(stored)
    assert not {f"/tzyw/202403/t202403{old}_{old}.html" for old in moved} & set(stored)
