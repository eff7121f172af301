"""The architecture's rules that a reader cannot see at a glance: import direction."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import archive
import web

REPO = Path(__file__).resolve().parents[1]


def modules_of(package: ModuleType) -> list[str]:
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if ".migrations" not in info.name:
            names.append(info.name)
    return names


def imported_with(modules: list[str], forbidden: tuple[str, ...]) -> str:
    """What of `forbidden` importing every one of `modules` pulls in (a fresh process)."""
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


def test_archive_never_imports_crawler_web_or_scrapy() -> None:
    modules = modules_of(archive)
    assert "archive.models" in modules and "archive.db" in modules
    pulled = imported_with(modules, ("scrapy", "crawler", "twisted", "web", "fastapi"))
    assert pulled == "", f"archive pulled in: {pulled}"


def test_the_web_ui_reads_the_archive_without_the_crawler() -> None:
    modules = modules_of(web)
    assert "web.app" in modules and "web.pages.article" in modules
    pulled = imported_with(modules, ("scrapy", "crawler", "twisted"))
    assert pulled == "", f"web pulled in: {pulled}"


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
