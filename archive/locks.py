"""Per-site crawl locks, so that two schedulers on one database never crawl a site at once.

PostgreSQL: a session-level advisory lock held on a connection of its own for the whole
crawl; if the holder dies, PostgreSQL drops the connection and with it the lock. SQLite
(one host by nature): an exclusive `flock` on a file beside the database, dropped by the
kernel when the holder dies. Neither waits: a site locked elsewhere is skipped this time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

# The high 32 bits of every key: "ufar", so our keys do not collide with another app's.
KEY_PREFIX = int.from_bytes(b"ufar", "big") << 32


def lock_key(site: str) -> int:
    """A stable signed 64-bit advisory-lock key for a site name."""
    low = int.from_bytes(hashlib.sha256(site.encode()).digest()[:4], "big")
    key = KEY_PREFIX | low
    return key - (1 << 64) if key >= 1 << 63 else key


@contextlib.contextmanager
def site_lock(engine: Engine, site: str) -> Iterator[bool]:
    """Try to take the site's crawl lock; yields whether it was taken, holds it until exit."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = lock_key(site)
            taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield taken
            finally:
                if taken:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    with file_lock(lock_dir(engine) / f"crawl-{site}.lock") as taken:
        yield taken


def lock_dir(engine: Engine) -> Path:
    database = make_url(str(engine.url)).database
    if database and database != ":memory:":
        return Path(database).parent
    return Path(os.environ.get("TMPDIR", "/tmp"))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
