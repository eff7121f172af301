"""The architecture's rules that a reader cannot see at a glance: import direction."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import archive

REPO = Path(__file__).resolve().parents[1]


def archive_modules() -> list[str]:
    names = ["archive"]
    for info in pkgutil.walk_packages(archive.__path__, "archive."):
        if ".migrations" not in info.name:
            names.append(info.name)
    return names


def test_archive_never_imports_crawler_or_scrapy() -> None:
    modules = archive_modules()
    assert "archive.models" in modules and "archive.db" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scrapy', 'crawler', 'twisted'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"archive pulled in: {result.stdout.strip()}"


def test_cli_help_does_not_load_heavy_modules() -> None:
    code = (
        "import sys\nfrom crawler.cli import app\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'scrapy', 'twisted', 'sqlalchemy', 'alembic', 'lxml'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_top_level_layout_is_the_designed_one() -> None:
    for name in ("pyproject.toml", "crawler", "crawler/extract", "archive", "archive/migrations", "config/sites",
                 "tests", "docker-compose.yml", "README.md", ".ci/run"):  # fmt: skip
        assert (REPO / name).exists(), name
