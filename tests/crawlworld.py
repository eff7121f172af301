"""A fixture world for crawl tests: the three fixture sites served on 127.0.0.1, site files
pointing at them, a data dir and a database of the test's own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from archive.db import make_engine, make_sessionmaker, upgrade
from archive.models import Article, ArticleVersion, Site, Snapshot
from archive.settings import load_settings
from crawler.runner import RunView, run_crawl
from tests.conftest import SITES, fresh_database, postgres_admin_url
from tests.siteserver import SiteServer

# What each fixture site's file says besides its URLs (patterns as a real site file would).
SITE_FILES: dict[str, dict[str, Any]] = {
    "zytzb": {
        "title": "中央统战部（测试）",
        "start": "/tzyw/index.html",
        "article_url_pattern": r"/(tzyw|internal)/\d{6}/t\d+_\d+\.html$",
        "follow_url_pattern": r"/tzyw/index(_\d+)?\.html$|/_trap/\d+\.html$",
        "feed_urls": ["/rss.xml"],
    },
    "tzb_tw": {
        "title": "統戰工作（繁體測試）",
        "start": "/xwzx/tzgz/index.html",
        "article_url_pattern": r"/xwzx/tzgz/\d{6}/t\d+_\d+\.html$",
        "follow_url_pattern": r"/xwzx/tzgz/index(_\d+)?\.html$",
        "feed_urls": ["/atom.xml"],
    },
    "gbk_city": {
        "title": "云川市委统战部（GBK 测试）",
        "start": "/xwdt/index.htm",
        "article_url_pattern": r"/xwdt/\d{4}/\d{4}/\d+\.htm$",
        "follow_url_pattern": r"/xwdt/index(_\d+)?\.htm$",
        "sitemap_urls": ["/sitemap.xml"],
    },
    "qxtzb": {
        "title": "青溪县委统战部（改版与撤稿测试）",
        "start": "/xwzx/index.html",
        "article_url_pattern": r"/xwzx/\d{4}/\d{2}/\d{8}_\d+\.html$",
        "follow_url_pattern": r"/xwzx/index(_\d+)?\.html$",
    },
}

TEST_SETTINGS = """\
crawl:
  download_delay_seconds: 0
  autothrottle: false
  concurrent_requests_per_domain: 8
  download_timeout_seconds: 5
  retry_times: 2
  retry_backoff_seconds: 0.1
  retry_after_max_seconds: 3
  max_response_bytes: 1000000
  redirect_max_times: 5
  depth_limit: {depth_limit}
  stop_pagination_when_no_new: {stop_pagination}
revisit:
  enabled: {revisit}
"""


def site_yaml(name: str, server: SiteServer, spec: dict[str, Any], max_pages: int = 2000) -> str:
    lines = [
        f"name: {name}",
        f"title: {spec['title']}",
        f"start_urls: [{server.url(spec['start'])}]",
        f"allowed_domains: [{server.host}]",
        f"article_url_pattern: '{spec['article_url_pattern']}'",
        f"follow_url_pattern: '{spec['follow_url_pattern']}'",
        f"feed_urls: [{', '.join(server.url(p) for p in spec.get('feed_urls', []))}]",
        f"sitemap_urls: [{', '.join(server.url(p) for p in spec.get('sitemap_urls', []))}]",
        "schedule: {interval_minutes: 60}",
        f"max_pages: {max_pages}",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class World:
    root: Path
    database_url: str
    servers: dict[str, SiteServer] = field(default_factory=dict)

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def env(self) -> dict[str, str]:
        return {
            "UFARCHIVE_CONFIG": str(self.config_dir),
            "UFARCHIVE_DATA_DIR": str(self.data_dir),
            "UFARCHIVE_DATABASE_URL": self.database_url,
        }

    def configure(
        self,
        depth_limit: int = 50,
        stop_pagination: bool = True,
        max_pages: int = 2000,
        revisit: bool = True,
        extra: str = "",
        derive_process_after: int | None = 200,
    ) -> None:
        """Write settings.yaml and the site files; `extra` is appended to settings.yaml
        (more keys of its `revisit:` section, indented by two spaces)."""
        (self.config_dir / "sites").mkdir(parents=True, exist_ok=True)
        (self.config_dir / "settings.yaml").write_text(
            TEST_SETTINGS.format(
                depth_limit=depth_limit,
                stop_pagination=str(stop_pagination).lower(),
                revisit=str(revisit).lower(),
            ).replace(
                "\nrevisit:",
                "\n  derive_process_after: "
                + ("null" if derive_process_after is None else str(derive_process_after))
                + "\nrevisit:",
            )
            + extra,
            encoding="utf-8",
        )
        for name, server in self.servers.items():
            spec = SITE_FILES.get(name)
            if spec is not None:
                (self.config_dir / "sites" / f"{name}.yaml").write_text(
                    site_yaml(name, server, spec, max_pages), encoding="utf-8"
                )

    def crawl(self, *names: str, refresh: bool = False) -> dict[str, RunView]:
        runs = run_crawl(list(names) or None, refresh=refresh, settings=load_settings(self.env()))
        return {run.site: run for run in runs}

    @contextmanager
    def session(self) -> Iterator[Session]:
        engine = make_engine(self.database_url)
        try:
            with make_sessionmaker(engine)() as session:
                yield session
        finally:
            engine.dispose()

    def articles(self, site: str) -> dict[str, Article]:
        """The site's articles by URL path."""
        with self.session() as session:
            rows = session.scalars(select(Article).join(Site).where(Site.name == site)).all()
            server = self.servers[site]
            return {a.url.removeprefix(server.base): a for a in rows}

    def count(self, model: type[Any]) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def versions(self, article_id: int) -> list[ArticleVersion]:
        with self.session() as session:
            return list(
                session.scalars(
                    select(ArticleVersion)
                    .where(ArticleVersion.article_id == article_id)
                    .order_by(ArticleVersion.version)
                )
            )

    def snapshots(self) -> list[Snapshot]:
        with self.session() as session:
            return list(session.scalars(select(Snapshot).order_by(Snapshot.id)))


