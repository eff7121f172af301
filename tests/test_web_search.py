"""The search page, its facets and timeline, /api/search, /api/facets and /api/export,
on SQLite and PostgreSQL, against what the database holds (read with the ORM)."""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta, timezone
from html import unescape
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from warcio.archiveiterator import ArchiveIterator

from archive.models import Article, ArticleVersion, Site
from archive.search import search
from archive.text import normalize
from tests.exportworld import GONE_URL, expected_records
from tests.searchworld import build_world, database, log_in
from tests.webworld import COPY_URL, ORIGINAL_URL, XSS, XSS_URL, WebWorld

BEIJING = timezone(timedelta(hours=8))
BULK = 25  # more articles with 统战: two pages of hits


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebWorld]:
    root = tmp_path_factory.mktemp(f"websearch-{request.param}")
    with database(request.param, root) as url:
        yield build_world(root, url, bulk=BULK)


@pytest.fixture(scope="module")
def client(world: WebWorld) -> Iterator[TestClient]:
    with world.client() as c:
        yield c


def matches(world: WebWorld, word: str) -> list[dict[str, Any]]:
    """The articles whose current title or body holds `word` (in either script), with what
    the facets count, read with the ORM."""
    with world.session() as session:
        rows = session.execute(
            select(Article, ArticleVersion, Site.name)
            .join(Site, Site.id == Article.site_id)
            .join(ArticleVersion, (ArticleVersion.article_id == Article.id)
                  & (ArticleVersion.version == Article.version))
        ).all()  # fmt: skip
        return [
            {"id": a.id, "cluster": a.cluster_id, "site": site, "status": a.status,
             "edited": a.version > 1, "source": v.source, "editor": v.editor,
             "month": a.publish_time and a.publish_time.astimezone(BEIJING).strftime("%Y-%m"),
             "publish_time": a.publish_time}
            for a, v, site in rows
            if normalize(word) in normalize(f"{v.title or ''}\n{v.body}")
        ]  # fmt: skip


def linked_ids(page: str) -> list[int]:
    """The hits of a result page, in order (not the copies listed under a hit)."""
    hits = page.split('<ol class="hits"', 1)[1].split("</ol>", 1)[0]
    hits = re.sub(r'<details class="copies">.*?</details>', "", hits, flags=re.S)
    return [int(i) for i in re.findall(r'class="hit-title" href="/articles/(\d+)"', hits)]


def collapsed(found: list[dict[str, Any]]) -> set[int]:
    """One article a cluster: the ids a collapsed search may show, as sets of members."""
    return {f["cluster"] or -f["id"] for f in found}


