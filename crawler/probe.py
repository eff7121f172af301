"""`ufarchive sites probe URL`: a listing page -> a proposed site file, patterns and samples.

Fetches the listing page, the site's robots.txt, the feeds the page advertises
(`<link rel="alternate" type="application/rss+xml">`, links named like feeds) and the
sitemaps robots.txt (or a `<link rel="sitemap">`) names, one level of sitemap indexes
deep. Every same-host link (and every feed or sitemap entry) is reduced to its URL
*shape*: each path segment split into runs of digits, letters and other characters, the
digit runs standing for any digits. Links of one shape are one group. The largest group
whose last segment carries a number (an article id) is the article pattern; links beside
the listing page named like it with a number (`index_2.html`, `index2.html`) are its
pagination, the follow pattern. Nothing here is site-specific; the output is a site file
for a person to read, check (`ufarchive sites check`) and adjust.

Fetches go through urllib, one at a time, with the crawl's user agent, timeout and size
limit: a probe is a handful of requests, not a crawl (Scrapy's reactor would cost a child
process for it). Disallowed links (robots.txt) are left out of every group.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree, html

from archive.errors import UfarchiveError
from archive.settings import CrawlSettings
from crawler.extract.decode import decode_html
from crawler.links import absolute, feed_entries, page_links, sitemap_entries

#: Links to these are files, not pages (never an article or a listing).
STATIC_SUFFIXES = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".png",
        ".gif",
        ".bmp",
        ".webp",
        ".svg",
        ".ico",
        ".css",
        ".js",
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".ppt",
        ".pptx",
        ".zip",
        ".rar",
        ".7z",
        ".mp3",
        ".mp4",
        ".avi",
        ".flv",
        ".wmv",
        ".swf",
        ".apk",
        ".exe",
        ".txt",
        ".xml",
    ]
)
#: File names that a listing page's own page 1 commonly has, when the URL is a folder.
LISTING_STEMS = ("index", "default", "list", "page", "more", "node")
FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
FEED_LINK_RE = re.compile(r"(rss|atom|feed)[^/]*$|\.(rss|atom)$", re.IGNORECASE)
MAX_FEEDS = 5
MAX_SITEMAPS = 5  # sitemaps read, index children included
SAMPLES = 5
TOKEN_RE = re.compile(r"\d+|[A-Za-z]+|[^A-Za-z\d]+")
DIGITS = "\0"  # a digit run in a shape


class ProbeError(UfarchiveError):
    """The listing page could not be fetched or holds nothing to build a site file from."""


# --- shapes -------------------------------------------------------------------------------


def split_url(url: str) -> list[list[str]]:
    """The URL's path segments (and its query, as one more segment) as token lists."""
    parts = urlsplit(url)
    segments = (parts.path or "/").split("/")[1:]
    if parts.query:
        segments.append("?" + parts.query)
    return [TOKEN_RE.findall(segment) for segment in segments]


