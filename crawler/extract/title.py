"""The headline: the line on the page that the <title>/og:title agree with, near the text.

`<title>` alone carries the site's suffix (`_中央统战部网站`, `--统一战线新闻网--人民网`) and
a heading alone may be the site logo or a kicker/sub-headline (cppcc's <h4 class="yt">
over the <h3 class="title">, zytzb's `——温州市委统战部2022年工作综述`). So every short line
above the text is scored: agreement with <title> and the meta titles, heading tag, a
"title" class, closeness to the text. The page's own wording wins; the <title> with its
suffix cut is the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import islice

from lxml import html

from crawler.extract import labels
from crawler.extract.article import Origin
from crawler.extract.blocks import EDGE, HEADING_TAGS, Block
from crawler.extract.cleanup import clean_text
from crawler.extract.dates import find_dates
from crawler.extract.metadata import is_breadcrumb, is_metadata_line

# Separators between a headline and the site name in <title>: 标题_网站, 标题 - 网站,
# 标题--频道--人民网, 标题|网站. A bare "-" splits too (标题-新华网), but only as a last resort.
# `——` is how a headline opens its subtitle (标题——副标题): it separates a site name only
# when what follows reads as one (hard-title-03).
_TITLE_SEPARATORS = re.compile(r"\s*(?:_|\||｜|--+|\s[-–—－]\s|\s::\s|::)\s*")
_DASH_SITE = re.compile(
    rf"\s*——\s*(?P<site>[^—]{{2,16}}(?:{labels.alternation(labels.SITE_NAME_ENDS)}))\s*$"
)
# A <title> that greets instead of naming the page: 欢迎访问某某统战网.
_GREETING = re.compile(rf"^(?:{labels.alternation(labels.GREETINGS)})")
# A badge glued to the front of a headline: 原创, 【原创】, [独家] (hard-title-02).
_BADGE = re.compile(
    rf"^(?:[【\[](?:{labels.alternation(labels.HEADLINE_BADGES)})[】\]]"
    rf"|(?:{labels.alternation(labels.HEADLINE_BADGES)})(?=[\s{EDGE}]))[\s{EDGE}]*"
)
_BARE_DASH = re.compile(r"[-－]")
_TITLE_CLASS = re.compile(r"title|tit\b|tit[_-]|biaoti|headline|heading|^bt$|_bt\b", re.I)
_NOT_TITLE_CLASS = re.compile(r"sub|ft\b|yt\b|pre|kicker|site|logo|nav|menu", re.I)
_SENTENCE_END = re.compile(r"[。！？!?]$")
_TOOLBAR = re.compile(labels.alternation(labels.TOOLBAR_WORDS))

#: Score a line needs to be taken as the headline. Agreement with <title> is worth 3-5
#: (5 for its first part), a meta title 6, <h1> 3, <h2> 2, a "title" class 1.5, being
#: within 12 lines above the text 1. Set so that an <h1> by the text passes on its own
#: (3 + 1), while a <h2>, a bold line or a title-classed box heading needs <title> or a
#: meta title to agree; on the corpus every headline scores 7 or more.
_ACCEPT = 3.0
#: ... or this much when it sits at most four lines above the text: an emphasised line
#: (bold, big font, heading tag) next to the text, on a page whose <title> is the site.
_ACCEPT_NEAR = 2.0
_BIG_FONT = re.compile(
    r"font-size\s*:\s*(?:(?:1[89]|[2-9]\d)(?:\.\d+)?px|(?:1[4-9]|[2-9]\d)(?:\.\d+)?pt|x+-large|large)"
    r"|font-weight\s*:\s*(?:bold|[6-9]00)",
    re.I,
)


def extract_title(
    blocks: Sequence[Block],
    page_title: str | None,
    meta_titles: Sequence[str],
    site_names: Sequence[str],
    text_start: int | None,
) -> tuple[str | None, int | None, Origin | None]:
    """(headline, index of its block, where it came from) — the block index is None when
    no line matched."""
    if page_title and _GREETING.match(page_title):
        page_title = None  # the site's greeting says nothing about the article
    meta_titles = [cut_site_name(m, site_names) for m in meta_titles]
    limit = text_start if text_start is not None else len(blocks)
    best: tuple[float, int, str, Block] | None = None
    previous: Block | None = None
    seen_owners: set[int] = set()
    for block in blocks[: min(len(blocks), limit + 3)]:
        if block.is_image or not 2 <= block.chars <= 150:
            continue
        if is_breadcrumb(block.text) or _GREETING.match(block.text):
            continue
        # Menu entries and link lists: a headline is rarely a link, unless in a heading.
        if block.link_density >= 0.5 and not any(
            a.tag in HEADING_TAGS for a in block.ancestors[:3]
        ):
            continue
        variants = [(block, text, owner, False) for text, owner in _variants(block)]
        if previous is not None and block.text.startswith(("——", "—")):
            # 标题<br>——副标题 in one element, or as <title> writes it, is one headline
            # (hard-title-03); a `——` line in an element of its own is a sub-headline.
            whole = previous.text + block.text
            joined = previous.owner is block.owner or bool(page_title and whole in page_title)
            if joined:
                variants.append((previous, whole, previous.owner, True))
        previous = block
        for at, text, owner, whole_heading in variants:
            if id(owner) in seen_owners and text != at.text and at is block:
                continue
            score = _score(at, owner, text, page_title, meta_titles, site_names, text_start)
            if (
                best is None
                or score > best[0]
                or (score == best[0] and at.index > best[1])
                # the whole heading over a part of it: 标题<br>——副标题 is one headline
                or (
                    score == best[0]
                    and at.index == best[1]
                    and len(text) > len(best[2])
                    and (whole_heading or text in (page_title or ""))
                )
            ):
                best = (score, at.index, text, at)
        seen_owners.add(id(block.owner))
    near = best is not None and text_start is not None and 0 < text_start - best[1] <= 4
    # No agreement with <title> (which may hold only the site's name): a line set off as
    # a heading right above the text still is the headline.
    if best is not None and (best[0] >= _ACCEPT or (near and best[0] >= _ACCEPT_NEAR)):
        return best[2], best[1], Origin(_rule_of(best[3]), best[3].text)
    for meta in meta_titles:
        if meta:
            return meta, None, Origin("meta", meta)
    above = _line_above_the_byline(blocks, text_start)
    if above is not None:
        return (
            _unbadged(above.raw, above.text),
            above.index,
            Origin("line-above-byline", above.text),
        )
    if page_title:
        headline = strip_site_name(page_title)
        if headline and headline not in site_names:
            return headline, None, Origin("title-tag", page_title)
    return None, None, None


def _rule_of(block: Block) -> str:
    for el in block.ancestors[:4]:
        if el.tag in HEADING_TAGS:
            return f"heading:{el.tag}"
    return "line"


def cut_site_name(title: str, site_names: Sequence[str]) -> str:
    """`标题 | 频道 | 网站` -> `标题` when the parts after the first are not the headline's."""
    if not _TITLE_SEPARATORS.search(title) and not _DASH_SITE.search(title):
        return title
    return strip_site_name(title) or title


