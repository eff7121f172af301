"""Source, editor, author, contributor and publish time: from labelled lines, then <meta>.

A metadata line is short and made of `label：value` pairs (labels from labels.py), several
to a line, with full- or half-width colons, spaces or nothing between the pairs:
`发布日期：2024-02-28 13:40信息来源：市委统战部浏览次数：2733` (govcn). A value ends where
the next label starts, at a bracket or bar, or at a wide gap. Which line counts is decided
by where it sits: lines between the headline and the text first, then metadata lines in
and just after the text, and only then <meta> tags, JSON-LD and script variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property, lru_cache
from itertools import islice
from typing import Any

from lxml import html

from crawler.extract import labels
from crawler.extract.article import Origin
from crawler.extract.blocks import EDGE, Block
from crawler.extract.cleanup import clean_text, normalize_space
from crawler.extract.dates import (
    WEEKDAY,
    FoundDate,
    find_dates,
    from_timestamp,
    may_hold_a_time,
)
from crawler.extract.people import (
    NAME_SPLIT,
    clean_authors,
    clean_names,
    closing_credit,
    credit_names,
    dateline_credit,
    is_person,
    unpad,
)

# Lines with no digit (and no 〇) hold no date: most lines skip the date patterns.
_MAY_HOLD_A_DATE = re.compile(r"[\d〇○]")

_COLON = f"[{labels.COLONS}]"
_FIELD_OF: dict[str, str] = {}
for _field, _words in labels.FIELD_LABELS.items():
    for _word in _words:
        _FIELD_OF.setdefault(_word, _field)
for _word in labels.OTHER:
    _FIELD_OF.setdefault(_word, "other")

# Labels are found from their colon backwards (a set lookup of the longest label that
# ends there), not with one regex of 200 alternatives: that made parse_pairs half the
# extraction time.
_LABEL_SET = frozenset(labels.ALL_LABELS)
_LABEL_MAX = max(map(len, _LABEL_SET))
_COLON_AFTER = re.compile(rf"\s*{_COLON}\s*|(?<=[{''.join(labels.SLASH_LABELS)}])\s*[/／]\s*")
# Labels that may stand without a colon when a space follows: 记者 郑卫国, 来源 人民日报.
_BARE_SET = frozenset(
    labels.AUTHOR_BARE + labels.SOURCE + labels.EDITOR + labels.PUBLISH_TIME_PRIMARY
)
_BARE_MAX = max(map(len, _BARE_SET))
_LABEL_LAST_CHARS = frozenset(w[-1] for w in _LABEL_SET)
_BARE_LAST_CHARS = frozenset(w[-1] for w in _BARE_SET)
_GAP = re.compile(r"\s+(?=\S)")
# A one-character label (文, 图), and any label without a colon, must start a segment:
# else 全文：/ 英文： would be labels.
_SEGMENT_BREAKS = frozenset(f" \t\n|｜【[(（/,，;；{EDGE}")
_HAS_LABEL_HINT = re.compile(rf"{_COLON}|[/／]|\s")
# A value ends at a bar, an opening bracket, a closing 】/], or a wide gap.
_VALUE_END = re.compile(r" {2,}|\u3000|[|｜【\[\]】]|\s[/／]\s")
_HARD_END = re.compile(r"[|｜【\[\]】]|\s[/／]\s")
_NAME_SPLIT = NAME_SPLIT
_TRAILING_JUNK = re.compile(r"[\s,，。;；:：、|｜]+$")
_LEADING_JUNK = re.compile(r"^[\s,，;；:：、|｜)）\]】]+")
_BRACKETS = {"(": ")", "（": "）", "[": "]", "【": "】", "〔": "〕"}
_CONTRIBUTOR_LINE = re.compile(
    rf"^[(（【\[]?\s*(?P<who>[^()（）]{{2,40}}?)\s*{labels.CONTRIBUTOR_SUFFIX}\s*[)）】\]]?$"
)
_TOOLBAR = re.compile(labels.alternation(labels.TOOLBAR_WORDS))

#: A line longer than this is prose even if a label appears in it. The longest metadata
#: line in the corpus is 58 characters (gsl-02: four pairs and bars); twice that leaves
#: room for long unit names, while a paragraph of prose is rarely this short.
MAX_META_LINE = 120


@dataclass(frozen=True)
class Pair:
    """One `label：value` found in a line."""

    field: str  # source | publish_time | editor | author | contributor | other
    label: str
    value: str
    start: int
    end: int  # where the value ends in the line: text after it is not this pair's


def _label_ending_at(
    text: str, end: int, words: frozenset[str], longest: int, bare: bool
) -> str | None:
    """The longest label in `words` that ends at `end` (and starts a segment if it must)."""
    for size in range(min(longest, end), 0, -1):
        word = text[end - size : end]
        if word in words:
            at_start = end - size == 0 or text[end - size - 1] in _SEGMENT_BREAKS
            if (size > 1 and not bare) or at_start:
                return word
    return None


def forget_lines() -> None:
    """Drop the memo of parsed lines; extract() starts every page with an empty one, so a
    page's speed never depends on the pages before it (bench/extract.py measures that)."""
    _parse_pairs.cache_clear()


