"""Republication clustering at archive scale: precision, recall, speed, and whether it stays flat.

A synthetic archive of N articles (default 200,000; ~1,500 characters drawn from a
vocabulary of Chinese news text with Zipf-like frequencies) with injected
republications of every kind the crawler meets (traditional script, other boilerplate,
a sentence added or cut, truncated, pinyin leaks, another headline) and hard negatives
(distinct articles sharing a standard opening paragraph and a long boilerplate block).
Articles are inserted and clustered in batches of 500 into SQLite and then, the same texts
in the same order, into PostgreSQL, as the crawler does (`archive.dedup.cluster_articles`),
each archive in a process of its own forked from the bench before either was measured,
with the texts of the next batch prepared in a worker process. Reports pairwise precision and recall, documents/s, the cost per document at
10k, 50k and N, and -- side by side on the same texts -- datasketch's MinHash fed one
shingle at a time (the straightforward use, the peer) against our batched hashing.

The cost at each size is measured side by side in one phase after the build: copies of
the archive taken while it grew (at 10k and 50k, less half the probe) and the full one
each take the same batches of new documents, in turn, so that a slow spell of this
shared machine (identical work here varies by 2x from minute to minute) falls on all
of them alike instead of on whichever size was being built at the time.

    .venv/bin/python bench/dedup.py [--docs 200000] [--copies 10000] [--negatives 10000]
        [--backends sqlite,postgresql] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

On PostgreSQL the archive and its copies are databases of their own
(`ufarchive_bench_dedup_<pid>_...`, a copy made with the archive as template), dropped at the
end, also on failure; the time taken copying is not counted.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import multiprocessing
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import opencc  # noqa: E402
from sqlalchemy import Engine, create_engine, insert, select  # noqa: E402
from sqlalchemy import text as sql  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from archive.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from archive.dedup import (  # noqa: E402
    BANDS,
    RUN_ROWS,
    SHINGLE,
    Prepared,
    cluster_articles,
    comparison_text,
    prepare_many,
)
from archive.models import Article, Site  # noqa: E402
from archive.redact import redact  # noqa: E402
from archive.store import ARTICLES, VERSIONS  # noqa: E402
from tests.newstext import article, vocabulary  # noqa: E402

BATCH = 500
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PROBE_BATCHES = 16  # a size's cost: 16 batches of new documents (two merges of the newest tier)
S2T = opencc.OpenCC("s2t")
OPENING = "为深入学习贯彻习近平新时代中国特色社会主义思想，全面贯彻落实中央统战工作会议精神，按照市委统一部署，"
BOILERPLATE = (
    "（本文来源：某某市委统战部。转载请注明出处。欢迎关注统一战线微信公众号，获取更多统战资讯。"
    "联系电话：0000-0000000　地址：某某市人民路1号　邮编：000000）"
) * 2


def sentences(text: str) -> list[str]:
    return [s + "。" for s in text.replace("\n", "").split("。") if s]


def republish(rng: random.Random, text: str) -> tuple[str, str]:
    kind = rng.choice(
        ["traditional", "boilerplate", "added", "truncated", "cut", "pinyin", "headline"]
    )
    if kind == "traditional":
        return kind, S2T.convert(text)
    if kind == "boilerplate":
        return (
            kind,
            "来源：某某市统战部网站　编辑：王芳\n"
            + text
            + "\n版权所有：某某市委统战部　备案号：皖ICP备00000000号",
        )
    if kind == "added":
        return (
            kind,
            text + "\n会后，与会人员还就下一步工作进行了深入交流，一致表示将认真贯彻落实会议精神。",
        )
    if kind == "truncated":
        parts = sentences(text)
        return kind, "".join(parts[: max(2, len(parts) * rng.randint(6, 8) // 10)])
    if kind == "cut":
        parts = sentences(text)
        parts.pop(rng.randrange(len(parts)))
        return kind, "".join(parts)
    if kind == "pinyin":
        return kind, S2T.convert(text).replace("統", "統(tǒng)").replace("戰", "戰(zhàn)")
    return kind, text  # another headline: the body is the same


def corpus(n: int, copies: int, negatives: int, seed: int = 7) -> tuple[list[str], dict[int, int]]:
    """Texts (index = article id - 1) and, for each injected copy, the index of its source."""
    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    texts: list[str] = []
    source_of: dict[int, int] = {}
    originals = n - copies - negatives
    slots = ["o"] * originals + ["c"] * copies + ["n"] * negatives
    rng.shuffle(slots)
    slots.sort(
        key=lambda s: s != "o" and rng.random() < 0.02
    )  # a few copies arrive before any original
    for slot in slots:
        index = len(texts)
        if slot != "o" and texts:
            source = rng.randrange(len(texts))
            while source in source_of:
                source = source_of[source]  # copy the original, not a copy
            if slot == "c":
                texts.append(republish(rng, texts[source])[1])
                source_of[index] = source
                continue
            # hard negative: the source's opening and boilerplate, a different article
            texts[source] = (
                OPENING + texts[source] + BOILERPLATE
                if not texts[source].startswith(OPENING)
                else texts[source]
            )
            texts.append(OPENING + article(rng, words, weights) + BOILERPLATE)
            continue
        texts.append(article(rng, words, weights))
    return texts, source_of


def probe_texts(count: int, base: list[str], seed: int = 11) -> list[str]:
    """New documents of the corpus's mix whose copies copy one of `base` (the documents every
    archive measured holds), and whose hard negatives share the opening and boilerplate."""
    rng = random.Random(seed)
    words, weights = vocabulary(random.Random(7))
    texts = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            texts.append(republish(rng, base[rng.randrange(len(base))])[1])
        elif roll < 0.10:
            texts.append(OPENING + article(rng, words, weights) + BOILERPLATE)
        else:
            texts.append(article(rng, words, weights))
    return texts


def store_batch(
    sessions: sessionmaker[Session], ids: list[int], texts: list[str], prepared: list[Prepared]
) -> float:
    """Insert and cluster one batch in one transaction, as the crawler does; seconds taken."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    with sessions() as session, session.begin():
        # (the content hash at insertion, as archive.store writes it: prepared's is the same)
        session.execute(insert(ARTICLES), [
            {"id": i, "site_id": 1, "url": f"https://bench/{i}", "canonical_url": f"https://bench/{i}",
             "first_seen": now, "last_seen": now, "version": 1, "content_hash": p.content_hash}
            for i, p in zip(ids, prepared, strict=True)])  # fmt: skip
        session.execute(insert(VERSIONS), [
            {"article_id": i, "version": 1, "first_seen": now, "last_seen": now, "body": text,
             "content_hash": ""} for i, text in zip(ids, texts, strict=True)])  # fmt: skip
        cluster_articles(session, ids, prepared)
    return time.perf_counter() - started


