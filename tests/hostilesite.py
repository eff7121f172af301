"""A hostile web site on 127.0.0.1 for fault trials (tests/test_faults.py, bench/faults.py).

Its listing links article URLs that answer:
  /tzyw/202405/t20240501_1.html   a plain article (must be stored)
  /tzyw/202405/t20240502_2.html   a plain article (must be stored)
  /tzyw/202405/t20240503_3.html   a 5 MB article page (one huge body)
  /tzyw/202405/t20240504_4.html   an endless chunked body (never ends)
  /tzyw/202405/t20240505_5.html   slowloris: one byte every DRIP_SECONDS, for ever
  /tzyw/202405/t20240506_6.html   a gzip bomb: Content-Encoding gzip, 1 GiB of zeros inflated
  /tzyw/202405/t20240507_7.html   invalid bytes declared as UTF-8 HTML
  /tzyw/links.html                a listing with 10,000 links (all to articles that 404)
and /sitemap.xml.gz is a gzip bomb too. Every request is counted (`hits`).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DRIP_SECONDS = 0.5
ARTICLE = """<html><head><meta charset="utf-8"><title>{title}_测试统战网</title></head><body>
<h1>{title}</h1><div class="info">来源：测试统战网　时间：2024-05-0{n} 09:00:00</div>
<div class="content">{body}</div>
<div class="footer">版权所有：测试统战网　京ICP备00000000号</div></body></html>"""
PARAGRAPH = (
    "<p>　　各民主党派、工商联和无党派人士围绕中心工作深入调研，提出有分量的意见建议。</p>\n"
)
PLAIN = {1: "统一战线工作会议召开", 2: "民主党派开展专题调研"}


def article(n: int, title: str, paragraphs: int = 3) -> bytes:
    return ARTICLE.format(n=n, title=title, body=PARAGRAPH * paragraphs).encode()


def _bomb(inflated: int) -> bytes:
    """gzip of `inflated` zero bytes, built a MiB at a time (about 1 KiB per MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    parts = [compressor.compress(chunk) for _ in range(inflated >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class HostileSite:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.bomb = _bomb(1 << 30)
        self.sitemap_bomb = _bomb(1 << 30)
        rng = random.Random(18)
        self.garbage = bytes(rng.randrange(256) for _ in range(200_000))
        self.big = article(3, "超大页面", paragraphs=5 * 1024 * 1024 // len(PARAGRAPH.encode()))
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with site.lock:
                    site.hits[self.path] = site.hits.get(self.path, 0) + 1
                with contextlib.suppress(ConnectionError, TimeoutError):
                    site.answer(self)  # (the crawler hanging up is the point)

        self.server = _Server((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HostileSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def listing(self) -> bytes:
        links = "".join(
            f'<li><a href="/tzyw/202405/t2024050{n}_{n}.html">{n}</a></li>' for n in range(1, 8)
        )
        return (
            '<html><head><meta charset="utf-8"><title>统战要闻</title></head><body><ul>'
            f'{links}<li><a href="/tzyw/links.html">更多</a></li></ul></body></html>'
        ).encode()

    def many_links(self) -> bytes:
        links = "".join(
            f'<a href="/tzyw/202406/t2024060{n % 9 + 1}_{1000 + n}.html">{n}</a>\n'
            for n in range(10_000)
        )
        return f'<html><head><meta charset="utf-8"></head><body>{links}</body></html>'.encode()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        html = {"Content-Type": "text/html; charset=utf-8"}
        if path in ("/", "/tzyw/index.html"):
            return self.send(h, 200, html, self.listing())
        if path == "/tzyw/links.html":
            return self.send(h, 200, html, self.many_links())
        if path == "/robots.txt":
            return self.send(h, 200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
        if path == "/sitemap.xml.gz":
            return self.send(h, 200, {"Content-Type": "application/x-gzip"}, self.sitemap_bomb)
        name = path.rsplit("/", 1)[-1]
        n = int(name.split("_")[-1].split(".")[0]) if name.startswith("t2024050") else 0
        if n in PLAIN:
            return self.send(h, 200, html, article(n, PLAIN[n]))
        if n == 3:
            return self.send(h, 200, html, self.big)
        if n == 4:
            return self.endless(h)
        if n == 5:
            return self.drip(h)
        if n == 6:
            return self.send(h, 200, {**html, "Content-Encoding": "gzip"}, self.bomb)
        if n == 7:
            return self.send(h, 200, html, self.garbage)
        return self.send(h, 404, html, b"<html><body>404</body></html>")

    def send(
        self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def endless(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = PARAGRAPH.encode() * 64
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while not self.stopping.is_set():
            h.wfile.write(frame)

    def drip(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html; charset=utf-8")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        while not self.stopping.is_set():
            h.wfile.write(b"<")
            h.wfile.flush()
            time.sleep(DRIP_SECONDS)
