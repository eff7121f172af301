"""The article text: the element whose lines are prose, then its lines minus everything else.

Finding the text: each line gets a weight — positive for prose (its characters outside
links, more for sentence punctuation), negative for link lists and short bare labels —
and every element sums the weights of the lines inside it. The element with the highest
sum is the article's container: it has gathered all the paragraphs, and growing further
only adds menus, sidebars and footers that cost more than they bring.

Inside the container, a line is dropped when it is a link list, a metadata line (labels,
a date), a toolbar (字号/打印/关闭窗口/分享), a breadcrumb, a footer (版权所有, ICP备), the
headline again, a photo caption (it goes to `images[].caption`) or a contributor credit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from lxml import html

from crawler.extract import labels
from crawler.extract.article import Image, Origin
from crawler.extract.blocks import HEADING_TAGS, Block
from crawler.extract.dates import WEEKDAY, find_dates
from crawler.extract.metadata import contributor_of_line, is_breadcrumb, is_metadata_line
from crawler.extract.people import is_credit_line

# Sentence punctuation; an ASCII colon is left out, it is mostly a clock (13:35).
_SENTENCE_PUNCT = re.compile(r"[，。！？；、,!?;：“”]")
_CLAUSE_PUNCT = re.compile(r"[，。！？；,!?;]")
_FINAL_PUNCT = re.compile(r"[。！？!?…”\"』」]$")
_TOOLBAR = re.compile(labels.alternation(labels.TOOLBAR_WORDS))
# Matched in lower case, not with re.I: an alternation under re.I loses the regex engine's
# first-character scan and took 52 us on 600 characters of prose, against 4.6 lowered
# (the body's lines are weighed with it, line_weight: 4 % of a crawl process's time).
_FOOTER = re.compile(labels.alternation(w.lower() for w in labels.FOOTER_WORDS))
_CAPTION_WORDS = re.compile(
    rf"^(?:{labels.alternation(labels.CAPTION_LEADS)})"
    rf"|(?:{labels.alternation(labels.CAPTION_CREDITS)})\s*[)）]?$"
    rf"|{labels.alternation(labels.CAPTION_SOURCES)}"
)
_ENUMERATED = re.compile(
    r"^(?:[一二三四五六七八九十]+[、.．]|[（(][一二三四五六七八九十\d]+[)）]|\d{1,2}\s|\d{1,2}[、.．]|第[一二三四五六七八九十\d]+)"
)
# Arrows and bullets that point from a caption to its photo (hk-trad-03: ▲10月5日，…).
_CAPTION_LEAD = re.compile(r"^[▲△▼▽↑↓←→●◆■□☆★◇○]+\s*")
_CENTERED = re.compile(r"text-align\s*:\s*center", re.I)
_CAPTION_CLASS = re.compile(r"caption|pic|img|photo|image|figure|desc|tuzhu|note", re.I)
_PLACEHOLDER_SRC = re.compile(
    r"^data:|blank\.|spacer|loading|lazy|placeholder|grey\.gif|pixel|1x1", re.I
)
_ICON_SRC = re.compile(
    r"icon|logo|qrcode|qr_code|ewm|erweima|share|weixin\.png|weibo\.png|btn|button|arrow|dot\.gif|bg\.",
    re.I,
)
_IMAGE_ATTRS = (
    "data-src",
    "data-original",
    "data-original-src",
    "data-lazy-src",
    "data-url",
    "src",
)

#: Weight of a line of link text (negative) against a line of prose: a sidebar of ten
#: 15-character headlines (-75) outweighs a 60-character footer sentence, so the
#: container stops growing at the article's edge.
_LINK_PENALTY = 0.5
#: Short lines without punctuation (menu entries, labels, buttons) cost a little each.
_BARE_LINE_PENALTY = 3.0
#: A caption is short: the longest in the corpus is 32 characters (chinanews-01, with
#: its photographer credit); prose after a photo is usually over 100.
_MAX_CAPTION = 120


@dataclass
class Body:
    text: str = ""
    images: list[Image] = field(default_factory=list)
    start: int | None = None  # index of the first line of text
    end: int | None = None  # index of the last line of text
    contributor: tuple[str, str] | None = None  # (unit, the credit line)
    origin: Origin | None = None


def _is_footer(text: str) -> bool:
    """Holds a footer word (版权所有, ICP备, Copyright...), in any case."""
    return _FOOTER.search(text.lower()) is not None


def line_weight(block: Block) -> float:
    if block.is_image:
        return 0.0
    n = block.chars
    if block.link_density >= 0.5:
        return -_LINK_PENALTY * n - 1
    punct = len(_SENTENCE_PUNCT.findall(block.text))
    prose = n - block.link_chars
    if punct == 0:
        return -_BARE_LINE_PENALTY if n < 20 else prose * 0.2
    if n < 200 and _is_footer(block.text):
        return -_BARE_LINE_PENALTY
    return prose * (1.0 + min(punct, 10) / 10)


def is_prose_line(block: Block) -> bool:
    """A line that reads as a sentence of the article, not a headline or a byline."""
    if block.is_image or block.chars < 15 or block.link_density >= 0.5:
        return False
    if not _CLAUSE_PUNCT.search(block.text):
        return False
    if not (_FINAL_PUNCT.search(block.text) or block.chars >= 40):
        return False
    return not is_metadata_line(block.text) and not _is_date_line(block.text)


def find_container(blocks: Sequence[Block]) -> tuple[int, int] | None:
    """(first, last) block index of the element with the most prose; None for no prose."""
    score: dict[html.HtmlElement, float] = {}
    first: dict[html.HtmlElement, int] = {}
    last: dict[html.HtmlElement, int] = {}
    for block in blocks:
        for anc in block.ancestors:
            if anc not in first:
                first[anc] = block.index
                score[anc] = 0.0
            last[anc] = block.index
    teasers = _teaser_items(blocks, first, last)
    for block in blocks:
        weight = line_weight(block)
        if weight > 0 and teasers and any(a in teasers for a in block.ancestors[:5]):
            weight = -_BARE_LINE_PENALTY
        for anc in block.ancestors:
            score[anc] += weight
    best: html.HtmlElement | None = None
    best_score = 0.0
    # Outer elements come before the inner ones that start on the same line; among equal
    # scores the inner element wins (>=): it is the tighter container.
    for el in sorted(first, key=lambda e: (first[e], -last[e])):
        if (
            score[el] >= best_score
            and score[el] > 0
            and (best is None or score[el] > best_score or _inside(first, last, el, best))
        ):
            best, best_score = el, score[el]
    if best is None:
        return None
    return first[best], last[best]


def extend_span(blocks: Sequence[Block], span: tuple[int, int] | None) -> tuple[int, int] | None:
    """The container's span, grown over the paragraphs that follow it outside it.

    Text pasted from a word processor brings its own `</div>`s: the CMS's text element
    closes early and the last paragraphs of a long article land after it, beside the
    share bar and the related links, where the container does not reach. Lines right
    after the span that read as prose (or are photos, or short enumerated headings
    followed by prose) are the same article; the first line that is none of these ends
    it (a related-links heading, a link list, a byline, a footer)."""
    if span is None:
        return None
    first, last = span
    i = last + 1
    while i < len(blocks):
        block = blocks[i]
        if block.is_image:
            i += 1
            continue
        if not is_prose_line(block):
            heading = _ENUMERATED.match(block.text) and block.chars <= 40
            if not (heading and i + 1 < len(blocks) and is_prose_line(blocks[i + 1])):
                break
        if _is_footer(block.text) and not _is_sentence(block.text):
            break
        last = i
        i += 1
    return first, last


#: Tags whose repetition is the article's own structure, not a list of links elsewhere.
_NOT_ITEM_TAGS = frozenset({"p", "br", "span", "font", "body", "html", "tbody"})


def _teaser_items(
    blocks: Sequence[Block],
    first: dict[html.HtmlElement, int],
    last: dict[html.HtmlElement, int],
) -> set[html.HtmlElement]:
    """Items of a list of teasers: a headline link with a summary under it, repeated.

    A sidebar of "理论研究" boxes (a link, then a 60-character summary, three times) has
    more prose than a two-paragraph article; its summaries must not count as text. An
    element is such an item when it holds a link line and at most four lines in all,
    and at least two siblings share its tag and class (the repetition is what tells a
    list from an article; the size keeps page columns, which repeat too, out).
    """
    items: set[html.HtmlElement] = set()
    siblings: dict[html.HtmlElement, Counter[tuple[Any, str | None]]] = {}
    for block in blocks:
        if block.is_image or block.link_density < 0.5 or block.chars < 6:
            continue
        for anc in block.ancestors[:4]:
            parent = anc.getparent()
            if parent is None:
                break
            if anc.tag in _NOT_ITEM_TAGS:
                continue
            if last[anc] - first[anc] >= 4:
                break
            counts = siblings.get(parent)
            if counts is None:
                # Counted once per parent: a sidebar of 2,000 <li> must stay linear.
                counts = Counter((sib.tag, sib.get("class")) for sib in parent)
                siblings[parent] = counts
            if counts[(anc.tag, anc.get("class"))] >= 3:
                items.add(anc)
                break
    return items


def _inside(
    first: dict[html.HtmlElement, int],
    last: dict[html.HtmlElement, int],
    inner: html.HtmlElement,
    outer: html.HtmlElement,
) -> bool:
    return first[outer] <= first[inner] and last[inner] <= last[outer]


def extract_body(
    blocks: Sequence[Block],
    span: tuple[int, int] | None,
    title: str | None,
    base_url: str | None,
    title_index: int | None = None,
    text_start: int | None = None,
) -> Body:
    """Lines and images of the article from the container's span of blocks.

    When the container holds the headline too, the lines from its top down to the
    headline, and the short unpunctuated lines between the headline and the first
    paragraph, are the article's head: kicker, sub-headline, byline, dateline bar
    (cppcc's <h4 class="ft">, WeChat's `原创 常州统战 2024-12-18 13:35 发表于江苏`).
    """
    body = Body()
    if span is None:
        return body
    lines: list[Block] = []
    images: list[Image] = []
    start, end = span
    has_head = title_index is not None and start <= title_index <= end
    i = start
    while i <= end:
        block = blocks[i]
        i += 1
        if (
            has_head
            and not block.is_image
            and text_start is not None
            and title_index is not None
            and block.index < text_start
            and (block.index <= title_index or _is_head_line(block.text))
        ):
            continue
        if block.is_image:
            image = _image(block, base_url)
            if image is None:
                continue
            images.append(image)
            caption_block = _caption_after(blocks, block, i, end)
            if caption_block is not None:
                image.caption = _CAPTION_LEAD.sub("", caption_block.text) or None
                i = caption_block.index + 1
            continue
        verdict = _classify(block, title, bool(lines))
        if verdict == "keep" and lines and _heads_a_link_list(blocks, block, end):
            verdict = "stop"
        if verdict == "stop":
            break
        if verdict == "contributor":
            unit = contributor_of_line(block.text)
            if body.contributor is None and unit:
                body.contributor = (unit, block.text)
            continue
        if verdict == "keep":
            lines.append(block)
    if lines:
        body.start, body.end = lines[0].index, lines[-1].index
        body.origin = Origin("container", _describe(blocks[start].ancestors, blocks[end].ancestors))
    body.text = "\n".join(b.text for b in lines)
    body.images = images
    return body


def _classify(block: Block, title: str | None, started: bool) -> str:
    """keep | drop | stop | contributor for one line inside the container."""
    text = block.text
    if block.link_density >= 0.5:
        return "drop"
    if contributor_of_line(text):
        return "contributor"
    if title and (text == title or (len(text) <= len(title) + 2 and title in text)):
        return "drop"
    short = len(text) <= 60
    if is_metadata_line(text):
        if started and re.match(rf"^[【\[(（]?\s*(?:{labels.alternation(labels.EDITOR)})", text):
            return "stop"
        return "drop"
    if is_breadcrumb(text):
        return "drop"
    if is_credit_line(text):
        return "drop"  # （记者 张三）: metadata.py reads the author from it
    if started and _FURNITURE_HEADING.match(text):
        return "stop"
    if short and _TOOLBAR.search(text) and _is_toolbar(text):
        return "drop"
    if len(text) <= 200 and _NOTICE.match(text):
        return "drop"
    if len(text) <= 200 and _is_footer(text) and not _is_prose(text) and not _is_sentence(text):
        return "drop"
    if _is_date_line(text):
        return "drop"
    if text.startswith(("——", "--")) and not started:
        return "drop"
    if block.owner.tag in HEADING_TAGS and not started and title and _similar(text, title):
        return "drop"
    return "keep"


# The heading of what follows an article: related links, comments, recommendations.
_FURNITURE_HEADING = re.compile(
    rf"^[【\[]?(?:{labels.alternation(labels.FURNITURE_HEADINGS)})[^，。！？,]{{0,8}}$"
)
_NOTICE = re.compile(rf"^\S{{0,6}}(?:{labels.alternation(labels.NOTICE_WORDS)})\s*[:：]")
_SHARE_TARGETS = re.compile(labels.alternation(labels.SHARE_TARGETS))


def _is_head_line(text: str) -> bool:
    return len(text) <= 60 and not _FINAL_PUNCT.search(text)


def _heads_a_link_list(blocks: Sequence[Block], block: Block, end: int) -> bool:
    """A short bare line followed by links is the heading of a related-links box (更多新闻)."""
    if len(block.text) > 12 or _SENTENCE_PUNCT.search(block.text):
        return False
    following = [
        b for b in blocks[block.index + 1 : min(end, block.index + 4) + 1] if not b.is_image
    ]
    return bool(following) and all(b.link_density >= 0.5 for b in following)


def _is_toolbar(text: str) -> bool:
    """A bar of tool words: little is left once the words and brackets are removed."""
    rest = _TOOLBAR.sub("", text)
    rest = _SHARE_TARGETS.sub("", re.sub(r"[\s【】\[\]()（）|｜:：/·•>»\-A+\u2212]+", "", rest))
    return len(rest) <= max(4, len(text) // 4)


def _is_sentence(text: str) -> bool:
    """A sentence of the article (主办单位指出，…。), not a footer line that names one."""
    return bool(_FINAL_PUNCT.search(text)) and len(_CLAUSE_PUNCT.findall(text)) >= 2


def _is_prose(text: str) -> bool:
    return len(_SENTENCE_PUNCT.findall(text)) >= 3 and len(text) > 80


_DATE_LINE_REST = re.compile(rf"[\s|｜/:：()（）\[\]【】]|{WEEKDAY}")


def _is_date_line(text: str) -> bool:
    if len(text) > 40:  # (before find_dates: it scanned every line of the text, 9 % of extraction)
        return False
    dates = find_dates(text)
    if not dates:
        return False
    rest = text[: dates[0].start] + text[dates[0].end :]
    return len(_DATE_LINE_REST.sub("", rest)) <= 2


def _describe(first: list[html.HtmlElement], last: list[html.HtmlElement]) -> str:
    """The container as a CSS-like name (`div.TRS_Editor`): the innermost element that
    holds both the first and the last line of the span."""
    for el in first:
        if any(el is other for other in last):
            name = el.tag if isinstance(el.tag, str) else "?"
            cls = (el.get("class") or "").split()
            ident = el.get("id")
            return name + (f"#{ident}" if ident else "") + "".join(f".{c}" for c in cls[:2])
    return "body"


def _similar(a: str, b: str) -> bool:
    return a in b or b in a


def _image(block: Block, base_url: str | None) -> Image | None:
    img = block.image
    if img is None:
        return None
    src = None
    for attr in _IMAGE_ATTRS:
        value = (img.get(attr) or "").strip()
        if value and not _PLACEHOLDER_SRC.search(value):
            src = value
            break
    if not src or _ICON_SRC.search(src.rsplit("/", 1)[-1]):
        return None
    for attr in ("width", "height"):
        size = re.match(r"\s*(\d+)", img.get(attr) or "")
        if size and int(size.group(1)) < 50:
            return None
    return Image(src=urljoin(base_url or "", src))


def _caption_after(blocks: Sequence[Block], image: Block, i: int, end: int) -> Block | None:
    """The line right after an image when it reads as that image's caption."""
    if i > end:
        return None
    block = blocks[i]
    if block.is_image or block.link_density >= 0.5 or len(block.text) > _MAX_CAPTION:
        return None
    text = block.text
    if is_metadata_line(text) or contributor_of_line(text):
        return None
    score = 0.0
    owners = [block.owner, *block.ancestors[1:3]]
    if any(o.tag in ("figcaption", "caption") for o in owners):
        score += 4
    if block.owner is image.owner:
        score += 2
    elif (
        image.owner in block.ancestors[1:4]
        or block.owner in image.ancestors[1:4]
        or _adjacent(image.owner, block.owner)
    ):
        score += 1
    if any(_is_centered(o) for o in owners):
        score += 2
    if any(_CAPTION_CLASS.search(f"{o.get('class') or ''} {o.get('id') or ''}") for o in owners):
        score += 1
    if _CAPTION_WORDS.search(text):
        score += 3
    if len(text) <= 40:
        score += 1
    if not _FINAL_PUNCT.search(text):
        score += 1
    if _ENUMERATED.match(text):
        score -= 3
    if len(_SENTENCE_PUNCT.findall(text)) >= 4:
        score -= 2
    return block if score >= 3 else None


def _adjacent(a: html.HtmlElement, b: html.HtmlElement) -> bool:
    nxt = a.getnext()
    return nxt is b or (nxt is not None and b in nxt.iterdescendants())


def _is_centered(el: html.HtmlElement) -> bool:
    return (
        el.tag == "center"
        or (el.get("align") or "").lower() == "center"
        or bool(_CENTERED.search(el.get("style") or ""))
    )
