"""Republications: one story across sites and scripts, found with MinHash LSH in the database.

Comparison text: the body converted to simplified script (OpenCC t2s), NFKC, pinyin leaks
`統(tǒng)` removed, and only letters and digits kept, so that script, punctuation,
spacing and a republisher's full-width commas do not matter. Its SHA-256 is the exact
duplicate key (`articles.content_hash`, exported); the same text gives the same MinHash,
so exact copies are found with the near ones, through their buckets (they share all).

Near duplicates: MinHash over 5-character shingles (datasketch, `affine32`, 128
permutations, shingles hashed in one numpy pass and fed with `update_batch`), banded
into 42 bands of 3 rows kept in `lsh_bands` (tier, band, bucket, article), so the index
lives in the database: it survives restarts, serves several crawl processes and works on
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
import logging
import os
import re
import struct
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    Connection,
    SmallInteger,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from archive.db import array_columns, copy_binary
from archive.models import (
    LSH_PARTITIONS,
    Article,
    ArticleVersion,
    Cluster,
    LshBand,
    LshKeys,
    LshLog,
    LshTier,
    Site,
    utcnow,
)
from archive.text import PINYIN_LEAK, to_simplified

log = logging.getLogger(__name__)
SHINGLE = 5
NUM_PERM = 128
BANDS = 42
ROWS = 3
MIN_CHARS = 40  # a comparison text shorter than this is too short to call a copy
JACCARD_MIN = 0.5
CONTAINMENT_MIN = 0.8
MAX_CHECKS = 24  # candidates verified per article, best-ranked first, one per cluster
_SEED = np.uint64(0x9E3779B97F4A7C15)
_NOT_ALNUM = re.compile(r"[\W_]+")  # everything but letters and digits (Unicode-aware)
CLUSTER_LOCK = 0x75666172  # "ufar": the advisory lock key of clustering on PostgreSQL
# lsh_bands in tiers (log-structured). Buckets are random keys: in one B-tree over all of
# them a commit dirties about one page a row it adds (42 an article), and lookups miss the
# CPU caches more as the tree grows; both made an article's cost grow with the archive
# (bench/dedup.py). New rows go to the newest tier (-1), small enough that its pages stay
# few, and each batch logs its buckets in lsh_log; full, the tier is merged in one sorted
# pass into the current run. Runs (0, 1, 2, ...) sit after it in key order; each has a
# Bloom filter of its buckets in lsh_tiers, to which a merge adds the logged buckets (so
# no run is ever read whole), and a run that reaches RUN_ROWS takes no more merges: the
# next starts a run at the end of the B-tree. Runs are never merged with each other, so no
# merge grows with the archive. A lookup asks the newest tier only for the buckets in the
# log and a run only for those its filter lets through: most of a new article's buckets
# are nowhere, and are never sought. Bounds in rows, tuned with bench/dedup.py.
# On PostgreSQL new rows go straight into the current run (`writes_runs`), and the newest
# tier stays empty: the runs partition's B-tree takes a batch's keys within one run's range
# as cheaply as the small partition of the newest tier did (41-52 ms a batch of 21,000 rows
# against 41-48), and moving every row once more cost 62-66 ms a batch and a vacuum. The
# log then holds the current run's buckets since its filter was last brought up to date.
NEWEST_TIER = -1
NEWEST_ROWS = 4_096 * BANDS
RUN_ROWS = 16_384 * BANDS
FILTER_BITS = 16  # a run's filter, bits a row: ~0.2 % of absent buckets get through
FILTER_PROBES = 8  # bits set a bucket, all in one 64-bit word (one cache line a lookup)
MAX_PARAMS = 900  # bound parameters a statement: under every driver's limit
READ_ROUNDS = 4  # statements (of up to MAX_PARAMS bodies) a batch reads its candidates in


# --- text -------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def comparison_text(text: str) -> str:
    """Simplified script, NFKC, no pinyin leaks, letters and digits only.

    Kept for the last 1,024 texts (about 7 MB): a crawl worker makes it for a page's content
    key when it stores the page (archive.store) and again for its shingles when it derives
    the page a second or two later, and OpenCC's conversion is most of the cost (py-spy on
    a worker, bench/distributed.py)."""
    # Order matters for speed, not for the result: stripping punctuation first leaves
    # most Chinese text already NFKC-normal, and the check is far cheaper than NFKC.
    text = _NOT_ALNUM.sub("", PINYIN_LEAK.sub("", text))
    if not unicodedata.is_normalized("NFKC", text):
        text = _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text))
    return to_simplified(text).lower()


def content_key(text: str) -> str:
    """The exact-duplicate key of a body: SHA-256 of its comparison text."""
    return hashlib.sha256(comparison_text(text).encode()).hexdigest()


NO_HASHES: np.ndarray[Any, np.dtype[np.uint32]] = np.zeros(0, dtype=np.uint32)
NO_HASHES.flags.writeable = False


@lru_cache(maxsize=2048)
def stored_hashes(body: str) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """`shingle_hashes` of a stored article's `comparison_text`, kept for the next batches
    (read-only): the same stored articles come back as candidates batch after batch (a
    story's first copy for each later one, the articles sharing a boilerplate block), and
    each time their bodies were converted and shingled again. bench/dedup.py (20,000
    articles): 80,067 candidate bodies read, 10,545 distinct. Keyed by the body itself
    (compared in full on a hit), so no archive, article or version can get another's.
    2,048 bodies and their hashes: about 20 MB."""
    hashes = shingle_hashes(comparison_text(body))
    hashes.flags.writeable = False
    return hashes


def shingle_hashes(ctext: str) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """Distinct 32-bit hashes of the text's 5-character shingles, in one numpy pass."""
    if len(ctext) < SHINGLE:
        return np.zeros(0, dtype=np.uint32)
    codes = np.frombuffer(ctext.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(codes) - SHINGLE + 1
    h = codes[:n].copy()
    with np.errstate(over="ignore"):
        for k in range(1, SHINGLE):  # a polynomial over the window, then a 64-bit mix
            h *= np.uint64(1_000_003)
            h += codes[k : k + n]
        h ^= h >> np.uint64(33)
        h *= _SEED
        h ^= h >> np.uint64(29)
    h >>= np.uint64(32)
    # sorted and deduplicated by hand: np.unique took four times as long (numpy 2.4)
    distinct = h.astype(np.uint32)
    distinct.sort()
    keep = np.empty(n, dtype=bool)
    keep[0] = True
    np.not_equal(distinct[1:], distinct[:-1], out=keep[1:])
    return distinct[keep]


@lru_cache(maxsize=1)
def _permutations() -> tuple[
    np.ndarray[Any, np.dtype[np.uint32]], np.ndarray[Any, np.dtype[np.uint32]]
]:
    """datasketch's `affine32` permutations for NUM_PERM and seed 1, drawn as
    `MinHash._init_permutations` draws them (odd multipliers a, offsets b, from
    RandomState(seed)). Not imported from datasketch: its import (scipy with it) costs a
    crawl process 0.6-1.5 s, paid by every revisit run that stores one edit;
    tests/test_dedup.py checks these equal datasketch's own."""
    gen = np.random.RandomState(1)
    a = gen.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


# MurmurHash3's fmix32, which datasketch's affine32 scheme applies to each input hash.
_FMIX32 = (
    np.uint32(16),
    np.uint32(0x85EBCA6B),
    np.uint32(13),
    np.uint32(0xC2B2AE35),
    np.uint32(16),
)


def signature(hashes: np.ndarray[Any, np.dtype[np.uint32]]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """The MinHash that datasketch's `MinHash(scheme="affine32").update_batch(hashes)` gives.

    Computed here in one vectorised pass: datasketch's update_batch calls the hash
    function once per shingle in Python, which was a third of the clustering time in
    bench/dedup.py. tests/test_dedup.py checks the two agree.
    """
    a, b = _permutations()
    if not len(hashes):
        return np.full(NUM_PERM, np.iinfo(np.uint32).max, dtype=np.uint32)
    s1, m1, s2, m2, s3 = _FMIX32
    hv = hashes.astype(np.uint32)
    with np.errstate(over="ignore"):
        hv = hv ^ (hv >> s1)
        hv = hv * m1
        hv = hv ^ (hv >> s2)
        hv = hv * m2
        hv = hv ^ (hv >> s3)
        # a permutation a row, each row's minimum over contiguous memory: a fifth faster
        # than the transposed product
        products = np.multiply.outer(a, hv)
        products += b[:, None]
        return products.min(axis=1)  # type: ignore[no-any-return]


_BAND_SALT = (np.arange(BANDS, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)


def band_keys(sig: np.ndarray[Any, np.dtype[np.uint32]]) -> list[tuple[int, int]]:
    """(band, bucket) pairs: each band's rows mixed into a signed 64-bit bucket, salted with
    the band so that the same rows in two bands are two buckets."""
    rows = sig[: BANDS * ROWS].astype(np.uint64).reshape(BANDS, ROWS)
    with np.errstate(over="ignore"):
        h = _BAND_SALT.copy()
        for k in range(ROWS):
            h = (h ^ rows[:, k]) * np.uint64(0xFF51AFD7ED558CCD)
            h ^= h >> np.uint64(33)
    buckets = h.view(np.int64)
    return [(band, int(bucket)) for band, bucket in enumerate(buckets.tolist())]


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
    return Prepared(article_id, content_key(body), hashes, keys)  # (ctext kept: no second t2s)


ARTICLES = cast(Table, Article.__table__)
VERSIONS = cast(Table, ArticleVersion.__table__)
BANDS_TABLE = cast(Table, LshBand.__table__)
TIERS_TABLE = cast(Table, LshTier.__table__)
KEYS_TABLE = cast(Table, LshKeys.__table__)
LOG_TABLE = cast(Table, LshLog.__table__)
CLUSTERS = cast(Table, Cluster.__table__)


def current_bodies(
    conn: Connection, article_ids: Iterable[int]
) -> dict[int, tuple[str, int | None, int]]:
    """(current body, cluster id, version) of each article."""
    ids = list(article_ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(VERSIONS.c.article_id, VERSIONS.c.body, ARTICLES.c.cluster_id, ARTICLES.c.version)
        .join(
            ARTICLES,
            and_(ARTICLES.c.id == VERSIONS.c.article_id, ARTICLES.c.version == VERSIONS.c.version),
        )
        .where(ARTICLES.c.id.in_(ids))
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def cluster_articles(
    session: Session, article_ids: Sequence[int], prepared: Sequence[Prepared] | None = None
) -> None:
    """Index these (new or changed) articles and put each in the cluster it belongs to.

    Runs inside the caller's transaction, with Core statements and one pass per batch:
    bands of the batch are written together at the end, and copies inside the batch are
    found from memory. On PostgreSQL a transaction-scoped advisory lock makes concurrent
    crawl processes cluster one batch at a time, so two copies of a story arriving at
    once cannot found two clusters (SQLite writers are serial already).
    """
    ids = list(dict.fromkeys(article_ids))
    if not ids:
        return
    session.flush()
    conn = session.connection()
    if prepared is None:
        current = current_bodies(conn, ids)
        prepared = [
            prepare(article_id, current.get(article_id, ("", None, 0))[0]) for article_id in ids
        ]
    compared: dict[tuple[int, int], tuple[int, float]] = {}
    if conn.dialect.name == "postgresql":
        # Plans made for this transaction's own parameters, never a cached generic one: the
        # driver prepares a statement run five times, and PostgreSQL then keeps one plan
        # for all values, made when a tier was empty (a vacuum had left the newest tier 0
        # pages long, when merges emptied it): the bucket lookup read the whole tier by a
        # sequential scan for each bucket, up to 2.3 s a batch once it had filled
        # (bench/dedup.py).
        # (set in the statement that tries the lock: no round trip of its own)
        locked, _ = conn.execute(
            select(
                func.pg_try_advisory_xact_lock(CLUSTER_LOCK),
                func.set_config("plan_cache_mode", "force_custom_plan", True),
            )
        ).one()
        if not locked:
            # Another process is clustering: compare this batch with the stored articles
            # while waiting (the bodies read and shingled again are most of a pass), so that
            # under the lock only the choice of clusters is left, with the copies stored
            # meanwhile. Without this, crawl workers clustered one at a time
            # (bench/distributed.py).
            _Batch({}, compared=compared).compare(conn, prepared)
            conn.execute(select(func.pg_advisory_xact_lock(CLUSTER_LOCK)))
    # (read under the lock: another process's pass may have put one of them in a cluster)
    stored = stored_state(conn, ids)
    clusters = {article_id: cluster for article_id, (_, cluster) in stored.items()}
    forget_bands(conn, ids)
    batch = _Batch(clusters, compared=compared)
    batch.compare(conn, prepared)
    for item in prepared:
        batch.place(conn, item)
    batch.found_clusters(conn)
    if batch.band_rows:
        tier = current_run(conn, batch.runs) if writes_runs(conn) else NEWEST_TIER
        write_bands(conn, batch.band_rows, tier)
        conn.execute(
            insert(LOG_TABLE).values(
                id=random_id(), buckets=np.array(list(batch.buckets), dtype="<i8").tobytes()
            )
        )
        settle_tiers(conn, len(batch.band_rows))
        write_keys(conn, [(p.article_id, pack_buckets(p.keys)) for p in prepared if p.keys])
    # Only the rows that change are written, found from what was read above (nothing else
    # writes these rows meanwhile: the lock on PostgreSQL, the write transaction on SQLite):
    # a new article comes with its content hash (archive.store) and most are in no cluster,
    # so most of a batch needs no write (on PostgreSQL each written row is a new tuple with
    # an entry in every index of articles). Each by its key: one UPDATE joining the whole
    # batch to articles was planned, on an archive without statistics (autovacuum behind),
    # as a hash of every article, 20 ms a batch at 40,000 and growing with the archive
    # (bench/dedup.py).
    placed = {p.article_id: (p.content_hash, batch.cluster_of.get(p.article_id)) for p in prepared}
    changed = [(h, c, a) for a, (h, c) in placed.items() if a in stored and stored[a] != (h, c)]
    if changed:
        mark = placeholder(conn)
        conn.exec_driver_sql(
            f"UPDATE articles SET content_hash = {mark}, cluster_id = {mark} WHERE id = {mark}",
            changed,
        )
    refresh_clusters(conn, batch.touched)


def stored_state(conn: Connection, ids: list[int]) -> dict[int, tuple[str | None, int | None]]:
    """(content hash, cluster id) of each of these articles that is stored.

    On PostgreSQL each is probed by its key (a lateral subquery with LIMIT 1 is not
    flattened into a join): `id IN (...)` with a batch's 500 ids was planned, on an archive
    without statistics, as a scan of every article (7-12 ms a batch at 43,500 articles,
    growing; 2 ms probed, bench/dedup.py)."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            sql(
                "SELECT a.id, a.content_hash, a.cluster_id FROM unnest(CAST(:ids AS int4[]))"
                " AS k(id) CROSS JOIN LATERAL (SELECT id, content_hash, cluster_id"
                " FROM articles WHERE articles.id = k.id LIMIT 1) AS a"
            ),
            {"ids": ids},
        )
    else:
        columns = (ARTICLES.c.id, ARTICLES.c.content_hash, ARTICLES.c.cluster_id)
        rows = conn.execute(select(*columns).where(ARTICLES.c.id.in_(ids)))
    return {row[0]: (row[1], row[2]) for row in rows}


def write_bands(
    conn: Connection, rows: list[tuple[int, int, int]], tier: int = NEWEST_TIER
) -> None:
    """A batch's (band, bucket, article id) rows into a tier: the newest (SQLite), the
    current run (PostgreSQL, `writes_runs`).

    Not through SQLAlchemy's per-row parameter handling, the largest single cost of
    clustering (42 band rows an article) in bench/dedup.py: on SQLite straight to the
    driver; on PostgreSQL by a binary COPY made by numpy, in bucket order (the index's
    pages in turn), into the partition that holds the tier. An executemany is
    a statement a row there (21,000 rows, 400-445 ms a batch of 500 articles); one
    INSERT over arrays sent as text took 77-110 ms, the COPY 47-58."""
    if conn.dialect.name == "postgresql":
        columns = np.array(rows, dtype=np.int64).reshape(-1, 3)
        columns = columns[np.argsort(columns[:, 1], kind="stable")]
        data = np.empty(len(columns), dtype=_BAND_ROW)
        data["fields"], data["tier"], data["band"] = 4, tier, columns[:, 0]
        data["bucket"], data["article_id"] = columns[:, 1], columns[:, 2]
        for name in ("tier", "band", "bucket", "article_id"):
            data[f"{name}_size"] = _BAND_ROW[name].itemsize
        partition = LSH_PARTITIONS[0] if tier == NEWEST_TIER else LSH_PARTITIONS[1]
        copy_binary(conn, partition, "tier, band, bucket, article_id", data.tobytes())
        return
    mark = placeholder(conn)
    conn.exec_driver_sql(
        "INSERT INTO lsh_bands (tier, band, bucket, article_id)"
        f" VALUES ({int(tier)}, {mark}, {mark}, {mark})",
        rows,
    )


# an lsh_bands row in COPY's binary form (archive.db.copy_binary): its number of fields,
# then each field's size and value, big-endian, unaligned
_BAND_ROW = np.dtype(
    [("fields", ">i2")]
    + [
        field
        for name, kind in (
            ("tier", ">i2"),
            ("band", ">i2"),
            ("bucket", ">i8"),
            ("article_id", ">i4"),
        )
        for field in ((f"{name}_size", ">i4"), (name, kind))
    ]
)


def placeholder(conn: Connection) -> str:
    """The driver's parameter mark, for the statements that bypass SQLAlchemy's compiler."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def random_id() -> int:
    """A random positive 56-bit integer: a filter's stamp, a log row's id."""
    return int.from_bytes(os.urandom(7), "little")


def write_keys(conn: Connection, rows: list[tuple[int, bytes]]) -> None:
    """The batch's (article id, `pack_buckets`) rows into lsh_keys; on PostgreSQL by one
    binary COPY (an executemany took 13 ms a batch of 500, the COPY 3.5)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(KEYS_TABLE), [{"article_id": a, "buckets": b} for a, b in rows])
        return
    data = bytearray()
    for article_id, packed in rows:
        data += _KEYS_ROW.pack(2, 4, article_id, len(packed))
        data += packed
    copy_binary(conn, "lsh_keys", "article_id, buckets", data)


# an lsh_keys row's head in COPY's binary form: 2 fields, the int4 id, the bytea's length
_KEYS_ROW = struct.Struct("!hiii")


def pack_buckets(keys: Sequence[tuple[int, int]]) -> bytes:
    return struct.pack(f"<{len(keys)}q", *(bucket for _, bucket in keys))


def forget_bands(conn: Connection, article_ids: list[int]) -> None:
    """Take the articles' rows out of lsh_bands, by the buckets lsh_keys remembers."""
    keys = KEYS_TABLE.c
    old: list[tuple[int, bytes]] = []
    for chunk in chunked(article_ids, MAX_PARAMS):
        old += conn.execute(
            select(keys.article_id, keys.buckets).where(keys.article_id.in_(chunk))
        ).all()
    if not old:
        return  # new articles: the common case costs one indexed lookup
    tiers = ", ".join(str(tier) for tier in [NEWEST_TIER, *stored_runs(conn)])
    rows = [
        (bucket, band, article_id)
        for article_id, packed in old
        for band, bucket in enumerate(struct.unpack(f"<{len(packed) // 8}q", packed))
    ]
    if conn.dialect.name == "postgresql":  # one statement, as in write_bands
        buckets, bands, owners = array_columns(rows)
        conn.execute(
            sql(
                "DELETE FROM lsh_bands USING unnest(CAST(:buckets AS int8[]),"
                " CAST(:bands AS int2[]), CAST(:articles AS int4[])) AS t(k, b, a)"
                f" WHERE tier IN ({tiers}) AND bucket = t.k AND band = t.b AND article_id = t.a"
            ),
            {"buckets": buckets, "bands": bands, "articles": owners},
        )
    else:
        mark = placeholder(conn)
        conn.exec_driver_sql(
            f"DELETE FROM lsh_bands WHERE tier IN ({tiers}) AND bucket = {mark}"
            f" AND band = {mark} AND article_id = {mark}",
            rows,
        )
    conn.execute(delete(KEYS_TABLE).where(keys.article_id.in_([row[0] for row in old])))


def stored_runs(conn: Connection) -> dict[int, tuple[int, int | None]]:
    """Each run of lsh_bands, oldest first: (rows, stamp of its filter; None without one)."""
    tiers = TIERS_TABLE.c
    rows = conn.execute(
        select(tiers.tier, tiers.row_count, tiers.stamp).where(tiers.tier >= 0).order_by(tiers.tier)
    )
    return {tier: (count, stamp) for tier, count, stamp in rows}


def writes_runs(conn: Connection) -> bool:
    """Whether new band rows go straight into the current run (PostgreSQL), not into the
    newest tier to be merged later (SQLite: one B-tree for all tiers, WITHOUT ROWID, where
    a small tier's pages stay few)."""
    return conn.dialect.name == "postgresql"


def current_run(conn: Connection, runs: dict[int, tuple[int, int | None]]) -> int:
    """The run new rows go into when `writes_runs`: the last of `runs` (`stored_runs`, read
    in this pass), or run 0, made now."""
    return max(runs) if runs else open_run(conn, 0)


def open_run(conn: Connection, run: int) -> int:
    """A new, empty run with an empty filter (a run without one is asked for every bucket)."""
    conn.execute(insert(TIERS_TABLE).values(tier=run, row_count=0))
    store_filter(conn, run, np.zeros(filter_words(0), np.uint64), 0)
    return run


def settle_tiers(conn: Connection, added: int) -> None:
    """Count rows added since the last settling (in the newest tier; when `writes_runs`, in
    the current run); at NEWEST_ROWS of them, merge the newest tier into the current run
    (when not `writes_runs`: a new run if the last is full), add the logged buckets to that
    run's filter, and give every run without a filter (from before migration 0009) one from
    its rows; when `writes_runs`, open the next run once the current one is full."""
    tiers = TIERS_TABLE.c
    direct = writes_runs(conn)
    newest = conn.execute(
        select(tiers.row_count).where(tiers.tier == NEWEST_TIER)
    ).scalar_one_or_none()
    count = (newest or 0) + added
    if count >= NEWEST_ROWS:
        runs = stored_runs(conn)
        last = max(runs, default=-1)
        if direct or (last >= 0 and runs[last][0] < RUN_ROWS):
            target = last
        else:
            target = last + 1
            conn.execute(insert(TIERS_TABLE).values(tier=target, row_count=0))
            runs[target] = (0, None)
        if not direct:
            merge_tier(conn, NEWEST_TIER, target)
        rows = runs[target][0] + count
        words = run_filters(conn, {target: runs[target]})[target]
        if words is None and runs[target][0]:
            build_run_filter(conn, target)  # a run from before migration 0009
        else:
            words = np.zeros(filter_words(rows), np.uint64) if words is None else words.copy()
            logged = logged_buckets(conn)
            add_to_filter(words, np.fromiter(logged, dtype=np.int64, count=len(logged)))
            store_filter(conn, target, words, rows)
        conn.execute(delete(LOG_TABLE))
        count = 0
        for run, (_, stamp) in runs.items():
            if stamp is None and run != target:
                build_run_filter(conn, run)
        if direct and rows >= RUN_ROWS:
            open_run(conn, target + 1)
    if newest is None:
        conn.execute(insert(TIERS_TABLE).values(tier=NEWEST_TIER, row_count=count))
    else:
        conn.execute(update(TIERS_TABLE).where(tiers.tier == NEWEST_TIER).values(row_count=count))


def merge_tier(conn: Connection, tier: int, into: int) -> None:
    """Move a tier's rows into another, in bucket order (one pass over its pages)."""
    bands = BANDS_TABLE.c
    conn.execute(
        insert(BANDS_TABLE).from_select(
            ["tier", "band", "bucket", "article_id"],
            select(literal(into, SmallInteger), bands.band, bands.bucket, bands.article_id)
            .where(bands.tier == tier)
            .order_by(bands.bucket),
        )
    )
    conn.execute(delete(BANDS_TABLE).where(bands.tier == tier))


def build_run_filter(conn: Connection, run: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Read a run's buckets, store their filter (and its row count) in lsh_tiers: for a run
    from before migration 0009; since then filters grow merge by merge."""
    # straight from the driver's cursor: a run is 688k rows, and SQLAlchemy's rows were
    # half the cost of reading it (bench/dedup.py)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"SELECT bucket FROM lsh_bands WHERE tier = {int(run)}")
        buckets = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    finally:
        cursor.close()
    words = bloom_filter(buckets)
    store_filter(conn, run, words, len(buckets))
    return words


def store_filter(
    conn: Connection, run: int, words: np.ndarray[Any, np.dtype[np.uint64]], rows: int
) -> None:
    stamp = random_id()
    conn.execute(
        update(TIERS_TABLE)
        .where(TIERS_TABLE.c.tier == run)
        .values(row_count=rows, filter=words.astype("<u8").tobytes(), stamp=stamp)
    )
    _FILTERS[(conn.engine.url.render_as_string(), run)] = (stamp, words)


# Each run's filter, once read, by (database, run): the random stamp stored with a filter
# changes whenever it does (at a merge into its run, or a rebuild).
_FILTERS: dict[tuple[str, int], tuple[int, np.ndarray[Any, np.dtype[np.uint64]]]] = {}


def run_filters(
    conn: Connection, runs: dict[int, tuple[int, int | None]]
) -> dict[int, np.ndarray[Any, np.dtype[np.uint64]] | None]:
    """The filter of each run (None for a run without one), from the cache or the database."""
    database = conn.engine.url.render_as_string()
    filters: dict[int, np.ndarray[Any, np.dtype[np.uint64]] | None] = {}
    for run, (_, stamp) in runs.items():
        cached = _FILTERS.get((database, run))
        if stamp is None:
            filters[run] = None
        elif cached is not None and cached[0] == stamp:
            filters[run] = cached[1]
        else:
            blob = conn.execute(
                select(TIERS_TABLE.c.filter).where(TIERS_TABLE.c.tier == run)
            ).scalar_one()
            words = np.frombuffer(blob, dtype="<u8").astype(np.uint64)
            _FILTERS[(database, run)] = (stamp, words)
            filters[run] = words
    return filters


# The buckets of each lsh_log row read so far, by database and row id: rows never change,
# and their random ids are never reused, so only rows not seen before are read. A row that
# has gone (merged, or its batch rolled back) empties the cache.
_LOGGED: dict[str, tuple[set[int], set[int]]] = {}


def logged_buckets(conn: Connection) -> set[int]:
    """Every bucket in lsh_log: a superset of the newest tier's."""
    database = conn.engine.url.render_as_string()
    ids = set(conn.execute(select(LOG_TABLE.c.id)).scalars())
    seen, buckets = _LOGGED.get(database, (set(), set()))
    if not seen <= ids:
        seen, buckets = set(), set()
    if new := ids - seen:
        for chunk in chunked(sorted(new), MAX_PARAMS):
            for blob in conn.execute(
                select(LOG_TABLE.c.buckets).where(LOG_TABLE.c.id.in_(chunk))
            ).scalars():
                buckets.update(np.frombuffer(blob, dtype="<i8").tolist())
        seen = seen | new
    _LOGGED[database] = (seen, buckets)
    return buckets


# --- Bloom filters of the runs ------------------------------------------------------------
# A register-blocked Bloom filter (Putze, Sanders and Singler 2007): all of a bucket's bits
# in one 64-bit word, so a lookup reads one word. No library kept on PyPI does this over
# numpy arrays of keys in one vectorised pass, and pybloom-style filters hash in Python a
# key at a time (42 a new article, times the runs).


def _probes(
    buckets: np.ndarray[Any, np.dtype[np.int64]], words: int
) -> tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.uint64]]]:
    """(word, mask) of each bucket: the word from its low 32 bits, the bits from a remix."""
    x = buckets.astype(np.int64, copy=False).view(np.uint64)
    with np.errstate(over="ignore"):
        word = ((x & np.uint64(0xFFFFFFFF)) * np.uint64(words)) >> np.uint64(32)
        z = x ^ (x >> np.uint64(31))
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(29)
        mask = np.zeros(len(x), dtype=np.uint64)
        for probe in range(FILTER_PROBES):
            mask |= np.uint64(1) << ((z >> np.uint64(6 * probe)) & np.uint64(63))
    return word, mask


def filter_words(rows: int) -> int:
    """A filter's size for `rows` buckets: FILTER_BITS a row, and never less than a full
    run's (a run's filter grows merge by merge in place), rounded up to an eighth of that,
    so that runs share one size and a lookup computes its probes once."""
    step = max(1, RUN_ROWS * FILTER_BITS // 64 // 8)
    need = max(1, (max(rows, RUN_ROWS) * FILTER_BITS + 63) // 64)
    return -(-need // step) * step


def bloom_filter(
    buckets: np.ndarray[Any, np.dtype[np.int64]],
) -> np.ndarray[Any, np.dtype[np.uint64]]:
    words = np.zeros(filter_words(len(buckets)), dtype=np.uint64)
    add_to_filter(words, buckets)
    return words


def add_to_filter(
    words: np.ndarray[Any, np.dtype[np.uint64]], buckets: np.ndarray[Any, np.dtype[np.int64]]
) -> None:
    word, mask = _probes(buckets, len(words))
    np.bitwise_or.at(words, word, mask)


Probes = tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.uint64]]]


def may_contain(
    words: np.ndarray[Any, np.dtype[np.uint64]],
    buckets: np.ndarray[Any, np.dtype[np.int64]],
    probes: dict[int, Probes] | None = None,
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """False for buckets certainly not in the filter's run; True for those that may be.
    `probes` keeps the buckets' probes by filter size, for the next filter of that size."""
    probes = {} if probes is None else probes
    if len(words) not in probes:
        probes[len(words)] = _probes(buckets, len(words))
    word, mask = probes[len(words)]
    return (words[word] & mask) == mask  # type: ignore[no-any-return]


def find_buckets(conn: Connection, asks: list[tuple[int, list[int]]]) -> Iterable[tuple[int, int]]:
    """(bucket, article id) of each lsh_bands row with the buckets asked of its tier; the
    tiers' questions share statements (UNION ALL) of at most MAX_PARAMS buckets.

    On PostgreSQL one statement joins the (tier, bucket) pairs, as arrays, to the table: a
    probe of the primary key each. Asked `bucket IN (...)`, the planner chose by the
    tier's row count in its statistics, which lag behind a tier that merges fill: thinking
    a run of 756,000 rows small, it read all of it for 180 buckets (100 ms a batch). The
    rows come back as one bytea of their binary values, read by numpy: a batch of copies
    and shared boilerplate finds 20,000-70,000 rows, and fetching them a row at a time was
    most of the lookup's time in the client (bench/dedup.py --docs 20000, where every
    article is a copy or a hard negative: 40,000 rows 70-75 -> 45-49 ms)."""
    if conn.dialect.name == "postgresql":
        pairs = [(tier, bucket) for tier, asked in asks for bucket in asked]
        if pairs:
            tiers, buckets = array_columns(pairs)
            packed = conn.execute(
                sql(
                    "SELECT string_agg(int8send(b.bucket) || int4send(b.article_id), ''::bytea)"
                    " FROM unnest(CAST(:tiers AS int2[]), CAST(:buckets AS int8[]))"
                    " AS t(tier, bucket)"
                    " JOIN lsh_bands AS b ON b.tier = t.tier AND b.bucket = t.bucket"
                ),
                {"tiers": tiers, "buckets": buckets},
            ).scalar()
            if packed:
                found = np.frombuffer(packed, dtype=_FOUND_ROW)
                yield from zip(found["bucket"].tolist(), found["article_id"].tolist(), strict=True)
        return
    mark = placeholder(conn)
    pieces = [(tier, chunk) for tier, asked in asks for chunk in chunked(asked, MAX_PARAMS)]
    while pieces:
        selects: list[str] = []
        params: list[int] = []
        while pieces and (not params or len(params) + len(pieces[0][1]) <= MAX_PARAMS):
            tier, chunk = pieces.pop(0)
            selects.append(
                f"SELECT bucket, article_id FROM lsh_bands WHERE tier = {int(tier)}"
                f" AND bucket IN ({', '.join([mark] * len(chunk))})"
            )
            params += chunk
        yield from conn.exec_driver_sql(" UNION ALL ".join(selects), tuple(params))


# a row find_buckets reads on PostgreSQL: int8send(bucket) || int4send(article_id)
_FOUND_ROW = np.dtype([("bucket", ">i8"), ("article_id", ">i4")])


def chunked(items: list[Any], size: int) -> list[list[Any]]:
    """Pieces small enough for any driver's limit on bound parameters."""
    return [items[start : start + size] for start in range(0, len(items), size)]


@dataclass
class _Batch:
    """One clustering pass: assignments so far and the batch's own bands, in memory."""

    cluster_of: dict[int, int | None]
    batch_ids: set[int] = field(default_factory=set)
    # what the database already holds for the whole batch's buckets, fetched together
    stored_by_bucket: dict[int, list[int]] = field(default_factory=dict)
    band_rows: list[tuple[int, int, int]] = field(default_factory=list)
    buckets: dict[int, list[int]] = field(default_factory=dict)
    prepared: dict[int, Prepared] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    # the article each new cluster was found with; until `found_clusters` the cluster of
    # founders[n] is -1 - n
    founders: list[int] = field(default_factory=list)
    # scores already computed: (article, stored candidate) -> (the candidate's version, score)
    compared: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)
    # the runs of lsh_bands as this pass found them (`stored_runs`)
    runs: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    # stored candidates seen in this pass: (cluster, current version)
    known: dict[int, tuple[int | None, int]] = field(default_factory=dict)
    # the shingle hashes of those whose current body was read in this pass
    hashes_of: dict[int, np.ndarray[Any, np.dtype[np.uint32]]] = field(default_factory=dict)

    def compare(self, conn: Connection, prepared: Sequence[Prepared]) -> None:
        """Load the batch's stored candidates (`load`), learn the cluster of every one (one
        statement, no bodies), and score each article against the stored candidates
        `matches` will check, for the whole batch at once: a statement for the batch in
        each of a few rounds (the next members of a cluster are read only once the one
        before them is known not to be a copy), not one for every 8 candidates of every
        article (4,539 reads in a 20,000-article build, a millisecond each on PostgreSQL,
        bench/dedup.py). `matches` reads only what these rounds did not."""
        self.load(conn, prepared)
        ranked: dict[int, list[int]] = {}
        for item in prepared:
            if not len(item.hashes):
                continue
            counts: Counter[int] = Counter()
            for _, bucket in item.keys:
                if shared := self.stored_by_bucket.get(bucket):
                    counts.update(shared)
            candidates = [a for a, _ in counts.most_common() if a not in self.batch_ids]
            if candidates := [a for a in candidates if a != item.article_id]:
                ranked[item.article_id] = candidates
        self.learn(conn, {a for candidates in ranked.values() for a in candidates})
        items = {item.article_id: item for item in prepared}
        for _ in range(READ_ROUNDS):
            wanted: dict[int, list[Prepared]] = {}
            for article_id, candidates in ranked.items():
                for candidate in self.unscored(items[article_id], candidates):
                    wanted.setdefault(candidate, []).append(items[article_id])
            if not wanted:
                break
            for chunk in chunked(list(wanted), MAX_PARAMS):
                self.read(conn, {article_id: wanted[article_id] for article_id in chunk})

    def unscored(self, item: Prepared, ranked: list[int]) -> list[int]:
        """The stored candidates `matches` would check for the article that are not scored
        yet, as far as the scores so far tell: after one of them, the rest of its cluster
        is left for a later round (skipped if it proves a copy)."""
        seen: set[int] = set()
        pending: list[int] = []
        checks = 0
        for article_id in ranked:
            if article_id not in self.known:
                continue  # (gone: matches scores it 0 without a read)
            cluster = self.known[article_id][0]
            if cluster is not None and cluster in seen:
                continue
            if self.stale(item, article_id):
                pending.append(article_id)
                if cluster is not None:
                    seen.add(cluster)
            elif self.compared[(item.article_id, article_id)][1] and cluster is not None:
                seen.add(cluster)
            checks += 1
            if checks >= MAX_CHECKS:
                break
        return pending

    def learn(self, conn: Connection, article_ids: Iterable[int]) -> None:
        """The cluster and current version of stored articles not known yet, into `known`."""
        unknown = [a for a in article_ids if a not in self.known]
        for chunk in chunked(unknown, MAX_PARAMS):
            rows = conn.execute(
                select(ARTICLES.c.id, ARTICLES.c.cluster_id, ARTICLES.c.version).where(
                    ARTICLES.c.id.in_(chunk)
                )
            )
            self.known.update((a, (cluster, version)) for a, cluster, version in rows)

    def stale(self, item: Prepared, article_id: int) -> bool:
        """The pair is not scored at the candidate's current version."""
        scored = self.compared.get((item.article_id, article_id))
        return scored is None or scored[0] != self.known[article_id][1]

    def read(self, conn: Connection, wanted: dict[int, list[Prepared]]) -> None:
        """Score stored candidates against the articles listed with each, every pair not
        scored at the candidate's current version, into `compared`. A body is read once a
        pass (its hashes kept in `hashes_of`), and only for such a pair: after a comparison
        made while waiting for the lock, the versions are read first."""
        unknown = [a for a in wanted if a not in self.known]
        if any((i.article_id, a) in self.compared for a in unknown for i in wanted[a]):
            self.learn(conn, unknown)
            unknown = []
        need = unknown + [
            a for a in wanted if a in self.known and any(self.stale(i, a) for i in wanted[a])
        ]
        fetch = [a for a in need if a not in self.hashes_of]
        for article_id, (body, cluster, version) in current_bodies(conn, fetch).items():
            self.known[article_id] = (cluster, version)
            self.hashes_of[article_id] = stored_hashes(body)
        for article_id in need:
            if article_id not in self.known:
                continue  # (gone)
            # (no current text: scored 0, as matches would)
            hashes = self.hashes_of.setdefault(article_id, NO_HASHES)
            version = self.known[article_id][1]
            for item in wanted[article_id]:
                if self.stale(item, article_id):
                    score = copy_score(item.hashes, hashes)
                    self.compared[(item.article_id, article_id)] = (version, score)

    def place(self, conn: Connection, item: Prepared) -> None:
        matches = self.matches(conn, item)
        before = self.cluster_of.get(item.article_id)
        target: int | None = None
        if before is not None and before in {cluster for _, cluster in matches}:
            target = before  # still matches its cluster: an edit is a version, not a new story
        elif matches:
            best_id, best_cluster = matches[0]
            if best_cluster is None:  # a new story's first copy: a new cluster, made later
                best_cluster = -1 - len(self.founders)
                self.founders.append(best_id)
                self.cluster_of[best_id] = best_cluster
            target = best_cluster
        self.cluster_of[item.article_id] = target
        self.touched |= {c for c in (before, target) if c is not None}
        self.prepared[item.article_id] = item
        article_id = item.article_id
        self.band_rows.extend((band, bucket, article_id) for band, bucket in item.keys)
        for _, bucket in item.keys:
            self.buckets.setdefault(bucket, []).append(article_id)

    def found_clusters(self, conn: Connection) -> None:
        """Make the batch's new clusters, all in one statement (one a cluster was a fifth of
        the statements clustering ran on PostgreSQL, bench/dedup.py), and give their ids to
        the articles placed in them; a stored article that founded one gets it here, those
        of the batch with the batch."""
        if not self.founders:
            return
        made = conn.execute(
            insert(CLUSTERS).returning(CLUSTERS.c.id, sort_by_parameter_order=True),
            [{"size": 2}] * len(self.founders),
        ).scalars()
        real = {-1 - n: int(cluster_id) for n, cluster_id in enumerate(made)}
        self.cluster_of = {
            a: real.get(c, c) if c is not None else None for a, c in self.cluster_of.items()
        }
        self.touched = {real.get(c, c) for c in self.touched}
        stored = [a for a in self.founders if a not in self.prepared]
        if stored:
            conn.execute(
                update(ARTICLES)
                .where(ARTICLES.c.id == bindparam("founder"))
                .values(cluster_id=bindparam("cluster")),
                [{"founder": a, "cluster": self.cluster_of[a]} for a in stored],
            )
        self.founders = []

    def load(self, conn: Connection, prepared: Sequence[Prepared]) -> None:
        """Every stored article sharing a bucket with the batch, asked for the whole batch at
        once (bench/dedup.py), exact copies included: the same text gives the same buckets."""
        self.batch_ids = {p.article_id for p in prepared}
        buckets = {bucket for p in prepared for _, bucket in p.keys}
        if not buckets:
            return
        # the newest tier for the buckets in the log, each run for those its filter lets
        # through (every bucket for a run without a filter); when `writes_runs`, the log's
        # are the current run's
        logged = logged_buckets(conn)
        fresh = [bucket for bucket in buckets if bucket in logged]
        self.runs = runs = stored_runs(conn)
        current = max(runs) if runs and writes_runs(conn) else NEWEST_TIER
        asks: list[tuple[int, list[int]]] = [] if current != NEWEST_TIER else [(current, fresh)]
        wanted = np.fromiter(buckets, dtype=np.int64, count=len(buckets))
        # in the order of their words in any filter (the low 32 bits pick the word), so that
        # each filter is read front to back: twice as fast as in random order
        wanted = wanted[np.argsort(wanted.view(np.uint64) & np.uint64(0xFFFFFFFF))]
        probes: dict[int, Probes] = {}
        for run, words in run_filters(conn, runs).items():
            passed = (
                wanted if words is None else wanted[may_contain(words, wanted, probes)]
            ).tolist()
            if run == current:
                passed = sorted({*passed, *fresh})
            if passed:
                asks.append((run, passed))
        for bucket, article_id in find_buckets(conn, asks):
            self.stored_by_bucket.setdefault(bucket, []).append(article_id)

    def matches(self, conn: Connection, item: Prepared) -> list[tuple[int, int | None]]:
        """Confirmed copies of the article, best first: (article id, its cluster).

        Candidates are ranked by the buckets they share and at most MAX_CHECKS are
        verified, one per cluster: a story republished a thousand times (or a thousand
        pages of one template) must not make every new copy compare with all of them.
        """
        if not len(item.hashes):
            return []
        counts: Counter[int] = Counter()
        for _, bucket in item.keys:  # most buckets are empty: skip Counter.update for them
            if shared := self.stored_by_bucket.get(bucket):
                counts.update(shared)
            if shared := self.buckets.get(bucket):
                counts.update(shared)
        for article_id in [a for a in counts if a in self.batch_ids and a not in self.prepared]:
            del counts[article_id]  # not placed yet: it will find this one
        counts.pop(item.article_id, None)
        if not counts:
            return []
        ranked = [article_id for article_id, _ in counts.most_common()]
        scored: list[tuple[float, int, int | None]] = []
        seen_clusters: set[int] = set()
        checks = 0

        def cluster_now(article_id: int) -> int | None:
            if article_id in self.prepared:
                return self.cluster_of.get(article_id)
            return self.cluster_of.get(article_id, self.known.get(article_id, (None, 0))[0])

        for index, article_id in enumerate(ranked):
            cluster = cluster_now(article_id)
            if cluster is not None and cluster in seen_clusters:
                continue
            checks += 1
            if article_id in self.prepared:
                score = copy_score(item.hashes, self.prepared[article_id].hashes)
            else:
                if article_id not in self.known or self.stale(item, article_id):
                    # this one and the next few unscored, but no two of a cluster: the
                    # second is skipped if the first proves a copy
                    wanted: dict[int, list[Prepared]] = {}
                    clusters = set(seen_clusters)
                    for ahead in ranked[index:]:
                        if len(wanted) == 8:
                            break
                        if (
                            ahead in self.prepared
                            or (cluster_ahead := cluster_now(ahead)) in clusters
                        ):
                            continue
                        if ahead not in self.known or self.stale(item, ahead):
                            wanted[ahead] = [item]
                        if cluster_ahead is not None:
                            clusters.add(cluster_ahead)
                    self.read(conn, wanted)
                if article_id in self.known and not self.stale(item, article_id):
                    score = self.compared[(item.article_id, article_id)][1]
                else:  # (it has no current text)
                    score = 0.0
            if score:
                scored.append((score, article_id, cluster))
                if cluster is not None:
                    seen_clusters.add(cluster)
            if checks >= MAX_CHECKS:
                break
        scored.sort(key=lambda s: (-s[0], s[1]))
        return [(article_id, cluster) for _, article_id, cluster in scored]


def copy_score(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """How much of a copy `b` is of `a` (0 when it is none)."""
    jaccard, containment = similarity(a, b)
    if jaccard >= JACCARD_MIN or containment >= CONTAINMENT_MIN:
        return max(jaccard, containment)
    return 0.0


# --- the original ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    article_id: int
    site_id: int
    site_names: tuple[str, ...]
    publish_time: datetime | None
    source: str | None
    first_seen: datetime


SITES = cast(Table, Site.__table__)
# The current version's 来源 by a subquery for each member, not a join: joined, PostgreSQL
# chose by its statistics, and where they lag behind the archive (a new or bulk-loaded
# one, autovacuum off or not yet round) it thought a cluster had hundreds of members and
# hashed all of article_versions for the 4 it has: a sequential scan of the table on every
# batch (bench/dedup.py: 28-30 ms a batch of 500 at 200,000 articles, a tenth of
# clustering, growing with the archive). The subquery is one probe of the version's key
# each, whatever the statistics say.
MEMBERS = select(
    ARTICLES.c.cluster_id,
    ARTICLES.c.id,
    ARTICLES.c.site_id,
    SITES.c.name,
    SITES.c.title,
    ARTICLES.c.publish_time,
    select(VERSIONS.c.source)
    .where(VERSIONS.c.article_id == ARTICLES.c.id, VERSIONS.c.version == ARTICLES.c.version)
    .scalar_subquery(),
    ARTICLES.c.first_seen,
).join_from(ARTICLES, SITES, SITES.c.id == ARTICLES.c.site_id)


def refresh_clusters(conn: Connection, cluster_ids: Iterable[int]) -> None:
    """Recount clusters, credit each one's original (with the reason), drop those with one
    member left (a story alone is not a cluster: its article is its own original).

    A few statements for all of a batch's clusters, not three for each: a batch of 500 new
    articles touched 60 clusters, and their 180 statements were a tenth of clustering's
    time on PostgreSQL (bench/dedup.py)."""
    ids = sorted(set(cluster_ids))
    members_of: dict[int, list[Member]] = {cluster_id: [] for cluster_id in ids}
    for chunk in chunked(ids, MAX_PARAMS):
        for r in conn.execute(MEMBERS.where(ARTICLES.c.cluster_id.in_(chunk))):
            members_of[r[0]].append(
                Member(r[1], r[2], (r[3], r[4]), as_utc(r[5]), r[6], as_utc(r[7]) or utcnow())
            )
    alone = [cluster_id for cluster_id, members in members_of.items() if len(members) <= 1]
    for chunk in chunked(alone, MAX_PARAMS):
        conn.execute(
            update(ARTICLES)
            .where(ARTICLES.c.cluster_id.in_(chunk))
            .values(cluster_id=None, is_original=True)
        )
        conn.execute(delete(CLUSTERS).where(CLUSTERS.c.id.in_(chunk)))
    kept = {
        cluster_id: (len(members), *choose_original(members))
        for cluster_id, members in members_of.items()
        if len(members) > 1
    }
    if not kept:
        return
    now = utcnow()
    conn.execute(
        update(CLUSTERS)
        .where(CLUSTERS.c.id == bindparam("cluster"))
        .values(
            size=bindparam("members"),
            original_article_id=bindparam("original_id"),
            original_reason=bindparam("why"),
            updated_at=now,
        ),
        [
            {"cluster": cluster_id, "members": size, "original_id": original.article_id, "why": why}
            for cluster_id, (size, original, why) in kept.items()
        ],
    )
    for chunk in chunked(list(kept), MAX_PARAMS // 2):
        originals = [kept[cluster_id][1].article_id for cluster_id in chunk]
        original = ARTICLES.c.id.in_(originals)
        conn.execute(  # (the members whose mark changes: a new copy leaves the rest as they are)
            update(ARTICLES)
            .where(
                ARTICLES.c.cluster_id.in_(chunk), ARTICLES.c.is_original.is_distinct_from(original)
            )
            .values(is_original=original)
        )


def as_utc(when: datetime | None) -> datetime | None:
    """Core rows come back through the column type already; this only guards naive values."""
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when


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


def prepare_many(items: Sequence[tuple[int, str]]) -> list[Prepared]:
    """`prepare` over (article id, body) pairs; picklable, for a worker process."""
    return [prepare(article_id, body) for article_id, body in items]


def rebuild(session: Session, batch: int = 500, workers: int = 1) -> int:
    """Forget every band and cluster, then cluster all articles again, oldest first.

    With `workers`, the next batch's texts are prepared (t2s, shingles, MinHash) in
    worker processes while this one is written, so both cores work.
    """
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    session.execute(update(Article).values(cluster_id=None, is_original=True))
    if session.get_bind().dialect.name == "postgresql":
        # (clustering processes wait, as they would for a batch)
        session.execute(select(func.pg_advisory_xact_lock(CLUSTER_LOCK)))
        session.execute(sql("LOCK TABLE lsh_bands IN ACCESS EXCLUSIVE MODE"))
        session.execute(sql("TRUNCATE lsh_bands"))
    else:
        session.execute(delete(LshBand))
    session.execute(delete(LshTier))
    session.execute(delete(LshKeys))
    session.execute(delete(LshLog))
    session.execute(update(Cluster).values(original_article_id=None))
    session.execute(delete(Cluster))
    ids = list(session.scalars(select(Article.id).order_by(Article.id)))
    batches = [ids[start : start + batch] for start in range(0, len(ids), batch)]
    conn = session.connection()

    def texts(batch_ids: list[int]) -> list[tuple[int, str]]:
        bodies = current_bodies(conn, batch_ids)
        return [(article_id, bodies.get(article_id, ("", None, 0))[0]) for article_id in batch_ids]

    if workers < 1 or len(batches) < 2:
        for batch_ids in batches:
            cluster_articles(session, batch_ids)
        return len(ids)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[list[int], Future[list[Prepared]]]] = deque()
        for batch_ids in batches:
            pending.append((batch_ids, pool.submit(prepare_many, texts(batch_ids))))
            if len(pending) > workers:
                done_ids, future = pending.popleft()
                cluster_articles(session, done_ids, future.result())
        while pending:
            done_ids, future = pending.popleft()
            cluster_articles(session, done_ids, future.result())
    return len(ids)
