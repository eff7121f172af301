"""The CLI skeleton: every command of DESIGN.md exists, helps, and fails in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive.db import head_revision
from crawler.cli import app

HELP = [
    ["db", "upgrade"], ["db", "current"], ["sites", "list"], ["sites", "check"],
    *[[c] for c in ("crawl", "schedule", "runs", "status", "extract", "reparse", "search", "show",
                    "export", "dedup", "reindex", "serve", "stats")],
    *[["collections", c] for c in ("list", "create", "add", "remove", "show", "rename", "delete")],
]  # fmt: skip


@pytest.mark.parametrize("args", HELP, ids=" ".join)
def test_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"Usage: ufarchive {' '.join(args)}" in result.stdout
    summary = result.stdout.split("Usage:")[1].splitlines()[2].strip()
    assert len(summary) > 15, f"{args}: help has no summary"


def test_the_top_level_help_lists_design_commands() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    for command in ("db", "sites", "crawl", "schedule", "runs", "status", "extract", "search", "show",
                    "export", "collections", "serve", "stats"):  # fmt: skip
        assert f" {command} " in result.stdout


def test_user_mistakes_never_print_a_traceback(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    for args, extra in [
        (["show", "abc"], {}),
        (["nosuchcommand"], {}),
        (["export", "--format", "pdf", "--output", "x"], {}),
        (["search", "统战", "--since", "yesterday"], {}),
        (["sites", "list"], {"UFARCHIVE_CONFIG": str(tmp_path / "missing")}),
        (["db", "upgrade"], {"UFARCHIVE_DATABASE_URL": "nonsense"}),
    ]:
        result = runner.invoke(app, args, env={**env, **extra})
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.stdout + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_config_errors_name_the_file(env: dict[str, str], config_dir: Path) -> None:
    (config_dir / "settings.yaml").write_text("crawl:\n  retry_times: many\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(
        f"error: {config_dir / 'settings.yaml'}: crawl.retry_times:"
    )


def test_an_internal_error_is_one_line_and_a_log(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("disk on fire\nsecond line")

    import crawler.scheduling

    monkeypatch.setattr(crawler.scheduling, "site_statuses", lambda settings: broken())
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 1
    log = tmp_path / "data" / "logs" / "ufarchive.log"
    assert result.stderr.strip() == (
        f"internal error: RuntimeError: disk on fire (traceback in {log}; rerun with --debug)"
    )
    assert "Traceback (most recent call last)" in log.read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["--debug", "status"], env=env)
    assert isinstance(result.exception, RuntimeError)


def test_db_upgrade_twice(env: dict[str, str], database_url: str) -> None:
    env = {**env, "UFARCHIVE_DATABASE_URL": database_url}
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    head = head_revision()
    assert f"schema upgraded from nothing to {head}" in first.stdout
    second = runner.invoke(app, ["db", "upgrade"], env=env)
    assert second.exit_code == 0 and f"schema already at revision {head}" in second.stdout
    current = runner.invoke(app, ["db", "current"], env=env)
    assert current.exit_code == 0 and f"{head} (up to date)" in current.stdout


def test_as_a_real_process(tmp_path: Path, database_url: str) -> None:
    """`ufarchive` and `python -m crawler`, run the way a user runs them, from another folder."""
    env = {**os.environ, "UFARCHIVE_DATABASE_URL": database_url}
    env.pop("UFARCHIVE_CONFIG", None)
    env.pop("UFARCHIVE_DATA_DIR", None)
    script = Path(sys.executable).with_name("ufarchive")
    for command in ([str(script)], [sys.executable, "-m", "crawler"]):
        result = subprocess.run(
            [*command, "db", "upgrade"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "schema" in result.stdout
    result = subprocess.run(
        [str(script), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("ufarchive ")


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UFARCHIVE_")}
    result = subprocess.run(
        [sys.executable, "-m", "crawler", "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == f"sqlite:///data/ufarchive.sqlite3: schema upgraded from nothing to {head_revision()}"
    )
    assert (tmp_path / "data" / "ufarchive.sqlite3").is_file()
