"""`make demo` (python -m tests.demo) crawls the bundled sites into an archive of its own,
verifies it, and says what to try; the real archive's settings are never used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.crawlworld import SITE_FILES

REPO = Path(__file__).resolve().parents[1]


def test_demo_crawls_the_bundled_sites_into_its_own_archive(tmp_path: Path) -> None:
    real = tmp_path / "real"
    env = {
        **os.environ,
        "UFARCHIVE_DEMO_DIR": str(tmp_path / "demo"),
        # a real archive configured in the environment: the demo must not touch it
        "UFARCHIVE_DATA_DIR": str(real / "data"),
        "UFARCHIVE_CONFIG": str(real / "config"),
        "UFARCHIVE_DATABASE_URL": f"sqlite:///{real / 'data' / 'ufarchive.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("succeeded") == len(SITE_FILES)
    assert "fixity: clean" in result.stdout  # `verify` closes the demo
    assert "Try:" in result.stdout and "ufarchive show 1" in result.stdout
    assert (tmp_path / "demo" / "ufarchive.sqlite3").is_file()
    assert list((tmp_path / "demo" / "warc").glob("*.warc.gz"))
    assert not real.exists()