def parse_pairs(text: str) -> list[Pair]:
    """The `label：value` pairs of one metadata line, in order."""
    return list(_parse_pairs(text)) if _HAS_LABEL_HINT.search(text) else []


#: How far into a 时间 label's region its date may reach: it starts within 3 characters, and
#: the longest a date is written (spaced digits, seconds, a zone) is under 50.
_DATE_REACH = 80


@lru_cache(maxsize=4096)
def _parse_pairs(text: str) -> tuple[Pair, ...]:
    marks: list[tuple[int, int, str]] = []
    for match in _COLON_AFTER.finditer(text):
        at = match.start()
        if not at or text[at - 1] not in _LABEL_LAST_CHARS:
            continue
        label = _label_ending_at(text, at, _LABEL_SET, _LABEL_MAX, bare=False)
        if label:
            marks.append((at - len(label), match.end(), label))
    for match in _GAP.finditer(text):
        at = match.start()
        if not at or text[at - 1] not in _BARE_LAST_CHARS:
            continue
        if any(s <= at < e for s, e, _ in marks):
            continue
        label = _label_ending_at(text, at, _BARE_SET, _BARE_MAX, bare=True)
        if label:
            marks.append((match.start() - len(label), match.end(), label))
    marks.sort()
    pairs: list[Pair] = []
    for i, (start, end, label) in enumerate(marks):
        stop = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        field = _FIELD_OF.get(label, "other")
        region = text[end:stop]
        if field == "publish_time":
            # only a date at the region's start is the value: read the first _DATE_REACH
            # characters, not the rest of the text (a label high in a long line)
            dates = find_dates(region[:_DATE_REACH])
            value_end = end + dates[0].end if dates and dates[0].start <= 3 else stop
            pairs.append(Pair(field, label, region, start, value_end))
            continue
        value = _cut_names(region) if field in ("editor", "author") else _cut_value(region)
        lead = len(region) - len(region.lstrip(" :：|｜)）]】"))
        pairs.append(Pair(field, label, value, start, end + lead + len(value)))
    return tuple(pairs)


def _cut_value(region: str, *, wide_gap_ends: bool = True) -> str:
    """The value at the start of `region`: up to a hard end (bar, bracket, wide gap), an
    unmatched closing bracket, or an element edge that does not continue the value."""
    region = _LEADING_JUNK.sub("", region.lstrip())
    match = (_VALUE_END if wide_gap_ends else _HARD_END).search(region)
    value = _join_edges(region[: match.start()] if match else region)
    # An unmatched closing bracket ends the value: (责编：梁晨曦、武雨桐)
    depth = 0
    for i, ch in enumerate(value):
        if ch in "(（":
            depth += 1
        elif ch in ")）":
            if depth == 0:
                value = value[:i]
                break
            depth -= 1
    return _TRAILING_JUNK.sub("", value)


_CONNECTORS = ("-", "－", "—", "·", "/", "／", "&", "＆", "(", "（", ")", "）", "《", "》")


def _join_edges(value: str) -> str:
    """Element edges end a value unless a connector links the two sides: 来源：<a>人民网</a>
    -<a>人民日报</a> is one source, <span>来源：新华网</span><span>张三</span> is not."""
    first, *rest = value.split(EDGE)
    joined = first
    for piece in rest:
        left, right = joined.rstrip(), piece.lstrip()
        if not left or not right or left.endswith(_CONNECTORS) or right.startswith(_CONNECTORS):
            joined += piece
        else:
            break
    return joined


# A person's name as bylines write it: 2-5 Han characters (with · for transliterated
# names), or a romanised name.
_NAME = re.compile(r"[\u3400-\u9fff·•．]{2,8}|[A-Za-z][A-Za-z0-9_.'-]{1,30}")


def _cut_names(region: str) -> str:
    """Names go on across wide gaps (zytzb: 朱俊杰\u3000韩春燕) but stop at the first
    thing that is not a name (a date, a counter)."""
    value = unpad(_cut_value(region.replace(EDGE, " "), wide_gap_ends=False))
    names: list[str] = []
    for token in _NAME_SPLIT.split(value):
        if not token:
            continue
        if names and (not _NAME.fullmatch(token) or token in _LABEL_SET):
            break  # a date, a counter, the next role (记者 张三 通讯员 李四)
        names.append(token)
    return " ".join(names)