def test_search_page_finds_collapses_paginates_and_escapes(
    world: WebWorld, client: TestClient
) -> None:
    want = matches(world, "统战")
    assert len(want) == 6 + BULK
    groups = collapsed(want)
    by_id = {f["id"]: f for f in want}
    seen: list[int] = []
    for page in (1, 2):
        response = client.get("/", params={"q": "统战", "page": page, "sort": "newest"})
        assert response.status_code == 200
        assert f"共 <strong>{len(want)}</strong> 篇匹配" in response.text
        ids = linked_ids(response.text)
        assert len(ids) == (20 if page == 1 else len(groups) - 20)
        seen += ids
        times = [by_id[i]["publish_time"] for i in ids]
        assert times == sorted(times, reverse=True)  # newest first
        if page == 1:
            assert 'rel="next" href' not in response.text
            assert re.search(
                r'href="/\?q=%E7%BB%9F%E6%88%98&amp;sort=newest&amp;page=2" rel="next"',
                response.text,
            )
        else:
            assert 'rel="next"' not in response.text and 'rel="prev"' in response.text
    # every story once: the original and its copy on another site are one hit
    assert len(seen) == len(set(seen)) == len(groups)
    assert {by_id[i]["cluster"] or -i for i in seen} == groups
    original, copy = world.ids[ORIGINAL_URL], world.ids[COPY_URL]
    assert (original in seen) != (copy in seen)
    relevance = client.get("/", params={"q": "党外人士"}).text
    assert linked_ids(relevance) in ([original], [copy])
    shown = linked_ids(relevance)[0]
    other = copy if shown == original else original
    hit = relevance.split('<li class="hit">')[1]
    assert "1 个转载" in hit and f'<a href="/articles/{other}">' in hit and "<details" in hit
    assert "<mark>座谈会</mark>" in client.get("/", params={"q": "座谈会"}).text
    # stored markup is text, never markup
    relevance = client.get("/", params={"q": "统战标题"}).text
    assert linked_ids(relevance) == [world.ids[XSS_URL]]
    assert "<script>alert" not in relevance and "onerror=alert(1)>" not in relevance
    assert unescape(re.sub(r"<[^>]+>", "", relevance)).count(XSS) >= 2  # title and snippet
    assert "&lt;script&gt;alert(" in relevance
    # traditional script finds the same, the whole query stays in the URL (permalink)
    traditional = client.get("/?q=統戰&sort=newest")
    assert set(linked_ids(traditional.text)) == set(
        linked_ids(client.get("/?q=统战&sort=newest").text)
    )
    assert 'value="統戰"' in traditional.text


