"""Shared fixtures: fixture-site servers, databases on SQLite AND PostgreSQL, the CLI."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from archive.db import make_engine, make_sessionmaker, upgrade
from tests.siteserver import SiteServer

if TYPE_CHECKING:
    from tests.crawlworld import CrawledWorlds, World

FIXTURES = Path(__file__).parent / "fixtures"
SITES = FIXTURES / "sites"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    return os.environ.get("UFARCHIVE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


_postgres_problem: list[str | None] = []


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once per session."""
    if not _postgres_problem:
        url = postgres_admin_url()
        try:
            engine = create_engine(url, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _postgres_problem.append(None)
        except OperationalError as exc:
            first = str(exc.orig or exc).strip().splitlines()[0]
            _postgres_problem.append(f"PostgreSQL at {url} unreachable: {first}")
    return _postgres_problem[0]


@contextlib.contextmanager
def fresh_database(kind: str, root: Path) -> Iterator[str]:
    """A database of the caller's own: SQLite in root/data, or a new PostgreSQL database
    dropped afterwards (skipped when PostgreSQL is down, failed under CI=true). For
    module-scoped worlds; tests take the `database_url` fixture."""
    if kind == "sqlite":
        (root / "data").mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{root / 'data' / 'ufarchive.sqlite3'}"
        return
    problem = postgres_unavailable()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem} (CI=true: the suite needs it)")
        pytest.skip(problem)
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"ufarchive_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_admin_url()).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own, dropped afterwards."""
    with fresh_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'ufarchive.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs twice: on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database whose schema comes from the migrations."""
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def site_server() -> Iterator[Callable[..., SiteServer]]:
    """`site_server("zytzb")` serves tests/fixtures/sites/zytzb on a free port until the test ends."""
    started: list[SiteServer] = []

    def serve(root: str | Path | None = None, port: int = 0) -> SiteServer:
        path = None if root is None else (SITES / root if isinstance(root, str) else root)
        server = SiteServer(path, port=port).start()
        started.append(server)
        return server

    yield serve
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def crawled_worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrawledWorlds]:
    """Fixture worlds crawled once per session, copied for each test that asks
    (tests/crawlworld.py)."""
    from tests.crawlworld import CrawledWorlds

    worlds = CrawledWorlds(tmp_path_factory.mktemp("crawled-worlds"))
    yield worlds
    worlds.close()


@pytest.fixture
def crawled(
    tmp_path: Path,
    database_url: str,
    site_server: Callable[..., SiteServer],
    crawled_worlds: CrawledWorlds,
) -> Callable[..., World]:
    """`crawled("zytzb", ...)`: these fixture sites after a first crawl, in this test's
    folder and database (a copy of the session's crawl of them)."""

    def make(*sites: str) -> World:
        return crawled_worlds.world(tmp_path, database_url, site_server, sites)

    return make


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """An empty config folder (settings.yaml absent: all defaults) with a sites/ folder."""
    path = tmp_path / "config"
    (path / "sites").mkdir(parents=True)
    return path


@pytest.fixture
def env(config_dir: Path, tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    """UFARCHIVE_* pointing at this test's own config, data dir and database."""
    return {
        "UFARCHIVE_CONFIG": str(config_dir),
        "UFARCHIVE_DATA_DIR": str(tmp_path / "data"),
        "UFARCHIVE_DATABASE_URL": sqlite_url,
    }


SITE_TEMPLATE = """\
name: {name}
title: 测试统战网
start_urls: [https://www.example.gov.cn/tzyw/]
allowed_domains: [www.example.gov.cn]
article_url_pattern: '/tzyw/\\d{{6}}/t\\d+_\\d+\\.html$'
follow_url_pattern: '/tzyw/index(_\\d+)?\\.html$'
schedule: {{cron: "0 */2 * * *"}}
"""


def write_site(config_dir: Path, name: str, extra: str = "", template: str = SITE_TEMPLATE) -> Path:
    path = config_dir / "sites" / f"{name}.yaml"
    path.write_text(template.format(name=name) + extra, encoding="utf-8")
    return path
