"""`make demo`: the bundled fixture sites served on 127.0.0.1, crawled into data/demo/, no internet.

The demo is an archive of its own: its data dir `data/demo/` (UFARCHIVE_DEMO_DIR),
its own SQLite database there and its own config (`data/demo/config`: the servers'
ports are free ones, chosen now). It never reads UFARCHIVE_DATA_DIR, UFARCHIVE_CONFIG or
UFARCHIVE_DATABASE_URL, so the real archive (`make run`'s ./data, or PostgreSQL) never
holds a fixture article and never counts the demo's runs as its own. Runs `ufarchive db
upgrade`, `crawl` and, to close, `verify`; stops the servers and prints what to try next.
Run from the repository root: `python -m tests.demo`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from archive.settings import WebSettings, sqlite_url
from tests.crawlworld import SITE_FILES, site_yaml
from tests.siteserver import SiteServer

ROOT = Path(__file__).resolve().parents[1]
SITES = ROOT / "tests" / "fixtures" / "sites"
DEMO_SETTINGS = """\
# The demo's settings: local fixture sites, so no politeness delay is needed.
crawl:
  download_delay_seconds: 0
  autothrottle: false
  retry_backoff_seconds: 0.2
"""


DEMO_DIR = "data/demo"


def main() -> int:
    data_dir = Path(os.environ.get("UFARCHIVE_DEMO_DIR") or DEMO_DIR)
    config_dir = data_dir / "config"
    (config_dir / "sites").mkdir(parents=True, exist_ok=True)
    (config_dir / "settings.yaml").write_text(DEMO_SETTINGS, encoding="utf-8")
    servers = [SiteServer(SITES / name).start() for name in SITE_FILES]
    started = time.monotonic()
    try:
        for name, server in zip(SITE_FILES, servers, strict=True):
            (config_dir / "sites" / f"{name}.yaml").write_text(
                site_yaml(name, server, SITE_FILES[name]), encoding="utf-8"
            )
            print(f"serving demo site {name:9} at {server.base}")
        env = {
            **os.environ,
            "UFARCHIVE_CONFIG": str(config_dir),
            "UFARCHIVE_DATA_DIR": str(data_dir),
            "UFARCHIVE_DATABASE_URL": sqlite_url(data_dir),
        }
        ufarchive = [sys.executable, "-m", "crawler"]
        for args in (["db", "upgrade"], ["crawl"], ["verify"]):
            result = subprocess.run([*ufarchive, *args], env=env, check=False)
            if result.returncode != 0:
                print(
                    f"demo: `ufarchive {' '.join(args)}` failed (exit {result.returncode})",
                    file=sys.stderr,
                )
                return result.returncode
    finally:
        for server in servers:
            server.stop()
    print(
        f"\ndemo crawled {len(servers)} sites into {data_dir}/ in {time.monotonic() - started:.0f} s. Try:"
    )
    print(
        f"  export UFARCHIVE_DATA_DIR={data_dir} UFARCHIVE_CONFIG={config_dir}   # the demo's archive"
    )
    for line in (
        "ufarchive runs                                   # the crawl runs and their counters",
        "ufarchive show 1                                 # an article, its metadata and versions",
        "ufarchive show 1 --raw | head                    # the exact archived HTML (from the WARC file)",
        "ufarchive search 统战                            # two characters, either script",
        "ufarchive verify                                 # the fixity audit of every WARC record",
        "ufarchive export --format jsonl -o demo.jsonl    # every article as the export record",
        "ufarchive sites list                             # the demo's site files",
    ):
        print(f"  .venv/bin/{line}")
    print(
        f"Your own archive (./data, `make run`) is untouched; `rm -r {data_dir}` removes the demo."
    )
    web = WebSettings()  # the demo's settings.yaml leaves web: at its defaults
    print(
        f"\nbrowse it in the web UI: UFARCHIVE_CONFIG={config_dir} UFARCHIVE_DATA_DIR={data_dir} "
        f"UFARCHIVE_DATABASE_URL={sqlite_url(data_dir)} .venv/bin/ufarchive serve"
        f"  -> http://{web.host}:{web.port}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
