"""A local web server for fixture sites: real HTTP on 127.0.0.1, every request recorded.

Serves a folder as a web root (`/a/b.html` -> `ROOT/a/b.html`, a folder -> its
`index.html`), raw bytes as stored, `text/html` without a charset so that the page's
own `<meta>` decides, and `{{BASE}}` in text files replaced by `http://127.0.0.1:PORT`
(feeds and sitemaps need absolute URLs). Static files answer conditional requests
(ETag / Last-Modified -> 304), unless `conditional` is set False (a server that ignores
them, as many do). Per-path rules set status codes (in turn: `[500, 500, 200]`),
delays, headers, bodies and redirects; `put()`/`delete()` change a page mid-test.

Named behaviours, after Scrapy's mock server:
  /_status/NNN                  that status
  /_delay/SECONDS               200 after a wait
  /_redirect?to=PATH            302 to PATH
  /_redirect-loop/N             302 to /_redirect-loop/N+1, for ever
  /_trap/N.html                 a page linking to /_trap/N+1.html (a calendar trap)
  /_big/BYTES                   a 200 HTML body of that many bytes
  /_enc/CHARSET                 a Chinese article page in CHARSET, declared in the header

Also a script for demos: `python -m tests.siteserver ROOT [--port N]`.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import mimetypes
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

TEXT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
    ".txt": "text/plain",
    ".json": "application/json",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
}
BASE_PLACEHOLDER = b"{{BASE}}"

ENC_SAMPLE = (
    "<html><head><title>统一战线新闻_测试站</title></head><body><h1>统一战线新闻</h1>"
    "<p>来源：测试站　时间：2024-02-07 10:29:35</p>"
    "<p>各民主党派、工商联和无党派人士为经济社会发展建言献策。</p></body></html>"
)


@dataclass
class Rule:
    """What to answer on one path instead of (or before) the file."""

    status: int | Sequence[int] = 200  # a sequence is served in turn, its last value repeating
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # None: the file (or built-in) body when status is 200
    redirect: str | None = None  # Location; status defaults to 302
    _served: int = 0

    def next_status(self) -> int:
        if isinstance(self.status, int):
            return self.status
        index = min(self._served, len(self.status) - 1)
        self._served += 1
        return self.status[index]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased
    at: float

    @property
    def url_path(self) -> str:
        return urlsplit(self.path).path


class SiteServer:
    """One fixture site on a random free port of 127.0.0.1; use as a context manager."""

    def __init__(self, root: Path | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._rules: dict[str, Rule] = {}
        self._overlay: dict[str, bytes | None] = {}
        self._mtimes: dict[str, float] = {}
        handler = type("Handler", (_Handler,), {"site": self})
        self._httpd = _Server((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.latency = 0.0  # seconds added to every answer (a slow, far-away server)
        self.active = 0  # requests being answered now
        self.max_active = 0  # the most answered at once: what a site feels as concurrency
        self.conditional = True  # False: ignore If-None-Match / If-Modified-Since

    # --- lifecycle
    def start(self) -> SiteServer:
        # stop() waits for the serve loop to notice: at the default 0.5 s poll, half a
        # second a server, which over the suite's thousand servers adds up to minutes
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses
    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + (path if path.startswith("/") else "/" + path)

    # --- behaviour
    def rule(self, path: str, **kwargs: object) -> Rule:
        """Answer `path` (exact, with query, or without it) by a `Rule(**kwargs)`."""
        rule = Rule(**kwargs)  # type: ignore[arg-type]
        with self._lock:
            self._rules[path] = rule
        return rule

    def put(self, path: str, body: bytes | str, encoding: str = "utf-8") -> None:
        """Serve `body` at `path` from now on (an edited or a new page)."""
        data = body.encode(encoding) if isinstance(body, str) else body
        with self._lock:
            self._overlay[path] = data
            self._mtimes[path] = time.time()

    def delete(self, path: str) -> None:
        """`path` answers 404 from now on."""
        with self._lock:
            self._overlay[path] = None

    # --- the log
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.path == path or r.url_path == path)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self.max_active = self.active

    # --- used by the handler
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _rule_for(self, path: str) -> Rule | None:
        with self._lock:
            return self._rules.get(path) or self._rules.get(urlsplit(path).path)

    def _content(self, url_path: str) -> tuple[bytes, float] | None:
        """(raw bytes, mtime) of a page, from the overlay or the root folder."""
        with self._lock:
            if url_path in self._overlay:
                data = self._overlay[url_path]
                return None if data is None else (data, self._mtimes[url_path])
        if self.root is None:
            return None
        target = (self.root / unquote(url_path).lstrip("/")).resolve()
        root = self.root.resolve()
        if root not in target.parents and target != root:
            return None
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return None
        return target.read_bytes(), target.stat().st_mtime


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-answer (a crawler refusing an oversized page) is
        # expected here, not a server bug worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    site: SiteServer
    protocol_version = "HTTP/1.1"
    server_version = "fixture-site/1.0"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waited for
    # the client's delayed ACK of the headers (40 ms on Linux) on every answer of a kept-alive
    # connection, as no real web server lets it (nginx and Apache set TCP_NODELAY).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # requests go to the log instead
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        site = self.site
        site._record(
            RecordedRequest(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                time.time(),
            )
        )
        with site._lock:
            site.active += 1
            site.max_active = max(site.max_active, site.active)
        try:
            if site.latency:
                time.sleep(site.latency)
            self._answer_now(head)
        finally:
            with site._lock:
                site.active -= 1

    def _answer_now(self, head: bool) -> None:
        site = self.site
        rule = site._rule_for(self.path)
        if rule is not None:
            if rule.delay:
                time.sleep(rule.delay)
            status = rule.next_status()
            if rule.redirect is not None:
                self._send(
                    302 if status == 200 else status,
                    b"",
                    {"Location": rule.redirect, **rule.headers},
                    head,
                )
                return
            if status != 200 or rule.body is not None:
                body = rule.body if rule.body is not None else _status_page(status)
                headers = {"Content-Type": "text/html; charset=utf-8", **rule.headers}
                self._send(status, body, headers, head)
                return
            extra = rule.headers
        else:
            extra = {}
        if self._builtin(head, extra):
            return
        self._static(head, extra)

    def _builtin(self, head: bool, extra: dict[str, str]) -> bool:
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/")
        if not segments or not segments[0].startswith("_"):
            return False
        name, arg = segments[0], (segments[1] if len(segments) > 1 else "")
        html = {"Content-Type": "text/html; charset=utf-8", **extra}
        if name == "_status" and arg.isdigit():
            self._send(int(arg), _status_page(int(arg)), html, head)
        elif name == "_delay":
            time.sleep(float(arg or 1))
            self._send(200, b"<html><body>slow</body></html>", html, head)
        elif name == "_redirect":
            target = parse_qs(parts.query).get("to", ["/"])[0]
            self._send(302, b"", {"Location": target, **extra}, head)
        elif name == "_redirect-loop":
            n = int(arg or 0)
            self._send(302, b"", {"Location": f"/_redirect-loop/{n + 1}", **extra}, head)
        elif name == "_trap":
            n = int(arg.split(".")[0] or 0)
            body = f'<html><body><a href="/_trap/{n + 1}.html">下一月</a></body></html>'.encode()
            self._send(200, body, html, head)
        elif name == "_big":
            size = int(arg or 1_000_000)
            head_, tail = b"<html><body>", b"</body></html>"
            body = head_ + b"x" * max(0, size - len(head_) - len(tail)) + tail
            self._send(200, body, html, head)
        elif name == "_enc":
            charset = arg or "utf-8"
            self._send(
                200,
                ENC_SAMPLE.encode(charset),
                {"Content-Type": f"text/html; charset={charset}", **extra},
                head,
            )
        else:
            return False
        return True

    def _static(self, head: bool, extra: dict[str, str]) -> None:
        url_path = urlsplit(self.path).path
        found = self.site._content(url_path)
        if found is None:
            self._send(
                404, _status_page(404), {"Content-Type": "text/html; charset=utf-8", **extra}, head
            )
            return
        data, mtime = found
        suffix = Path(
            url_path if not url_path.endswith("/") else url_path + "index.html"
        ).suffix.lower()
        content_type = (
            TEXT_TYPES.get(suffix)
            or mimetypes.guess_type("x" + suffix)[0]
            or "application/octet-stream"
        )
        if suffix in TEXT_TYPES:
            data = data.replace(BASE_PLACEHOLDER, self.site.base.encode("ascii"))
        etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        last_modified = email.utils.formatdate(int(mtime), usegmt=True)
        headers = {
            "Content-Type": content_type,
            "ETag": etag,
            "Last-Modified": last_modified,
            **extra,
        }
        if self.site.conditional and self._not_modified(etag, int(mtime)):
            self._send(304, b"", {"ETag": etag, "Last-Modified": last_modified}, head=True)
            return
        self._send(200, data, headers, head)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return (
                etag in [t.strip() for t in if_none_match.split(",")]
                or if_none_match.strip() == "*"
            )
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                parsed = email.utils.parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
            return mtime <= parsed.timestamp()
        return False

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and status not in (204, 304):
            self.wfile.write(body)


def _status_page(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    return f"<html><body><h1>{status} {phrase}</h1></body></html>".encode()


def iter_sites(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fixture site on 127.0.0.1.")
    parser.add_argument("root", type=Path, help="the folder to serve as the web root")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    with SiteServer(args.root, port=args.port) as server:
        print(f"serving {args.root} at {server.base}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
