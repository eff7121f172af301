"""Page text -> a clean lxml tree, and the text normalisation every field goes through.

Owns: parsing (never raising), dropping what a reader never sees (scripts, styles, hidden
elements, ruby annotations), whitespace, and pinyin that leaked into the text. Imports
nothing from the rest of the package.
"""

from __future__ import annotations

import re

from lxml import etree, html

#: Elements whose content is never article text. <rt>/<rp> are ruby annotations: the
#: pinyin over 統 in `<ruby>統<rt>tǒng</rt></ruby>`; the base character stays.
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "iframe",
    "frame",
    "object",
    "embed",
    "applet",
    "canvas",
    "svg",
    "math",
    "select",
    "option",
    "textarea",
    "input",
    "button",
    "map",
    "audio",
    "video",
    "rt",
    "rp",
)

_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.I)

# A tone-marked syllable in brackets straight after a Chinese character: what is left when
# a <ruby> page is copied as text (the seed page: 統(tǒng)一戰(zhàn)線). A tone mark is required so
# that 微信(wechat) or 中国(China) are left alone.
_TONE = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ"
_PINYIN = re.compile(
    rf"(?<=[\u3400-\u9fff\uf900-\ufaff])[(（]\s*"
    rf"(?=[a-zü{_TONE}\s]*[{_TONE}])[a-zü{_TONE}]{{1,7}}(?:\s+[a-zü{_TONE}]{{1,7}}){{0,3}}\s*[)）]"
)

# Every space-like character a page uses (ideographic space, nbsp, en/em spaces ...).
_SPACES = re.compile(r"[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
# C0 controls other than tab/newline/CR: invalid in HTML, and libxml2 rejects some of them.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*>", re.I)


def parse_document(text: str) -> html.HtmlElement | None:
    """An lxml tree of `text`, or None when there is nothing to parse. Never raises."""
    text = _CONTROLS.sub("", _XML_DECLARATION.sub("", text, count=1))
    if not text.strip():
        return None
    parser = html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
    try:
        root = html.document_fromstring(text, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None
    return root if isinstance(root, html.HtmlElement) else None


def clean_tree(root: html.HtmlElement) -> None:
    """Drop in place what a reader never sees: scripts, styles, forms' widgets, hidden parts."""
    doomed = list(root.iter(*_DROP_TAGS))
    doomed += [
        el
        for el in root.xpath("//*[@hidden or @style]")
        if isinstance(el, html.HtmlElement)
        and el.tag not in ("html", "body")
        and (el.get("hidden") is not None or _HIDDEN_STYLE.search(el.get("style") or ""))
    ]
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()


def remove_pinyin(text: str) -> str:
    """`統(tǒng)一戰(zhàn)線` -> `統一戰線`: drop pinyin annotations flattened into the text."""
    return _PINYIN.sub("", text) if "(" in text or "（" in text else text


def normalize_space(text: str) -> str:
    """One ASCII space for every run of whitespace (ideographic, nbsp ...), trimmed."""
    return _SPACES.sub(" ", _INVISIBLE.sub("", text)).strip()


def clean_text(text: str | None) -> str | None:
    """A field value as stored: pinyin removed, whitespace normalised; None when empty."""
    if text is None:
        return None
    value = normalize_space(remove_pinyin(text))
    return value or None
