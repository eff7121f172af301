"""The article page, its versions and word diff, the raw WARC record, the archived page
view and the article API, on SQLite and PostgreSQL: one archive (tests/webworld.py, its
republication clustered, plus an article with images and provenance) per database."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from warcio.archiveiterator import ArchiveIterator

from archive.collections import create_collection, show_collection
from archive.diff import diff_versions
from archive.models import ArticleVersion, Snapshot
from archive.store import Takedown, apply_takedown
from archive.users import add_user
from archive.warc import warc_path
from tests.conftest import fresh_database
from tests.exportworld import ARTICLES, EDITED_BODY, GONE_URL, T0
from tests.webworld import (
    COPY_URL,
    HOSTILE_URL,
    ORIGINAL_URL,
    XSS_URL,
    WebWorld,
    make_web_world,
)
from web.pages.article import ARCHIVED_CSP

EDITED_URL = ARTICLES[-1][1]
TRADITIONAL_URL = ARTICLES[2][1]  # 統戰工作：海峽兩岸青年交流活動舉行
#: An article whose version holds images and extraction provenance (with markup in it).
IMAGES_URL = "https://www.zytzb.gov.cn/tzyw/202404/t20240407_11.html"
IMAGES_FIELDS = {
    "title": "统战部举办民族团结进步活动",
    "publish_time": "2024-04-07T08:30:00+08:00",
    "source": "中央统战部网站", "editor": "张敏", "author": "刘洋", "contributor": "宣传处",
    "body": "活动在北京举行。\n各族代表参加了活动。",
    "images": [
        {"src": "https://www.zytzb.gov.cn/images/p1.jpg", "caption": "图为活动现场<b>粗</b>"},
        {"src": "javascript:alert(3)", "caption": "第二张图"},
    ],
    "provenance": {
        "title": {"rule": "selector:h1.title", "raw": "统战部举办民族团结进步活动"},
        "source": {"rule": "label:来源", "raw": '来源：<b>"中央统战部网站"</b>'},
        "editor": {"rule": "label:责任编辑", "raw": "[责任编辑：张敏]"},
        "body": {"rule": "selector:div.TRS_Editor", "raw": "<div class=TRS_Editor>…</div>"},
    },
}  # fmt: skip


MOVED_URL = "https://www.zytzb.gov.cn/tzyw/202404/t20240408_12.html"
MOVED_FIELDS = {"title": "统战部网站改版", "publish_time": "2024-04-08T08:00:00+08:00",
                "body": "本文已迁移到新地址。"}  # fmt: skip


@dataclass
class Fixture:
    world: WebWorld
    client: TestClient

    def id(self, url: str) -> int:
        return self.world.ids[url]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fixture]:
    root = tmp_path_factory.mktemp(f"article-{request.param}")
    with fresh_database(request.param, root) as url:
        world = make_web_world(root, url)
        world.store("zytzb", IMAGES_URL, dict(IMAGES_FIELDS), T0 + timedelta(days=3, hours=2))
        moved = world.store("zytzb", MOVED_URL, dict(MOVED_FIELDS), T0 + timedelta(days=3, hours=3))
        with world.session() as session:
            at = T0 + timedelta(days=4)
            takedown = Takedown(moved, "moved", at, {"status": 301}, target_url=IMAGES_URL,
                                target_canonical=IMAGES_URL)  # fmt: skip
            apply_takedown(session, takedown)
        with world.client() as client:
            yield Fixture(world, client)


def main(page: str) -> str:
    """The page's own content (not the header's search box or the footer)."""
    return page.split("<main>", 1)[1].split("</main>", 1)[0]


def test_article_page_shows_every_field_with_provenance(site: Fixture) -> None:
    article_id = site.id(ORIGINAL_URL)
    _, url, fields = ARTICLES[0]
    response = site.client.get(f"/articles/{article_id}")
    assert response.status_code == 200
    page = main(response.text)
    assert f"<h1>{fields['title']}</h1>" in page
    for label, value in (("来源", "中央统战部网站"), ("责任编辑", "王明"), ("作者", "李华")):
        assert re.search(rf"<dt>{label}</dt>\s*<dd>{value}</dd>", page), label
    assert "2024-03-01 09:00:00 +08:00" in page  # 时间, in the page's own offset
    assert f'<a href="{url}" rel="noreferrer noopener"' in page
    for label in ("首次抓取", "最近抓取", "最近检查", "状态", "供稿"):
        assert f"<dt>{label}</dt>" in page
    assert "2024-03-05 02:00:00 UTC" in page and "在线" in page
    for paragraph in fields["body"].splitlines():
        assert html.escape(paragraph, quote=True).replace("&quot;", "&#34;") in page

    # provenance: each field's rule and raw string in its title attribute, escaped
    page = main(site.client.get(f"/articles/{site.id(IMAGES_URL)}").text)
    assert (
        'class="prov" title="规则：label:来源\n原文：来源：&lt;b&gt;&#34;中央统战部网站&#34;&lt;/b&gt;"'
        in page
    )
    assert 'title="规则：label:责任编辑\n原文：[责任编辑：张敏]"' in page
    assert 'title="规则：selector:h1.title' in page
    assert (
        '<h2 class="prov" title="规则：selector:div.TRS_Editor\n原文：&lt;div class=TRS_Editor&gt;…&lt;/div&gt;">正文</h2>'
        in page
    )
    assert re.search(r"<dt>供稿</dt>\s*<dd>宣传处</dd>", page)
    # images: the caption and the URL as a link, never loaded; no javascript: href
    assert "图为活动现场&lt;b&gt;粗&lt;/b&gt;" in page and "第二张图" in page
    assert '<a href="https://www.zytzb.gov.cn/images/p1.jpg" rel="noreferrer noopener"' in page
    assert "<img" not in page and 'href="javascript:' not in page
    assert "javascript:alert(3)" in page  # shown as text only


def test_script_toggle_converts_the_display_only(site: Fixture) -> None:
    article_id = site.id(ORIGINAL_URL)
    plain = main(site.client.get(f"/articles/{article_id}").text)
    assert "中央统战部召开党外人士座谈会" in plain and 'href="?script=hant"' in plain
    traditional = main(site.client.get(f"/articles/{article_id}?script=hant").text)
    assert "<h1>中央統戰部召開黨外人士座談會</h1>" in traditional
    assert "中央統戰部網站" in traditional and "3月1日，中央統戰部召開座談會。" in traditional
    assert (
        "统战"
        not in traditional.split('<section class="versions">')[0].split("</h1>")[1].split("网址")[0]
    )
    back = main(site.client.get(f"/articles/{site.id(TRADITIONAL_URL)}?script=hans").text)
    assert "统战工作：海峡两岸青年交流活动举行" in back
    assert site.client.get(f"/articles/{article_id}?script=klingon").status_code == 400
    # the stored text and the API are unchanged
    api = site.client.get(f"/api/articles/{article_id}?script=hant").json()
    assert api["title"] == "中央统战部召开党外人士座谈会"
    with site.world.session() as session:
        titles = session.scalars(
            select(ArticleVersion.title).where(ArticleVersion.article_id == article_id)
        ).all()
        assert titles == ["中央统战部召开党外人士座谈会"]


def test_versions_and_word_diff(site: Fixture) -> None:
    article_id = site.id(EDITED_URL)
    page = main(site.client.get(f"/articles/{article_id}").text)
    assert "版本（2）" in page and "第 2 版" in page
    assert f'href="/articles/{article_id}/diff?a=1&amp;b=2"' in page
    assert EDITED_BODY in page  # the current version's body
    diff = site.client.get(f"/articles/{article_id}/diff")
    assert diff.status_code == 200
    side = main(diff.text).split('<div class="diff-sides">')[1]
    assert "第<del>一</del>版正文" in side and "第<ins>二</ins>版正文" in side
    assert "<ins>专题</ins>" in side and "<ins>，更正了日期</ins>" in side
    assert (
        side
        == main(site.client.get(f"/articles/{article_id}/diff?a=1&b=2").text).split(
            '<div class="diff-sides">'
        )[1]
    )
    api = site.client.get(f"/api/articles/{article_id}/diff?a=1&b=2").json()
    with site.world.session() as session:
        assert api == diff_versions(session, article_id, 1, 2)
    assert ["delete", "一"] in api["body"] and ["insert", "二"] in api["body"]
    versions = site.client.get(f"/api/articles/{article_id}/versions").json()
    assert [v["version"] for v in versions] == [1, 2] and versions[1]["body"] == EDITED_BODY
    # a version that does not exist: 404 with one line, page and JSON
    missing = site.client.get(f"/articles/{article_id}/diff?a=1&b=7")
    assert missing.status_code == 404 and "no version 7 (it has 1 to 2)" in missing.text
    assert "Traceback" not in missing.text
    assert site.client.get(f"/api/articles/{article_id}/diff?a=9").json() == {
        "detail": f"article {article_id}: no version 9 (it has 1 to 2)"
    }
    assert site.client.get(f"/articles/{article_id}/archived?version=3").status_code == 404
    assert site.client.get(f"/articles/{article_id}/diff?a=x").status_code == 400
    # metadata changes are listed (escaped): the XSS article against itself has none
    xss = site.id(XSS_URL)
    same = main(site.client.get(f"/articles/{xss}/diff").text)
    assert "均未变化" in same and "<script>alert" not in same


def test_events_and_status_of_a_takedown(site: Fixture) -> None:
    page = main(site.client.get(f"/articles/{site.id(GONE_URL)}").text)
    events = page.split('<section class="events">')[1].split("</section>")[0]
    assert "2024-03-07 02:00:00 UTC" in events and "已删除" in events and "HTTP 404" in events
    assert '<span class="status status-gone">已删除</span>' in page
    moved = main(site.client.get(f"/articles/{site.id(MOVED_URL)}").text)
    assert '<span class="status status-moved">已迁移</span>' in moved
    assert f'迁移至 <a href="{IMAGES_URL}" rel="noreferrer noopener"' in moved
    events = moved.split('<section class="events">')[1].split("</section>")[0]
    assert (
        "已迁移" in events
        and f'<a href="/articles/{site.id(IMAGES_URL)}">{IMAGES_URL}</a>' in events
    )
    quiet = main(site.client.get(f"/articles/{site.id(ORIGINAL_URL)}").text)
    assert "复查未发现变化" in quiet


def test_republication_cluster_credits_the_original(site: Fixture) -> None:
    original, copy = site.id(ORIGINAL_URL), site.id(COPY_URL)
    page = main(site.client.get(f"/articles/{copy}").text)
    cluster = page.split('<section class="cluster">')[1].split("</section>")[0]
    assert "转载（1）" in cluster and "本文是转载" in cluster
    assert f'<a href="/articles/{original}">文章 {original}（zytzb）</a>' in cluster
    assert '<tr class="original">' in cluster and "原创认定规则" in cluster
    # same publish time: the first seen is credited, and the page says so
    assert "认定理由：发布时间相同" in cluster and "最先抓取" in cluster
    page = main(site.client.get(f"/articles/{original}").text)
    assert "本文被认定为原创" in page and f'href="/articles/{copy}"' in page
    api = site.client.get(f"/api/articles/{copy}").json()
    assert api["is_original"] is False and api["republications"][0]["id"] == original
    alone = main(site.client.get(f"/articles/{site.id(GONE_URL)}").text)
    assert "未发现其他网站的转载" in alone


def test_cite_block_and_raw_warc_record(site: Fixture) -> None:
    article_id = site.id(EDITED_URL)
    with site.world.session() as session:
        rows = session.execute(
            select(ArticleVersion.version, Snapshot)
            .join(Snapshot, Snapshot.id == ArticleVersion.snapshot_id)
            .where(ArticleVersion.article_id == article_id)
            .order_by(ArticleVersion.version)
        ).all()
        snapshots = {
            v: (s.warc_file, s.warc_offset, s.warc_length, s.warc_record_id, s.fetched_at)
            for v, s in rows
        }
    file, offset, length, record_id, fetched_at = snapshots[2]
    with warc_path(site.world.data_dir, file).open("rb") as fh:
        fh.seek(offset)
        record = next(iter(ArchiveIterator(fh)))
        assert record.rec_headers.get_header("WARC-Record-ID") == record_id
        fh.seek(offset)
        stored = fh.read(length)
    page = main(site.client.get(f"/articles/{article_id}").text)
    cite = page.split('<section class="cite">')[1].split("</section>")[0]
    assert html.escape(record_id) in cite
    assert f'<a href="http://testserver/articles/{article_id}">' in cite
    assert fetched_at.isoformat() == "2024-03-06T02:00:00+00:00" and fetched_at.isoformat() in cite

    download = site.client.get(f"/articles/{article_id}/warc")
    assert download.status_code == 200 and download.content == stored
    assert download.headers["content-type"] == "application/warc"
    assert download.headers["content-disposition"].startswith("attachment;")
    parsed = next(iter(ArchiveIterator(BytesIO(download.content))))
    assert parsed.rec_type == "response"
    assert parsed.rec_headers.get_header("WARC-Record-ID") == record_id
    assert parsed.rec_headers.get_header("WARC-Target-URI") == EDITED_URL
    assert parsed.content_stream().read() == site.world.html(EDITED_URL, 2)
    first = site.client.get(f"/articles/{article_id}/warc?version=1")
    parsed = next(iter(ArchiveIterator(BytesIO(first.content))))
    assert parsed.rec_headers.get_header("WARC-Record-ID") == snapshots[1][3]
    assert parsed.content_stream().read() == site.world.html(EDITED_URL, 1)
    assert site.client.get(f"/articles/{article_id}/warc?version=5").status_code == 404


def test_archived_page_view_runs_and_loads_nothing(site: Fixture) -> None:
    article_id = site.id(HOSTILE_URL)
    view = site.client.get(f"/articles/{article_id}/archived")
    assert view.status_code == 200
    frame = re.search(r"<iframe[^>]*>", view.text)
    assert frame and f'src="/articles/{article_id}/archived/raw"' in frame.group(0)
    assert re.search(r"\ssandbox[\s>]", frame.group(0)) and "allow-" not in frame.group(0)
    raw = site.client.get(f"/articles/{article_id}/archived/raw")
    assert raw.status_code == 200
    assert raw.headers["content-security-policy"] == ARCHIVED_CSP
    assert ARCHIVED_CSP == "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
    assert raw.headers["content-type"] == "text/html; charset=utf-8"
    lowered = raw.text.lower()
    for bad in ("<script", "onerror", "onload", "javascript:", "http-equiv", "evil.example",
                "<form", "<iframe", "<object", "<base", "<link", "<svg", "<input"):  # fmt: skip
        assert bad not in lowered, bad
    for kept in (
        "座谈会",
        "图为座谈会现场",
        "统战部召开民主党派座谈会",
        "[图片：会场]",
        "相关文章",
    ):
        assert kept in raw.text
    # the XSS article's capture is its stored markup made harmless too
    xss = site.client.get(f"/articles/{site.id(XSS_URL)}/archived/raw").text.lower()
    assert "<script" not in xss and "<img" not in xss and "javascript:" not in xss
    assert not re.search(r"<[^>]*\son\w+\s*=", xss)  # its title keeps the markup as text
    assert site.client.get(f"/articles/{article_id}/archived/raw?version=2").status_code == 404


def test_stored_markup_is_text_everywhere(site: Fixture) -> None:
    article_id = site.id(XSS_URL)
    for path in (f"/articles/{article_id}", f"/articles/{article_id}?script=hant",
                 f"/articles/{article_id}/diff", f"/articles/{article_id}/archived"):  # fmt: skip
        page = site.client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert 'href="javascript:' not in page.text, path
    page = main(site.client.get(f"/articles/{article_id}").text)
    assert "统战标题&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in page
    assert "作者&lt;b&gt;粗&lt;/b&gt;" in page and "供稿&lt;i&gt;斜&lt;/i&gt;" in page
    assert "第二段&lt;a href=&#34;javascript:alert(2)&#34;&gt;链接&lt;/a&gt;。" in page


def test_unknown_article_is_404_page_and_json(site: Fixture) -> None:
    for path in ("/articles/999999", "/articles/999999/diff", "/articles/999999/archived",
                 "/articles/999999/archived/raw", "/articles/999999/warc"):  # fmt: skip
        page = site.client.get(path)
        assert page.status_code == 404, path
        assert "找不到 (not found): article 999999: no such article" in page.text
        assert "Traceback" not in page.text
    for path in (
        "/api/articles/999999",
        "/api/articles/999999/versions",
        "/api/articles/999999/diff",
    ):
        response = site.client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "article 999999: no such article"}
    assert site.client.get("/articles/abc").status_code in (400, 404)


def test_api_article_and_docs(site: Fixture) -> None:
    article_id = site.id(IMAGES_URL)
    detail = site.client.get(f"/api/articles/{article_id}").json()
    assert detail["title"] == IMAGES_FIELDS["title"] and detail["contributor"] == "宣传处"
    assert detail["provenance"]["source"]["rule"] == "label:来源"
    assert {"versions", "republications", "moved_to", "events", "decoding"} <= set(detail)
    document = site.client.get("/api/openapi.json").json()
    for path in ("/api/articles/{article_id}", "/api/articles/{article_id}/versions",
                 "/api/articles/{article_id}/diff"):  # fmt: skip
        operation = document["paths"][path]["get"]
        assert operation["summary"] and operation["description"]
        assert all(p.get("description") for p in operation["parameters"])
    assert "/articles/{article_id}" not in document["paths"]  # pages are not API


def test_logged_in_user_can_add_to_a_collection(site: Fixture) -> None:
    with site.world.session() as session:
        add_user(session, "reader", "correct horse")
        create_collection(session, "统战 2024", ids=[site.id(ORIGINAL_URL)], created_by="reader")
        create_collection(session, "saved/统战", query="统战", created_by="reader")
    article_id = site.id(COPY_URL)
    with site.world.client() as client:
        anonymous = main(client.get(f"/articles/{article_id}").text)
        assert "加入收藏集" not in anonymous
        login = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', login)
        assert token
        data = {"name": "reader", "password": "correct horse", "csrf_token": token.group(1)}
        assert client.post("/login", data=data, follow_redirects=False).status_code == 303
        page = main(client.get(f"/articles/{article_id}?script=hant").text)
        form = page.split('<section class="add-to-collection">')[1].split("</section>")[0]
        assert 'action="/collections/%E7%BB%9F%E6%88%98%202024/add"' in form
        assert f'name="ids" value="{article_id}"' in form
        assert f'name="next" value="/articles/{article_id}?script=hant"' in form
        session_token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert session_token and "加入“统战 2024”" in form
        logout = re.search(
            r'action="/logout".*?name="csrf_token" value="([^"]+)"', client.get("/").text
        )
        assert logout and logout.group(1) == session_token.group(1)  # the session's token
        assert "saved/统战" not in form  # a saved query takes no articles one by one
        added = client.post(
            "/collections/%E7%BB%9F%E6%88%98%202024/add",
            data={"ids": str(article_id), "next": f"/articles/{article_id}",
                  "csrf_token": session_token.group(1)},
            follow_redirects=False,
        )  # fmt: skip
        assert added.status_code == 303 and added.headers["location"].startswith(
            f"/articles/{article_id}"
        )
    with site.world.session() as session:
        items = show_collection(session, "统战 2024")["items"]
        assert {i["id"] for i in items} == {site.id(ORIGINAL_URL), article_id}