def is_metadata_line(text: str) -> bool:
    """Whether a line is made of metadata (labels, dates) rather than prose."""
    if len(text) > MAX_META_LINE:
        return False
    pairs = [p for p in parse_pairs(text) if p.field != "other" or p.label in _LINE_OPENERS]
    if not pairs:
        return False
    first = pairs[0]
    head = text[: first.start].strip(" [【(（|｜")
    # The label starts the line, or only a date, a bracket or a tool word comes before it
    # (gov.cn: 【我要纠错】 责任编辑：…).
    if head and not (find_dates(head) and len(head) <= 25):
        rest = _TOOLBAR.sub("", head).strip(" [【(（|｜]】)）")
        if rest:
            return False
    # 文 opens prose too (文中提到：…); as a byline label it starts a short line.
    return not (first.label == "文" and len(text) > 40)


_LINE_OPENERS = frozenset(labels.METADATA_LINE_OPENERS)
_BREADCRUMB = re.compile(
    rf"^(?:{labels.alternation(labels.BREADCRUMB_START)})\s*[:：]"
    rf"|^(?:{labels.alternation(labels.HOME_WORDS)})\s*(?:>|»|›|＞|>>|/|→|-+>)"
)
_ARROWS = re.compile(r"-+>|>>|[>»›＞→]")
_HOME = re.compile(labels.alternation(labels.HOME_WORDS))


def is_breadcrumb(text: str) -> bool:
    """`当前位置：首页->统战动态->正文`, `首页 > 新闻 > 正文`: where the page is, not what it says."""
    if _BREADCRUMB.match(text):
        return True
    return len(text) <= 80 and len(_ARROWS.findall(text)) >= 2 and bool(_HOME.search(text))


def contributor_of_line(text: str) -> str | None:
    """`（安徽省铜陵市委统战部 供稿）` -> the unit; None when the line is not such a credit."""
    match = _CONTRIBUTOR_LINE.match(text.strip())
    if match and not _TOOLBAR.search(match.group("who")):
        return clean_text(match.group("who").strip(" :："))
    return None


def clean_source(value: str) -> str | None:
    """A source as written, minus a date, a time or junk that follows it on the line."""
    dates = find_dates(value)
    if dates:
        value = value[: dates[0].start] if dates[0].start > 0 else value[dates[0].end :]
    value = re.sub(r"\s+\d{1,2}:\d{2}(?::\d{2})?\s*$", "", value)
    value = _TRAILING_JUNK.sub("", _LEADING_JUNK.sub("", value))
    value = _strip_outer_brackets(value)
    if not value or _TOOLBAR.fullmatch(value) or len(value) > 60 or value in _PLACEHOLDERS:
        return None
    return clean_text(value)


_PLACEHOLDERS = frozenset(labels.SOURCE_PLACEHOLDERS)


def _strip_outer_brackets(value: str) -> str:
    value = value.strip()
    while len(value) >= 2 and _BRACKETS.get(value[0]) == value[-1]:
        value = value[1:-1].strip()
    return value


# --------------------------------------------------------------------------- zones


@dataclass
class Zones:
    """Where metadata lines may be: around the headline and the article text."""

    title: int | None
    text_start: int | None  # first line of the article text
    text_end: int | None  # last line of the article text


def _ordered_lines(blocks: Sequence[Block], zones: Zones) -> Iterator[tuple[int, Block]]:
    """Candidate metadata lines by rank: 0 head (title..text), 1 in/after the text, 2 near."""
    n = len(blocks)
    start = zones.text_start if zones.text_start is not None else n
    end = zones.text_end if zones.text_end is not None else start
    top = zones.title if zones.title is not None else max(0, start - 8)
    top = min(top, start)
    for i in range(top, min(start, n)):
        yield 0, blocks[i]
    for i in range(start, min(end + 16, n)):
        block = blocks[i]
        if i > end and _ENDS_THE_ARTICLE.match(block.text):
            break  # a related list or the site's footer: their dates are other pages'
        yield 1, block
    for i in range(max(0, top - 6), top):
        yield 2, blocks[i]


# The heading of a related-links box, or a site footer: nothing after it is the article's.
_ENDS_THE_ARTICLE = re.compile(
    rf"^[【\[]?(?:{labels.alternation(labels.FURNITURE_HEADINGS)})[^，。！？,]{{0,8}}$"
    rf"|.*(?:{labels.alternation(labels.FOOTER_WORDS)})",
    re.I,
)

# --------------------------------------------------------------------------- fields


