"""Engines, sessions and schema upgrades for SQLite (embedded default) and PostgreSQL.

The schema comes only from the Alembic migrations in `archive/migrations/`, in tests too.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from archive.errors import DatabaseError
from archive.redact import redact

MIGRATIONS = "archive:migrations"
#: How long a write waits for a lost database connection to come back (PostgreSQL
#: restarted: bench/faults.py measured 1-3 s of refused connections on this machine).
RECONNECT_SECONDS = 60.0
T = TypeVar("T")
log = logging.getLogger(__name__)


def array_literal(values: Iterable[int]) -> str:
    """The text of a PostgreSQL array of these integers, for `CAST(:x AS int8[])`: a batch's
    column goes as one parameter, parsed by the server (psycopg's list adapter took 1 ms
    for 1,500 integers, five times the server's parsing of the text)."""
    return "{" + ",".join(map(str, values)) + "}"


def array_columns(rows: Sequence[Sequence[int]]) -> list[str]:
    """The columns of these rows, each as `array_literal` (a batch sent as one statement
    over `unnest` of its columns); non-empty rows."""
    return [array_literal(column) for column in zip(*rows, strict=True)]


# COPY's binary format: a signature, flags and header extension (none) before the rows;
# each row its number of fields and each field its length and value, big-endian; -1 after
COPY_HEAD = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_END = struct.pack("!h", -1)


def copy_binary(conn: Connection, table: str, columns: str, rows: bytes | bytearray) -> None:
    """Rows already in COPY's binary form into `table` (PostgreSQL), in the connection's
    transaction: no text made by the client or parsed by the server, no statement a row."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.write(COPY_HEAD)
        copy.write(rows)
        copy.write(COPY_END)


def make_engine(url: str, *, writer: bool = False, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets its folder created, WAL, foreign keys and a busy wait.

    `writer=True` (the crawler) makes SQLite transactions `BEGIN IMMEDIATE`: they take the
    write lock up front and wait for it (busy timeout), instead of reading first and then
    failing with SQLITE_BUSY when another process wrote in between.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is no number
        raise DatabaseError(
            f"database URL {redact(url)!r} is not a SQLAlchemy URL ({redact(str(exc))})"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        if writer:
            event.listen(engine, "connect", _sqlite_writer_cache)
        begin = "BEGIN IMMEDIATE" if writer else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    except NoSuchModuleError:
        raise DatabaseError(
            f"database URL {parsed.render_as_string(hide_password=True)}: unsupported driver; "
            "use sqlite:///PATH or postgresql+psycopg://..."
        ) from None


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # WAL lets the web UI read while a crawl writes; foreign keys are off by default in
    # SQLite; the busy timeout makes two crawl processes wait for each other, not fail.
    # SQLAlchemy emits BEGIN itself (see make_engine), so that SAVEPOINTs and
    # BEGIN IMMEDIATE work; pysqlite's own implicit transactions are switched off.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # SQLite's default page cache is 2 MB; the LSH band index of a 200k-article archive
    # is ~400 MB, and lookups into it are random (bench/dedup.py: the per-article cost
    # rose with the archive until the cache and the memory map were raised).
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MB
    cursor.execute("PRAGMA mmap_size=268435456")  # 256 MB
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _sqlite_writer_cache(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # A writer (crawl, dedup) touches the LSH band index at random; at 200k articles it is
    # ~300 MB and with a 64 MB cache the cost per article grew by half (bench/dedup.py).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA cache_size=-524288")  # 512 MB, taken only as pages are used
    cursor.execute("PRAGMA mmap_size=4294967296")  # 4 GB of address space, not memory
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """The caller opens the session: `with Session() as s, s.begin(): ...`."""
    return sessionmaker(engine, expire_on_commit=False)


def describe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return redact(url)


def alembic_config(engine: Engine | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision`; idempotent."""
    from alembic import command

    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise DatabaseError(f"{describe_url(str(engine.url))}: {_first_line(exc)}") from None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_revision(session: Session) -> str | None:
    """The schema revision of the database a session reads."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(session.connection()).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


#: The head of archive/migrations, as `head_revision()` reads it (tests/test_db.py checks
#: that the two agree): every crawl process, CLI command and web worker checks the schema
#: on start, and reading the head from alembic imports it and every migration script,
#: 0.15 s of each start (a revisit run's process, bench/revisit.py).
SCHEMA_HEAD = "0025"


def stored_revision(engine: Engine) -> str | None:
    """The schema revision the database says it is at (alembic's version table), read
    with one query and without alembic; None for a database never upgraded."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    return ",".join(sorted(str(row[0]) for row in rows)) or None


def check_schema(engine: Engine, seconds: float = 1.0) -> None:
    """Raise `DatabaseError` unless the schema is at the head revision. A connection the
    server ends as it is made (a PostgreSQL restart, an administrator ending sessions) is
    tried again for `seconds`; a database that cannot be reached fails that much later."""
    try:
        current = retrying(lambda: stored_revision(engine), "reading the schema", seconds)
    except OperationalError as exc:
        raise DatabaseError(f"{describe_url(str(engine.url))}: {_first_line(exc)}") from None
    head = SCHEMA_HEAD
    if current != head:
        raise DatabaseError(
            f"{describe_url(str(engine.url))}: schema is at {current or 'nothing'}, "
            f"this version needs {head}; run `ufarchive db upgrade`"
        )


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def new_revision(message: str) -> str:
    """Autogenerate a migration from the models' difference to head (for developers).

    Compares against a scratch SQLite database upgraded to head; review the file before
    committing (PostgreSQL-only types and batch operations need a look).
    """
    import tempfile

    from alembic import command

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/head.sqlite3")
        try:
            upgrade(engine)
            script = command.revision(alembic_config(engine), message=message, autogenerate=True)
        finally:
            engine.dispose()
    path = getattr(script, "path", None)
    return str(path)


# --- lost connections -------------------------------------------------------------------


def is_disconnect(exc: BaseException) -> bool:
    """The database connection was lost or could not be made (PostgreSQL restarting, or
    an administrator ending our session): the work may be done again on a new one."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    code = getattr(exc.orig, "sqlstate", None)
    if code:  # connection exceptions, admin/crash shutdown, cannot connect now
        return str(code).startswith("08") or code in ("57P01", "57P02", "57P03")
    # psycopg gives no SQLSTATE when it cannot reach the server at all
    return isinstance(exc, OperationalError) and type(exc.orig).__module__.startswith("psycopg")


def retrying(work: Callable[[], T], what: str, seconds: float = RECONNECT_SECONDS) -> T:
    """`work()` (one whole transaction), done again while the connection is lost, for up
    to `seconds` with a growing wait; any other error, or a longer outage, is raised."""
    deadline = time.monotonic() + seconds
    delay = 0.25
    while True:
        try:
            return work()
        except DBAPIError as exc:
            if not is_disconnect(exc) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "%s: the database connection was lost (%s); trying again in %.1f s",
                what, _first_line(exc), delay,
            )  # fmt: skip
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
