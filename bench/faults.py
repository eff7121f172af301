"""Fault trials at volume: the figures of docs/reliability.md.

Every trial runs the real command line on an archive of its own (tests/faults.py) against
a generated site on 127.0.0.1, injects a fault, lets the archive run again and judges it
with tests.faults.problems(): every page one article, every version whole and readable,
`verify` clean, `warcio check` clean on every file, no run left `running`, SQLite's
integrity check ok. "Records lost" counts pages of the site not stored after recovery.

  crawl-kill      SIGKILL the crawl process at a random moment (uniform over a full
                  crawl's duration, from the process's start), then crawl again
  scheduler-kill  SIGKILL the scheduler and its crawls at a random moment, then run the
                  scheduler until a crawl succeeds
  disk-full       the data dir on a small tmpfs (the database beside it): the run must
                  fail in one line; then more space and a crawl stores the rest
  hostile         a site with a 5 MB page, an endless chunked body, a slowloris drip, a
                  gzip bomb (page and sitemap), invalid bytes and 10,000 links a page:
                  wall time and peak RSS of the crawl
  pg-restart      (only with --pg-restart, and last: it restarts the PostgreSQL server
                  that others on this machine share) `pg_ctlcluster ... restart` while a
                  crawl on PostgreSQL is storing; the crawl must succeed with every page

    .venv/bin/python bench/faults.py [--trials 50] [--pages 100] [--only NAME] [--pg-restart]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from archive.models import Article, CrawlError  # noqa: E402
from tests.bigsite import build_site  # noqa: E402
from tests.faults import (  # noqa: E402
    Archive,
    kill_crawl_at,
    kill_scheduler_at,
    measured_crawl,
    problems,
    schedule_until_success,
)
from tests.hostilesite import HostileSite  # noqa: E402
from tests.siteserver import SiteServer  # noqa: E402

KEPT = Path(tempfile.gettempdir()) / "ufarchive-faults-kept"  # failed trials' archives
PG_ADMIN = os.environ.get(
    "UFARCHIVE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
Row = tuple[str, int, int, int, str]  # fault, trials, survived, records lost, note


def stored(archive: Archive) -> int:
    with archive.session() as session:
        return int(session.scalar(select(func.count()).select_from(Article)) or 0)  # type: ignore[attr-defined]


def new_archive(base: Path, server: SiteServer, n: int, **kwargs: object) -> Archive:
    root = base / f"trial-{n}"
    database = f"sqlite:///{root / 'data' / 'ufarchive.sqlite3'}"
    return Archive(root, database, server.url("/tzyw/index.html"), server.host).configure(**kwargs)  # type: ignore[arg-type]


def full_crawl_seconds(base: Path, server: SiteServer) -> float:
    archive = new_archive(base, server, 0)
    started = time.monotonic()
    assert archive.crawl().returncode == 0
    return time.monotonic() - started


def trials(name: str, count: int, pages: int, run_one: Callable[[int], Archive]) -> Row:
    survived = lost = 0
    notes: list[str] = []
    for n in range(1, count + 1):
        try:
            archive = run_one(n)
        except AssertionError as exc:  # the archive did not recover in time: a failed trial
            notes.append(f"trial {n}: {exc}")
            print(f"  {name} {n}/{count}: FAILED {exc}", flush=True)
            continue
        found = problems(archive, pages=pages)
        have = stored(archive)
        lost += max(0, pages - have)
        if found:
            notes.append(f"trial {n}: {found[:2]}")
            shutil.copytree(archive.root, KEPT / f"{name.split()[2]}-{n}", dirs_exist_ok=True)
        else:
            survived += 1
        print(f"  {name} {n}/{count}: {'ok' if not found else found[:2]}", flush=True)
    return name, count, survived, lost, "; ".join(notes[:3])


def crawl_kill(base: Path, server: SiteServer, count: int, pages: int, rng: random.Random) -> Row:
    span = full_crawl_seconds(base / "crawl-kill", server)
    print(f"  a full crawl of {pages} pages takes {span:.1f} s here; kills fall uniformly in it")

    def one(n: int) -> Archive:
        archive = new_archive(base / "crawl-kill", server, n)
        what = kill_crawl_at(archive, rng.uniform(0, span))
        result = archive.crawl()
        if result.returncode != 0:
            print(f"  restart after '{what}' failed: {result.stderr[-300:]}")
        return archive

    return trials("kill -9 of a crawl", count, pages, one)


def scheduler_kill(
    base: Path, server: SiteServer, count: int, pages: int, rng: random.Random
) -> Row:
    span = full_crawl_seconds(base / "scheduler-kill", server)

    def one(n: int) -> Archive:
        archive = new_archive(base / "scheduler-kill", server, n)
        kill_scheduler_at(archive, rng.uniform(0, span))
        schedule_until_success(archive, timeout=900)
        return archive

    return trials("kill -9 of the scheduler (and its crawls)", count, pages, one)


def disk_full(base: Path, server: SiteServer, count: int, pages: int) -> Row:
    sizes = ["96k", "160k", "256k", "512k"][:count]

    def one(n: int) -> Archive:
        root = base / "disk-full" / f"trial-{n}"
        data = root / "data"
        data.mkdir(parents=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={sizes[n - 1]}", "tmpfs", str(data)], check=True
        )
        database = f"sqlite:///{root / 'db' / 'ufarchive.sqlite3'}"
        archive = Archive(
            root, database, server.url("/tzyw/index.html"), server.host, data_dir=data
        ).configure()
        result = archive.crawl()
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        one_line = result.returncode == 1 and len(lines) == 1 and "No space left" in lines[0]
        print(
            f"  full at {sizes[n - 1]}: exit {result.returncode}, one line: {one_line}: {lines[:1]}"
        )
        assert problems(archive) == [], "corrupt while full"
        subprocess.run(["mount", "-o", "remount,size=64m", str(data)], check=True)
        archive.crawl()
        return archive

    try:
        return trials("data dir full mid-run", len(sizes), pages, one)
    finally:
        for n in range(1, len(sizes) + 1):
            subprocess.run(
                ["umount", "-l", str(base / "disk-full" / f"trial-{n}" / "data")], check=False
            )


def hostile(base: Path, count: int) -> Row:
    worst_s = worst_mb = 0.0
    survived = 0
    for n in range(1, count + 1):
        site = HostileSite().start()
        try:
            root = base / "hostile" / f"trial-{n}"
            archive = Archive(root, f"sqlite:///{root / 'data' / 'ufarchive.sqlite3'}",
                              f"{site.base}/tzyw/index.html", "127.0.0.1", follow=r"/tzyw/links\.html$")  # fmt: skip
            archive.configure(
                timeout=30, max_pages=20_000, extra=f"sitemap_urls: [{site.base}/sitemap.xml.gz]\n"
            )
            figures = measured_crawl(archive, timeout=1800)
        finally:
            site.stop()
        with archive.session() as session:
            kinds: dict[str, int] = {}
            for error in session.scalars(select(CrawlError)):  # type: ignore[attr-defined]
                kinds[error.kind] = kinds.get(error.kind, 0) + 1
        found = problems(archive)
        survived += not found
        worst_s = max(worst_s, float(figures["seconds"]))  # type: ignore[arg-type]
        worst_mb = max(worst_mb, float(figures["rss_mb"]))  # type: ignore[arg-type]
        print(f"  hostile {n}: {figures['seconds']:.0f} s, peak RSS {figures['rss_mb']:.0f} MB, "
              f"errors {kinds}, problems {found[:2]}", flush=True)  # fmt: skip
    note = f"slowest crawl {worst_s:.0f} s (30 s timeout a request), peak RSS {worst_mb:.0f} MB"
    return "hostile site", count, survived, 0, note


def pg_restart(base: Path, server: SiteServer, count: int, pages: int) -> Row:
    cluster = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_pre_ping=True)

    def one(n: int) -> Archive:
        name = f"ufarchive_faults_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
        archive = Archive(
            base / "pg" / f"trial-{n}", url, server.url("/tzyw/index.html"), server.host
        ).configure()
        crawl = subprocess.Popen([sys.executable, "-m", "crawler", "crawl"], env=archive.env(), cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        while crawl.poll() is None:
            runs = archive.runs()
            if runs and runs[-1].articles_new >= pages // 4:
                break
            time.sleep(0.1)
        started = time.monotonic()
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"], check=True
        )
        print(f"  PostgreSQL restarted in {time.monotonic() - started:.1f} s", flush=True)
        _, stderr = crawl.communicate(timeout=600)
        print(f"  crawl exit {crawl.returncode} {stderr.strip()[-200:]}")
        return archive

    return trials("PostgreSQL restarted mid-crawl", count, pages, one)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument(
        "--only", choices=["crawl-kill", "scheduler-kill", "disk-full", "hostile", "pg-restart"]
    )
    parser.add_argument(
        "--pg-restart", action="store_true", help="also restart PostgreSQL (shared!)"
    )
    parser.add_argument("--hostile-trials", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(18)
    print(f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        build_site(base / "site", args.pages)
        with SiteServer(base / "site") as server:
            wanted = lambda name: args.only in (None, name)  # noqa: E731
            if wanted("crawl-kill"):
                rows.append(crawl_kill(base, server, args.trials, args.pages, rng))
            if wanted("scheduler-kill"):
                rows.append(scheduler_kill(base, server, args.trials, args.pages, rng))
            if wanted("disk-full"):
                rows.append(disk_full(base, server, 4, args.pages))
            if wanted("hostile"):
                rows.append(hostile(base, args.hostile_trials))
            if args.pg_restart and wanted("pg-restart"):
                rows.append(pg_restart(base, server, args.trials, args.pages))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}\n")
    print("| fault | trials | survived | records lost | notes |")
    print("|---|---:|---:|---:|---|")
    for name, count, survived, lost, note in rows:
        print(f"| {name} | {count} | {survived} | {lost} | {note} |")
    return 0 if all(r[1] == r[2] and r[3] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
