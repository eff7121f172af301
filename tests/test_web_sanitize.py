"""web.sanitize on hostile markup: nothing that runs code, loads a resource or navigates
survives, in any spelling, while the text an archivist reads stays; and page decoding."""

from __future__ import annotations

import re

import pytest

from web.sanitize import decode_page, sanitize_fragment, sanitize_page

BASE = "https://www.zytzb.gov.cn/tzyw/202404/t20240406_10.html"
#: Nothing of these may be left in any sanitised output below (lower-cased).
FORBIDDEN = (
    "<script", "javascript", "vbscript", "evil.example", "<iframe", "<frame", "<object",
    "<embed", "<applet", "<base", "<meta", "<link", "<form", "<input", "<button", "<svg",
    "<math", "src=", "srcset", "href=\"http", "href=\"//", "action=", "formaction",
    "xlink", "http-equiv", "@import", "expression(", "url(", "data:text", "<noscript",
    "<template", "<video", "<audio", "<source", "<track", "poster", "background=",
    "-moz-binding", "behavior", "ping=",
)  # fmt: skip
LINK_TITLE = re.compile(r'title="原链接（已停用）：https?://[^"]*"')
_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)

HOSTILE = [
    ("script", "<p>正文<script>alert(1)</script>结束</p>", ["正文", "结束"]),
    ("script upper case", "<SCRIPT SRC=//evil.example/x.js></SCRIPT><p>留下</p>", ["留下"]),
    ("handler", '<p onclick="alert(1)" ONMOUSEOVER=alert(2)>点击</p>', ["点击"]),
    ("img onerror", '<img src=x onerror="alert(1)" alt="会场">', ["[图片：会场]"]),
    ("img protocol-relative", '<img src="//evil.example/a.png">', ["[图片]"]),
    ("img srcset", '<img srcset="https://evil.example/a.png 2x, b.png 1x" alt="图">', ["[图片：图]"]),
    ("picture", '<picture><source srcset="https://evil.example/a.webp"><img src="https://evil.example/a.jpg" alt="照片"></picture>', ["[图片]"]),
    ("javascript link", '<a href="javascript:alert(1)">链接</a>', ["链接"]),
    ("JAVASCRIPT upper", '<a href="JAVASCRIPT:alert(1)">大写</a>', ["大写"]),
    ("javascript entity", '<a href="javascript&#58;alert(1)">实体</a>', ["实体"]),
    ("javascript tab", '<a href="java\tscript:alert(1)">制表</a>', ["制表"]),
    ("javascript hex entity", '<a href="&#x6A;avascript:alert(1)">十六</a>', ["十六"]),
    ("vbscript", '<a href="vbscript:msgbox(1)">vb</a>', ["vb"]),
    ("data text/html", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">数据</a>', ["数据"]),
    ("data iframe", '<iframe src="data:text/html,<script>alert(1)</script>"></iframe><p>后</p>', ["后"]),
    ("external link", '<a href="https://evil.example/page" ping="https://evil.example/p">外链</a>', ["外链"]),
    ("protocol-relative link", '<a href="//evil.example/page">相对</a>', ["相对"]),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=https://evil.example/"><p>文</p>', ["文"]),
    ("meta refresh upper", '<META HTTP-EQUIV=REFRESH CONTENT="0;URL=javascript:alert(1)"><p>文</p>', ["文"]),
    ("base", '<base href="https://evil.example/"><a href="x.html">相对链接</a>', ["相对链接"]),
    ("form", '<form action="https://evil.example/s"><input name=q value=1><button formaction="https://evil.example/f">提交</button>表单文字</form>', ["表单文字"]),
    ("button formaction", '<button formaction="javascript:alert(1)">按钮</button><p>后</p>', ["后"]),
    ("svg script", "<svg><script>alert(1)</script><circle r=1 /></svg><p>图后</p>", ["图后"]),
    ("svg onload", '<svg onload="alert(1)"><a xlink:href="javascript:alert(2)"><text>t</text></a></svg>ok', ["ok"]),
    ("svg image", '<svg><image href="https://evil.example/i.png" /></svg>ok', ["ok"]),
    ("svg use", '<svg><use xlink:href="https://evil.example/s.svg#x" /></svg>ok', ["ok"]),
    ("math", '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">m</maction></math>ok', ["ok"]),
    ("object", '<object data="https://evil.example/x.swf"><param name=src value="https://evil.example/y"></object>ok', ["ok"]),
    ("embed", '<embed src="https://evil.example/x.swf">ok', ["ok"]),
    ("applet", '<applet code="X" codebase="https://evil.example/">a</applet>ok', ["ok"]),
    ("link stylesheet", '<link rel=stylesheet href="https://evil.example/s.css">ok', ["ok"]),
    ("style url", '<p style="background:url(https://evil.example/b.png);color:red">红</p>', ["红", "color:red"]),
    ("style url quoted", "<p style=\"background-image: url('//evil.example/b.png')\">引</p>", ["引"]),
    ("style escaped url", '<p style="background:u\\72l(https://evil.example/b.png)">转义</p>', ["转义"]),
    ("style expression", '<p style="width:expression(alert(1))">表达式</p>', ["表达式"]),
    ("style binding", '<p style="-moz-binding:url(https://evil.example/x.xml#x);behavior:url(x.htc)">绑定</p>', ["绑定"]),
    ("style image-set", '<p style="background:image-set(\'https://evil.example/a.png\' 1x)">集</p>', ["集"]),
    ("style block", "<style>@import 'https://evil.example/a.css'; p{background:url(https://evil.example/b.png)} h1{color:blue}</style><p>块</p>", ["块"]),
    ("style font-face", "<style>@font-face{font-family:x;src:url(https://evil.example/f.woff)}</style><p>字</p>", ["字"]),
    ("style closing", "<style>p{content:'\\3c /style\\3e \\3c script\\3e alert(1)\\3c /script\\3e '}</style><p>闭</p>", ["闭"]),
    ("body background", '<table background="https://evil.example/t.png"><tr><td background="https://evil.example/c.png">格</td></tr></table>', ["格"]),
    ("video", '<video src="https://evil.example/v.mp4" poster="https://evil.example/p.png"><track src="https://evil.example/t.vtt"></video>ok', ["[视频]", "ok"]),
    ("audio", '<audio><source src="https://evil.example/a.mp3"></audio>ok', ["[音频]", "ok"]),
    ("input image", '<input type="image" src="https://evil.example/i.png">ok', ["ok"]),
    ("noscript", '<noscript><img src="https://evil.example/pixel.gif"></noscript>ok', ["ok"]),
    ("template", '<template><script>alert(1)</script></template>ok', ["ok"]),
    ("conditional comment", '<!--[if IE]><script src="https://evil.example/ie.js"></script><![endif]-->ok', ["ok"]),
    ("frameset", '<frameset><frame src="https://evil.example/f.html"></frameset>', []),
    ("area", '<map name=m><area href="javascript:alert(1)" shape=rect coords="0,0,1,1"></map>ok', ["ok"]),
    ("iframe srcdoc", '<iframe srcdoc="<script>alert(1)</script>"></iframe>ok', ["ok"]),
    ("isindex", '<isindex action="https://evil.example/">ok', ["ok"]),
    ("xmp", "<xmp><script>alert(1)</script></xmp>ok", ["ok"]),
    ("details ontoggle", '<details open ontoggle="alert(1)"><summary>摘要</summary>内容</details>', ["摘要", "内容"]),
    ("marquee", '<marquee onstart="alert(1)">滚动</marquee>', ["滚动"]),
    ("attribute breakout", '<p title="x&quot;><script>alert(1)</script>">题</p>', ["题"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "snippet", "kept"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_snippets_are_neutralised(name: str, snippet: str, kept: list[str]) -> None:
    page = sanitize_page(f"<html><body>{snippet}</body></html>", BASE)
    assert page.count("<meta") == 1  # our own charset
    for output in (sanitize_fragment(snippet, BASE), page.replace('<meta charset="utf-8">', "")):
        # a link's target is named in its title (text, never loaded): nothing else is left
        lowered = LINK_TITLE.sub("", output).lower()
        for bad in FORBIDDEN:
            assert bad not in lowered, (name, bad, output)
        assert not _HANDLER.search(output), (name, output)
        for text in kept:
            assert text in output, (name, text, output)


def test_links_keep_their_text_and_name_their_target() -> None:
    out = sanitize_fragment(
        '<a href="/tzyw/other.html" target=_blank>相关</a> <a href="#top">顶部</a>', BASE
    )
    assert 'title="原链接（已停用）：https://www.zytzb.gov.cn/tzyw/other.html"' in out
    assert "href" in out and 'href="#top"' in out and "target" not in out
    assert out.count("href") == 1  # only the fragment on the same page stays a link


def test_presentation_is_kept() -> None:
    out = sanitize_fragment(
        '<table class="t" border=1><tr><td colspan=2 style="color: #c00; font-weight: bold">红字</td></tr></table>'
        '<ol start=3><li>三</li></ol><p align=center lang=zh>居中</p>'
    )  # fmt: skip
    for piece in (
        'class="t"',
        'colspan="2"',
        "color: #c00; font-weight: bold",
        'start="3"',
        'align="center"',
        "居中",
    ):
        assert piece in out, piece


def test_raster_data_image_is_kept_and_others_are_not() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    assert f'<img src="{png}" alt="小图">' in sanitize_fragment(
        f'<img src="{png}" alt="小图" onload="x()">'
    )
    svg = sanitize_fragment('<img src="data:image/svg+xml;base64,PHN2Zz4=" alt="矢量">')
    assert "<img" not in svg and "[图片：矢量]" in svg


def test_style_blocks_are_kept_without_fetches() -> None:
    page = sanitize_page(
        "<html><head><style>h1 { color: blue } div > p { margin: 0 } "
        "body { background: url(https://evil.example/b.png) }</style></head><body><h1>标题</h1></body></html>"
    )  # fmt: skip
    assert "h1 { color: blue }" in page and "div > p" in page
    assert "background: none" in page and "evil.example" not in page


def test_whole_page_title_and_text() -> None:
    page = sanitize_page(
        '<!doctype html><html><head><title>统战部召开座谈会</title><meta http-equiv="refresh" content="0">'
        '</head><body onload="alert(1)">前言<p>座谈会</p>尾</body></html>', BASE,
    )  # fmt: skip
    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page
    assert "<title>统战部召开座谈会</title>" in page and "前言" in page and "座谈会" in page
    assert "onload" not in page and "http-equiv" not in page
    assert sanitize_page("").startswith("<!doctype html>")
    assert "<body></body>" in sanitize_page("   ")


def test_odd_documents() -> None:
    xhtml = sanitize_page(
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml">'
        "<body><p>甲</p></body></html>"
    )  # fmt: skip
    assert "<p>甲</p>" in xhtml
    assert "<body></body>" in sanitize_page("<html><head><title>只有头</title></head></html>")
    assert "<body></body>" in sanitize_page(
        '<frameset><frame src="https://evil.example/"></frameset>'
    )
    assert "a\ufffdb<p>c</p>" in sanitize_page("a\x00b<p>c</p>")  # a NUL is no way out
    deep = sanitize_page("<div>" * 3000 + "深" + "</div>" * 3000)
    assert "深" in deep or "<body>" in deep  # libxml2's depth limit, never an error
    assert sanitize_fragment("文字<b>粗</b>尾") == "文字<b>粗</b>尾"


def test_decode_page() -> None:
    text = "统战部召开座谈会"
    gbk = f'<meta charset="gb2312"><p>{text}</p>'.encode("gb18030")
    assert text in decode_page(gbk, "gb18030")  # the codec recorded on the snapshot
    assert text in decode_page(gbk, None, "text/html; charset=GBK")  # the header's
    assert text in decode_page(gbk, None, "text/html")  # the page's <meta charset>
    assert text in decode_page(text.encode("utf-8"), None, None)  # UTF-8 by default
    assert text in decode_page(b"\xef\xbb\xbf" + text.encode("utf-8"), None)
    assert decode_page(b"\xff\xfe broken \x80", "utf-8").count("\ufffd") >= 2  # never raises
    assert text in decode_page(text.encode("utf-8"), "rot13")  # not a text codec: skipped
    assert text in decode_page(text.encode("utf-8"), "no-such-codec")
