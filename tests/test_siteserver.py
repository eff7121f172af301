"""The fixture site server itself: files, rules, named behaviours, the request log."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.siteserver import SiteServer


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "tzyw").mkdir()
    (tmp_path / "tzyw" / "index.html").write_bytes(
        '<html><head><meta charset="utf-8"></head><body><a href="/tzyw/t1.html">统战要闻</a></body></html>'.encode()
    )
    (tmp_path / "gbk.html").write_bytes(
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312"></head>'
        "<body>朱镕基 统一战线</body></html>".encode("gbk")
    )
    (tmp_path / "rss.xml").write_bytes(
        b"<rss><channel><item><link>{{BASE}}/tzyw/t1.html</link></item></channel></rss>"
    )
    return tmp_path


def test_serves_files_raw_and_records_requests(
    site_server: Callable[..., SiteServer], root: Path
) -> None:
    server = site_server(root)
    status, headers, body = fetch(server.url("/tzyw/"), {"User-Agent": "probe/1"})
    assert status == 200
    assert headers["Content-Type"] == "text/html"  # no charset: the page's <meta> decides
    assert "统战要闻".encode() in body
    status, _, body = fetch(server.url("/gbk.html"))
    assert body.decode("gb18030") and "朱镕基".encode("gbk") in body
    assert fetch(server.url("/nope.html"))[0] == 404
    log = server.requests
    assert [r.path for r in log] == ["/tzyw/", "/gbk.html", "/nope.html"]
    assert log[0].method == "GET" and log[0].headers["user-agent"] == "probe/1"
    assert server.count("/gbk.html") == 1


def test_base_placeholder_becomes_the_servers_address(
    site_server: Callable[..., SiteServer], root: Path
) -> None:
    server = site_server(root)
    _, headers, body = fetch(server.url("/rss.xml"))
    assert headers["Content-Type"] == "application/xml"
    assert f"<link>{server.base}/tzyw/t1.html</link>".encode() in body


def test_conditional_requests_get_304(site_server: Callable[..., SiteServer], root: Path) -> None:
    server = site_server(root)
    _, headers, _ = fetch(server.url("/tzyw/index.html"))
    assert fetch(server.url("/tzyw/index.html"), {"If-None-Match": headers["ETag"]})[0] == 304
    assert (
        fetch(server.url("/tzyw/index.html"), {"If-Modified-Since": headers["Last-Modified"]})[0]
        == 304
    )
    assert fetch(server.url("/tzyw/index.html"), {"If-None-Match": '"other"'})[0] == 200
    server.put("/tzyw/index.html", "<html><body>改过了</body></html>")
    status, new_headers, body = fetch(
        server.url("/tzyw/index.html"), {"If-None-Match": headers["ETag"]}
    )
    assert status == 200 and "改过了".encode() in body and new_headers["ETag"] != headers["ETag"]
    server.delete("/tzyw/index.html")
    assert fetch(server.url("/tzyw/index.html"))[0] == 404


def test_rules_statuses_in_turn_delay_redirect_headers(
    site_server: Callable[..., SiteServer], root: Path
) -> None:
    server = site_server(root)
    server.rule("/tzyw/index.html", status=[500, 500, 200])
    assert [fetch(server.url("/tzyw/index.html"))[0] for _ in range(4)] == [500, 500, 200, 200]
    server.rule("/slow.html", delay=0.3, body=b"ok")
    started = time.monotonic()
    assert fetch(server.url("/slow.html"))[2] == b"ok"
    assert time.monotonic() - started >= 0.3
    server.rule("/old.html", redirect="/tzyw/")
    status, headers, _ = fetch(server.url("/old.html"))
    assert status == 302 and headers["Location"] == "/tzyw/"
    server.rule("/busy.html", status=503, headers={"Retry-After": "2"})
    status, headers, _ = fetch(server.url("/busy.html"))
    assert status == 503 and headers["Retry-After"] == "2"
    server.rule("/gbk.html", headers={"Content-Type": "text/html; charset=gbk"})
    assert fetch(server.url("/gbk.html"))[1]["Content-Type"] == "text/html; charset=gbk"


def test_named_behaviours(site_server: Callable[..., SiteServer]) -> None:
    server = site_server()
    assert fetch(server.url("/_status/410"))[0] == 410
    status, headers, _ = fetch(server.url("/_redirect-loop/3"))
    assert status == 302 and headers["Location"] == "/_redirect-loop/4"
    assert fetch(server.url("/_redirect?to=/x"))[1]["Location"] == "/x"
    assert b'href="/_trap/8.html"' in fetch(server.url("/_trap/7.html"))[2]
    assert len(fetch(server.url("/_big/50000"))[2]) == 50000
    _, headers, body = fetch(server.url("/_enc/gbk"))
    assert headers["Content-Type"] == "text/html; charset=gbk"
    assert "统一战线".encode("gbk") in body


def test_servers_get_free_ports_of_their_own(
    site_server: Callable[..., SiteServer], root: Path
) -> None:
    a, b = site_server(root), site_server(root)
    assert a.port != b.port and a.host == "127.0.0.1"
    fetch(a.url("/tzyw/"))
    assert b.requests == [] and len(a.requests) == 1
