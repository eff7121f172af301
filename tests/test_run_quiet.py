"""`make run` starts quietly: what the main job logs is for ops, not the libraries' chatter
(Alembic once logged seven plugin set-up lines at every start)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_the_main_job_logs_only_its_own_lines(config_dir: Path, tmp_path: Path) -> None:
    # a site that is not due during the test (it succeeded just now); were it run, its
    # start URL is a loopback port nobody listens on
    (config_dir / "sites" / "quiet.yaml").write_text(
        "name: quiet\ntitle: x\nstart_urls: [http://127.0.0.1:9/]\nallowed_domains: [127.0.0.1]\n"
        "article_url_pattern: '/a/'\nschedule: {interval_minutes: 60}\n",
        encoding="utf-8",
    )
    (config_dir / "settings.yaml").write_text("scheduler: {metrics_port: 0}\n", encoding="utf-8")
    env = {
        **os.environ,
        "UFARCHIVE_CONFIG": str(config_dir),
        "UFARCHIVE_DATA_DIR": str(tmp_path / "data"),
    }
    ufarchive = [sys.executable, "-m", "crawler"]
    upgrade = subprocess.run([*ufarchive, "db", "upgrade"], env=env, capture_output=True,
                             text=True, timeout=60, check=True)  # fmt: skip
    assert upgrade.stderr == "" and len(upgrade.stdout.splitlines()) == 1
    # the site's last success is now: nothing is due, so no crawl starts
    import sqlite3

    db = sqlite3.connect(tmp_path / "data" / "ufarchive.sqlite3")
    db.execute("INSERT INTO sites (name, title, created_at) VALUES ('quiet', 'x', '2024-01-01')")
    db.execute(
        "INSERT INTO crawl_runs (site_id, started_at, finished_at, status, trigger, requests,"
        " bytes_received, responses_by_status, articles_new, articles_changed,"
        " articles_unchanged, articles_gone, articles_failed, error_count)"
        " VALUES (1, datetime('now'), datetime('now'), 'succeeded', 'manual', 0, 0, '{}',"
        " 0, 0, 0, 0, 0, 0)"
    )
    db.commit()
    db.close()
    child = subprocess.Popen([*ufarchive, "schedule"], env=env, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60  # a loaded machine starts slowly: wait for the line
    while time.monotonic() < deadline and not any("scheduler started" in x for x in lines):
        line = child.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    time.sleep(1)  # what it logs just after starting counts too
    child.send_signal(signal.SIGTERM)
    rest = child.communicate(timeout=60)[1]
    stderr = "\n".join(lines) + "\n" + (rest or "")
    assert child.returncode == 0, stderr
    lines = stderr.splitlines()
    assert any("scheduler started" in line for line in lines)
    assert not [line for line in lines if " ufarchive" not in line], lines
    assert "alembic" not in stderr
