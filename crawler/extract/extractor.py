"""The extraction entry point: generic rules for every field, a site's selectors where given.

Order: decode (decode.py) -> parse and read <head> -> clean the tree (cleanup.py) -> lines
(blocks.py) -> the text's container (body.py) -> headline (title.py) -> text, captions,
images (body.py) -> labelled metadata around them (metadata.py) -> selectors. Pure: no
network, no database, no Scrapy.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from urllib.parse import urljoin

from cssselect import SelectorError
from lxml import etree, html

from crawler.extract import labels
from crawler.extract.article import TEXT_FIELDS, Article, Image, Origin
from crawler.extract.blocks import Block, linearize
from crawler.extract.body import extend_span, extract_body, find_container, is_prose_line
from crawler.extract.cleanup import clean_text, clean_tree, parse_document
from crawler.extract.dates import parse_date
from crawler.extract.decode import REASON_TEXT, decode_page, mojibake
from crawler.extract.metadata import (
    HeadInfo,
    Zones,
    clean_source,
    extract_metadata,
    forget_lines,
    parse_pairs,
    read_head,
)
from crawler.extract.people import clean_names
from crawler.extract.title import extract_title, strip_site_name

#: Bumped whenever the output for some page changes, so `reparse` knows what to redo.
EXTRACTOR_VERSION = "2.0"
XPATH_PREFIX = "xpath:"
CSS_PREFIX = "css:"

log = logging.getLogger(__name__)

_META_TITLE_KEYS = ("og:title", "articletitle", "twitter:title", "title", "headline")
_TITLE_SEPARATORS = re.compile(r"[_|｜\-－—]+")
_SITE_NAME_KEYS = ("og:site_name", "sitename", "application-name", "twitter:site")


def extract(
    html_text: bytes | str,
    url: str | None = None,
    selectors: Mapping[str, str | None] | None = None,
) -> Article:
    """Parse an article page. Never raises: a field the page lacks is None."""
    try:
        return _extract(html_text, url, selectors)
    except Exception:  # the documented contract: a bad page gives an empty Article
        log.warning("extraction failed for %s", url or "<page>", exc_info=True)
        return Article()


def _extract(
    html_text: bytes | str, url: str | None, selectors: Mapping[str, str | None] | None
) -> Article:
    forget_lines()
    if isinstance(html_text, bytes):
        decoded = decode_page(html_text)
        text, encoding, reason = decoded.text, decoded.encoding, decoded.reason
    else:
        text, encoding, reason = html_text, None, REASON_TEXT
    article = _extract_text(text, url, selectors)
    article.encoding, article.encoding_reason = encoding, reason
    article.warnings = extraction_warnings(article)
    return article


def extraction_warnings(article: Article) -> list[str]:
    """What looks wrong in the output: mojibake (a wrong decoding) or U+FFFD (bytes the
    codec could not read), by field. `ufarchive status` counts the pages that have any."""
    warnings: list[str] = []
    for name in TEXT_FIELDS:
        value = getattr(article, name)
        if not value:
            continue
        # (a wrong decoding spoils a page throughout: its first 500 characters tell; the
        # body's first 1,500 took 130 us of a worker's ~6.5 ms an article)
        run = mojibake(value, 500)
        if run:
            warnings.append(f"mojibake in {name}: {run[:12]}")
        elif "\ufffd" in value[:4000]:
            warnings.append(f"undecodable bytes in {name}")
    return warnings


def _extract_text(
    text: str, url: str | None, selectors: Mapping[str, str | None] | None
) -> Article:
    root = parse_document(text)
    if root is None:
        return Article()
    head = read_head(root)
    page_title = clean_text(root.findtext(".//title"))
    meta_titles = _meta_values(head, _META_TITLE_KEYS)
    site_names = _site_names(head, page_title)
    base_url = _base_url(root, url)
    clean_tree(root)
    blocks = linearize(root)

    span = extend_span(blocks, find_container(blocks))
    text_start = _first_prose(blocks, span)
    title, title_index, title_origin = extract_title(
        blocks, page_title, meta_titles, site_names, text_start
    )
    body = extract_body(blocks, span, title, base_url, title_index, text_start)
    # The head zone ends at the first sentence of prose, not at the first line kept: a
    # line kept before it (a headline nothing else named) may share the byline's area.
    start = body.start if text_start is None or body.start is None else max(body.start, text_start)
    zones = Zones(title=title_index, text_start=start, text_end=body.end)
    meta = extract_metadata(blocks, zones, head, url, body.contributor)

    article = Article(
        title=title,
        publish_time=meta.publish_time,
        source=meta.source,
        editor=meta.editor,
        author=meta.author,
        contributor=meta.contributor,
        body=body.text,
        images=body.images,
    )
    article.provenance = dict(meta.origins)
    if title_origin is not None:
        article.provenance["title"] = title_origin
    if body.origin is not None:
        article.provenance["body"] = body.origin
    if selectors:
        _apply_selectors(article, root, selectors, base_url)
    return article


def _meta_values(head: HeadInfo, keys: Sequence[str]) -> list[str]:
    found: list[str] = []
    for key in keys:
        for value in head.metas.get(key, []):
            cleaned = clean_text(value)
            if cleaned and cleaned not in found:
                found.append(cleaned)
    for obj in head.json_ld:
        headline = obj.get("headline")
        if isinstance(headline, str):
            cleaned = clean_text(headline)
            if cleaned and cleaned not in found:
                found.append(cleaned)
    return found


def _site_names(head: HeadInfo, page_title: str | None) -> list[str]:
    names = _meta_values(head, _SITE_NAME_KEYS)
    if page_title:
        first = strip_site_name(page_title)
        rest = page_title[len(first) :] if first and page_title.startswith(first) else ""
        for part in _TITLE_SEPARATORS.split(rest):
            cleaned = clean_text(part)
            if cleaned and cleaned not in names:
                names.append(cleaned)
    return names


def _base_url(root: html.HtmlElement, url: str | None) -> str | None:
    for base in root.iter("base"):
        href = (base.get("href") or "").strip()
        if href:
            return urljoin(url or "", href)
    return url


def _first_prose(blocks: Sequence[Block], span: tuple[int, int] | None) -> int | None:
    """The first line inside the container that reads as prose (not title or metadata)."""
    if span is None:
        return None
    for block in blocks[span[0] : span[1] + 1]:
        if is_prose_line(block):
            return block.index
    return span[0]


# --------------------------------------------------------------------------- selectors


def _select(root: html.HtmlElement, selector: str) -> list[html.HtmlElement | str]:
    """Elements (or attribute / text strings) a CSS or `xpath:` selector finds; [] on error."""
    try:
        if selector.startswith(XPATH_PREFIX):
            result = root.xpath(selector[len(XPATH_PREFIX) :].strip())
        else:
            result = root.cssselect(selector.removeprefix(CSS_PREFIX).strip())
    except (etree.XPathError, SelectorError, ValueError, SyntaxError, TypeError):
        return []
    if not isinstance(result, list):
        result = [result]
    found: list[html.HtmlElement | str] = []
    for item in result:
        if isinstance(item, html.HtmlElement):
            found.append(item)
        elif isinstance(item, (str, bytes)):
            found.append(item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item))
    return found


def _apply_selectors(
    article: Article,
    root: html.HtmlElement,
    selectors: Mapping[str, str | None],
    base_url: str | None,
) -> None:
    """A selector given for a field replaces that field; one that finds nothing leaves it."""
    for name, selector in selectors.items():
        if not selector or not isinstance(selector, str):
            continue
        found = _select(root, selector)
        if not found:
            continue
        origin = Origin(f"selector:{selector}", "")
        if name == "body":
            if _select_body(article, found, base_url):
                article.provenance["body"] = origin
            continue
        first = found[0]
        raw = first if isinstance(first, str) else first.text_content()
        value = clean_text(raw)
        if not value:
            continue
        origin = Origin(origin.rule, value)
        if name == "title":
            article.title = value
        elif name == "publish_time":
            parsed = parse_date(value, compact=True)
            if parsed is None:
                continue
            article.publish_time = parsed
        elif name in ("source", "editor", "author", "contributor"):
            setattr(article, name, _field_value(name, value))
        else:
            continue
        article.provenance[name] = origin


def _field_value(name: str, value: str) -> str | None:
    pairs = [p for p in parse_pairs(value) if p.field == name]
    if pairs:
        value = pairs[0].value
    elif parse_pairs(value):
        value = re.sub(r"^\S+?\s*[:：]\s*", "", value)
    if name in ("editor", "author"):
        return clean_names(value)
    if name == "source":
        return clean_source(value)
    return clean_text(value.strip("()（）【】[] ").removesuffix(labels.CONTRIBUTOR_SUFFIX).strip())


def _select_body(
    article: Article, found: list[html.HtmlElement | str], base_url: str | None
) -> bool:
    lines: list[str] = []
    images: list[Image] = []
    for item in found:
        if isinstance(item, str):
            text = clean_text(item)
            if text:
                lines.append(text)
            continue
        blocks = linearize(item)
        if not blocks:
            continue
        body = extract_body(blocks, (0, len(blocks) - 1), article.title, base_url)
        if body.text:
            lines.append(body.text)
        images.extend(body.images)
    if lines:
        article.body = "\n".join(lines)
        article.images = images
    return bool(lines)
