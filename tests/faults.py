"""Fault trials: what an archive must survive, and the checks that say it did.

Used bounded by tests/test_faults.py (CI) and at volume by bench/faults.py. A trial
archive crawls a generated site (tests/bigsite.py) served on 127.0.0.1 through the real
command line (`python -m crawler crawl` / `schedule`, each crawl a process of its own);
faults are real too: SIGKILL, a database connection ended by the server, a full
filesystem, a hostile site. `problems()` is the verdict: after the archive has run
again, every page is one article, every version whole and readable, `verify` is clean,
every WARC file passes `warcio check`, no run is left `running`, and SQLite's own
integrity check passes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from archive.db import make_engine, make_sessionmaker, upgrade
from archive.fixity import verify
from archive.models import Article, ArticleVersion, CrawlRun, Snapshot
from archive.warc import read_record

REPO = Path(__file__).resolve().parents[1]
UFARCHIVE = [sys.executable, "-m", "crawler"]
WARCIO = str(Path(sys.executable).parent / "warcio")
SETTINGS = """\
crawl:
  download_delay_seconds: 0
  autothrottle: false
  concurrent_requests: 8
  concurrent_requests_per_domain: 8
  download_timeout_seconds: {timeout}
  retry_times: 1
  retry_backoff_seconds: 0.1
  max_response_bytes: {max_bytes}
scheduler:
  metrics_port: 0
  verify_cron: null
  max_concurrent_crawls: 1
revisit:
  enabled: false
"""


@dataclass
class Archive:
    """A config folder, a data dir and a database of a trial's own, and the site it crawls."""

    root: Path
    database_url: str
    start_url: str
    host: str
    follow: str = r"/tzyw/list_\d+\.html$"
    data_dir: Path | None = None

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def data(self) -> Path:
        return self.data_dir or self.root / "data"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "UFARCHIVE_CONFIG": str(self.config_dir),
            "UFARCHIVE_DATA_DIR": str(self.data),
            "UFARCHIVE_DATABASE_URL": self.database_url,
        }

    def configure(
        self, schedule: str = "{interval_minutes: 60}", timeout: float = 10,
        max_bytes: int = 20_000_000, max_pages: int = 100_000, extra: str = "",
    ) -> Archive:  # fmt: skip
        (self.config_dir / "sites").mkdir(parents=True, exist_ok=True)
        (self.config_dir / "settings.yaml").write_text(
            SETTINGS.format(timeout=timeout, max_bytes=max_bytes), encoding="utf-8"
        )
        (self.config_dir / "sites" / "big.yaml").write_text(
            f"name: big\ntitle: 测试统战网\nstart_urls: [{self.start_url}]\n"
            f"allowed_domains: [{self.host}]\n"
            "article_url_pattern: '/tzyw/\\d{6}/t\\d+_\\d+\\.html$'\n"
            f"follow_url_pattern: '{self.follow}'\nschedule: {schedule}\nmax_pages: {max_pages}\n"
            + extra,
            encoding="utf-8",
        )
        engine = make_engine(self.database_url)
        upgrade(engine)
        engine.dispose()
        return self

    @contextlib.contextmanager
    def session(self) -> Iterator[object]:
        engine = make_engine(self.database_url)
        try:
            with make_sessionmaker(engine)() as session:
                yield session
        finally:
            engine.dispose()

    def crawl(self, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*UFARCHIVE, "crawl"], env=self.env(), capture_output=True, text=True,
            timeout=timeout, check=False, cwd=REPO,
        )  # fmt: skip

    def runs(self) -> list[CrawlRun]:
        with self.session() as session:
            return list(session.scalars(select(CrawlRun).order_by(CrawlRun.id)))  # type: ignore[attr-defined]


