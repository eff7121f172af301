"""The archived page made harmless to show: `sanitize_page(html, base_url)` -> HTML that
runs nothing and loads nothing from outside (imports only lxml; never crawler).

An allowlist, not a blocklist: elements that run code, embed other documents or load
resources are removed with their content (script, iframe, object, link, meta, base,
svg ...); forms keep their text and lose their controls; images become a placeholder box
with their alt text (a data:image of a raster type is kept: it loads nothing); links keep
their text and lose their href (the original URL, resolved against the page, goes into a
title attribute when it is http(s)); every attribute not on a short list of presentational
ones goes, with it every on* handler and every URL-bearing attribute (href, src, srcset,
action, formaction, xlink:href, background, poster, ping, data ...). CSS in style
attributes and <style> blocks is kept after its escapes are undone and every url(),
image-set(), @import, expression() and binding is neutralised.

The route that serves the result adds `Content-Security-Policy: default-src 'none'; ...`
and the page that shows it frames it in an empty `sandbox`: either alone already blocks
scripts and outside loads, should this module miss something.
"""

from __future__ import annotations

import codecs
import re
from urllib.parse import urljoin, urlsplit

from lxml import etree, html
from lxml.html import HtmlElement

#: Removed with everything inside them: they run code, embed documents, load resources,
#: or are parsed as raw text by browsers (so their content would not be what lxml saw).
DROP = frozenset({
    "script", "noscript", "iframe", "frame", "frameset", "object", "embed", "applet",
    "param", "base", "link", "meta", "template", "svg", "math", "portal", "fencedframe",
    "source", "track", "input", "select", "textarea", "button", "datalist", "option",
    "optgroup", "keygen", "output", "noembed", "noframes", "bgsound", "canvas", "dialog",
    "slot", "head-script",
})  # fmt: skip
#: Void in HTML5 but not to libxml2 (which nests the following content inside them):
#: the tag goes, what follows it stays (and is cleaned in its turn).
VOID = frozenset({
    "embed", "source", "track", "param", "input", "link", "meta", "base", "keygen", "frame",
    "area", "isindex",
})  # fmt: skip
#: Replaced by a placeholder box naming what was there.
PLACEHOLDER = {"img": "图片", "image": "图片", "video": "视频", "audio": "音频", "picture": "图片"}
#: Kept as their content only (the element goes, its text stays).
UNWRAP = frozenset({"form", "fieldset", "label", "legend", "html-form", "font", "center"})
#: Raw-text elements of old HTML shown as preformatted text instead.
AS_PRE = frozenset({"xmp", "plaintext", "listing"})
#: The only attributes kept: presentational ones that name no URL.
ATTRIBUTES = frozenset({
    "class", "id", "title", "alt", "lang", "dir", "colspan", "rowspan", "align", "valign",
    "width", "height", "headers", "scope", "span", "start", "reversed", "type", "value",
    "datetime", "abbr", "border", "cellpadding", "cellspacing", "nowrap", "style",
})  # fmt: skip
#: The only elements whose `type`/`value` mean something harmless (ol, li).
_TYPED = frozenset({"ol", "ul", "li"})
_RASTER_DATA = re.compile(
    r"^data:image/(?:png|gif|jpeg|jpg|webp|bmp|avif);base64,[A-Za-z0-9+/=\s]+$", re.I
)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.S)
_CSS_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})\s?|(\n)|(.))", re.S)
_CSS_IMPORT = re.compile(r"@import\b[^;{}]*;?", re.I)
#: Functions that fetch (url, src, image-set), run code (expression: old IE) or bind
#: behaviour (-moz-binding, behavior); their name is broken so the declaration is dropped.
_CSS_FETCH = re.compile(
    r"(?:url|src|(?:-webkit-)?image-set|cross-fade|-moz-element|element|expression)\s*\(",
    re.I,
)
_CSS_URL = re.compile(r"url\s*\(\s*(?:\"[^\"]*\"|'[^']*'|[^)]*)\s*\)", re.I)
_CSS_BINDING = re.compile(r"(?:-moz-binding|behavior|javascript:|vbscript:)", re.I)
_CSS_AT_RULES = re.compile(r"@(?:font-face|namespace|document|-moz-document)\b", re.I)
_CSS_BLOCKED = re.compile(r"[^;{}]*x-blocked\([^;{}]*;?")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*>")
#: Characters browsers ignore in a URL's scheme (so "java\tscript:" is javascript:).
_URL_IGNORED = re.compile(r"[\x00-\x20\x7f]+")

