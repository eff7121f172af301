"""Links out of listing pages, RSS/Atom feeds and sitemaps (indexes and `lastmod` too).

Pure functions over text or bytes; the spider decides what to fetch. XML is parsed with
entities and network access off (feeds come from the open web).
"""

from __future__ import annotations

import email.utils
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urldefrag, urljoin

from lxml import etree, html

_XML_PARSER = etree.XMLParser(
    recover=True, resolve_entities=False, no_network=True, huge_tree=False
)
_GZIP_MAGIC = b"\x1f\x8b"
# sitemaps.org's limit for one sitemap, uncompressed; a gzip bomb stops here, not in memory
MAX_SITEMAP_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """A URL a feed or sitemap lists, with the time it says the page last changed."""

    url: str
    updated: datetime | None = None


def page_links(text: str, base_url: str) -> list[str]:
    """Absolute http(s) URLs of the `<a href>`s of a page, in order, without fragments."""
    if not text.strip():
        return []
    try:
        root = html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return []
    base = root.xpath("string(//base/@href)") or base_url
    base = urljoin(base_url, str(base))
    seen: dict[str, None] = {}
    for href in root.xpath("//a/@href|//area/@href"):
        url = absolute(str(href), base)
        if url:
            seen.setdefault(url, None)
    return list(seen)


def absolute(href: str, base: str) -> str | None:
    href = href.strip()
    if not href or href.startswith(("javascript:", "mailto:", "tel:", "#")):
        return None
    url = urldefrag(urljoin(base, href))[0]
    return url if url.startswith(("http://", "https://")) else None


def feed_entries(body: bytes, base_url: str) -> list[Entry]:
    """Items of an RSS 2.0, RSS 1.0 or Atom feed."""
    root = _parse_xml(body)
    if root is None:
        return []
    entries: list[Entry] = []
    for item in root.iter():
        name = _local(item)
        if name == "item":  # RSS 2.0 and 1.0
            link = _child_text(item, "link") or (
                item.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about") or ""
            )
            when = (
                _child_text(item, "pubDate")
                or _child_text(item, "date")
                or _child_text(item, "updated")
            )
        elif name == "entry":  # Atom
            link = ""
            for child in item:
                if _local(child) == "link" and child.get("rel", "alternate") == "alternate":
                    link = child.get("href", "")
                    break
            when = _child_text(item, "updated") or _child_text(item, "published")
        else:
            continue
        url = absolute(link, base_url)
        if url:
            entries.append(Entry(url, parse_feed_date(when)))
    return entries


def sitemap_entries(
    body: bytes, base_url: str
) -> tuple[Literal["urlset", "sitemapindex", "unknown"], list[Entry]]:
    """(kind, entries) of a sitemap or a sitemap index; gzip-compressed sitemaps too."""
    if body[:2] == _GZIP_MAGIC:
        inflater = zlib.decompressobj(31)
        try:
            body = inflater.decompress(body, MAX_SITEMAP_BYTES + 1)
        except zlib.error:
            return "unknown", []
        if len(body) > MAX_SITEMAP_BYTES:
            return "unknown", []
    root = _parse_xml(body)
    if root is None:
        return "unknown", []
    kind = _local(root)
    if kind not in ("urlset", "sitemapindex"):
        return "unknown", []
    entries = []
    for element in root:
        if _local(element) not in ("url", "sitemap"):
            continue
        url = absolute(_child_text(element, "loc"), base_url)
        if url:
            entries.append(Entry(url, parse_feed_date(_child_text(element, "lastmod"))))
    return kind, entries  # type: ignore[return-value]


def parse_feed_date(text: str) -> datetime | None:
    """RFC 822 (RSS), RFC 3339 / W3C datetime (Atom, sitemaps); naive times are taken as UTC."""
    text = text.strip()
    if not text:
        return None
    when: datetime | None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def _parse_xml(body: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(body.lstrip(), _XML_PARSER)
    except etree.XMLSyntaxError:
        return None


def _local(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _child_text(element: etree._Element, name: str) -> str:
    for child in element:
        if _local(child) == name:
            return (child.text or "").strip()
    return ""