# --- processes --------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Every descendant of a process (Linux /proc), deepest last."""
    found: list[int] = []
    try:
        tasks = [p.name for p in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return found
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        for child in (int(c) for c in text.split()):
            found.append(child)
            found.extend(children(child))
    return found


def kill_crawl_at(archive: Archive, delay: float, after_articles: int = 0) -> str:
    """Start `ufarchive crawl` and SIGKILL its crawl process `delay` seconds after that
    process started (and, with `after_articles`, stored that many); what happened."""
    parent = subprocess.Popen(
        [*UFARCHIVE, "crawl"], env=archive.env(), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    victim = None
    while victim is None and parent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
        victim = next(iter(children(parent.pid)), None)
    while after_articles and parent.poll() is None and time.monotonic() < deadline:
        runs = archive.runs()
        if runs and runs[-1].articles_new >= after_articles:
            break
        time.sleep(0.05)
    time.sleep(delay)
    if parent.poll() is not None or victim is None:
        parent.wait()
        return "finished before the kill"
    with contextlib.suppress(ProcessLookupError):
        os.kill(victim, signal.SIGKILL)
    parent.wait(timeout=120)
    return f"crawl process killed {delay:.2f} s in"


def kill_scheduler_at(archive: Archive, delay: float, after_articles: int = 0) -> str:
    """Start `ufarchive schedule`; `delay` s after its first crawl process started (and,
    with `after_articles`, stored that many), SIGKILL it and its crawls at once (as a
    container stop or a cgroup kill does)."""
    scheduler = subprocess.Popen(
        [*UFARCHIVE, "schedule"], env=archive.env(), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while not children(scheduler.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    while after_articles and time.monotonic() < deadline:
        runs = archive.runs()
        if runs and runs[-1].articles_new >= after_articles:
            break
        time.sleep(0.05)
    time.sleep(delay)
    victims = [scheduler.pid, *children(scheduler.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    scheduler.wait()
    for pid in victims[1:]:  # not our children to reap: wait until they are gone
        for _ in range(200):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
    return f"scheduler and {len(victims) - 1} processes killed {delay:.2f} s in"


def schedule_until_success(archive: Archive, timeout: float = 300) -> int:
    """Run `ufarchive schedule` until the site's last run has succeeded and none is left
    running (a killed run is closed and crawled again; a run that had finished before the
    kill needs nothing); stop it (SIGTERM); the exit code."""
    scheduler = subprocess.Popen(
        [*UFARCHIVE, "schedule"], env=archive.env(), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    started = time.monotonic()
    try:
        while time.monotonic() < started + timeout:
            time.sleep(0.5)
            runs = archive.runs()
            settled = runs and runs[-1].status == "succeeded"
            if (
                settled
                and all(r.status != "running" for r in runs)
                and time.monotonic() > started + 5
            ):
                break
        else:
            raise AssertionError(f"no successful run within {timeout} s")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        code = scheduler.wait(timeout=120)
    return code


# --- the verdict ------------------------------------------------------------------------


def problems(archive: Archive, pages: int | None = None) -> list[str]:
    """Everything wrong with the archive (empty when it is whole); `pages`: the number of
    articles the site has, when every one must be stored by now."""
    found: list[str] = []
    with archive.session() as session:
        running = session.scalars(  # type: ignore[attr-defined]
            select(CrawlRun.id).where(CrawlRun.status == "running")
        ).all()
        if running:
            found.append(f"runs left running: {running}")
        count = session.scalar(select(func.count()).select_from(Article))  # type: ignore[attr-defined]
        if pages is not None and count != pages:
            found.append(f"{count} articles stored, the site has {pages}")
        # one article a page: the generated pages' titles are distinct
        doubled = session.execute(  # type: ignore[attr-defined]
            select(ArticleVersion.title, func.count(func.distinct(ArticleVersion.article_id)))
            .group_by(ArticleVersion.title)
            .having(func.count(func.distinct(ArticleVersion.article_id)) > 1)
        ).all()
        if doubled:
            found.append(f"pages stored as more than one article: {doubled[:3]}")
        for article in session.scalars(select(Article)):  # type: ignore[attr-defined]
            versions = session.scalars(  # type: ignore[attr-defined]
                select(ArticleVersion)
                .where(ArticleVersion.article_id == article.id)
                .order_by(ArticleVersion.version)
            ).all()
            numbers = [v.version for v in versions]
            if numbers != list(range(1, article.version + 1)):
                found.append(f"article {article.id}: versions {numbers}, current {article.version}")
            for v in versions:
                snapshot = session.get(Snapshot, v.snapshot_id) if v.snapshot_id else None  # type: ignore[attr-defined]
                if snapshot is None:
                    found.append(f"article {article.id} version {v.version}: no snapshot")
                    continue
                try:
                    page = read_record(archive.data, snapshot.warc_file, snapshot.warc_offset)
                except Exception as exc:  # noqa: BLE001 -- any failure to read is the finding
                    found.append(f"article {article.id} version {v.version}: {exc}")
                    continue
                if v.title and v.title.encode() not in page.payload:
                    found.append(
                        f"article {article.id} version {v.version}: record of another page"
                    )
        report = verify(session, archive.data)  # type: ignore[arg-type]
        found += [f"verify: {p.describe()}" for p in report.problems]
    for path in sorted((archive.data / "warc").glob("*.warc.gz")):
        check = subprocess.run(
            [WARCIO, "check", str(path)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            found.append(f"warcio check {path.name}: {check.stdout.strip()[:200]}")
    if archive.database_url.startswith("sqlite:///"):
        import sqlite3

        db = sqlite3.connect(archive.database_url.removeprefix("sqlite:///"))
        try:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        if verdict != "ok":
            found.append(f"SQLite integrity_check: {verdict}")
    return found


MEASURED = """\
import json, resource, subprocess, sys, time
started = time.monotonic()
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"code": result.returncode, "seconds": time.monotonic() - started,
                  "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stderr": result.stderr[-2000:]}))
"""


def measured_crawl(archive: Archive, timeout: float = 600) -> dict[str, object]:
    """`ufarchive crawl` with its wall time and the peak RSS of its processes."""
    import json

    result = subprocess.run(
        [sys.executable, "-c", MEASURED, *UFARCHIVE, "crawl"], env=archive.env(), cwd=REPO,
        capture_output=True, text=True, timeout=timeout, check=True,
    )  # fmt: skip
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data
