"""Running the web UI on uvicorn: in the foreground (`ufarchive serve`) or in a thread
beside the scheduler (`ufarchive schedule --web`, what `make run` starts)."""

from __future__ import annotations

import logging
import os
import threading
import time

import uvicorn
from fastapi import FastAPI

from archive.db import check_schema, make_engine
from archive.settings import Settings, load_settings
from web.app import create_app, is_loopback, secret_key

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


def worker_count(settings: Settings, asked: int | None = None) -> int:
    count = settings.web.workers if asked is None else asked
    return count or max(1, min(os.cpu_count() or 1, 4))


def app_from_environment() -> FastAPI:
    """The app of each process of `serve` with several workers: settings from the same
    UFARCHIVE_* environment and config folder as the command that started them."""
    return create_app(load_settings())


def serve(
    settings: Settings, host: str, port: int, workers: int | None = None, announce: bool = True
) -> None:
    """Until SIGINT/SIGTERM (uvicorn's own handlers). Several workers share one socket
    (uvicorn's supervisor); one Python process serves about one core's worth of pages."""
    count = worker_count(settings, workers)
    if announce:
        print(f"web UI on {url_of(host, port)} ({count} processes; Ctrl-C stops it)", flush=True)
    if count == 1:
        _server(settings, host, port).run()
        return
    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)  # one line here, not a traceback from every worker
    finally:
        engine.dispose()
    secret_key(settings)  # made once, before the workers would race to make it
    uvicorn.run(
        "web.server:app_from_environment", factory=True, workers=count, host=host, port=port,
        log_level="warning", access_log=False, proxy_headers=False, server_header=False,
    )  # fmt: skip


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
