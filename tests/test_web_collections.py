"""Collections in the web UI (issue 15): the pages, and every change through its form,
each refused without a login and without the CSRF token, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from urllib.parse import quote

import httpx2 as httpx
import pandas as pd
import pytest
from sqlalchemy import select

from archive.collections import get_collection
from archive.models import Collection, CollectionItem
from tests.exportworld import ARTICLES, EDITED_BODY
from tests.searchworld import USER, build_world, csrf_of, database, log_in
from tests.webworld import XSS, XSS_URL, WebWorld


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebWorld]:
    root = tmp_path_factory.mktemp(f"webcollections-{request.param}")
    with database(request.param, root) as url:
        yield build_world(root, url)


def items(world: WebWorld, name: str) -> dict[int, int]:
    """A collection's articles and their pinned versions, read with the ORM."""
    with world.session() as session:
        found = get_collection(session, name)
        rows = session.execute(
            select(CollectionItem.article_id, CollectionItem.version).where(
                CollectionItem.collection_id == found.id
            )
        )
        return {article_id: version for article_id, version in rows}


def names(world: WebWorld) -> list[str]:
    with world.session() as session:
        return list(session.scalars(select(Collection.name).order_by(Collection.name)))


def test_writes_need_a_login_and_the_csrf_token(world: WebWorld) -> None:
    forms = [
        ("/collections", {"name": "x", "kind": "saved", "q": "统战"}),
        ("/collections/add", {"name": "x", "ids": "1"}),
        ("/collections/x/add", {"ids": "1"}),
        ("/collections/x/remove", {"ids": "1"}),
        ("/collections/x/rename", {"new_name": "y"}),
        ("/collections/x/delete", {"confirm": "yes"}),
    ]
    with world.client() as client:
        token = csrf_of(client)  # an anonymous session's token: still no login
        for path, data in forms:
            refused = client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)
            assert refused.status_code == 401 and "请先登录" in refused.text, path
        page = client.get("/collections").text
        assert "登录</a>后可新建" in page and 'action="/collections"' not in page
        log_in(client)
        for path, data in forms:
            refused = client.post(path, data=data, follow_redirects=False)
            assert refused.status_code == 403 and "CSRF" in refused.text, path
            wrong = client.post(path, data={**data, "csrf_token": "forged"}, follow_redirects=False)
            assert wrong.status_code == 403, path
    assert names(world) == []