@dataclass
class Metadata:
    source: str | None = None
    publish_time: str | None = None
    editor: str | None = None
    author: str | None = None
    contributor: str | None = None
    editor_is_responsible: bool = False  # the editor came from 责任编辑/责编
    origins: dict[str, Origin] = field(default_factory=dict)

    def put(self, name: str, value: str | None, rule: str, raw: str) -> bool:
        """Set a field with where it came from; False (and nothing set) for no value."""
        if not value:
            return False
        setattr(self, name, value)
        self.origins[name] = Origin(rule, raw)
        return True


@dataclass(frozen=True)
class Candidate:
    """A date somewhere on the page, with the rule that found it and its raw string."""

    date: FoundDate
    rule: str
    raw: str


@dataclass(frozen=True)
class HeadInfo:
    """What the <head>, JSON-LD and scripts say, read before the tree is cleaned."""

    metas: dict[str, list[str]]
    json_ld: list[dict[str, Any]]
    script_times: list[str]


def read_head(root: html.HtmlElement) -> HeadInfo:
    metas: dict[str, list[str]] = {}
    for meta in root.iter("meta"):
        key = (meta.get("name") or meta.get("property") or meta.get("itemprop") or "").lower()
        content = meta.get("content")
        if key and content and content.strip():
            metas.setdefault(key.strip(), []).append(content.strip())
    json_ld: list[dict[str, Any]] = []
    script_times: list[str] = []
    for script in root.iter("script"):
        text = script.text or ""
        if (script.get("type") or "").lower() == "application/ld+json":
            json_ld.extend(_json_objects(text))
        elif text:
            script_times.extend(_script_times(text))
    for time_el in root.iter("time"):
        value = time_el.get("datetime")
        if value and (time_el.get("pubdate") is not None or time_el.get("itemprop")):
            metas.setdefault("time[pubdate]", []).append(value)
        elif value:
            # Any other <time datetime> only ever refines a date found elsewhere.
            metas.setdefault("time[datetime]", []).append(value)
    return HeadInfo(metas, json_ld, script_times)


def _json_objects(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text, strict=False)
    except (ValueError, RecursionError):
        return []
    found: list[dict[str, Any]] = []
    stack: list[Any] = [data]
    while stack and len(found) < 50:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(item)
    return found


# WeChat fills its visible date from `var ct = "1686288240"` by script; others set
# `publish_time = "2023-06-09 13:24"` or `"pubDate": "…"` in page data.
_SCRIPT_TS = re.compile(r"""\b(?:var\s+)?ct\s*=\s*["']?(\d{10})["']?""")
_SCRIPT_DATE = re.compile(
    r"""(?:publish_?time|pub_?date|publishdate|createTime|datePublished)["']?\s*[:=]\s*["']([^"']{8,40})["']""",
    re.I,
)


def _script_times(text: str) -> list[str]:
    found: list[str] = []
    for match in _SCRIPT_DATE.finditer(text[:200_000]):
        found.append(match.group(1))
    for match in _SCRIPT_TS.finditer(text[:200_000]):
        iso = from_timestamp(int(match.group(1)))
        if iso:
            found.append(iso)
    return found


_META_TIME_KEYS = (
    "article:published_time",
    "og:article:published_time",
    "og:release_date",
    "pubdate",
    "publishdate",
    "publish_date",
    "publish-date",
    "publishtime",
    "publish_time",
    "firstpublishedtime",
    "datepublished",
    "dc.date.issued",
    "dc.date",
    "dcterms.created",
    "dcterms.issued",
    "sailthru.date",
    "time[pubdate]",
    "weibo:article:create_at",
    "createdate",
)
_META_SOURCE_KEYS = ("contentsource", "source", "article:source", "og:article:source", "sourcename")
_META_EDITOR_KEYS = ("editor", "article:editor")