def test_an_estimated_count_says_about(
    world: WebWorld, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a phrase with more candidates than search reads for an exact count is
    counted from a sample, and the page says 约 (here the sample holds every candidate)."""
    want = len(matches(world, "统战工作"))
    assert f"共 <strong>{want}</strong> 篇匹配" in client.get("/", params={"q": "统战工作"}).text
    monkeypatch.setattr("archive.search.COUNT_READS", 1)
    page = client.get("/", params={"q": "统战工作"}).text
    if world.database_url.startswith("postgresql"):
        assert f"共约 <strong>{want}</strong> 篇匹配" in page
    else:  # SQLite counts from the index alone
        assert f"共 <strong>{want}</strong> 篇匹配" in page


def test_empty_box_bad_queries_and_status(world: WebWorld, client: TestClient) -> None:
    home = client.get("/")
    assert home.status_code == 200 and "查询语法" in home.text and "site:zytzb" in home.text
    assert "最新文章" in home.text and 'href="/articles/' in home.text
    for bad, words in [('"统战', "is not closed"), ("统战 OR", "OR needs a term"),
                       ("colour:red", "unknown field"), ("since:2024-13", "is not a date")]:  # fmt: skip
        page = client.get("/", params={"q": bad})
        assert page.status_code == 400 and words in page.text and "Traceback" not in page.text
        assert 'class="message"' in page.text
        api = client.get("/api/search", params={"q": bad})
        assert api.status_code == 400 and words in api.json()["detail"]
        assert "\n" not in api.json()["detail"]
        assert client.get("/api/facets", params={"q": bad}).status_code == 400
        assert client.get("/facets", params={"q": bad}).status_code == 400
    assert client.get("/?q=统战&sort=random").status_code == 400
    assert client.get("/?q=统战&page=0").status_code == 400
    gone = client.get("/", params={"q": "status:gone"})
    assert linked_ids(gone.text) == [world.ids[GONE_URL]] and "已删除" in gone.text
    assert client.get("/", params={"q": "统战 -统战"}).status_code == 200


def test_api_search_is_the_cli_serializer(world: WebWorld, client: TestClient) -> None:
    for params in ({"q": "统战"}, {"q": "统战", "sort": "newest", "limit": 5, "offset": 3},
                   {"q": "统战 site:zytzb"}, {"q": "座谈会 -民主"}):  # fmt: skip
        got = client.get("/api/search", params=params)
        assert got.status_code == 200 and got.headers["content-type"] == "application/json"
        with world.session() as session:
            want = search(session, str(params["q"]), limit=int(params.get("limit", 20)),
                          offset=int(params.get("offset", 0)),
                          sort=params.get("sort", "relevance"))  # type: ignore[arg-type]  # fmt: skip
            assert got.json() == [hit.to_dict() for hit in want.hits]
    hits = client.get("/api/search", params={"q": "统战标题"}).json()
    assert [h["id"] for h in hits] == [world.ids[XSS_URL]] and "body" not in hits[0]
    first = client.get("/api/search", params={"q": "统战", "sort": "newest", "limit": 30}).json()
    assert len(first) == len(collapsed(matches(world, "统战")))
    assert client.get("/api/search", params={"q": "统战", "limit": 0}).status_code == 400
    assert client.get("/api/search").status_code == 400  # q is required
    document = client.get("/api/openapi.json").json()
    for path in ("/api/search", "/api/facets", "/api/export"):
        op = document["paths"][path]["get"]
        assert op["summary"] and all(p.get("description") for p in op["parameters"])


def _top(counter: Counter[Any]) -> list[dict[str, Any]]:
    return [
        {"value": v, "count": n}
        for v, n in sorted(counter.items(), key=lambda i: (-i[1], i[0]))[:10]
    ]


def test_facets_and_timeline_count_what_the_database_holds(
    world: WebWorld, client: TestClient
) -> None:
    for query, word in [("统战", "统战"), ("座谈会", "座谈会")]:
        want = matches(world, word)
        got = client.get("/api/facets", params={"q": query}).json()
        assert got["total"] == len(want)
        assert got["site"] == _top(Counter(f["site"] for f in want))
        assert got["status"] == _top(Counter(f["status"] for f in want))
        assert got["source"] == _top(Counter(f["source"] for f in want if f["source"]))
        assert got["editor"] == _top(Counter(f["editor"] for f in want if f["editor"]))
        months = Counter(f["month"] for f in want if f["month"])
        assert got["month"] == [{"value": m, "count": n} for m, n in sorted(months.items())]
        assert got["edited"] == {"yes": sum(f["edited"] for f in want),
                                 "no": sum(not f["edited"] for f in want)}  # fmt: skip
        assert got["undated"] == sum(not f["month"] for f in want)
        fragment = client.get("/facets", params={"q": query, "fragment": 1})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert fragment.text.count('<rect class="bar"') == len(months)
        for month, n in months.items():
            assert f"<title>{month}：{n} 篇</title>" in fragment.text
        assert "<script>alert" not in fragment.text
    # a facet link adds its filter to the query, and finds what the facet counted
    fragment = client.get("/facets", params={"q": "统战", "fragment": 1}).text
    link = re.search(
        r'<a href="(/\?q=[^"]+site%3Azytzb)">zytzb</a> <span class="n">(\d+)</span>', fragment
    )
    assert link
    page = client.get(unescape(link.group(1)))
    assert f"共 <strong>{link.group(2)}</strong> 篇匹配" in page.text
    month_link = re.search(
        r'<a href="(/\?q=[^"]+since%3A2024-04\+until%3A2024-04)">2024-04</a>', fragment
    )
    assert month_link and client.get(unescape(month_link.group(1))).status_code == 200
    edited = re.search(
        r'<a href="([^"]+changed%3Ayes)">修改过</a> <span class="n">(\d+)</span>', fragment
    )
    assert (
        edited
        and f"共 <strong>{edited.group(2)}</strong>" in client.get(unescape(edited.group(1))).text
    )
    # without JavaScript: the search page links to the facets as a page of their own
    results = client.get("/?q=统战").text
    assert 'href="/facets?q=%E7%BB%9F%E6%88%98">显示分面统计' in results
    assert '<script src="/static/search.js" defer>' in results
    full = client.get("/facets?q=统战")
    assert full.status_code == 200 and "<html" in full.text and 'class="bar"' in full.text
    everything = client.get("/api/facets").json()
    assert everything["total"] == len(matches(world, ""))


def _as_text(value: Any) -> str:
    """A record value as the CSV holds it (neutralised like a spreadsheet needs)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def test_export_needs_a_login_and_reads_back_in_pandas(world: WebWorld, client: TestClient) -> None:
    with world.client() as anonymous:
        refused = anonymous.get("/api/export", params={"format": "csv"})
        assert refused.status_code == 401 and refused.json()["detail"]
        page = anonymous.get("/?q=统战").text
        assert "登录</a>后可导出" in page and 'action="/api/export"' not in page
    log_in(client)
    page = client.get("/?q=统战").text
    assert 'action="/api/export"' in page and "导出" in page
    with world.session() as session:
        want = expected_records(session)
    csv = client.get("/api/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    disposition = csv.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="ufarchive-\d{8}-\d{6}\.csv"', disposition)
    frame = pd.read_csv(io.BytesIO(csv.content), dtype=str, keep_default_na=False)
    assert frame.to_dict("records") == [{k: _as_text(v) for k, v in r.items()} for r in want]
    jsonl = client.get("/api/export", params={"format": "jsonl"})
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    records = pd.read_json(io.BytesIO(jsonl.content), lines=True, dtype=False)
    assert records["id"].tolist() == [r["id"] for r in want]
    assert records["title"].tolist() == [r["title"] for r in want]
    assert records["body"].tolist() == [r["body"] for r in want]
    # a query, a site, dates and fields, as the CLI takes them
    ids = sorted(f["id"] for f in matches(world, "统战") if f["site"] == "zytzb")
    part = client.get("/api/export", params={"format": "jsonl", "q": "统战", "site": "zytzb",
                                             "fields": "id,title"})  # fmt: skip
    lines = pd.read_json(io.BytesIO(part.content), lines=True, dtype=False)
    assert lines["id"].tolist() == ids and list(lines.columns) == ["id", "title"]
    dated = client.get("/api/export", params={"format": "jsonl", "since": "2024-04-01",
                                              "until": "2024-04-06"}).content  # fmt: skip
    assert sorted(pd.read_json(io.BytesIO(dated), lines=True)["id"]) == sorted(
        r["id"]
        for r in want
        if r["publish_time"] and "2024-04-01" <= r["publish_time"][:10] < "2024-04-06"
    )
    parquet = client.get("/api/export", params={"format": "parquet", "q": "统战"})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert len(pd.read_parquet(io.BytesIO(parquet.content))) == len(matches(world, "统战"))
    xlsx = client.get("/api/export", params={"format": "xlsx", "q": "座谈会"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    warc = client.get("/api/export", params={"format": "warc", "q": "座谈会"})
    assert warc.headers["content-type"] == "application/warc" and warc.content[:2] == b"\x1f\x8b"
    assert warc.headers["content-disposition"].endswith('.warc.gz"')
    responses = [
        r.rec_headers.get_header("WARC-Target-URI")
        for r in ArchiveIterator(io.BytesIO(warc.content))
        if r.rec_type == "response"
    ]
    assert sorted(responses) == sorted(
        url for url, i in world.ids.items() if i in {f["id"] for f in matches(world, "座谈会")}
    )
    for params, status in [({"format": "pdf"}, 400), ({"format": "csv", "q": '"统战'}, 400),
                           ({"format": "csv", "fields": "id,nope"}, 400),
                           ({"format": "csv", "collection": "nosuch"}, 400),
                           ({"format": "csv", "since": "2024-02-30"}, 400)]:  # fmt: skip
        bad = client.get("/api/export", params=params)
        assert bad.status_code == status, (params, bad.text)
        assert "\n" not in bad.json()["detail"]


def test_no_stored_markup_anywhere(world: WebWorld, client: TestClient) -> None:
    for path in ("/?q=统战标题", "/facets?q=统战标题", "/facets?q=统战标题&fragment=1", "/"):
        text = client.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text
        assert 'href="javascript:' not in text