#: The stylesheet the sanitised page gets: placeholder boxes, and nothing else.
PAGE_STYLE = (
    ".ufa-placeholder{display:inline-block;border:1px dashed #999;background:#f4f4f4;"
    "color:#555;padding:.3em .6em;margin:.2em 0;font-size:.9em}"
    ".ufa-link{color:#0b57a4;text-decoration:underline dotted}"
)


#: Labels whose real codec is wider (w3lib, the WHATWG encoding standard).
_WIDER = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
}
_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def decode_page(body: bytes, encoding: str | None, content_type: str | None = None) -> str:
    """The captured bytes as text, with the codec the crawler recorded on the snapshot;
    without one (older rows), the Content-Type's charset, then a <meta charset> near the
    top, then UTF-8; bytes that do not decode become U+FFFD (never an error)."""
    candidates = [encoding]
    if content_type:
        found = _CHARSET.search(content_type.encode("latin-1", "replace"))
        candidates.append(found.group(1).decode("ascii") if found else None)
    found = _CHARSET.search(body[:4096])
    candidates.append(found.group(1).decode("ascii", "replace") if found else None)
    if body.startswith(b"\xef\xbb\xbf"):
        candidates.insert(0, "utf-8-sig")
    for name in candidates:
        if not name:
            continue
        label = _WIDER.get(name.strip().lower(), name.strip().lower())
        try:  # a label that is no text codec (rot13, base64) is skipped
            return body.decode(codecs.lookup(label).name, errors="replace")
        except LookupError:
            continue
    return body.decode("utf-8", errors="replace")


def sanitize_page(source: str, base_url: str | None = None) -> str:
    """A whole archived page as safe HTML (a complete document, UTF-8)."""
    if not source.strip():
        return _document("", "")
    try:  # lxml refuses a str that declares its encoding (an XHTML page's <?xml ...?>)
        root = html.document_fromstring(_XML_DECLARATION.sub("", source, count=1))
    except (etree.ParserError, ValueError):
        return _document("", "")
    title = ""
    head = root.find("head")
    if head is not None:
        found = head.find("title")
        if found is not None and found.text_content():
            title = found.text_content()
    styles = [_clean_css(s.text_content()) for s in root.iter("style")]
    body = root.find("body")
    if body is None:  # a frameset page, or only a head: nothing to show
        return _document(title, "", styles)
    _clean_tree(body, base_url)
    parts = [html.tostring(child, encoding="unicode", method="html") for child in body]
    inner = _escape(body.text) if body.text else ""
    return _document(title, inner + "".join(parts), styles)


