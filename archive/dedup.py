"""Republications: one story across sites and scripts, found with MinHash LSH in the database.

Comparison text: the body converted to simplified script (OpenCC t2s), NFKC, pinyin leaks
`統(tǒng)` removed, and only letters and digits kept, so that script, punctuation,
spacing and a republisher's full-width commas do not matter. Its SHA-256 is the exact
duplicate key (`articles.content_hash`).

Near duplicates: MinHash over 5-character shingles (datasketch, `affine32`, 128
permutations, shingles hashed in one numpy pass and fed with `update_batch`), banded
into 42 bands of 3 rows kept in `lsh_bands` (band, bucket, article), so the index lives
in the database: it survives restarts, serves several crawl processes and works on
PostgreSQL. 42 x 3 makes a pair of Jaccard 0.5 a candidate with probability 0.996 and
one of 0.2 with 0.29, so truncated copies are found and the verify step stays cheap.

A candidate joins the cluster only after a real similarity check on the two comparison
texts: shingle Jaccard >= 0.5, or containment (shared shingles over the smaller set)
>= 0.8 for truncated copies. Distinct articles that share a standard opening paragraph
or long boilerplate stay apart: they share a minority of their shingles.

Each cluster credits one original: the earliest publish time; on a tie or without times,
the site the others' 来源 names; then the first seen. The reason is stored with it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from datasketch import MinHash
from sqlalchemy import and_, delete, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from archive.models import Article, ArticleVersion, Cluster, LshBand, Site, utcnow

SHINGLE = 5
NUM_PERM = 128
BANDS = 42
ROWS = 3
MIN_CHARS = 40  # a comparison text shorter than this is too short to call a copy
JACCARD_MIN = 0.5
CONTAINMENT_MIN = 0.8
_PINYIN_LEAK = re.compile(r"[(（][a-zA-Zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ]+[)）]")
_SEED = np.uint64(0x9E3779B97F4A7C15)
CLUSTER_LOCK = 0x75666172  # "ufar": the advisory lock key of clustering on PostgreSQL


# --- text -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def comparison_text(text: str) -> str:
    """Simplified script, NFKC, no pinyin leaks, letters and digits only."""
    text = unicodedata.normalize("NFKC", text)
    text = _PINYIN_LEAK.sub("", text)
    text = _t2s().convert(text)
    return "".join(ch for ch in text if ch.isalnum()).lower()


def content_key(text: str) -> str:
    """The exact-duplicate key of a body: SHA-256 of its comparison text."""
    return hashlib.sha256(comparison_text(text).encode()).hexdigest()


def shingle_hashes(ctext: str) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """Distinct 32-bit hashes of the text's 5-character shingles, in one numpy pass."""
    if len(ctext) < SHINGLE:
        return np.zeros(0, dtype=np.uint32)
    codes = np.frombuffer(ctext.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(codes) - SHINGLE + 1
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(SHINGLE):  # a polynomial over the window, then a 64-bit mix
            h = h * np.uint64(1_000_003) + codes[k : k + n]
        h ^= h >> np.uint64(33)
        h *= _SEED
        h ^= h >> np.uint64(29)
    return np.unique((h >> np.uint64(32)).astype(np.uint32))


@lru_cache(maxsize=1)
def _template() -> MinHash:
    return MinHash(num_perm=NUM_PERM, seed=1, hashfunc=int, scheme="affine32")


def signature(hashes: np.ndarray[Any, np.dtype[np.uint32]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    minhash = _template().copy()
    minhash.update_batch(hashes)
    return np.asarray(minhash.hashvalues, dtype=np.uint64)


def band_keys(sig: np.ndarray[Any, np.dtype[np.uint64]]) -> list[tuple[int, int]]:
    """(band, bucket) pairs: each band's rows hashed to a signed 64-bit bucket."""
    keys = []
    for band in range(BANDS):
        rows = sig[band * ROWS : (band + 1) * ROWS].astype("<u8").tobytes()
        digest = hashlib.blake2b(rows, digest_size=8).digest()
        keys.append((band, int.from_bytes(digest, "little", signed=True)))
    return keys


def similarity(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> tuple[float, float]:
    """(Jaccard, containment) of two sets of shingle hashes."""
    if not len(a) or not len(b):
        return 0.0, 0.0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared), shared / min(len(a), len(b))


def is_copy(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    jaccard, containment = similarity(a, b)
    return jaccard >= JACCARD_MIN or containment >= CONTAINMENT_MIN


# --- the database side -------------------------------------------------------------------


@dataclass
class Prepared:
    """One article's comparison data, computed once per clustering pass."""

    article_id: int
    content_hash: str
    hashes: np.ndarray[Any, np.dtype[np.uint32]]
    keys: list[tuple[int, int]]


def prepare(article_id: int, body: str) -> Prepared:
    ctext = comparison_text(body)
    hashes = shingle_hashes(ctext) if len(ctext) >= MIN_CHARS else np.zeros(0, dtype=np.uint32)
    keys = band_keys(signature(hashes)) if len(hashes) else []
    return Prepared(article_id, hashlib.sha256(ctext.encode()).hexdigest(), hashes, keys)


def current_bodies(session: Session, article_ids: Iterable[int]) -> dict[int, str]:
    ids = list(article_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(ArticleVersion.article_id, ArticleVersion.body)
        .join(
            Article,
            and_(
                Article.id == ArticleVersion.article_id, Article.version == ArticleVersion.version
            ),
        )
        .where(Article.id.in_(ids))
    )
    return {row[0]: row[1] for row in rows}


def cluster_articles(session: Session, article_ids: Sequence[int]) -> None:
    """Index these (new or changed) articles and put each in the cluster it belongs to.

    Runs inside the caller's transaction. On PostgreSQL a transaction-scoped advisory lock
    makes concurrent crawl processes cluster one batch at a time, so two copies of a story
    arriving at once cannot found two clusters (SQLite writers are serial already).
    """
    if not article_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(CLUSTER_LOCK)))
    bodies = current_bodies(session, article_ids)
    prepared = [prepare(article_id, bodies.get(article_id, "")) for article_id in article_ids]
    touched: set[int] = set()
    for item in prepared:
        touched |= _cluster_one(session, item)
    for cluster_id in touched:
        refresh_cluster(session, cluster_id)


def _cluster_one(session: Session, item: Prepared) -> set[int]:
    """Write the article's bands and cluster; returns the clusters whose members changed."""
    article = session.get_one(Article, item.article_id)
    article.content_hash = item.content_hash
    session.execute(delete(LshBand).where(LshBand.article_id == item.article_id))
    matches = _matches(session, item)
    if item.keys:
        session.execute(
            insert(LshBand),
            [
                {"band": band, "bucket": bucket, "article_id": item.article_id}
                for band, bucket in item.keys
            ],
        )
    before = article.cluster_id
    target: int | None = None
    if before is not None and before in {cluster for _, cluster in matches}:
        target = before  # still matches its cluster: an edit is a version, not a new story
    elif matches:
        best_id, best_cluster = matches[0]
        if best_cluster is None:
            cluster = Cluster()
            session.add(cluster)
            session.flush()
            session.execute(
                update(Article).where(Article.id == best_id).values(cluster_id=cluster.id)
            )
            best_cluster = cluster.id
        target = best_cluster
    article.cluster_id = target
    return {c for c in (before, target) if c is not None}


def _matches(session: Session, item: Prepared) -> list[tuple[int, int | None]]:
    """Confirmed copies of the article, best first: (article id, its cluster)."""
    candidates: dict[int, int] = {}
    exact = session.execute(
        select(Article.id).where(
            Article.content_hash == item.content_hash, Article.id != item.article_id
        )
    )
    if len(item.hashes):
        for (article_id,) in exact:
            candidates[article_id] = BANDS + 1  # identical comparison text
    if item.keys:
        rows = session.execute(
            select(LshBand.article_id, func.count())
            .where(
                tuple_(LshBand.band, LshBand.bucket).in_(item.keys),
                LshBand.article_id != item.article_id,
            )
            .group_by(LshBand.article_id)
        )
        for article_id, shared in rows:
            candidates[article_id] = max(candidates.get(article_id, 0), int(shared))
    if not candidates:
        return []
    bodies = current_bodies(session, candidates)
    scored: list[tuple[float, int]] = []
    for article_id, body in bodies.items():
        other = shingle_hashes(comparison_text(body))
        jaccard, containment = similarity(item.hashes, other)
        if jaccard >= JACCARD_MIN or containment >= CONTAINMENT_MIN:
            scored.append((max(jaccard, containment), article_id))
    scored.sort(reverse=True)
    clusters: dict[int, int | None] = {}
    if scored:
        rows = session.execute(
            select(Article.id, Article.cluster_id).where(Article.id.in_([a for _, a in scored]))
        )
        clusters = {row[0]: row[1] for row in rows}
    return [(article_id, clusters.get(article_id)) for _, article_id in scored]


# --- the original ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    article_id: int
    site_id: int
    site_names: tuple[str, ...]
    publish_time: datetime | None
    source: str | None
    first_seen: datetime


def refresh_cluster(session: Session, cluster_id: int) -> None:
    """Recount a cluster, credit its original (with the reason), drop it when one is left."""
    rows = session.execute(
        select(
            Article.id,
            Article.site_id,
            Site.name,
            Site.title,
            Article.publish_time,
            ArticleVersion.source,
            Article.first_seen,
        )
        .join(Site, Site.id == Article.site_id)
        .join(
            ArticleVersion,
            and_(
                ArticleVersion.article_id == Article.id, ArticleVersion.version == Article.version
            ),
        )
        .where(Article.cluster_id == cluster_id)
    ).all()
    cluster = session.get(Cluster, cluster_id)
    if cluster is None:
        return
    if len(rows) <= 1:  # a story alone is not a cluster: its article is its own original
        session.execute(
            update(Article)
            .where(Article.cluster_id == cluster_id)
            .values(cluster_id=None, is_original=True)
        )
        session.delete(cluster)
        return
    members = [Member(r[0], r[1], (r[2], r[3]), r[4], r[5], r[6]) for r in rows]
    original, reason = choose_original(members)
    cluster.size = len(members)
    cluster.original_article_id = original.article_id
    cluster.original_reason = reason
    cluster.updated_at = utcnow()
    session.execute(
        update(Article).where(Article.cluster_id == cluster_id).values(is_original=False)
    )
    session.execute(
        update(Article).where(Article.id == original.article_id).values(is_original=True)
    )


def choose_original(members: Sequence[Member]) -> tuple[Member, str]:
    """Earliest publish time; on a tie or without times, the site others name as 来源."""
    timed = [m for m in members if m.publish_time is not None]
    pool: list[Member] = list(members)
    why = ""
    if timed:
        earliest = min(m.publish_time for m in timed if m.publish_time is not None)
        pool = [m for m in timed if m.publish_time == earliest]
        if len(pool) == 1:
            return pool[0], f"earliest publish time ({earliest.isoformat()})"
        why = f"publish time tied at {earliest.isoformat()}; "
    named = {m.article_id: sum(names_site(other.source, m.site_names) for other in members if other.site_id != m.site_id)
             for m in pool}  # fmt: skip
    best = max(named.values())
    if best > 0:
        pool = [m for m in pool if named[m.article_id] == best]
        if len(pool) == 1:
            return pool[0], f"{why}named as 来源 by {best} other cop{'y' if best == 1 else 'ies'}"
    first = min(pool, key=lambda m: (m.first_seen, m.article_id))
    return first, f"{why or 'no publish times; '}first seen"


def names_site(source: str | None, site_names: tuple[str, ...]) -> bool:
    """Does a 来源 line name this site (by its name or title, either script, give or take 网站)?"""
    if not source:
        return False
    wanted = _short(source)
    for name in site_names:
        short = _short(name)
        if short and wanted and (short in wanted or wanted in short):
            return True
    return False


def _short(text: str) -> str:
    text = comparison_text(text)
    for suffix in ("官方网站", "网站", "官网", "网", "微信公众号", "公众号", "客户端"):
        if text.endswith(suffix) and len(text) > len(suffix) + 1:
            return text[: -len(suffix)]
    return text


# --- rebuild ---------------------------------------------------------------------------


def summary(session: Session) -> tuple[int, int, int]:
    """(articles, clusters, articles in clusters)."""
    articles = session.scalar(select(func.count()).select_from(Article)) or 0
    clusters = session.scalar(select(func.count()).select_from(Cluster)) or 0
    clustered = session.scalar(select(func.count()).where(Article.cluster_id.is_not(None))) or 0
    return int(articles), int(clusters), int(clustered)


def rebuild(session: Session, batch: int = 500) -> int:
    """Forget every band and cluster, then cluster all articles again, oldest first."""
    session.execute(update(Article).values(cluster_id=None, is_original=True))
    session.execute(delete(LshBand))
    session.execute(update(Cluster).values(original_article_id=None))
    session.execute(delete(Cluster))
    ids = list(session.scalars(select(Article.id).order_by(Article.id)))
    for start in range(0, len(ids), batch):
        cluster_articles(session, ids[start : start + batch])
    return len(ids)
