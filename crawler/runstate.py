"""One site's run inside a crawl process: its counters, errors and database handle.

The spider owns it; the pipeline adds outcomes to it; it is written to the crawl-run
row every second and at the end, so `ufarchive crawl` can show progress and a crash
loses at most a second of counters (never stored articles).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from archive.db import is_disconnect, retrying
from archive.models import RunStatus
from archive.revisit import RevisitVerdict
from archive.settings import RevisitSettings, Settings
from archive.store import Known, RunCounters, finish_run, update_run
from archive.warc import WarcFileWriter
from crawler.sites import SiteConfig

log = logging.getLogger(__name__)


@dataclass
class RunState:
    settings: Settings
    site: SiteConfig
    site_id: int
    run_id: int
    engine: Engine
    sessions: sessionmaker[Session]
    warc: WarcFileWriter
    known: dict[str, Known]
    policy: RevisitSettings = field(default_factory=RevisitSettings)
    due: list[int] = field(default_factory=list)  # the articles this run revisits (ids)
    failed_checks: list[int] = field(default_factory=list)  # revisits without an answer
    verdict: RevisitVerdict | None = None  # the revisits judged as a whole, at the end
    counters: RunCounters = field(default_factory=RunCounters)
    pending_errors: list[tuple[str | None, str, str]] = field(default_factory=list)
    start_requests: int = 0
    start_responses_ok: int = 0
    unstored: int = 0  # pages fetched and extracted that the archive could not store
    first_store_error: str = ""  # why the first of them could not be (one line)
    finished: bool = False

    def error(self, url: str | None, kind: str, message: str) -> None:
        log.warning("%s: %s: %s", url or self.site.name, kind, message)
        self.pending_errors.append((url, kind, message))

    def read_stats(self, stats: dict[str, Any]) -> None:
        """Take the HTTP counters from the crawler's stats."""
        self.counters.requests = int(stats.get("downloader/request_count", 0))
        self.counters.bytes_received = int(stats.get("downloader/response_bytes", 0))
        prefix = "downloader/response_status_count/"
        self.counters.responses_by_status = {
            key.removeprefix(prefix): int(value)
            for key, value in stats.items()
            if key.startswith(prefix)
        }

    def flush(self, stats: dict[str, Any]) -> None:
        """Write counters (from the crawler's stats and our own) and new errors."""
        self.read_stats(stats)
        errors, self.pending_errors = self.pending_errors, []

        def write() -> None:
            with self.sessions() as session, session.begin():
                update_run(session, self.run_id, self.counters, errors, stats=jsonable(stats))

        try:
            retrying(write, f"run {self.run_id}: writing its counters", seconds=5)
        except SQLAlchemyError as exc:  # the next flush tries again; the crawl goes on
            if not is_disconnect(exc):
                raise
            self.pending_errors[:0] = errors
            log.warning(
                "run %d: counters not written yet: the database is unreachable", self.run_id
            )

    def finish(self, status: RunStatus, message: str | None, stats: dict[str, Any]) -> None:
        if self.finished:
            return

        def write() -> None:
            self.flush(stats)
            with self.sessions() as session, session.begin():
                finish_run(session, self.run_id, status, message)

        retrying(write, f"run {self.run_id}: closing it")
        self.finished = True
        self.warc.close()
        self.engine.dispose()


def jsonable(stats: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, int | float | str | bool) or value is None:
            out[key] = value
    return out