def shape_key(tokens: list[list[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(DIGITS if t.isdigit() else t for t in seg) for seg in tokens)


@dataclass
class Group:
    """Links of one URL shape."""

    key: tuple[tuple[str, ...], ...]
    urls: list[str] = field(default_factory=list)
    on_page: int = 0  # how many come from the listing page (the rest from feeds/sitemaps)
    listed: int = 0  # how many a feed or sitemap lists

    @property
    def has_id(self) -> bool:
        return bool(self.key) and DIGITS in self.key[-1]

    def regex(self) -> str:
        return shape_regex([self.key], [split_url(u) for u in self.urls])


def shape_regex(keys: Sequence[tuple[tuple[str, ...], ...]], samples: list[list[list[str]]]) -> str:
    """A path regex for shapes of equal length: literal tokens escaped, a literal segment
    that differs between the shapes as an alternation, digit runs as `\\d{n}` in folders
    whose values all have n digits (dates: 202403, 2024, 0315) and `\\d+` elsewhere (ids
    grow)."""
    out: list[str] = []
    for position in range(len(keys[0])):
        variants = sorted({key[position] for key in keys})
        if len(variants) > 1:
            out.append("(" + "|".join(re.escape("".join(v)) for v in variants) + ")")
            continue
        last = position == len(keys[0]) - 1
        segment = ""
        for index, token in enumerate(variants[0]):
            if token != DIGITS:
                segment += re.escape(token)
                continue
            lengths = {
                len(s[position][index])
                for s in samples
                if position < len(s) and index < len(s[position])
            }
            segment += rf"\d{{{lengths.pop()}}}" if len(lengths) == 1 and not last else r"\d+"
        out.append(segment)
    return "/" + "/".join(out) + "$"


# --- fetching -----------------------------------------------------------------------------


@dataclass
class Fetched:
    url: str  # after redirects
    status: int
    body: bytes
    content_type: str | None


def fetch(url: str, crawl: CrawlSettings) -> Fetched:
    """GET a URL; HTTP errors come back as their status, network errors raise ProbeError."""
    request = urllib.request.Request(url, headers={"User-Agent": crawl.user_agent})
    try:
        with urllib.request.urlopen(request, timeout=crawl.download_timeout_seconds) as response:
            body = response.read(crawl.max_response_bytes + 1)
            return Fetched(
                response.geturl(), response.status, body, response.headers.get("Content-Type")
            )
    except urllib.error.HTTPError as exc:
        return Fetched(url, exc.code, b"", None)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ProbeError(f"{url}: cannot fetch: {reason}") from None


# --- the probe ----------------------------------------------------------------------------


@dataclass
class Probe:
    """What a probe found, and the site file it proposes."""

    url: str
    name: str
    title: str
    host: str
    robots_found: bool = False
    disallowed: list[str] = field(default_factory=list)
    robots_blocks_start: bool = False
    feeds: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    article_pattern: str | None = None
    follow_pattern: str | None = None
    listed_urls: list[str] = field(default_factory=list)  # feed and sitemap entries
    page_links: list[str] = field(default_factory=list)

    def matches(self, pattern: str | None, urls: Iterable[str]) -> list[str]:
        if pattern is None:
            return []
        rx = re.compile(pattern)
        return [u for u in urls if rx.search(u)]

    def site_file(self) -> str:
        """The proposed `config/sites/<name>.yaml`, samples and findings as comments."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        lines = [
            f"# Proposed by `ufarchive sites probe {self.url}` on {stamp}.",
            "# Read it, then check it: `ufarchive sites check "
            f"{self.name}` and a first `ufarchive crawl {self.name}`.",
        ]
        if self.robots_found:
            rules = ", ".join(self.disallowed) or "nothing"
            lines.append(f"# robots.txt: found; disallows {rules} (obeyed by the crawl).")
        else:
            lines.append("# robots.txt: none (everything allowed).")
        if self.robots_blocks_start:
            lines.append("# WARNING: robots.txt disallows the listing page itself.")
        lines += [f"# {note}" for note in self.notes]
        lines.append("# Links of the listing page by shape (count on the page, role, shape):")
        for group in sorted(self.groups, key=lambda g: (-g.on_page - g.listed, g.regex()))[:15]:
            role = self.role(group)
            lines.append(f"#   {group.on_page:3d} {role:8s} {group.regex()}")
        lines += [
            f"name: {self.name}",
            f"title: {yaml_string(self.title)}",
            f"start_urls: [{self.url}]",
            f"allowed_domains: [{self.host}]",
        ]
        page_articles = self.matches(self.article_pattern, self.page_links)
        listed_articles = self.matches(self.article_pattern, self.listed_urls)
        if self.article_pattern is None:
            lines.append("# NOT FOUND: no link of the page (or its feeds) has an article's")
            lines.append("# shape (a number in the last segment); write the pattern by hand.")
            lines.append("article_url_pattern: 'NOT-FOUND'")
        else:
            lines.append(
                f"# matches {len(page_articles)} link(s) of the page and "
                f"{len(listed_articles)} of {len(self.listed_urls)} feed/sitemap entries, e.g.:"
            )
            samples = list(dict.fromkeys(page_articles + listed_articles))[:SAMPLES]
            lines += [f"#   {url}" for url in samples]
            lines.append(f"article_url_pattern: {yaml_string(self.article_pattern)}")
        if self.follow_pattern is None:
            lines.append("# no pagination found beside the listing page: only it is followed")
            lines.append("follow_url_pattern: null")
        else:
            follows = self.matches(self.follow_pattern, self.page_links)
            lines.append(f"# matches {len(follows)} link(s) of the page:")
            lines += [f"#   {url}" for url in follows[:SAMPLES]]
            lines.append(f"follow_url_pattern: {yaml_string(self.follow_pattern)}")
        lines.append(f"feed_urls: [{', '.join(self.feeds)}]")
        lines.append(f"sitemap_urls: [{', '.join(self.sitemaps)}]")
        lines += ['schedule: {cron: "0 */2 * * *"}', "keywords: []", "max_pages: 2000", ""]
        return "\n".join(lines)

    def role(self, group: Group) -> str:
        if self.article_pattern and any(re.search(self.article_pattern, u) for u in group.urls):
            return "article"
        if self.follow_pattern and any(re.search(self.follow_pattern, u) for u in group.urls):
            return "listing"
        return "other"


def yaml_string(value: str) -> str:
    """A single-quoted YAML scalar (backslashes stay literal; quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def probe_site(url: str, crawl: CrawlSettings, name: str | None = None) -> Probe:
    """Fetch a listing page and what it advertises; propose patterns for its site."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"{url}: not an http(s) URL")
    page = fetch(url, crawl)
    if page.status != 200:
        raise ProbeError(f"{url}: the listing page answered {page.status}")
    text = decode_html(page.body, page.content_type)[0]
    host = (urlsplit(page.url).hostname or parts.hostname).lower()
    probe = Probe(
        url=url, name=name or name_from_host(host), title=page_title(text) or host, host=host
    )
    robots = read_robots(probe, page.url, crawl)
    links = [u for u in page_links(text, page.url) if is_page(u, host)]
    if robots is not None:
        allowed = [u for u in links if robots.can_fetch(u, crawl.user_agent)]
        if len(allowed) < len(links):
            probe.notes.append(f"{len(links) - len(allowed)} links of the page are disallowed.")
        links = allowed
    probe.page_links = links
    read_feeds(probe, text, page.url, links, crawl)
    read_sitemaps(probe, text, page.url, robots, crawl)
    listed = [u for u in probe.listed_urls if is_page(u, host)]
    if robots is not None:
        listed = [u for u in listed if robots.can_fetch(u, crawl.user_agent)]
    probe.listed_urls = listed
    probe.groups = group_links(links, listed)
    probe.article_pattern = propose_article_pattern(probe.groups, page.url)
    probe.follow_pattern = propose_follow_pattern(probe.groups, page.url)
    return probe


def name_from_host(host: str) -> str:
    """`www.zytzb.gov.cn` -> `zytzb` (the first label that is not www/m); `site` for an IP."""
    if re.fullmatch(r"[\d.]+|[\da-f:]+", host):
        return "site"
    labels = [label for label in host.split(".") if label not in ("www", "m", "wap")]
    name = re.sub(r"[^a-z0-9_-]", "-", (labels[0] if labels else host).lower())
    return name or "site"


def page_title(text: str) -> str | None:
    """The site's name from `<title>`: the part after the last `_`, `-` or `|`."""
    try:
        root = html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None
    title = " ".join(str(root.xpath("string(//title)")).split())
    if not title:
        return None
    return re.split(r"\s*[_|\-–—]\s*", title)[-1] or title


def is_page(url: str, host: str) -> bool:
    parts = urlsplit(url)
    if (parts.hostname or "").lower() != host:
        return False
    path = parts.path.lower()
    return not any(path.endswith(suffix) for suffix in STATIC_SUFFIXES)


def read_robots(probe: Probe, page_url: str, crawl: CrawlSettings) -> Any:
    from protego import Protego

    robots_url = urljoin(page_url, "/robots.txt")
    try:
        fetched = fetch(robots_url, crawl)
    except ProbeError as exc:
        probe.notes.append(f"robots.txt not read: {exc}")
        return None
    if fetched.status != 200:
        return None
    text = decode_html(fetched.body, fetched.content_type)[0]
    robots = Protego.parse(text)
    probe.robots_found = True
    probe.disallowed = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.lower().startswith("disallow:") and line.split(":", 1)[1].strip()
    ]
    probe.robots_blocks_start = not robots.can_fetch(page_url, crawl.user_agent)
    probe.sitemaps += [u for u in robots.sitemaps if is_allowed_url(u, probe.host)]
    return robots


def is_allowed_url(url: str, host: str) -> bool:
    return (urlsplit(url).hostname or "").lower() == host


def read_feeds(
    probe: Probe, text: str, page_url: str, links: list[str], crawl: CrawlSettings
) -> None:
    """Feeds the page advertises; only those that parse as RSS/Atom with entries are kept."""
    candidates: list[str] = []
    try:
        root = html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        root = None
    if root is not None:
        for link in root.xpath("//link[@rel='alternate'][@href]"):
            if (link.get("type") or "").lower() in FEED_TYPES:
                url = absolute(link.get("href") or "", page_url)
                if url:
                    candidates.append(url)
        for href in root.xpath("//a/@href"):
            url = absolute(str(href), page_url)
            if url and FEED_LINK_RE.search(urlsplit(url).path):
                candidates.append(url)
    for url in list(dict.fromkeys(c for c in candidates if is_allowed_url(c, probe.host)))[
        :MAX_FEEDS
    ]:
        try:
            fetched = fetch(url, crawl)
        except ProbeError as exc:
            probe.notes.append(f"feed {url} not read: {exc}")
            continue
        entries = feed_entries(fetched.body, fetched.url) if fetched.status == 200 else []
        if entries:
            probe.feeds.append(url)
            probe.listed_urls += [e.url for e in entries]
        else:
            probe.notes.append(f"{url} looked like a feed but holds no entries (left out).")


def read_sitemaps(
    probe: Probe, text: str, page_url: str, robots: Any, crawl: CrawlSettings
) -> None:
    try:
        root = html.document_fromstring(text)
        for href in root.xpath("//link[@rel='sitemap']/@href"):
            url = absolute(str(href), page_url)
            if url and is_allowed_url(url, probe.host):
                probe.sitemaps.append(url)
    except (etree.ParserError, ValueError):
        pass
    probe.sitemaps = list(dict.fromkeys(probe.sitemaps))
    to_read, read, kept = list(probe.sitemaps), 0, []
    while to_read and read < MAX_SITEMAPS:
        url = to_read.pop(0)
        read += 1
        try:
            fetched = fetch(url, crawl)
        except ProbeError as exc:
            probe.notes.append(f"sitemap {url} not read: {exc}")
            continue
        kind, entries = sitemap_entries(fetched.body, fetched.url)
        if fetched.status != 200 or kind == "unknown":
            probe.notes.append(f"{url} is not a sitemap (left out).")
            continue
        if url in probe.sitemaps:
            kept.append(url)
        if kind == "sitemapindex":
            to_read += [e.url for e in entries if is_allowed_url(e.url, probe.host)]
        else:
            probe.listed_urls += [e.url for e in entries]
    probe.sitemaps = kept + [u for u in probe.sitemaps[read:] if u not in kept]


def group_links(page: list[str], listed: list[str]) -> list[Group]:
    groups: dict[tuple[tuple[str, ...], ...], Group] = {}
    for url, from_page in [(u, True) for u in page] + [(u, False) for u in listed]:
        key = shape_key(split_url(url))
        group = groups.setdefault(key, Group(key))
        if url not in group.urls:
            group.urls.append(url)
        if from_page:
            group.on_page += 1
        else:
            group.listed += 1
    return list(groups.values())


def propose_article_pattern(groups: list[Group], page_url: str) -> str | None:
    """The shape that most links (page, feeds, sitemaps) share, among shapes with an id in
    their last segment and not the listing page's own; shapes of the same depth and last
    segment that differ only in a folder's name join it (`/(tzyw|tpxw)/...`)."""
    start = shape_key(split_url(page_url))
    candidates = [
        g for g in groups if g.has_id and not is_pagination(g.key, start) and g.key != start
    ]
    if not candidates:
        return None
    best = max(candidates, key=lambda g: (g.on_page + 2 * g.listed, len(g.urls)))
    siblings = [
        g
        for g in candidates
        if len(g.key) == len(best.key)
        and g.key[-1] == best.key[-1]
        and sum(a != b for a, b in zip(g.key, best.key, strict=True)) == 1
        and all(DIGITS not in seg for seg, b in zip(g.key, best.key, strict=True) if seg != b)
    ]
    members = [best] + [g for g in siblings if g is not best]
    return shape_regex([g.key for g in members], [split_url(u) for g in members for u in g.urls])


def is_pagination(key: tuple[tuple[str, ...], ...], start: tuple[tuple[str, ...], ...]) -> bool:
    """A link beside the listing page, named like it plus a number (`index_2.html`), or like
    a folder's listing page when the listing page is the folder itself."""
    if len(key) != len(start) or key[:-1] != start[:-1] or DIGITS not in key[-1]:
        return False
    name, own = key[-1], start[-1]
    stems = (own[0],) if own and own[0].isalpha() else LISTING_STEMS
    return bool(name) and name[0].lower() in stems


def propose_follow_pattern(groups: list[Group], page_url: str) -> str | None:
    start_tokens = split_url(page_url)
    start = shape_key(start_tokens)
    pages = [g for g in groups if is_pagination(g.key, start)]
    if not pages:
        return None
    folder = shape_regex([start], [start_tokens]).removesuffix("$")
    folder = folder[: folder.rfind("/") + 1]
    own = list(start[-1])
    names = []
    for group in pages:
        name = list(group.key[-1])
        names.append(optional_insert(own, name))
    if len(names) == 1:
        return folder + names[0] + "$"
    return folder + "(?:" + "|".join(names) + ")$"


def optional_insert(own: list[str], name: list[str]) -> str:
    """`index.html` + `index_2.html` -> `index(_\\d+)?\\.html`: the tokens the page's name
    inserts into the listing page's own name become optional (page 1 has none)."""

    def rx(tokens: list[str]) -> str:
        return "".join(r"\d+" if t == DIGITS else re.escape(t) for t in tokens)

    for cut in range(len(own) + 1):
        head, tail = own[:cut], own[cut:]
        extra = len(name) - len(own)
        if extra > 0 and name[:cut] == head and name[len(name) - len(tail) :] == tail:
            inserted = name[cut : len(name) - len(tail)] if tail else name[cut:]
            return rx(head) + "(" + rx(inserted) + ")?" + rx(tail)
    return rx(name)
