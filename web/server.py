"""Running the web UI on uvicorn: in the foreground (`ufarchive serve`) or in a thread
beside the scheduler (`ufarchive schedule --web`, what `make run` starts)."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from archive.settings import Settings
from web.app import create_app, is_loopback

log = logging.getLogger("ufarchive.web")


def exposure_warning(settings: Settings, host: str) -> str | None:
    if settings.web.public and not is_loopback(host):
        return (
            f"warning: the web UI listens on {host} with web.public: true; anyone who can "
            "reach it reads the archive without a login (set web.public: false)"
        )
    return None


def _server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", access_log=False,
        proxy_headers=False, server_header=False,
    )  # fmt: skip
    return uvicorn.Server(config)


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def serve(settings: Settings, host: str, port: int, announce: bool = True) -> None:
    """Until SIGINT/SIGTERM (uvicorn's own handlers)."""
    server = _server(settings, host, port)
    if announce:
        print(f"web UI on {url_of(host, port)} (Ctrl-C stops it)", flush=True)
    server.run()


class WebThread:
    """The web UI in a daemon thread; stop() ends it (the scheduler owns the signals)."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self.server = _server(settings, host, port)
        self.url = url_of(host, port)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self, timeout: float = 30) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web UI did not start on {self.url}")
            time.sleep(0.05)
        if not self.server.started:
            raise RuntimeError(f"the web UI could not start on {self.url} (port taken?)")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