def _unbadged(raw: str, text: str) -> str:
    """The line without a badge (原创, 独家) set before it in an element or brackets."""
    raw = raw.strip(" \t\n" + EDGE)
    if not _BADGE.match(raw):
        return text
    rest = clean_text(_BADGE.sub("", raw, count=1).replace(EDGE, ""))
    return rest if rest and len(rest) >= 4 else text


def _line_above_the_byline(blocks: Sequence[Block], text_start: int | None) -> Block | None:
    """The last resort: the short line right above the byline/toolbar lines over the text,
    or right above the text itself when the page has no byline there.

    Used when nothing names the headline — no <title> agreement, no meta title, no
    heading tag (a bare table layout whose <title> greets or names the site,
    hard-title-01): a headline sits directly over its byline or its text."""
    if text_start is None:
        return None
    passed_byline = False
    for block in reversed(blocks[max(0, text_start - 5) : text_start]):
        if block.is_image:
            continue
        text = block.text
        if is_metadata_line(text) or find_dates(text) or _TOOLBAR.search(text):
            passed_byline = True
            continue
        if is_breadcrumb(text):
            return None
        if (
            (passed_byline or block.index == text_start - 1 or _is_emphasized(block.owner))
            and 4 <= block.chars <= 60
            and block.link_density < 0.5
            and not _SENTENCE_END.search(text)
        ):
            return block
        return None
    return None