def extract_metadata(
    blocks: Sequence[Block],
    zones: Zones,
    head: HeadInfo,
    url: str | None,
    body_contributor: tuple[str, str] | None,
) -> Metadata:
    found = Metadata()
    if body_contributor:
        found.put("contributor", body_contributor[0], "credit", body_contributor[1])
    year = _YearOfPage(head, url, blocks, zones)
    dates: list[tuple[int, int, Candidate]] = []  # (zone rank, label rank, date)
    unlabelled: list[tuple[int, bool, Candidate]] = []  # (zone rank, strong, date)
    for rank, block in _ordered_lines(blocks, zones):
        if block.is_image or len(block.text) > MAX_META_LINE or _is_sentence(block.text):
            continue
        if (
            not parse_pairs(block.text)
            and not _MAY_HOLD_A_DATE.search(block.text)
            and labels.CONTRIBUTOR_SUFFIX not in block.text
        ):
            continue
        text = block.meta_text
        pairs = parse_pairs(text)
        meta_like = is_metadata_line(block.text) or (
            bool(pairs) and len(block.text) <= MAX_META_LINE and not _is_sentence(block.text)
        )
        if (
            rank != 1
            and len(block.text) <= 60
            and block.link_density < 0.5
            and not (rank == 2 and block.link_chars)  # above the headline: lists of links
            and not _CLOCK_LINE.search(block.text)
        ):
            # Dates with no label, in a short line between (or just above) the headline
            # and the text: chinanews `2024年02月23日 21:08　来源：…`, news.cn's header clock.
            for date in year.dates(text):
                if not any(p.start <= date.start < p.end for p in pairs):
                    strong = bool(pairs) or _is_bare_date(text, date)
                    unlabelled.append((rank, strong, Candidate(date, "line", block.text)))
        if not meta_like:
            continue
        for pair in pairs:
            _take(found, pair, rank, dates, block.text, year)
        if found.contributor is None:
            found.put("contributor", contributor_of_line(block.text), "credit", block.text)
    chosen = _choose_time(dates, unlabelled, head, url)
    if chosen is not None:
        found.put("publish_time", chosen.date.iso, chosen.rule, chosen.raw)
    if found.author is None:
        _credited_authors(found, blocks, zones)
    if found.source is None or found.author is None:
        _fill_from_classes(found, blocks, zones)
    if found.source is None:
        _unlabelled_source(found, blocks, zones)
    _fill_from_head(found, head)
    return found


def _credited_authors(found: Metadata, blocks: Sequence[Block], zones: Zones) -> None:
    """Reporters named without a label's colon: in the byline (`（記者張三／台北報導）`),
    in the first paragraph's dateline (`新华社北京5月20日电（记者张三、李四）`,
    `中央社記者張三台北2日電`), or in a closing credit (`（记者 张三）`)."""
    for rank, block in _ordered_lines(blocks, zones):
        if rank != 0 or block.is_image or len(block.text) > 60:
            continue
        if _CAPTION_CREDIT.search(block.text):
            continue
        credit = credit_names(block.text)
        if credit and found.put("author", credit[0], "byline", block.text):
            return
    if zones.text_start is None or zones.text_end is None:
        return
    text = [b for b in blocks[zones.text_start : zones.text_end + 1] if not b.is_image]
    for block in text[:2]:
        credit = dateline_credit(block.text)
        if credit and found.put("author", credit[0], "dateline", credit[1]):
            return
    for block in reversed(blocks[max(zones.text_start, zones.text_end - 2) : zones.text_end + 3]):
        if block.is_image or _CAPTION_CREDIT.search(block.text):
            continue
        credit = closing_credit(block.text)
        if credit and found.put("author", credit[0], "credit", credit[1]):
            return


# A photographer's credit (新华社记者 张三 摄) names no author.
_CAPTION_CREDIT = re.compile(rf"(?:{labels.alternation(labels.CAPTION_CREDITS)})\s*[)）]?\s*$")

# Some bylines carry no label, only a class: sina's <a class="source">新华社</a>.
_SOURCE_CLASS = re.compile(
    r"source|laiyuan|copyfrom|media-?name|(?:^|[\s_-])(?:ly|origin)(?:$|[\s_-])", re.I
)
_AUTHOR_CLASS = re.compile(r"author|byline|zuozhe|reporter|writer", re.I)


def _fill_from_classes(found: Metadata, blocks: Sequence[Block], zones: Zones) -> None:
    """Unlabelled source/author in elements whose class names them, by the headline."""
    seen: set[int] = set()
    for rank, block in _ordered_lines(blocks, zones):
        if rank == 1 or block.is_image or id(block.owner) in seen:
            continue
        seen.add(id(block.owner))
        for el in islice(block.owner.iter(), 300):
            if not isinstance(el.tag, str) or len(el) > 8:
                continue
            hint = f"{el.get('class') or ''} {el.get('id') or ''}"
            if not hint.strip():
                continue
            text = clean_text(el.text_content())
            if not text or len(text) > 30 or parse_pairs(text) or find_dates(text):
                continue
            if found.source is None and _SOURCE_CLASS.search(hint):
                found.put("source", clean_source(text), f"class:{hint.strip()}", text)
            elif found.author is None and _AUTHOR_CLASS.search(hint):
                names = _NAME_SPLIT.split(text)
                if len(names) <= 4:
                    found.put("author", clean_authors(text), f"class:{hint.strip()}", text)


