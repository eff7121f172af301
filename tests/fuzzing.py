"""Hostile input for the four parsers that read what others wrote: page extraction, the
site-file loader, the query language and URL canonicalisation.

Each target is a hypothesis strategy plus a check that states what must hold for ANY
input: no exception but the documented one (with a one-line message), no hang (every
input under LIMIT_SECONDS), and the target's own invariant. tests/test_fuzz.py runs a
few hundred inputs of each in CI; bench/fuzz.py runs 10^5 of each.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

# "Any page under 1 s": every input of every target, in CPU seconds of this process, so
# that other work on a shared 2-core machine (load averages of 10 seen) does not count.
LIMIT_SECONDS = 1.0


def timed(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(value: Any) -> None:
        started = time.process_time()
        check(value)
        took = time.process_time() - started
        assert took < LIMIT_SECONDS, f"took {took:.2f} CPU s on {value!r:.200}"

    return run


# --- extraction -------------------------------------------------------------------------

PAGE_PARTS = [
    "<html>", "<head>", "<meta charset='gbk'>", "<meta http-equiv='Content-Type' "
    "content='text/html; charset=big5'>", "<title>统战新闻_中央统战部</title>", "</head>", "<body>",
    "<h1>", "</h1>", "<div class='article'>", "</div>", "<p>", "</p>", "<br>", "<table><tr><td>",
    "</td></tr></table>", "来源：人民日报", "時間：2024-02-07 10:29:35", "责任编辑：李雪",
    "（供稿：某某）", "统(tǒng)战", "京ICP备00000000号", "<script>var a='</p>';</script>",
    "<!--", "-->", "<![CDATA[", "]]>", "&nbsp;", "&#x0;", "&#99999999;", "&bogus;", "\x00",
    "\ufeff", "\ud7ff", "<img src='x.jpg' alt='图片说明'>", "<a href='javascript:alert(1)'>",
    "<base href='http://127.0.0.9/'>", "<p>" + "各民主党派" * 40 + "</p>", "<" * 50, "<div>" * 300,
]  # fmt: skip


@st.composite
def hostile_pages(draw: st.DrawFn) -> bytes:
    """Tag soup, deep nesting, bad entities, mixed encodings, raw bytes."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=4000))
    parts = draw(st.lists(st.sampled_from(PAGE_PARTS), max_size=80))
    text = "".join(parts) + draw(st.text(max_size=200))
    encoding = draw(st.sampled_from(["utf-8", "gb18030", "big5", "utf-16"]))
    data = text.encode(encoding, errors="replace")
    if kind == 3 and data:  # a few bytes flipped anywhere
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


@timed
def check_extract(page: bytes) -> None:
    from crawler.extract import extract

    got = extract(page, url="http://www.example.gov.cn/tzyw/202402/t20240207_1.html").to_dict()
    json.dumps(got, ensure_ascii=False)
    assert set(got) >= {"title", "publish_time", "body", "images"}
    if got["publish_time"] is not None:
        assert datetime.fromisoformat(got["publish_time"]).utcoffset() is not None


# --- site files -------------------------------------------------------------------------

