"""A small archive for export, collection and stats tests, stored through the real write
path (WARC records, article rows, versions, the search index) on SQLite or PostgreSQL,
holding what exports get wrong: both scripts, quotes and newlines in bodies, cells that a
spreadsheet would run as formulas, a body past Excel's cell limit, control characters,
an article without a date (and taken down), an edited article (two versions)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from archive.db import make_engine, make_sessionmaker, upgrade
from archive.models import Article, ArticleVersion, Site
from archive.store import (
    ArticleFields,
    Fetch,
    Takedown,
    apply_takedown,
    ensure_site,
    save_article,
    update_derived,
)
from archive.warc import WarcFileWriter

T0 = datetime(2024, 3, 5, 2, 0, tzinfo=UTC)
LONG_BODY = "统一战线是凝聚人心、汇聚力量的强大法宝。\n" * 2000  # 42,000 characters

ARTICLES: list[tuple[str, str, dict[str, Any]]] = [
    ("zytzb", "https://www.zytzb.gov.cn/tzyw/202403/t20240301_1.html", {
        "title": "中央统战部召开党外人士座谈会",
        "publish_time": "2024-03-01T09:00:00+08:00",
        "source": "中央统战部网站", "editor": "王明", "author": "李华",
        "body": "3月1日，中央统战部召开座谈会。\n与会人士表示，要“坚持大团结大联合”。\n"
                '他说："统一战线, 是法宝"，并引用了"引号""双引号"。',
    }),
    ("zytzb", "https://www.zytzb.gov.cn/tzyw/202403/t20240303_2.html", {
        "title": '=HYPERLINK("http://evil.example/","点击查看")',
        "publish_time": "2024-03-03T07:00:00+08:00",  # 2 March in UTC, 3 March in Beijing
        "source": "@人民网", "editor": "王明", "author": "+86 10 1234",
        "body": "-2+3 是一个公式开头的正文。\n第二段。",
    }),
    ("tzb_tw", "https://www.tzb.example.tw/xwzx/tzgz/202403/t20240310_3.html", {
        "title": "統戰工作：海峽兩岸青年交流活動舉行",
        "publish_time": "2024-03-10T15:30:00+08:00",
        "source": "統戰新聞網", "editor": "陳志明", "contributor": "臺灣事務辦公室",
        "body": "兩岸青年齊聚一堂，共話統一戰線。\n「團結」是主題。\r\n第三段有逗號,和分號;。",
    }),
    ("tzb_tw", "https://www.tzb.example.tw/xwzx/tzgz/202403/t20240311_4.html", {
        "title": "-長文：統一戰線百年歷程",
        "publish_time": "2024-03-11T08:00:00+08:00",
        "source": "統戰新聞網", "editor": None,
        "body": LONG_BODY,
    }),
    ("gbk_city", "http://www.ycstzb.example.cn/xwdt/2024/0322/131.htm", {
        "title": "云川市召开民族宗教工作会议",
        "publish_time": None,
        "source": "云川日报", "editor": "赵敏",
        "body": "\t缩进开头的正文\x0b带控制字符。\n第二段。",
    }),
    ("gbk_city", "http://www.ycstzb.example.cn/xwdt/2024/0402/140.htm", {
        "title": "云川市统战部开展调研",
        "publish_time": "2024-04-02T10:00:00+08:00",
        "source": "云川日报", "editor": "赵敏",
        "body": "第一版正文：统战部开展调研。",
    }),
]  # fmt: skip
#: This one is taken down (404) after it was stored: status gone, gone_at set.
GONE_URL = ARTICLES[4][1]
#: The last article is edited after it was stored: version 2 changes its body.
EDITED_BODY = "第二版正文：统战部开展专题调研，更正了日期。"


@dataclass
class ExportWorld:
    root: Path
    database_url: str
    ids: dict[str, int] = field(default_factory=dict)  # article id by URL

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    def env(self) -> dict[str, str]:
        return {
            "UFARCHIVE_CONFIG": str(self.config_dir),
            "UFARCHIVE_DATA_DIR": str(self.data_dir),
            "UFARCHIVE_DATABASE_URL": self.database_url,
        }

    @contextmanager
    def session(self) -> Iterator[Session]:
        engine = make_engine(self.database_url)
        try:
            with make_sessionmaker(engine)() as session, session.begin():
                yield session
        finally:
            engine.dispose()

    def store(
        self, site: str, url: str, fields: dict[str, Any], at: datetime, html: bytes | None = None
    ) -> int:
        """Store one fetched page the way the crawler does (WARC first, then the rows); the
        page is made from the fields unless given."""
        html = page(fields).encode("utf-8") if html is None else html
        writer = WarcFileWriter(self.data_dir, max_bytes=10_000_000)
        try:
            location = writer.write_exchange(
                url, method="GET", request_headers=[("User-Agent", "ufarchive-test")],
                status=200, reason="OK",
                response_headers=[("Content-Type", "text/html; charset=utf-8")],
                body=html, fetched_at=at,
            )  # fmt: skip
        finally:
            writer.close()
        fetch = Fetch(
            url=url, status=200, headers={"Content-Type": "text/html; charset=utf-8"},
            fetched_at=at, warc=location, payload_length=len(html),
        )  # fmt: skip
        with self.session() as session:
            site_id = ensure_site(session, site, site).id
            article_id, _ = save_article(session, site_id, fetch, ArticleFields(**fields))
            update_derived(session, [article_id])  # clusters and search index, as the crawler does
        self.ids[url] = article_id
        return article_id

    def html(self, url: str, version: int | None = None) -> bytes:
        fields = dict(next(f for _, u, f in ARTICLES if u == url))
        if version == 2:
            fields["body"] = EDITED_BODY
        return page(fields).encode("utf-8")


def page(fields: dict[str, Any]) -> str:
    paragraphs = "".join(f"<p>{line}</p>" for line in fields["body"].splitlines())
    return (
        f"<html><head><meta charset='utf-8'><title>{fields['title']}</title></head>"
        f"<body><h1>{fields['title']}</h1><div class='article'>{paragraphs}</div></body></html>"
    )


def make_export_world(root: Path, database_url: str) -> ExportWorld:
    world = ExportWorld(root, database_url)
    (world.config_dir / "sites").mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    for k, (site, url, fields) in enumerate(ARTICLES):
        world.store(site, url, fields, T0 + timedelta(minutes=k))
    site, url, fields = ARTICLES[-1]
    world.store(site, url, {**fields, "body": EDITED_BODY}, T0 + timedelta(days=1))
    with world.session() as session:  # a revisit found the undated article taken down
        takedown = Takedown(world.ids[GONE_URL], "gone", T0 + timedelta(days=2), {"status": 404})
        apply_takedown(session, takedown)
    return world


def expected_records(session: Session, versions: str = "latest") -> list[dict[str, Any]]:
    """The export record of every article (or version), read with the ORM: the oracle the
    exports are compared with."""
    rows = session.execute(
        select(Article, ArticleVersion, Site.name)
        .join(Site, Site.id == Article.site_id)
        .join(ArticleVersion, ArticleVersion.article_id == Article.id)
        .order_by(Article.id, ArticleVersion.version)
    ).all()
    out = []
    for article, version, site in rows:
        if versions == "latest" and version.version != article.version:
            continue
        own = versions != "latest"
        published = None
        if version.publish_time is not None:
            minutes = version.publish_time_offset
            offset = timedelta(minutes=480 if minutes is None else minutes)
            published = version.publish_time.astimezone(_zone(offset)).isoformat()
        out.append({
            "id": article.id, "url": article.url, "canonical_url": article.canonical_url,
            "site": site, "title": version.title, "publish_time": published,
            "source": version.source, "editor": version.editor, "author": version.author,
            "contributor": version.contributor, "body": version.body,
            "first_seen": (version.first_seen if own else article.first_seen).isoformat(),
            "last_seen": (version.last_seen if own else article.last_seen).isoformat(),
            "content_hash": version.content_hash,
            "version": version.version if own else article.version,
            "cluster_id": article.cluster_id, "is_original": article.is_original,
            "status": article.status,
            "last_checked": article.last_checked and article.last_checked.isoformat(),
            "gone_at": article.gone_at and article.gone_at.isoformat(),
        })  # fmt: skip
    return out


def _zone(offset: timedelta) -> Any:
    from datetime import timezone

    return timezone(offset)


def bulk_articles(database_url: str, n: int, site: str = "bulk") -> None:
    """`n` articles straight into the tables (no WARC, no index; ids given, so SQLite or a
    database nothing else writes to): volume for tests that need an export to take a while."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            site_id = ensure_site(session, site, site).id
            start = session.scalar(select(Article.id).order_by(Article.id.desc()).limit(1)) or 0
            body = "统一战线工作会议在京召开，与会代表围绕新时代统战工作深入交流。\n" * 20
            for first in range(0, n, 5000):
                count = min(5000, n - first)
                ids = range(start + first + 1, start + first + count + 1)
                session.execute(insert(Article.__table__), [
                    {"id": i, "site_id": site_id, "url": f"https://bulk.example.cn/{i}.html",
                     "canonical_url": f"https://bulk.example.cn/{i}.html", "first_seen": T0,
                     "last_seen": T0, "version": 1, "publish_time": T0, "status": "live",
                     "is_original": True}
                    for i in ids
                ])  # fmt: skip
                session.execute(insert(ArticleVersion.__table__), [
                    {"article_id": i, "version": 1, "first_seen": T0, "last_seen": T0,
                     "title": f"统战新闻 {i}", "publish_time": T0, "publish_time_offset": 480,
                     "body": body, "content_hash": f"{i:064x}"}
                    for i in ids
                ])  # fmt: skip
    finally:
        engine.dispose()