# A medium's or a department's name: what an unlabelled source next to the date ends with.
_MEDIUM_END = re.compile(rf"(?:{labels.alternation(labels.MEDIUM_SUFFIXES)})$")
_SEGMENT_SPLIT = re.compile(rf"\s*[|｜]\s*| {{2,}}|\u3000|{EDGE}")
_WEEKDAY = re.compile(WEEKDAY)


def _unlabelled_source(found: Metadata, blocks: Sequence[Block], zones: Zones) -> None:
    """A source in the byline's source slot, without a label: `央视网 | 2024年02月07日
    20:15` (cctv), `2024-05-20 10:30　人民日报海外版　作者：李华`. Only the head zone,
    only a dated line; a name that ends like a medium (网, 报, 社, 台 ...), or, in a
    byline that labels its other slots, any short name that is no person's."""
    for rank, block in _ordered_lines(blocks, zones):
        if rank != 0 or block.is_image or len(block.text) > 80 or block.link_density > 0.5:
            continue
        text = block.meta_text
        dates = find_dates(text)
        if not dates:
            continue
        pairs = [p for p in parse_pairs(text) if p.field != "other" or p.label in _LINE_OPENERS]
        covered = [(d.start, d.end) for d in dates] + [(p.start, p.end) for p in pairs]
        rest = "".join(
            EDGE if any(s <= i < e for s, e in covered) else ch for i, ch in enumerate(text)
        )
        for segment in _SEGMENT_SPLIT.split(rest):
            segment = segment.strip(" ·,，")
            if (
                2 <= len(segment) <= 20
                and not re.search(r"[\d:：]", segment)
                and not _TOOLBAR.search(segment)
                and not _WEEKDAY.fullmatch(segment)
                and segment not in _PLACEHOLDERS
                and (
                    _MEDIUM_END.search(segment)
                    or (pairs and len(segment) >= 3 and not is_person(segment))
                )
            ):
                found.put("source", clean_text(segment), "byline", block.text)
                return


_CLOCK_LINE = re.compile(labels.alternation(labels.CLOCK_WORDS))


def _is_sentence(text: str) -> bool:
    return len(re.findall(r"[，。！？；]", text)) >= 2


def _take(
    found: Metadata,
    pair: Pair,
    rank: int,
    dates: list[tuple[int, int, Candidate]],
    raw: str,
    year: _YearOfPage,
) -> None:
    rule = f"label:{pair.label}"
    if pair.field == "publish_time":
        value = pair.value.lstrip(" :：")
        for date in year.dates(value)[:1]:
            if date.start <= 3:
                dates.append((rank, _time_label_rank(pair.label), Candidate(date, rule, raw)))
        return
    if pair.field == "source":
        if found.source is None:
            found.put("source", clean_source(pair.value), rule, raw)
    elif pair.field == "editor":
        # 编辑：A  责任编辑：B (cctv) — the responsible editor is the editor of record.
        responsible = pair.label in _RESPONSIBLE_EDITOR
        if found.editor is None or (responsible and not found.editor_is_responsible):
            names = clean_names(clean_text(pair.value) or "")
            if found.put("editor", names, rule, raw):
                found.editor_is_responsible = responsible
    elif pair.field == "author":
        if found.author is None:
            found.put("author", clean_authors(clean_text(pair.value) or ""), rule, raw)
    elif pair.field == "contributor" and found.contributor is None:
        found.put("contributor", clean_text(_strip_outer_brackets(pair.value)), rule, raw)


_RESPONSIBLE_EDITOR = frozenset(labels.EDITOR_RESPONSIBLE)


def _time_label_rank(label: str) -> int:
    if label in labels.PUBLISH_TIME_PRIMARY:
        return 0
    if label in labels.PUBLISH_TIME_PLAIN:
        return 1
    return 2


def _is_bare_date(text: str, date: FoundDate) -> bool:
    """A line that is the date and little else (a weekday, a clock zone, a bar)."""
    rest = text[: date.start] + text[date.end :]
    return len(_NOT_WORDS.sub("", rest)) <= 4


_NOT_WORDS = re.compile(rf"(?:[\s|｜/:：()（）\[\]【】\-—·,，A-Za-z\d]|{WEEKDAY})+")