SITE_KEYS = [
    "name", "title", "start_urls", "allowed_domains", "article_url_pattern",
    "follow_url_pattern", "feed_urls", "sitemap_urls", "schedule", "keywords", "max_pages",
    "selectors", "url_aliases", "revisit", "unknown_key",
]  # fmt: skip
SITE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from([
        "demo", "https://www.example.gov.cn/tzyw/", "http://127.0.0.1:8080/", "example.gov.cn",
        r"/tzyw/\d{6}/t\d+_\d+\.html$", "(", "[a-", "(a+)+$", "xpath://div[@id='x']", "xpath:((",
        "div.article >", "0 */2 * * *", "61 * * * *", "* * *", "统战", "..", "-a.", "::1",
    ]),
)  # fmt: skip
SITE_TREE = st.recursive(
    SITE_VALUES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "cron",
                    "interval_minutes",
                    "interval_seconds",
                    "title",
                    "body",
                    "age_days",
                    "every_hours",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
VALID_SITE = """\
name: fuzz
title: 测试统战网
start_urls: [https://www.example.gov.cn/tzyw/]
allowed_domains: [www.example.gov.cn]
article_url_pattern: '/tzyw/\\d{6}/t\\d+_\\d+\\.html$'
follow_url_pattern: '/tzyw/index(_\\d+)?\\.html$'
feed_urls: [https://www.example.gov.cn/rss.xml]
schedule: {cron: "0 */2 * * *"}
selectors: {title: h1, body: "xpath://div[@class='content']"}
"""


@st.composite
def site_files(draw: st.DrawFn) -> str:
    """A site file: a mapping of the schema's keys to anything, or a valid file mangled."""
    if draw(st.booleans()):
        data = draw(st.dictionaries(st.sampled_from(SITE_KEYS), SITE_TREE, max_size=12))
        if draw(st.booleans()):
            data["name"] = "fuzz"
        return yaml.safe_dump(data, allow_unicode=True)
    text = VALID_SITE
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 12))
        insert = draw(
            st.sampled_from(
                [
                    "",
                    ":",
                    "'",
                    '"',
                    "\\",
                    "[",
                    "{",
                    "&a",
                    "*a",
                    "!!python/object:os.system",
                    "\t",
                    "\n  ",
                    "\x00",
                    "统",
                ]
            )
        )
        text = text[:at] + insert + text[at + cut :]
    return text