def test_collections_through_the_forms(world: WebWorld) -> None:
    original = world.ids[ARTICLES[0][1]]
    edited = world.ids[ARTICLES[5][1]]
    xss = world.ids[XSS_URL]
    with world.client() as client:
        log_in(client)
        token = csrf_of(client, "/collections")

        def post(path: str, **data: object) -> httpx.Response:
            return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)

        # a saved query, from the search page's form; who made it is recorded
        made = post("/collections", name="统战 saved", kind="saved", q="统战 site:zytzb",
                    description="查询<b>说明</b>")  # fmt: skip
        assert made.status_code == 303
        assert made.headers["location"] == "/collections/" + quote("统战 saved", safe="")
        page = client.get(made.headers["location"])
        assert page.status_code == 200 and "已创建收藏集" in page.text
        assert "查询&lt;b&gt;说明&lt;/b&gt;" in page.text and USER in page.text
        with world.session() as session:
            saved = get_collection(session, "统战 saved")
            assert saved.kind == "saved" and saved.created_by == USER
            assert saved.query == "统战 site:zytzb"
        # frozen from a query: its matches now, pinned at their versions
        assert post("/collections", name="frozen", kind="frozen", q="统战部").status_code == 303
        frozen = items(world, "frozen")
        assert edited in frozen and frozen[edited] == 2 and original in frozen
        # from ids, then add a search hit and an article (the article page's form, with next)
        assert post("/collections", name="picked", kind="ids", ids="").status_code == 303
        assert items(world, "picked") == {}
        back = client.post(
            "/collections/picked/add",
            data={"ids": [str(original), str(xss)], "next": f"/articles/{original}",
                  "csrf_token": token},
            follow_redirects=False,
        )  # fmt: skip
        assert back.status_code == 303 and back.headers["location"] == f"/articles/{original}"
        assert items(world, "picked") == {original: 1, xss: 1}
        # the search page's form: picked hits into the collection chosen, back to the search
        search = client.get("/?q=统战部").text
        assert 'form="addhits"' in search and "<option>picked</option>" in search
        picked = client.post(
            "/collections/add",
            data={"name": "picked", "ids": [str(edited), str(original)], "next": "/?q=%E7%BB%9F",
                  "csrf_token": token},
            follow_redirects=False,
        )  # fmt: skip
        assert picked.status_code == 303 and picked.headers["location"] == "/?q=%E7%BB%9F"
        assert "已加入 1 篇到 picked（1 篇已在其中）" in client.get("/?q=统").text
        assert items(world, "picked") == {original: 1, xss: 1, edited: 2}
        # an open redirect is refused: next only goes to this site
        away = post("/collections/picked/add", ids=str(xss), next="https://evil.example/")
        assert away.headers["location"] == "/"
        # the pages: the list, one collection, stored markup as text
        listing = client.get("/collections").text
        for name in ("统战 saved", "frozen", "picked"):
            assert f">{name}</a>" in listing
        shown = client.get("/collections/picked")
        assert shown.status_code == 200 and f'href="/articles/{xss}"' in shown.text
        assert XSS not in shown.text and "&lt;script&gt;alert(" in shown.text
        assert 'action="/api/export"' in shown.text and 'value="pinned"' in shown.text
        # remove, rename, delete (only once the box is ticked)
        assert post("/collections/picked/remove", ids=str(xss)).status_code == 303
        assert items(world, "picked") == {original: 1, edited: 2}
        renamed = post("/collections/picked/rename", new_name="选 定/2024")
        assert renamed.headers["location"] == "/collections/" + quote("选 定/2024", safe="")
        assert client.get(renamed.headers["location"]).status_code == 200
        refused = post("/collections/选 定/2024/delete")
        assert refused.status_code == 400 and "confirm" in refused.text
        assert "选 定/2024" in names(world)
        assert post("/collections/选 定/2024/delete", confirm="yes").status_code == 303
        assert "选 定/2024" not in names(world)
        # mistakes are one line on the page
        for path, data, words in [
            ("/collections", {"name": "frozen", "kind": "ids", "ids": "1"}, "exists already"),
            ("/collections", {"name": "bad", "kind": "saved", "q": '"统战'}, "is not closed"),
            ("/collections", {"name": "empty", "kind": "saved", "q": ""}, "needs a search query"),
            ("/collections/统战 saved/add", {"ids": "1"}, "is a saved query"),
            ("/collections/frozen/add", {"ids": "999999"}, "no such article"),
            ("/collections/frozen/add", {"ids": "abc"}, "is not an article id"),
            ("/collections/nosuch/rename", {"new_name": "z"}, "no such collection"),
        ]:  # fmt: skip
            bad = post(path, **data)
            assert bad.status_code in (400, 404) and words in bad.text, (path, bad.text[:300])
            assert "Traceback" not in bad.text
        assert client.get("/collections/nosuch").status_code == 404
        # exports of a collection: the pinned versions of a frozen one, by default
        pinned = client.get("/api/export", params={"collection": "frozen", "format": "jsonl"})
        assert "filename*=UTF-8''ufarchive-frozen-" in pinned.headers["content-disposition"]
        records = pd.read_json(io.BytesIO(pinned.content), lines=True, dtype=False)
        assert sorted(records["id"]) == sorted(frozen)
        assert EDITED_BODY in records["body"].tolist()
        csv = client.get("/api/export", params={"collection": "统战 saved", "format": "csv"})
        frame = pd.read_csv(io.BytesIO(csv.content))
        assert set(frame["site"]) == {"zytzb"} and len(frame) > 0
        # the API
        listed = client.get("/api/collections").json()
        assert [c["name"] for c in listed] == ["frozen", "统战 saved"]
        assert client.get("/api/collections/frozen").json()["articles"] == len(frozen)
        assert client.get("/api/collections/nosuch").status_code == 404
    with world.client() as anonymous:  # reading is open; changing and exporting are not
        assert anonymous.get("/collections/frozen").status_code == 200
        text = anonymous.get("/collections/frozen").text
        assert 'action="/api/export"' not in text and "/rename" not in text
        assert re.search(r"登录</a>后可导出", text)
