"""`ufarchive reparse`: run today's extractor over the archived raw pages, no recrawl.

For every article, the page of its latest successful fetch is read back from the WARC
file and extracted again (with its site's selectors, if the site is still configured);
a field that comes out differently makes a new version, an identical result changes
nothing. Pages kept without an article (their extraction had failed) become articles if
extraction now succeeds. Work goes in batches, each its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from archive.errors import UfarchiveError
from archive.models import Article, CrawlRun, Site, Snapshot, utcnow
from archive.settings import Settings
from archive.store import (
    ArticleFields,
    add_version_if_changed,
    adopt_unparsed,
    header,
    update_derived,
)
from archive.urls import canonical_url
from archive.warc import read_record
from crawler.extract import EXTRACTOR_VERSION, extract
from crawler.extract.decode import decode_html
from crawler.sites import SiteConfig, check_sites

BATCH = 200


@dataclass
class ReparseCounts:
    checked: int = 0
    changed: int = 0
    unchanged: int = 0
    recovered: int = 0  # pages whose extraction had failed and now yields an article
    failed: int = 0  # still no title and no body


def pages_to_reparse(session: Session, site: str | None) -> list[tuple[int, int, int | None]]:
    """(snapshot id, site id, article id) of each article's latest full page (not a 404,
    a soft 404 or a revisit record: `Article.snapshot_id`) and each unparsed 200."""
    site_id = func.coalesce(Article.site_id, CrawlRun.site_id)
    query = (
        select(Snapshot.id, site_id, Snapshot.article_id)
        .outerjoin(Article, Article.snapshot_id == Snapshot.id)
        .outerjoin(CrawlRun, CrawlRun.id == Snapshot.run_id)
        .where(
            or_(
                Article.id.is_not(None),
                and_(
                    Snapshot.article_id.is_(None),
                    Snapshot.status_code == 200,
                    Snapshot.record_type == "response",
                ),
            )
        )
        .order_by(Snapshot.id)
    )
    if site is not None:
        found = session.scalar(select(Site.id).where(Site.name == site))
        if found is None:
            raise UfarchiveError(f"--site {site}: the archive has no such site")
        query = query.where(site_id == found)
    return [(row[0], row[1], row[2]) for row in session.execute(query) if row[1] is not None]


def reparse(
    settings: Settings,
    sessions: sessionmaker[Session],
    site: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReparseCounts:
    sites = configured_sites(settings)
    counts = ReparseCounts()
    with sessions() as session:
        work = pages_to_reparse(session, site)
        names = {row[0]: row[1] for row in session.execute(select(Site.id, Site.name))}
    now = utcnow()
    for start in range(0, len(work), BATCH):
        with sessions() as session, session.begin():
            to_cluster: list[int] = []
            for snapshot_id, site_id, article_id in work[start : start + BATCH]:
                snapshot = session.get_one(Snapshot, snapshot_id)
                record = read_record(settings.data_dir, snapshot.warc_file, snapshot.warc_offset)
                # decoded as at crawl time: with the charset the response header gave
                text = decode_html(record.payload, header(snapshot.headers, "content-type"))[0]
                config = sites.get(names[site_id])
                found = extract(
                    text, url=snapshot.url, selectors=config.selectors.given() if config else {}
                )
                fields = ArticleFields.from_dict(found.to_dict(), EXTRACTOR_VERSION)
                counts.checked += 1
                if not fields.title and not fields.body:
                    counts.failed += 1
                elif article_id is None:
                    url = snapshot.url
                    canonical = config.canonical(url) if config else canonical_url(url)
                    adopted = adopt_unparsed(session, snapshot, site_id, fields, canonical)
                    counts.recovered += adopted is not None
                    if adopted is not None:
                        to_cluster.append(adopted)
                else:
                    article = session.get_one(Article, article_id)
                    outcome = add_version_if_changed(
                        session, article, fields, snapshot.id, now, is_edit=False
                    )
                    setattr(counts, outcome, getattr(counts, outcome) + 1)
                    if outcome == "changed":
                        to_cluster.append(article_id)
            update_derived(session, to_cluster)
        if on_progress:
            on_progress(counts.checked, len(work))
    return counts


def configured_sites(settings: Settings) -> dict[str, SiteConfig]:
    """The sites still configured (for selectors and URL aliases); broken files are skipped."""
    if not settings.sites_dir.is_dir():
        return {}
    sites, _ = check_sites(settings.sites_dir)
    return {site.name: site for site in sites}