def snapshot(engine: Engine, path: str) -> None:
    """A page-for-page copy of the archive (SQLite's backup API)."""
    raw = engine.raw_connection()
    try:
        target = sqlite3.connect(path)
        raw.driver_connection.backup(target)  # type: ignore[union-attr]
        target.close()
    finally:
        raw.close()


def pairs_of(groups: dict[int, list[int]]) -> set[tuple[int, int]]:
    return {
        (a, b) for members in groups.values() for a, b in itertools.combinations(sorted(members), 2)
    }


def peer_comparison(texts: list[str], sample: int = 1000) -> tuple[float, float]:
    """docs/s of datasketch MinHash fed one shingle at a time vs our batched preparation."""
    from datasketch import MinHash

    chosen = texts[:sample]
    started = time.perf_counter()
    for text in chosen:
        ctext = comparison_text(text)
        minhash = MinHash(num_perm=128)
        for i in range(len(ctext) - SHINGLE + 1):
            minhash.update(ctext[i : i + SHINGLE].encode())
    peer = len(chosen) / (time.perf_counter() - started)
    started = time.perf_counter()
    prepare_many(list(enumerate(chosen)))
    ours = len(chosen) / (time.perf_counter() - started)
    return peer, ours


class Backend:
    """Where an archive is measured: SQLite files in a temporary folder, or databases of their
    own on a PostgreSQL server (dropped at the end, also on failure). `copy` takes a
    page-for-page copy of the archive as it is (SQLite's backup API; on PostgreSQL a new
    database with the archive as its template)."""

    def __init__(self, kind: str, place: str) -> None:
        self.kind, self.place = kind, place
        self.made: list[str] = []
        self.admin = (
            create_engine(place, isolation_level="AUTOCOMMIT") if kind == "postgresql" else None
        )

    def url(self, name: str) -> str:
        if self.admin is None:
            return f"sqlite:///{self.place}/{name}.sqlite3"
        return make_url(self.place).set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, template: str | None = None) -> str:
        name = f"ufarchive_bench_dedup_{os.getpid()}_{name}" if self.admin else name
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.execute(sql(f'DROP DATABASE IF EXISTS "{name}"'))
                like = f' TEMPLATE "{template}"' if template else ""
                conn.execute(sql(f'CREATE DATABASE "{name}"{like}'))
        self.made.append(name)
        return name

    def copy(self, engine: Engine, source: str, name: str) -> str:
        if self.admin is None:
            snapshot(engine, self.url(name)[len("sqlite:///") :])
            return name
        engine.dispose()  # (a template database must have no other connection)
        return self.create(name, template=source)

    def drop_all(self) -> None:
        if self.admin is not None:
            with self.admin.connect() as conn:
                for name in self.made:
                    conn.execute(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self.admin.dispose()


@dataclass
class Measured:
    kind: str
    elapsed: float
    window: list[float]
    building: dict[int, float]
    cost_at: dict[int, float]
    clusters: dict[int, list[int]]
    period: int


def measure(
    backend: Backend, texts: list[str], probes: list[str], sizes: list[int], half: int, size: int
) -> Measured:
    """Build the archive batch by batch (its copies taken on the way), then time the probe
    batches into each copy and the full archive, in turn."""
    main_name = backend.create("archive")
    engine = make_engine(backend.url(main_name), writer=True)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        session.add(Site(id=1, name="bench", title="bench"))
    window: list[float] = []
    # the cost while building, by the old measure: amortised over four runs of the
    # band index (a window shorter than a run would count its merges unevenly)
    period = 4 * RUN_ROWS // BANDS
    building: dict[int, float] = {}
    copies: dict[int, str] = {}
    batches = [
        list(range(start, min(start + size, len(texts)))) for start in range(0, len(texts), size)
    ]
    started = time.perf_counter()
    copying = 0.0
    with ProcessPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(prepare_many, [(i + 1, texts[i]) for i in batches[0]])
        for k, batch in enumerate(batches):
            prepared = ahead.result()
            if k + 1 < len(batches):
                ahead = pool.submit(prepare_many, [(i + 1, texts[i]) for i in batches[k + 1]])
            ids = [i + 1 for i in batch]
            seconds = store_batch(sessions, ids, [texts[i] for i in batch], prepared)
            window.append(seconds / len(batch))
            done = batch[-1] + 1
            for mark in [*sizes, len(texts)]:
                if done >= mark and mark not in building:
                    recent = window[-max(1, min(done, period) // size) :]
                    building[mark] = sum(recent) / len(recent)
                if mark < len(texts) and done >= mark - half and mark not in copies:
                    took = time.perf_counter()
                    copies[mark] = backend.copy(engine, main_name, f"at{mark}")
                    copying += time.perf_counter() - took
            if done % 20_000 < size:
                rate = done / (time.perf_counter() - started - copying)
                print(f"  {backend.kind}: {done} articles, {rate:.0f} docs/s", flush=True)
    elapsed = time.perf_counter() - started - copying  # (the copies are the bench's own)
    with sessions() as session:
        clusters: dict[int, list[int]] = defaultdict(list)
        for article_id, cluster_id in session.execute(select(Article.id, Article.cluster_id)):
            if cluster_id is not None:
                clusters[cluster_id].append(article_id - 1)

    # side by side: each archive takes the same new batches, in turn, round by round
    # (the first round warms each one's cache and is not counted)
    engines = {mark: make_engine(backend.url(name), writer=True) for mark, name in copies.items()}
    archives = {mark: make_sessionmaker(e) for mark, e in engines.items()} | {len(texts): sessions}
    probe_batches = [list(range(start, start + size)) for start in range(0, len(probes), size)]
    prepared_probes = [
        prepare_many([(len(texts) + 1 + i, probes[i]) for i in batch]) for batch in probe_batches
    ]
    spent: dict[int, list[float]] = defaultdict(list)
    order = list(archives)
    for round_, (batch, prepared) in enumerate(zip(probe_batches, prepared_probes, strict=True)):
        ids = [len(texts) + 1 + i for i in batch]
        for mark in order[round_ % len(order) :] + order[: round_ % len(order)]:
            seconds = store_batch(archives[mark], ids, [probes[i] for i in batch], prepared)
            if round_:
                spent[mark].append(seconds / len(batch))
    cost_at = {mark: sum(costs) / len(costs) for mark, costs in spent.items()}
    for other in [*engines.values(), engine]:
        other.dispose()
    return Measured(backend.kind, elapsed, window, building, cost_at, clusters, period)


def measure_apart(
    kind: str,
    place: str,
    texts: list[str],
    probes: list[str],
    sizes: list[int],
    half: int,
    size: int,
) -> Measured:
    """`measure` in a process of its own, forked from this one as it was before any archive
    was measured. In one process, whichever archive came second lost 15-20 % of its docs/s
    (SQLite then SQLite, SQLite then PostgreSQL, PostgreSQL then SQLite, at 40,000), so the
    ratio of the two depended on their order; forked apart, each starts as the first did."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def run() -> None:
        backend = Backend(kind, place)
        try:
            send.send(measure(backend, texts, probes, sizes, half, size))
        except OperationalError as exc:
            send.send(f"{kind}: cannot reach {redact(place)}: {exc.orig}")
        finally:
            backend.drop_all()

    child = context.Process(target=run, name=f"measure {kind}")
    child.start()
    send.close()
    try:
        got: Measured | str = receive.recv()
    except EOFError:
        got = ""
    child.join()
    if isinstance(got, str):
        sys.exit(got or f"{kind}: the measuring process ended without a result ({child.exitcode})")
    return got


def report(
    m: Measured, texts: list[str], source_of: dict[int, int], size: int, half: int
) -> tuple[float, float]:
    """Prints a backend's figures; returns (precision, recall)."""
    stories: dict[int, list[int]] = defaultdict(list)
    for copy, source in source_of.items():
        stories[source].append(copy)
    for source in stories:
        stories[source].append(source)
    truth, found = pairs_of(stories), pairs_of(m.clusters)
    hit = len(truth & found)
    precision = hit / len(found) if found else 1.0
    recall = hit / len(truth) if truth else 1.0
    name = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[m.kind]
    print(f"\n{name}: pairs: {len(truth)} true, {len(found)} found, {hit} right")
    print(f"precision {precision:.4f} (target >= 0.99), recall {recall:.4f} (target >= 0.97)")
    print(f"insert-and-cluster on {name}: {len(texts) / m.elapsed:.0f} docs/s (target >= 1000)")
    cost_at = m.cost_at
    costs = ", ".join(f"{mark // 1000}k: {cost_at[mark] * 1000:.2f} ms" for mark in sorted(cost_at))
    first, last = cost_at[min(cost_at)], cost_at[max(cost_at)]
    print(
        f"cost per document at {costs} (side by side: the same {PROBE_BATCHES} batches of"
        f" {size} new documents into copies taken {half} documents before each size, and"
        f" after the last); {max(cost_at) // 1000}k / {min(cost_at) // 1000}k ="
        f" {last / first:.2f} (target <= 1.5)"
    )
    building = m.building
    then = ", ".join(f"{mark // 1000}k: {building[mark] * 1000:.2f}" for mark in sorted(building))
    print(
        f"while building (each the mean over the last {m.period} documents or all before; the"
        f" machine's drift falls on these unevenly): {then} ms,"
        f" ratio {building[max(building)] / building[min(building)]:.2f}"
    )
    per = max(1, 10_000 // size)
    window = m.window
    curve = [
        sum(window[k : k + per]) / len(window[k : k + per]) for k in range(0, len(window), per)
    ]
    print("ms/doc by 10k documents:", " ".join(f"{c * 1000:.2f}" for c in curve))
    return precision, recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--copies", type=int, default=10_000)
    parser.add_argument("--negatives", type=int, default=10_000)
    parser.add_argument(
        "--batch", type=int, default=BATCH, help="articles a transaction (default 500)"
    )
    parser.add_argument(
        "--backends",
        default="sqlite,postgresql",
        help="archives to measure, in this order (default: sqlite,postgresql)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("UFARCHIVE_TEST_POSTGRES_URL", PG_URL),
        help=f"a PostgreSQL server's database to connect to first (default {PG_URL})",
    )
    args = parser.parse_args()
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]
    if not kinds or set(kinds) - {"sqlite", "postgresql"}:
        parser.error(f"--backends: sqlite and/or postgresql, not {args.backends!r}")
    started = time.perf_counter()
    texts, source_of = corpus(args.docs, args.copies, args.negatives)
    print(f"corpus: {len(texts)} articles ({args.copies} copies, {args.negatives} hard negatives), "
          f"{sum(map(len, texts)) / len(texts):.0f} characters on average, made in {time.perf_counter() - started:.0f} s")  # fmt: skip
    # The corpus lives in this process, which the crawler's would not: keep the collector
    # from walking it again and again while the archive is measured.
    gc.freeze()
    peer_rate, our_rate = peer_comparison(texts)
    print(f"hashing only: datasketch one shingle at a time {peer_rate:.0f} docs/s, ours batched {our_rate:.0f} docs/s "
          f"({our_rate / peer_rate:.1f}x)")  # fmt: skip

    size = args.batch
    half = PROBE_BATCHES * size // 2
    sizes = [mark for mark in (10_000, 50_000) if mark - half > 0 and mark < len(texts)]
    probes = probe_texts((PROBE_BATCHES + 1) * size, texts[: min(sizes, default=len(texts)) - half])
    results: dict[str, Measured] = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            place = args.pg_url if kind == "postgresql" else tmp
            results[kind] = measure_apart(kind, place, texts, probes, sizes, half, size)
    for measured in results.values():
        report(measured, texts, source_of, size, half)
    if len(results) == 2:
        lite, pg = results["sqlite"], results["postgresql"]
        top = max(pg.cost_at)
        print(
            f"\nPostgreSQL against SQLite, the same texts, each in a process of its own: docs/s"
            f" {len(texts) / pg.elapsed:.0f} / {len(texts) / lite.elapsed:.0f} ="
            f" {lite.elapsed / pg.elapsed:.2f}; cost at {top // 1000}k"
            f" {pg.cost_at[top] * 1000:.2f} / {lite.cost_at[top] * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()
