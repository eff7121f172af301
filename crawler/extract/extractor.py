"""The extraction entry point: selectors where the site gives them, generic rules elsewhere.

A baseline: title from og:title / <h1> / <title>, labelled metadata lines, and the body
as the paragraphs of the text-densest block. The extraction issue replaces the generic
part with accurate modules (metadata, dates, body, cleanup).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin

from lxml import etree, html

from crawler.extract.article import Article, Image
from crawler.extract.decode import decode_html

EXTRACTOR_VERSION = "0.1"
BEIJING = timezone(timedelta(hours=8))
XPATH_PREFIX = "xpath:"

_LABELS = {
    "source": r"来源|來源|稿源|出处|出處",
    "editor": r"责任编辑|責任編輯|责编|責編|编辑|編輯",
    "author": r"作者|记者|記者",
    "publish_time": r"发布时间|發佈時間|發布時間|发布日期|發佈日期|时间|時間|日期",
}
_ANY_LABEL = "|".join(_LABELS.values())
_DATE_RE = re.compile(
    r"(?P<y>(?:19|20)\d{2})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*(?P<H>\d{1,2})[:：时時](?P<M>\d{1,2})(?:[:：分](?P<S>\d{1,2}))?)?"
)
_PINYIN_RE = re.compile(r"\((?:[a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+)\)")
_DROP_TAGS = ("script", "style", "noscript", "iframe", "form", "nav", "header", "footer", "aside")
_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "td",
    "li",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "br",
    "tr",
}
_BOILERPLATE_RE = re.compile(
    r"ICP备|ICP備|公网安备|公網安備|版权所有|版權所有|Copyright|©|打印|关闭窗口|關閉窗口|分享到"
)


def extract(
    html_text: bytes | str,
    url: str | None = None,
    selectors: Mapping[str, str | None] | None = None,
) -> Article:
    """Parse an article page; never raises for a missing field (it is None)."""
    text = decode_html(html_text)[0] if isinstance(html_text, bytes) else html_text
    try:
        root = html.document_fromstring(text or "<html></html>")
    except (etree.ParserError, ValueError):
        return Article()
    for bad in root.xpath("//rt|//rp"):
        bad.drop_tree()
    article = Article()
    article.title = _title(root)
    meta_text = _metadata_text(root)
    for name in ("source", "editor", "author"):
        setattr(article, name, _label_value(meta_text, name))
    article.publish_time = _publish_time(root, meta_text)
    article.contributor = _contributor(root)
    body_el = _body_element(root)
    if body_el is not None:
        article.body, article.images = _body(body_el, url, article.title)
    for name, selector in (selectors or {}).items():
        if selector:
            _apply_selector(article, root, name, selector, url)
    return article


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = _PINYIN_RE.sub("", " ".join(text.replace("\u3000", " ").split()))
    return text or None


def _title(root: html.HtmlElement) -> str | None:
    for xpath in (
        '//meta[@property="og:title"]/@content',
        '//meta[@name="ArticleTitle"]/@content',
        "//h1",
    ):
        for found in root.xpath(xpath):
            value = _clean(found if isinstance(found, str) else found.text_content())
            if value:
                return value
    title = root.findtext(".//title")
    if title:
        return _clean(re.split(r"\s*[_|\-－—]\s*", title.strip())[0])
    return None


def _metadata_text(root: html.HtmlElement) -> str:
    lines = []
    for element in root.iter("p", "div", "span", "td", "li"):
        own = element.text_content()
        if len(own) < 200 and re.search(_ANY_LABEL, own):
            lines.append(" ".join(own.replace("\u3000", " ").split()))
    return "\n".join(lines)


def _label_value(text: str, name: str) -> str | None:
    pattern = rf"(?:{_LABELS[name]})\s*[:：]\s*(.+?)(?=\s+(?:{_ANY_LABEL})\s*[:：]|\s*[【\[(（]|$)"
    match = re.search(pattern, text, re.M)
    if not match:
        return None
    value = _clean(match.group(1))
    if value and name == "editor":
        value = "、".join(value.split())
    return value


def _publish_time(root: html.HtmlElement, meta_text: str) -> str | None:
    candidates = [
        *root.xpath('//meta[@property="article:published_time"]/@content'),
        *root.xpath('//meta[@name="publishdate" or @name="PubDate" or @name="pubdate"]/@content'),
    ]
    match = re.search(rf"(?:{_LABELS['publish_time']})\s*[:：]\s*([^\n]+)", meta_text)
    if match:
        candidates.append(match.group(1))
    for candidate in candidates:
        when = parse_date(str(candidate))
        if when:
            return when
    return None


def parse_date(text: str) -> str | None:
    """The first full date (with time if given) in `text`, ISO 8601 at +08:00."""
    match = _DATE_RE.search(text)
    if not match:
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    try:
        when = datetime(
            parts["y"],
            parts["m"],
            parts["d"],
            parts.get("H", 0),
            parts.get("M", 0),
            parts.get("S", 0),
            tzinfo=BEIJING,
        )
    except ValueError:
        return None
    return when.isoformat()


def _contributor(root: html.HtmlElement) -> str | None:
    for element in root.iter("p", "div"):
        text = " ".join(element.text_content().split())
        match = re.fullmatch(r"[（(]\s*(.+?)\s*供稿\s*[）)]", text)
        if match:
            return _clean(match.group(1))
    return None


def _body_element(root: html.HtmlElement) -> html.HtmlElement | None:
    for tag in _DROP_TAGS:
        for element in root.iter(tag):
            if element.getparent() is not None:
                element.drop_tree()
    best, best_score = None, 0.0
    for element in root.iter("div", "td", "article", "section"):
        paragraphs = element.xpath("./p|./div/p|./font/p|./span/p")
        text_len = sum(len(p.text_content().strip()) for p in paragraphs)
        links = sum(len(a.text_content()) for a in element.iter("a"))
        score = text_len - 2 * links
        if score > best_score:
            best, best_score = element, score
    return best


def _body(element: html.HtmlElement, url: str | None, title: str | None) -> tuple[str, list[Image]]:
    lines: list[str] = []
    images: list[Image] = []
    for node in element.iter("p", "img"):
        if node.tag == "img":
            src = node.get("src")
            if src:
                images.append(Image(src=urljoin(url or "", src)))
            continue
        text = _clean(node.text_content())
        if (
            not text
            or text == title
            or (re.search(_ANY_LABEL + r"\s*[:：]", text) and len(text) < 80)
        ):
            continue
        if _BOILERPLATE_RE.search(text) or re.fullmatch(r"[（(].+供稿[）)]", text):
            continue
        if (
            images
            and images[-1].caption is None
            and node.find(".//img") is None
            and len(text) < 60
            and not lines[-1:]
        ):
            images[-1].caption = text
            continue
        lines.append(text)
    return "\n".join(lines), images


def _apply_selector(
    article: Article, root: html.HtmlElement, name: str, selector: str, url: str | None
) -> None:
    try:
        if selector.startswith(XPATH_PREFIX):
            found = root.xpath(selector[len(XPATH_PREFIX) :])
        else:
            found = root.cssselect(selector.removeprefix("css:"))
    except (etree.XPathError, ValueError):
        return
    if not isinstance(found, list) or not found:
        return
    first = found[0]
    if name == "body" and isinstance(first, html.HtmlElement):
        article.body, article.images = _body(first, url, article.title)
        return
    value = _clean(first if isinstance(first, str) else first.text_content())
    if name == "publish_time":
        article.publish_time = parse_date(value or "") or article.publish_time
    elif name in ("title", "source", "editor", "author", "contributor"):
        setattr(article, name, _label_strip(value))


def _label_strip(value: str | None) -> str | None:
    if value is None:
        return None
    return _clean(re.sub(rf"^(?:{_ANY_LABEL})\s*[:：]\s*", "", value))