def strip_site_name(page_title: str) -> str | None:
    """`标题_网站名` -> `标题`: the first part of <title> before a site-name separator."""
    page_title = _DASH_SITE.sub("", page_title)
    parts = [p for p in _TITLE_SEPARATORS.split(page_title) if p]
    if len(parts) == 1:
        dashed = [p for p in _BARE_DASH.split(page_title) if p]
        if len(dashed) > 1 and len(dashed[-1]) <= 12:
            parts = ["-".join(dashed[:-1]), dashed[-1]]
    return clean_text(parts[0]) if parts else None


def _variants(block: Block) -> list[tuple[str, html.HtmlElement]]:
    """The line itself (without a badge), and the whole heading it belongs to (an <h1>
    split by <br>)."""
    found = [(_unbadged(block.raw, block.text), block.owner)]
    for anc in block.ancestors[:3]:
        if anc.tag in HEADING_TAGS:
            whole = clean_text(anc.text_content())
            if whole and whole != block.text and len(whole) <= 150:
                found.append((whole, anc))
            joined = clean_text(re.sub(r"\s+", "", anc.text_content()))
            if joined and joined not in (whole, block.text) and len(joined) <= 150:
                found.append((joined, anc))
            break
    return found


def _score(
    block: Block,
    owner: html.HtmlElement,
    text: str,
    page_title: str | None,
    meta_titles: Sequence[str],
    site_names: Sequence[str],
    text_start: int | None,
) -> float:
    score = 0.0
    if any(text == meta for meta in meta_titles):
        score += 6
    elif any(meta and len(text) >= 4 and (text in meta or meta in text) for meta in meta_titles):
        score += 2
    if page_title:
        score += _agreement(text, page_title)
    tags = [owner.tag, *(a.tag for a in block.ancestors[:3])]
    for tag, points in (("h1", 3.0), ("h2", 2.0), ("h3", 1.5), ("h4", 1.0), ("h5", 1.0)):
        if tag in tags:
            score += points
            break
    else:
        if _is_emphasized(owner):
            score += 1
    classes = " ".join(
        f"{a.get('class') or ''} {a.get('id') or ''}" for a in [owner, *block.ancestors[1:3]]
    )
    if _TITLE_CLASS.search(classes) and not _NOT_TITLE_CLASS.search(owner.get("class") or ""):
        score += 1.5
    if text_start is not None:
        distance = text_start - block.index
        if distance < 0:
            score -= 2
        elif distance <= 12:
            score += 1
        elif distance > 40:
            score -= 1
    if block.link_density > 0.5:
        score -= 1.5
    if any(text == name for name in site_names):
        score -= 6
    if _SENTENCE_END.search(text) and len(text) > 40:
        score -= 2
    if text.startswith(("——", "—", "--")):
        score -= 4
    return score


def _agreement(text: str, page_title: str) -> float:
    """How strongly <title> vouches for a line: equal, its first part, or inside it."""
    if text == page_title:
        return 5
    if len(text) < 4:
        return 0
    if page_title.startswith(text):
        rest = page_title[len(text) :].lstrip()
        if not rest or _TITLE_SEPARATORS.match(rest) or rest[0] in "-－_|｜—":
            return 5
        return 2
    if page_title.endswith(text):
        return 4
    if text in page_title:
        return 3
    cut = page_title.rstrip(".…")
    if cut != page_title and len(cut) >= 4 and text.startswith(cut):
        return 3  # a <title> cut short with an ellipsis
    return 0


def _is_emphasized(owner: html.HtmlElement) -> bool:
    """Bold or big: <b>/<strong>, <font size=4+>, a font-size or font-weight style."""
    for el in [owner, *islice(owner.iterdescendants(), 6)]:
        if el.tag in ("b", "strong"):
            return True
        if el.tag == "font" and re.match(r"\s*\+?[4-7]", el.get("size") or ""):
            return True
        style = el.get("style")
        if style and _BIG_FONT.search(style):
            return True
    return False
