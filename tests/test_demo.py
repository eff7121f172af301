"""`make demo` (python -m tests.demo) crawls the bundled sites with no internet and says what to try."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.crawlworld import SITE_FILES

REPO = Path(__file__).resolve().parents[1]


def test_demo_crawls_the_bundled_sites(tmp_path: Path) -> None:
    env = {**os.environ, "UFARCHIVE_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "tests.demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("succeeded") == len(SITE_FILES)
    assert "Try:" in result.stdout and "ufarchive show 1" in result.stdout
    assert (tmp_path / "data" / "ufarchive.sqlite3").is_file()
    assert list((tmp_path / "data" / "warc").glob("*.warc.gz"))