def expected(site: str) -> dict[str, Any]:
    data = json.loads((SITES / site / "_expected.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def make_world(
    tmp_path: Path,
    database_url: str,
    site_server: Callable[..., SiteServer],
    sites: tuple[str, ...],
) -> World:
    world = World(tmp_path, database_url)
    for name in sites:
        world.servers[name] = site_server(name)
    world.configure()
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    return world


@dataclass
class _Template:
    data_dir: Path  # the crawled data dir (and, on SQLite, its database)
    database_url: str
    ports: dict[str, int]  # each site's server port: the stored URLs name it


class CrawledWorlds:
    """Crawled fixture worlds made once per session and copied for each test.

    The first test to ask for a set of sites on a database kind crawls them for real (as
    `make_world` + `World.crawl`); every later one gets a copy of that archive (the data
    dir copied; on PostgreSQL a database made from it as a template) and new servers of
    the same sites on the same ports, so that the stored URLs hold and the test may
    change pages, recrawl and write as if it had crawled itself. When a port has been
    taken since, the test crawls its own world."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._templates: dict[tuple[str, tuple[str, ...]], _Template] = {}
        self._stack = ExitStack()

    def close(self) -> None:
        self._stack.close()

    def world(
        self,
        tmp_path: Path,
        database_url: str,
        site_server: Callable[..., SiteServer],
        sites: tuple[str, ...],
    ) -> World:
        kind = make_url(database_url).get_backend_name()
        template = self._templates.get((kind, sites))
        if template is None:
            template = self._templates[(kind, sites)] = self._crawl(kind, sites)
        world = World(tmp_path, database_url)
        try:
            for name in sites:
                world.servers[name] = site_server(name, port=template.ports[name])
        except OSError:  # a port taken since the template was crawled
            for server in world.servers.values():
                server.stop()
            made = make_world(tmp_path, database_url, site_server, sites)
            made.crawl()
            return made
        world.configure()
        shutil.copytree(template.data_dir, world.data_dir, dirs_exist_ok=True)
        if kind == "postgresql":
            _copy_database(template.database_url, database_url)
        return world

    def _crawl(self, kind: str, sites: tuple[str, ...]) -> _Template:
        root = self.root / f"{kind}-{'-'.join(sites)}"
        root.mkdir(parents=True)
        url = self._stack.enter_context(fresh_database(kind, root))
        world = World(root, url)
        with ExitStack() as servers:
            for name in sites:
                world.servers[name] = servers.enter_context(SiteServer(SITES / name))
            world.configure()
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            for run in world.crawl().values():
                assert run.status == "succeeded", (run.site, run.status, run.message)
        ports = {name: server.port for name, server in world.servers.items()}
        return _Template(world.data_dir, url, ports)


def _copy_database(template_url: str, url: str) -> None:
    """Replace the PostgreSQL database of `url` (fresh, empty) by a copy of the template's."""
    name, template = make_url(url).database, make_url(template_url).database
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()
