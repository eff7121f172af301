"""A page as reading order: the sequence of text lines and images a reader sees.

Every block-level element (p, div, td, li, h1 ...) and every <br> ends a line; an <img> is
a block of its own. title.py, metadata.py and body.py all work on this one list, so
"the line after the title" or "the line after an image" mean the same thing everywhere.
The walk is iterative (`etree.iterwalk`): a broken page nested thousands deep must not
hit Python's recursion limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree, html

from crawler.extract.cleanup import normalize_space, remove_pinyin

BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

#: Inline elements whose edges separate metadata values that a browser draws side by
#: side: govcn pages write <span>发布日期：…</span><span>信息来源：…</span> with nothing
#: between, tw-company pages <small>來源:</small>…<small>時間:</small>.
_FIELD_EDGE_TAGS = frozenset(
    {"span", "em", "small", "font", "b", "strong", "i", "label", "a", "cite", "time", "u"}
)
#: An element edge in `Block.meta_text`: a soft end of a value (metadata.py decides).
EDGE = "\x1f"

_GAPS = re.compile(r"\s+")  # \s matches EDGE (U+001F) too
# A paragraph's indent after a sentence's end inside one line: the central 统战部 site puts
# a whole article in one <div>, paragraphs told apart only by `&emsp;&emsp;` (hard-body-01).
_INDENT = re.compile(r"(?<=[。！？!?…”」』）)])[ \t\n\x1f]*[\u2002\u2003\u3000\xa0]{2,}")


def _gap(match: re.Match[str]) -> str:
    """A run of whitespace in `meta_text`: two or more real spaces (or an ideographic
    one) make a wide gap "  "; else an element edge stays EDGE; else one space."""
    run = match.group()
    if len(run) - run.count(EDGE) >= 2:
        return "  "
    return EDGE if EDGE in run else " "


@dataclass(eq=False)
class Block:
    """One line of the page: text (or an image) and the block element it sits in."""

    index: int
    owner: html.HtmlElement
    text: str = ""
    raw: str = ""
    chars: int = 0
    link_chars: int = 0
    image: html.HtmlElement | None = None
    ancestors: list[html.HtmlElement] = field(default_factory=list)
    _meta: str | None = field(default=None, repr=False)

    @property
    def meta_text(self) -> str:
        """The text with wide gaps kept as two spaces and element edges as EDGE: what
        metadata.py reads. Made on demand: only a few lines of a page are metadata."""
        if self._meta is None:
            meta = self.raw.replace("\u3000", "  ").replace("\xa0", " ")
            self._meta = _GAPS.sub(_gap, meta).strip(" " + EDGE)
        return self._meta

    @property
    def link_density(self) -> float:
        return self.link_chars / self.chars if self.chars else 0.0

    @property
    def is_image(self) -> bool:
        return self.image is not None


class _Walker:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.owners: list[html.HtmlElement] = []
        self.pieces: list[str] = []
        self.link_chars = 0
        self.link_depth = 0
        self.pre_depth = 0
        self.pre_open: list[html.HtmlElement] = []

    def add(self, text: str) -> None:
        if self.pre_depth and "\n" in text:
            # Preformatted text (print pages put the article in a <pre>): a newline is a line.
            first, *rest = text.split("\n")
            self.add_inline(first)
            for piece in rest:
                self.flush()
                self.add_inline(piece)
            return
        self.add_inline(text)

    def add_inline(self, text: str) -> None:
        self.pieces.append(text)
        if self.link_depth:
            self.link_chars += len("".join(text.split()))

    def flush(self) -> None:
        if not self.pieces or not self.owners:
            self.pieces, self.link_chars = [], 0
            return
        raw = "".join(self.pieces)
        if raw.isspace():  # \s covers EDGE: the gaps between tags
            self.pieces, self.link_chars = [], 0
            return
        raw = remove_pinyin(raw)
        parts = _INDENT.split(raw) if len(raw) > 80 and _INDENT.search(raw) else [raw]
        total = max(1, len(raw))
        for part in parts:
            text = normalize_space(part.replace(EDGE, ""))
            if text:
                links = self.link_chars * len(part) // total if len(parts) > 1 else self.link_chars
                self.blocks.append(
                    Block(
                        index=len(self.blocks),
                        owner=self.owners[-1],
                        text=text,
                        raw=part,
                        chars=len(text.replace(" ", "")),
                        link_chars=min(links, len(text)),
                    )
                )
        self.pieces, self.link_chars = [], 0

    def add_image(self, img: html.HtmlElement) -> None:
        self.flush()
        if self.owners:
            self.blocks.append(Block(index=len(self.blocks), owner=self.owners[-1], image=img))


def linearize(root: html.HtmlElement) -> list[Block]:
    """The page's lines and images in reading order (the <body>, or the whole tree)."""
    body = root.find("body") if root.tag == "html" else root
    if body is None:
        body = root
    walker = _Walker()
    walker.owners.append(body)
    preformatted = {el for el in body.iter("pre", "listing", "xmp", "plaintext")}
    preformatted.update(
        el
        for el in body.xpath(".//*[@style]")
        if isinstance(el, html.HtmlElement) and _is_preformatted(el)
    )
    pieces = walker.pieces
    owners = walker.owners
    for event, el in etree.iterwalk(body, events=("start", "end")):
        tag = el.tag
        if not isinstance(tag, str):
            continue
        if event == "start":
            if tag in BLOCK_TAGS and el is not body:
                if pieces:
                    walker.flush()
                    pieces = walker.pieces
                owners.append(el)
            elif tag in _FIELD_EDGE_TAGS:
                pieces.append(EDGE)
                if tag == "a":
                    walker.link_depth += 1
            elif tag == "br":
                walker.flush()
                pieces = walker.pieces
            elif tag == "img":
                walker.add_image(el)
                pieces = walker.pieces
            if preformatted and el in preformatted:
                walker.pre_depth += 1
                walker.pre_open.append(el)
            text = el.text
            if text:
                if walker.pre_depth or walker.link_depth:
                    walker.add(text)
                    pieces = walker.pieces
                else:
                    pieces.append(text)
        else:
            if tag == "a":
                walker.link_depth = max(0, walker.link_depth - 1)
            if walker.pre_open and walker.pre_open[-1] is el:
                walker.pre_open.pop()
                walker.pre_depth -= 1
            if tag in BLOCK_TAGS and el is not body:
                if pieces:
                    walker.flush()
                    pieces = walker.pieces
                if owners and owners[-1] is el:
                    owners.pop()
            elif tag in _FIELD_EDGE_TAGS:
                pieces.append(EDGE)
            tail = el.tail
            if tail and el is not body:
                if walker.pre_depth or walker.link_depth:
                    walker.add(tail)
                    pieces = walker.pieces
                else:
                    pieces.append(tail)
    walker.flush()
    _attach_ancestors(walker.blocks, body)
    return walker.blocks


_PRE_STYLE = re.compile(r"white-space\s*:\s*pre", re.I)


def _is_preformatted(el: html.HtmlElement) -> bool:
    if el.tag in ("pre", "listing", "xmp", "plaintext"):
        return True
    style = el.get("style")
    return bool(style and _PRE_STYLE.search(style))


def _attach_ancestors(blocks: list[Block], body: html.HtmlElement) -> None:
    """Each block's owner and the owner's ancestors up to <body>, innermost first."""
    cache: dict[html.HtmlElement, list[html.HtmlElement]] = {}
    for block in blocks:
        owner = block.owner
        chain = cache.get(owner)
        if chain is None:
            chain = [owner]
            if owner is not body:
                for anc in owner.iterancestors():
                    chain.append(anc)
                    if anc is body:
                        break
            cache[owner] = chain
        block.ancestors = chain
