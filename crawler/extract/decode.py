"""Page bytes -> text: the one place where a response body is decoded.

The order (issue 16): a BOM; then bytes that decode as strict UTF-8 and hold multi-byte
sequences are UTF-8, whatever a label says (pages migrated to UTF-8 keep their old
`<meta charset=gb2312>`: decoding them as GB18030 turned every field into mojibake like
鍦ㄦ and 锛); then the HTTP header's charset; then `<meta charset>` / `http-equiv`; then
detection (UTF-8 if it decodes, else GB18030). Random GBK or Big5 text is practically
never valid UTF-8 once it has a few Chinese characters, so the check cannot steal a
legacy page. GB2312 and GBK labels decode as GB18030 and Big5 as Big5-HKSCS (supersets,
w3lib's table), so a page labelled gb2312 that uses 镕 or 堃 keeps them; lxml given the
raw bytes would stop parsing at the first such character (tests/fixtures/sites/gbk_city).

`mojibake()` finds what a wrong decoding leaves behind, for the extraction warnings.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from w3lib.encoding import (
    html_body_declared_encoding,
    http_content_type_encoding,
    read_bom,
    resolve_encoding,
)

#: Why an encoding was used, as recorded on the snapshot.
REASON_BOM = "bom"
REASON_UTF8 = "utf-8 bytes"  # strict UTF-8 with multi-byte sequences, whatever the labels say
REASON_HEADER = "http header"
REASON_META = "meta"
REASON_DETECTED = "detected"
REASON_TEXT = "text"  # given already decoded


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str
    reason: str  # one of the REASON_* values
    declared: str | None = None  # what the header or <meta> said, when it was overruled


def decode_page(body: bytes, content_type: str | None = None) -> Decoded:
    """The page's text, the codec used and why. Undecodable bytes become U+FFFD, never an error."""
    bom, bom_bytes = read_bom(body)
    if bom and bom_bytes:
        codec = resolve_encoding(bom) or "utf-8"
        return Decoded(body[len(bom_bytes) :].decode(codec, "replace"), codec, REASON_BOM)
    header = resolve_encoding(http_content_type_encoding(content_type) or "")
    meta = declared_encoding(body)
    label = header or meta
    if _has_multibyte_utf8(body):
        overruled = label if label and codecs.lookup(label).name != "utf-8" else None
        return Decoded(body.decode("utf-8"), "utf-8", REASON_UTF8, overruled)
    if header:
        return Decoded(_decode(body, header), header, REASON_HEADER)
    if meta:
        return Decoded(_decode(body, meta), meta, REASON_META)
    guessed = _guess(body)
    return Decoded(_decode(body, guessed), guessed, REASON_DETECTED)


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(text, encoding used) for an HTML page; `decode_page` also says why."""
    decoded = decode_page(body, content_type)
    return decoded.text, decoded.encoding


def declared_encoding(body: bytes) -> str | None:
    """The encoding the page's own `<meta>` declares, resolved to its superset codec."""
    declared = html_body_declared_encoding(body)
    return resolve_encoding(declared) if declared else None


def _decode(body: bytes, codec: str) -> str:
    try:
        return body.decode(codec, "replace")
    except LookupError:  # a label w3lib knows but this Python does not
        return body.decode(_guess(body), "replace")


def _has_multibyte_utf8(body: bytes) -> bool:
    if body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _guess(body: bytes) -> str:
    """No BOM, header or <meta>: UTF-8 if the bytes are valid UTF-8, else GB18030."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


# --------------------------------------------------------------------------- mojibake

# Runs of non-ASCII letters; a wrong decoding of UTF-8 as GBK gives runs of rare Han
# characters (鍦ㄦ, 锛氬, 鈥滄) that are the UTF-8 bytes read two by two.
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\s]{3,}")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef\u2000-\u206f]")


#: Characters of a run that mojibake() reads back (see there).
RUN_SAMPLE = 240


def mojibake(text: str, limit: int = 4000) -> str | None:
    """The first run of `text` that reads as UTF-8 decoded as GBK (or Big5), or None.

    A run is mojibake when its GB18030 (or Big5) bytes are mostly valid UTF-8 that spells
    CJK text: real Chinese text in GBK bytes almost never is (tests/test_decode.py).
    """
    for match in _NON_ASCII_RUN.finditer(text[:limit]):
        run = match.group()
        for codec in ("gb18030", "big5hkscs"):
            good = bad = 0
            # U+FFFD is where the wrong codec met bytes it could not pair: read around it.
            # A run's first RUN_SAMPLE characters decide (a wrong decoding spoils a page
            # throughout): Chinese prose runs on to the limit without a space, and reading
            # all of it back cost 2.5 % of a crawl's time (py-spy, bench/crawl.py).
            for piece in run[:RUN_SAMPLE].split("\ufffd"):
                try:
                    # a cut at either end of a piece leaves half a character there
                    again = piece.encode(codec).decode("utf-8", "replace").strip("\ufffd")
                except UnicodeEncodeError:
                    good = -1
                    break
                good += len(_CJK.findall(again))
                bad += again.count("\ufffd")
            if good >= 2 and bad * 3 <= good:
                return run
    return None
