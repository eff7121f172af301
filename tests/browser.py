"""The web UI as an archivist's browser meets it: the app on a real uvicorn in a thread on
a free loopback port, and Debian's chromium driven by playwright (`executable_path`;
never a browser downloaded by playwright). Used by tests/test_web_browser.py; bench/web.py
serves its app the same way, in a process of its own."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

#: Debian's package (`apt-get install chromium`); .ci/run installs it when missing.
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS_DEFAULT = Path(__file__).resolve().parent.parent / "test-artifacts"


def chromium_path() -> str | None:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


def need_chromium() -> str:
    """The browser's path; skips the test without one, but fails it under CI=true."""
    path = chromium_path()
    if path is None:
        problem = f"no chromium at {CHROMIUM} (apt-get install chromium fonts-wqy-microhei)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI=true: the browser tests must run")
        pytest.skip(problem)
    return path


def artifacts_dir(name: str) -> Path:
    """Where a test's screenshots go: $UFARCHIVE_ARTIFACTS, else test-artifacts/ (in
    .gitignore), one directory a test."""
    root = Path(os.environ.get("UFARCHIVE_ARTIFACTS") or ARTIFACTS_DEFAULT)
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def loopback_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening socket on a free port, bound before the server starts (no race with
    another process picking the same port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """An ASGI app on uvicorn in a daemon thread, on 127.0.0.1 and a free port."""

    def __init__(self, app: Any) -> None:
        self.sock = loopback_socket()
        host, port = self.sock.getsockname()[:2]
        self.origin = f"http://{host}:{port}"
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, server_header=False, proxy_headers=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="web-test", daemon=True
        )

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def start(self, timeout: float = 20) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the web UI did not start on {self.origin}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@contextmanager
def live_server(app: Any) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium (a playwright Browser); skips/fails as need_chromium."""
    path = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield browser
        finally:
            browser.close()