class SiteFileCheck:
    """load_site_file on a file of the text: a SiteConfig, or one line naming the file."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ufarchive-fuzz-"))
        self.path = self.folder / "fuzz.yaml"

    def __call__(self, text: str) -> None:
        timed(self._check)(text)

    def _check(self, text: str) -> None:
        from archive.errors import SiteConfigError
        from crawler.sites import load_site_file

        self.path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            site = load_site_file(self.path)
        except SiteConfigError as exc:
            message = str(exc)
            assert message.startswith(f"{self.path}: ") and "\n" not in message, message
            return
        assert site.name == "fuzz"
        assert site.article_re.pattern == site.article_url_pattern
        assert all(site.is_allowed_host(h) for h in site.allowed_domains)


# --- the query language -----------------------------------------------------------------

QUERY_PARTS = st.sampled_from([
    "统战", "統戰", "侨务", "统", "统一战线工作", "wechat", "2024", "OR", "or", "-", "--", '"', '""',
    "site:", "site:zytzb", "-site:zytzb", "source:人民日报", "editor:", "author:李", "since:2024",
    "since:2024-02", "until:2024-02-30", "since:9999-99-99", "until:", "foo:bar", "：", "(", ")",
    "*", "^", "NEAR", "AND", "NOT", "'", "\\", "%", "_", "\x00", "\u3000", " ", " ", "\t",
])  # fmt: skip


@st.composite
def queries(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=60))
    return "".join(draw(st.lists(QUERY_PARTS, max_size=14)))


@timed
def check_parse_query(query: str) -> None:
    from archive.search import QueryError, parse_query

    try:
        parse_query(query)
    except QueryError as exc:
        assert "\n" not in str(exc)


class SearchCheck:
    """search() on a small SQLite archive: results or a QueryError, never an SQL error
    (the parsed query becomes an FTS5 MATCH expression: quoting must hold)."""

    def __init__(self) -> None:
        from archive.db import make_engine, make_sessionmaker, upgrade

        self.folder = Path(tempfile.mkdtemp(prefix="ufarchive-fuzz-"))
        self.engine = make_engine(f"sqlite:///{self.folder / 'fuzz.sqlite3'}")
        upgrade(self.engine)
        self.sessions = make_sessionmaker(self.engine)
        fill_archive(self.sessions)

    def __call__(self, query: str) -> None:
        timed(self._check)(query)

    def _check(self, query: str) -> None:
        from archive.search import QueryError, search

        with self.sessions() as session:
            try:
                result = search(session, query, limit=5)
            except QueryError as exc:
                assert "\n" not in str(exc)
                return
            assert result.total >= len(result.hits)

    def close(self) -> None:
        self.engine.dispose()


def fill_archive(sessions: Any) -> None:
    from archive.store import ArticleFields, Fetch, ensure_site, save_article, update_derived
    from archive.warc import WarcLocation

    bodies = [
        "中央统战部召开侨务工作座谈会。",
        "統一戰線工作會議在京召開，WeChat 2024。",
        "各民主党派中央部署考察调研工作",
    ]
    with sessions() as session, session.begin():
        site = ensure_site(session, "zytzb", "测试")
        ids = []
        for n, body in enumerate(bodies * 3):
            fetch = Fetch(
                url=f"https://www.example.gov.cn/tzyw/t{n}.html", status=200, headers={},
                fetched_at=datetime(2024, 2, 1 + n, tzinfo=UTC), payload_length=1,
                warc=WarcLocation("warc/x.warc.gz", n * 100, 100, f"<urn:uuid:{n}>", None),
            )  # fmt: skip
            fields = ArticleFields(title=body[:8], body=body * (n + 1), source="人民日报",
                                   publish_time=f"2024-02-0{n + 1}T10:00:00+08:00")  # fmt: skip
            ids.append(save_article(session, site.id, fetch, fields)[0])
        update_derived(session, ids)


# --- URL canonicalisation ---------------------------------------------------------------

HOSTS = st.sampled_from([
    "www.zytzb.gov.cn", "m.zytzb.gov.cn", "WWW.ZYTZB.GOV.CN.", "127.0.0.1", "[::1]", "[fe80::1]",
    "xn--fiqs8s.cn", "统战.中国", "a..b", "", "user:pw@www.zytzb.gov.cn", "%41.cn",
])  # fmt: skip
PORTS = st.one_of(
    st.just(""), st.integers(0, 99999).map(lambda p: f":{p}"), st.sampled_from([":", ":abc", ":-1"])
)
URL_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=16)


@st.composite
def urls(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(max_size=60))
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", "javascript", ""]))
    path = draw(
        st.one_of(URL_TEXT, st.sampled_from(["tzyw/index.html", "a/../b/./c", "%E7%BB%9F"]))
    )
    query = draw(
        st.one_of(URL_TEXT, st.sampled_from(["utm_source=wx&id=7", "from=timeline", "a=1&a=2&b"]))
    )
    return f"{scheme}://{draw(HOSTS)}{draw(PORTS)}/{path}?{query}#{draw(URL_TEXT)}"


ALIASES = {"m.zytzb.gov.cn": "www.zytzb.gov.cn"}


@timed
def check_canonical_url(url: str) -> None:
    from archive.urls import canonical_url

    once = canonical_url(url, ALIASES)
    assert isinstance(once, str) and "#" not in once
    assert canonical_url(once, ALIASES) == once, f"not idempotent: {url!r} -> {once!r}"


@dataclass(frozen=True)
class Target:
    name: str
    strategy: st.SearchStrategy[Any]
    make_check: Callable[[], Callable[[Any], None]]
    warm_up: Any  # one plain input, run first: imports and caches are not the input's cost

    def checker(self) -> Callable[[Any], None]:
        check = self.make_check()
        check(self.warm_up)
        return check


TARGETS = (
    Target("extraction", hostile_pages(), lambda: check_extract, "<p>统战</p>".encode()),
    Target("site file", site_files(), SiteFileCheck, VALID_SITE),
    Target("query parser", queries(), lambda: check_parse_query, "统战 site:zytzb"),
    Target("search (SQLite)", queries(), SearchCheck, "统战"),
    Target("canonical URL", urls(), lambda: check_canonical_url, "http://www.zytzb.gov.cn/"),
)