def _choose_time(
    dates: list[tuple[int, int, Candidate]],
    unlabelled: list[tuple[int, bool, Candidate]],
    head: HeadInfo,
    url: str | None,
) -> Candidate | None:
    """The publication time, by how much each place on a page can be trusted.

    1. a labelled line between the headline and the text, or an unlabelled date in a
    metadata line there (chinanews `2024年02月23日 21:08　来源：…`) or on a line of its
    own; 2. the same just above the headline (news.cn puts its clock there); 3. <meta>,
    JSON-LD, <time>, script data; 4. any other short line with a date by the headline
    (after <meta>: a sub-headline may name an event's day); 5. 更新时间-like labels by
    the headline (gbk-table pages give only that); 6. a labelled line in or after the
    text (a footer 发布日期); 7. the URL's date.
    A date that lacks the time is then completed from another place that gives the
    same day with a time agreeing with it: people.cn's <meta publishdate> has the
    day, its visible line the minute; a <time datetime> adds the seconds.
    """
    by_rank = sorted(
        ((zr, lr, i, d) for i, (zr, lr, d) in enumerate(dates) if lr < 2), key=lambda t: t[:3]
    )
    ranked: list[Candidate] = [d for zr, _lr, _i, d in by_rank if zr == 0]
    ranked += [d for zr, strong, d in unlabelled if zr == 0 and strong]
    ranked += [d for zr, _lr, _i, d in by_rank if zr == 2]
    ranked += [d for zr, strong, d in unlabelled if zr == 2 and strong]
    head_dates = _head_dates(head)
    ranked += head_dates
    ranked += [d for _zr, strong, d in unlabelled if not strong]
    late = sorted(
        ((zr, i, d) for i, (zr, lr, d) in enumerate(dates) if lr >= 2), key=lambda t: t[:2]
    )
    ranked += [d for zr, _i, d in late if zr == 0]
    ranked += [d for zr, _lr, _i, d in by_rank if zr == 1]
    ranked += [d for zr, _i, d in late if zr != 0]
    if not ranked and url:
        ranked += _url_dates(url)
    if not ranked:
        return None
    best = ranked[0]
    for other in [*ranked[1:], *head_dates, *_refining_dates(head)]:
        if best.date.precision == 2:
            break
        refined = _refine(best.date, other.date)
        if refined:
            best = Candidate(refined, f"{best.rule}+refined:{other.rule}", best.raw)
    return best


def _refine(coarse: FoundDate, fine: FoundDate) -> FoundDate | None:
    """`fine` in `coarse`'s offset, when it says the same time only more precisely:
    the same day (and minute, if `coarse` has one) once both are on one clock, so a
    JSON-LD `…T02:29:35Z` refines a visible `2024-02-07 10:29` (+08:00)."""
    if fine.precision <= coarse.precision:
        return None
    shown = datetime.fromisoformat(coarse.iso)
    exact = datetime.fromisoformat(fine.iso)
    if not fine.has_offset:
        exact = exact.replace(tzinfo=shown.tzinfo)
    local = exact.astimezone(shown.tzinfo)
    if local.date() != shown.date():
        return None
    if coarse.precision >= 1 and (local.hour, local.minute) != (shown.hour, shown.minute):
        return None
    return replace(fine, iso=local.isoformat())


def _refining_dates(head: HeadInfo) -> list[Candidate]:
    found: list[Candidate] = []
    for value in head.metas.get("time[datetime]", [])[:20]:
        found += [
            Candidate(d, "time[datetime]", value) for d in find_dates(value, compact=True)[:1]
        ]
    return found


def _head_dates(head: HeadInfo) -> list[Candidate]:
    found: list[Candidate] = []
    for key in _META_TIME_KEYS:
        for value in head.metas.get(key, []):
            found += [
                Candidate(d, f"meta:{key}", value) for d in find_dates(value, compact=True)[:1]
            ]
    for obj in head.json_ld:
        for key in ("datePublished", "dateCreated", "uploadDate"):
            stated = obj.get(key)
            if isinstance(stated, str):
                found += [
                    Candidate(d, "jsonld", stated) for d in find_dates(stated, compact=True)[:1]
                ]
    for value in head.script_times:
        found += [Candidate(d, "script", value) for d in find_dates(value, compact=True)[:1]]
    return found


_URL_DATE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})[-/_]?(0[1-9]|1[0-2])[-/_]?(0[1-9]|[12]\d|3[01])(?!\d)"
    r"|/((?:19|20)\d{2})/?(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])/"
)
_URL_YEAR = re.compile(r"/((?:19|20)\d{2})(?:[-_/]?(?:0[1-9]|1[0-2]))?(?:[-_/]?\d{2})?(?=[/_-])")


def _url_dates(url: str) -> list[Candidate]:
    path = re.sub(r"^[a-z]+://[^/]+", "", url, flags=re.I)
    match = _URL_DATE.search(path)
    if not match:
        return []
    parts = [g for g in match.groups() if g]
    return [Candidate(d, "url", url) for d in find_dates("-".join(parts))[:1]]


