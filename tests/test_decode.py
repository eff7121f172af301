"""Page bytes are decoded in one place, and right: header, BOM, <meta>, GB18030 for GBK labels."""

from __future__ import annotations

import codecs

from crawler.extract.decode import decode_html

TEXT = "统一战线 朱镕基 刘堃"  # 镕 and 堃 are in GBK but not in GB2312


def page(meta: str = "", body: str = TEXT) -> str:
    return f"<html><head>{meta}<title>t</title></head><body><p>{body}</p></body></html>"


def test_the_http_header_wins() -> None:
    text, encoding = decode_html(page(body=TEXT).encode("gbk"), "text/html; charset=GBK")
    assert TEXT in text and encoding == "gb18030"


def test_a_bom_decides_without_a_header() -> None:
    text, encoding = decode_html(
        codecs.BOM_UTF8 + page('<meta charset="gbk">').encode("utf-8"), "text/html"
    )
    assert TEXT in text and encoding == "utf-8"


def test_meta_gb2312_only_still_keeps_gbk_characters() -> None:
    html = page('<meta http-equiv="Content-Type" content="text/html; charset=gb2312">').encode(
        "gbk"
    )
    text, encoding = decode_html(html, "text/html")
    assert TEXT in text and encoding == "gb18030" and "\ufffd" not in text


def test_big5_and_traditional() -> None:
    trad = "統一戰線 僑務工作"
    text, _ = decode_html(page('<meta charset="big5">', trad).encode("big5"), None)
    assert trad in text


def test_no_declaration_at_all() -> None:
    assert TEXT in decode_html(page().encode("utf-8"))[0]
    assert TEXT in decode_html(page().encode("gbk"))[0]  # not UTF-8: GB18030 is the guess
