"""A crawl's derive process: republication clusters and search entries off the crawl's core.

A crawl process is bound by one core (bench/crawl.py): Scrapy, extraction, WARC records
and storing, and, until this process, the derived data of every new or changed article
(MinHash bands and clustering, search tokens and index writes: a fifth of its time). Once
a run has stored `crawl.derive_process_after` such articles, its pipeline starts this
process and sends it the ids of each committed batch, one line of ids a batch, on its
stdin. The process reads the articles' current versions, computes what is derived from
them without holding any lock (archive.store.prepare_derived), then writes it in a
transaction of its own (apply_derived, which derives again any article edited in
between). End of input (the crawl finished, or died) ends it once the ids read are done.

Nothing is lost if either process stops: the crawl waits for this one at its end and
then derives, itself, every article of the site still missing from the index
(archive.store.underived); a crawl killed before that leaves them to the site's next run.
"""

from __future__ import annotations

import logging
import os
import select
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DATABASE_ENV = "UFARCHIVE_DERIVE_DATABASE_URL"
#: Ids derived in one transaction at most, when the crawl is ahead.
MOST_AT_ONCE = 500


class Deriver(Protocol):
    """Where a pipeline sends the ids of each committed batch to be derived: this module's
    DeriveProcess, or a worker's pass over all its runs (crawler.worker.SharedDeriver)."""

    def writer_busy(self) -> bool: ...

    def send(self, article_ids: list[int]) -> bool: ...

    def finish(self, timeout: float = 600.0) -> bool: ...


class DeriveProcess:
    """The crawl's side: start the process, send it ids, wait for it at the end."""

    def __init__(self, database_url: str) -> None:
        env = {**os.environ, DATABASE_ENV: database_url}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crawler.derive"], stdin=subprocess.PIPE, env=env
        )
        self.failed = False
        self.probe: sqlite3.Connection | None = None
        parsed = make_url(database_url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self.probe = sqlite3.connect(parsed.database, timeout=0, isolation_level=None)

    def writer_busy(self) -> bool:
        """Is SQLite's write lock held right now (by the derive process, mostly)? The crawl
        then keeps its batch a little longer instead of waiting for the lock with its
        reactor stopped. PostgreSQL has no such lock: False."""
        if self.probe is None:
            return False
        try:
            self.probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        self.probe.execute("ROLLBACK")
        return False

    def send(self, article_ids: list[int]) -> bool:
        """Hand over committed articles; False when the process is gone (derive them here)."""
        if self.failed or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write((",".join(map(str, article_ids)) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError: it died; the crawl's catch-up covers what it had
            log.warning("the derive process has stopped; deriving in the crawl process")
            self.failed = True
            return False
        return True

    def finish(self, timeout: float = 600.0) -> bool:
        """End its input and wait for it to derive what it was sent: True if it did."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the derive process did not finish in %.0f s; stopped", timeout)
            self.proc.kill()
            self.proc.wait()
            return False
        finally:
            if self.probe is not None:
                self.probe.close()
        if code != 0:
            log.warning("the derive process ended with status %d", code)
        return code == 0 and not self.failed


def batches(fd: int) -> Iterator[list[int]]:
    """Ids from the crawl, as many as have arrived (at most MOST_AT_ONCE) each time, until
    its end of input."""
    buffered = b""
    ids: list[int] = []
    while True:
        # block for the first line; then take whatever else is already there
        wait = None if not ids else 0.0
        ready, _, _ = select.select([fd], [], [], wait)
        chunk = os.read(fd, 65536) if ready else None
        if chunk:
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            ids.extend(int(i) for line in lines for i in line.split(b",") if i.strip())
            if len(ids) < MOST_AT_ONCE:
                continue
        if ids:
            yield ids[:MOST_AT_ONCE]
            ids = ids[MOST_AT_ONCE:]
            continue
        if chunk == b"":  # end of input, nothing left
            return


def main() -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from archive.db import make_engine, make_sessionmaker
    from archive.store import apply_derived, prepare_derived

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [derive] %(levelname)s: %(message)s"
    )
    url = os.environ[DATABASE_ENV]
    # reading takes no write lock (on SQLite a writer engine's transactions would: BEGIN
    # IMMEDIATE); a read transaction in WAL mode keeps no writer waiting
    reader, engine = make_engine(url), make_engine(url, writer=True)
    sessions = make_sessionmaker(engine)
    status = 0
    for ids in batches(sys.stdin.fileno()):
        try:
            with reader.connect() as conn:  # read, then compute: no lock held
                work = prepare_derived(conn, ids)
                conn.rollback()
            with sessions() as session, session.begin():
                apply_derived(session, ids, work, recheck=True)
        except SQLAlchemyError as exc:  # the crawl's catch-up derives them
            log.error("could not derive %d articles: %s", len(ids), exc)
            status = 1
        except Exception:  # a bug: keep going with the next batches; the catch-up redoes these
            log.exception("could not derive %d articles", len(ids))
            status = 1
    reader.dispose()
    engine.dispose()
    return status


if __name__ == "__main__":
    sys.exit(main())