def sanitize_fragment(source: str, base_url: str | None = None) -> str:
    """A fragment of HTML (a snippet, a test) made safe the same way, without a document."""
    if not source.strip():
        return ""
    try:
        container = html.fragment_fromstring(source, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    _clean_tree(container, base_url)
    text = _escape(container.text) if container.text else ""
    return text + "".join(html.tostring(c, encoding="unicode", method="html") for c in container)


def _document(title: str, body: str, styles: list[str] | None = None) -> str:
    css = "\n".join(s for s in (styles or []) if s.strip())
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{_escape(title)}</title>"
        f"<style>{PAGE_STYLE}</style>"
        + (f"<style>{css}</style>" if css else "")
        + f"</head><body>{body}</body></html>\n"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clean_tree(root: HtmlElement, base_url: str | None) -> None:
    # Comments (IE's conditional comments hold markup) and processing instructions go.
    for node in list(root.iter(etree.Comment, etree.ProcessingInstruction)):
        _remove(node)
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        if element is not root and element.getparent() is None:
            continue  # removed with an element before it
        tag = _local(element.tag)
        if tag in VOID:
            element.drop_tag()  # libxml2 nests what follows a void tag it does not know
        elif tag in DROP or tag == "style" or tag == "title":
            _remove(element)  # <style> blocks are kept in <head> by sanitize_page
        elif tag in PLACEHOLDER:
            _placeholder(element, tag)
        elif tag in UNWRAP:
            element.drop_tag()
        elif tag in AS_PRE:
            element.tag = "pre"
    for element in list(root.iter()):
        if not isinstance(element.tag, str):
            continue
        tag = _local(element.tag)
        if tag == "img":  # a kept raster data: image
            continue
        href = element.get("href") if tag == "a" else None
        _clean_attributes(element, tag)
        if tag == "a" and href is not None:
            _neutralise_link(element, href, base_url)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def _remove(node: etree._Element) -> None:
    """Remove a node but keep the text that follows it (its tail) in place."""
    parent = node.getparent()
    if parent is None:
        return
    tail = node.tail
    previous = node.getprevious()
    parent.remove(node)
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


def _placeholder(element: HtmlElement, tag: str) -> None:
    src = (element.get("src") or "").strip()
    alt = (element.get("alt") or element.get("title") or "").strip()
    if tag == "img" and _RASTER_DATA.match(src):
        kept = {"src": src, "alt": alt}
        for name in list(element.attrib):
            del element.attrib[name]
        element.attrib.update(kept)
        return
    tail = element.tail
    element.clear()  # children (video <source>, picture <img>) and attributes go
    element.tag = "span"
    element.set("class", "ufa-placeholder")
    element.text = f"[{PLACEHOLDER[tag]}{'：' + alt if alt else ''}]"
    element.tail = tail


def _clean_attributes(element: HtmlElement, tag: str) -> None:
    for name in list(element.attrib):
        local = _local(name)
        keep = local in ATTRIBUTES and (local not in ("type", "value") or tag in _TYPED)
        if not keep:
            del element.attrib[name]
    style = element.get("style")
    if style is not None:
        cleaned = _clean_css(style, inline=True)
        if cleaned.strip():
            element.set("style", cleaned)
        else:
            del element.attrib["style"]


def _neutralise_link(element: HtmlElement, href: str, base_url: str | None) -> None:
    """Links go nowhere: the sandbox lets a click navigate the frame itself, so no href
    is kept but a fragment on the same page; an http(s) target is named in the title."""
    target = _URL_IGNORED.sub("", href)
    if target.startswith("#") and len(target) > 1:
        element.set("href", "#" + re.sub(r"[^\w\-.:]", "", target[1:]))
        return
    resolved = urljoin(base_url or "", href.strip()) if base_url else href.strip()
    if urlsplit(resolved).scheme.lower() in ("http", "https"):
        element.set("title", f"原链接（已停用）：{resolved}")
    element.set("class", "ufa-link")


def _unescape_css(css: str) -> str:
    def replace(match: re.Match[str]) -> str:
        hexa, newline, char = match.groups()
        if hexa:
            code = int(hexa, 16)
            return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
        if newline:
            return ""
        return char or ""

    return _CSS_ESCAPE.sub(replace, css)


def _clean_css(css: str, inline: bool = False) -> str:
    """CSS that fetches nothing and runs nothing: comments and escapes undone (so no
    `u\\72l(` hides a url()), @import removed, url(...) replaced by `none`, and every other
    fetching function's name broken so its declaration is dropped by the browser."""
    text = _unescape_css(_CSS_COMMENT.sub(" ", css))
    text = _CSS_IMPORT.sub("", text)
    text = _CSS_URL.sub("none", text)
    text = _CSS_FETCH.sub("x-blocked(", text)
    text = _CSS_BINDING.sub("x-blocked", text)
    text = _CSS_AT_RULES.sub("@x-blocked", text)
    text = _CSS_BLOCKED.sub("", text)  # the whole declaration (a url string may remain in it)
    if inline:
        text = text.replace("\n", " ")
    # Undone escapes may have made "<" or a backslash: re-escape them, so that a <style>
    # block cannot be closed from inside and nothing is re-interpreted.
    return text.replace("\\", "\\5c ").replace("<", "\\3c ")
