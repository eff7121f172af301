"""Page bytes -> text: the one place where a response body is decoded.

The HTTP header's charset, then a BOM, then `<meta charset>` / `http-equiv`, then UTF-8
if it decodes, else GB18030 (w3lib's order, which follows browsers). GB2312 and GBK
labels decode as GB18030 and Big5 as Big5-HKSCS (supersets, w3lib's table), so a page
labelled gb2312 that uses 镕 or 堃 keeps them; lxml given the raw bytes would stop
parsing at the first such character (tests/fixtures/sites/gbk_city shows it).
"""

from __future__ import annotations

from w3lib.encoding import html_body_declared_encoding, html_to_unicode, resolve_encoding


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(text, encoding used) for an HTML page; undecodable bytes become U+FFFD, never an error."""
    encoding, text = html_to_unicode(content_type, body, auto_detect_fun=_guess)
    return text, encoding


def declared_encoding(body: bytes) -> str | None:
    """The encoding the page's own `<meta>` declares, resolved to its superset codec."""
    declared = html_body_declared_encoding(body)
    return resolve_encoding(declared) if declared else None


def _guess(body: bytes) -> str:
    """No header, BOM or <meta>: UTF-8 if the bytes are valid UTF-8, else GB18030."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"