def year_hint(head: HeadInfo, url: str | None) -> int | None:
    """The year a year-less `05-20 14:32` belongs to: the URL's (/2024/0520/, t20240520),
    else the one <meta> or JSON-LD give. None: such dates are not read at all."""
    if url:
        path = re.sub(r"^[a-z]+://[^/]+", "", url, flags=re.I)
        match = _URL_DATE.search(path) or _URL_YEAR.search(path)
        if match:
            return int(next(g for g in match.groups() if g))
    for candidate in _head_dates(head):
        return candidate.date.day[0]
    return None


_YEAR_IN_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})\s*(?:[-/.年])\s*\d{1,2}\s*(?:[-/.月])")


class _YearOfPage:
    """The year a year-less `05-20 14:32` belongs to (`year_hint`, else `_page_year`),
    worked out the first time a line holds such a date: a line with a full date reads the
    same without it, and scanning the page for it was 9.5 % of extraction on pages that
    never needed it (bench/distributed.py's)."""

    def __init__(
        self, head: HeadInfo, url: str | None, blocks: Sequence[Block], zones: Zones
    ) -> None:
        self.head, self.url, self.blocks, self.zones = head, url, blocks, zones

    @cached_property
    def year(self) -> int | None:
        return year_hint(self.head, self.url) or _page_year(self.blocks, self.zones)

    def dates(self, text: str) -> list[FoundDate]:
        """find_dates(text, year=the page's year)."""
        found = find_dates(text)
        if found or not may_hold_a_time(text) or self.year is None:
            return found
        return find_dates(text, year=self.year)


def _page_year(blocks: Sequence[Block], zones: Zones) -> int | None:
    """The year most of the page's own full dates are in (the sidebar's, the footer's
    update line): a year-less byline date belongs to it (hard-time-08)."""
    years: dict[int, int] = {}
    for _rank, block in _ordered_lines(blocks, zones):
        for match in _YEAR_IN_DATE.finditer(block.text):
            year = int(match.group(1))
            years[year] = years.get(year, 0) + 1
    for block in blocks[-40:]:
        for match in _YEAR_IN_DATE.finditer(block.text):
            year = int(match.group(1))
            years[year] = years.get(year, 0) + 1
    return max(years, key=lambda y: (years[y], y)) if years else None


def _fill_from_head(found: Metadata, head: HeadInfo) -> None:
    """Fields no visible line gave, from <meta> and JSON-LD (labels stripped there too)."""
    for name, keys, clean in (
        ("source", _META_SOURCE_KEYS, clean_source),
        ("editor", _META_EDITOR_KEYS, clean_names),
    ):
        if getattr(found, name) is not None:
            continue
        for key, value in ((k, v) for k in keys for v in head.metas.get(k, [])):
            if found.put(name, _labelled_or_plain(value, name, clean), f"meta:{key}", value):
                break
    if found.author is None:
        _person_names(found, head)


_META_AUTHOR_KEYS = ("author", "article:author", "dc.creator")


def _person_names(found: Metadata, head: HeadInfo) -> None:
    """People named as authors in JSON-LD (@type Person) or <meta name=author>: only
    names that look like people's — sites also put their own name there."""
    people: list[str] = []
    for obj in head.json_ld:
        authors = obj.get("author")
        for author in authors if isinstance(authors, list) else [authors]:
            if isinstance(author, dict) and author.get("@type") == "Person":
                name = author.get("name")
                if isinstance(name, str) and name.strip() and name.strip() not in people:
                    people.append(name.strip())
    candidates = [("jsonld", "、".join(people))] if people else []
    candidates += [(f"meta:{key}", v) for key in _META_AUTHOR_KEYS for v in head.metas.get(key, [])]
    for rule, raw in candidates:
        value = normalize_space(raw)
        pairs = [p for p in parse_pairs(value) if p.field == "author"]
        if pairs:
            value = pairs[0].value
        names = [n for n in _NAME_SPLIT.split(value) if n]
        if names and len(names) <= 6 and all(_is_han_person(n) for n in names):
            found.put("author", clean_names(value), rule, raw)
            return


def _is_han_person(name: str) -> bool:
    return bool(_HAN_NAME.fullmatch(name)) and is_person(name)


# A Chinese person's name: two to four Han characters, or a transliteration with ·.
_HAN_NAME = re.compile(r"[\u3400-\u9fff]{2,4}|[\u3400-\u9fff]{1,6}[·•][\u3400-\u9fff·•]{1,12}")


def _labelled_or_plain(value: str, field: str, clean: Any) -> str | None:
    value = normalize_space(value)
    for pair in parse_pairs(value):
        if pair.field == field:
            result = clean(pair.value)
            return result if isinstance(result, str) else None
    if parse_pairs(value):
        return None
    result = clean(value)
    return result if isinstance(result, str) else None
