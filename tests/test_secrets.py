"""Database passwords and webhook tokens never appear in logs, `status`, error messages
or the crash log. PostgreSQL here trusts local connections, so a URL may carry any
password: the crawl below really runs with one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from archive.alerts import AlertView
from archive.redact import RedactingFilter, redact, redact_url
from crawler.cli import app
from crawler.scheduling import post_alert
from tests.crawlworld import make_world
from tests.siteserver import SiteServer

PASSWORD = "Pw-7f3a9c41e2"
TOKEN = "T0KEN-b8d1e6f0a2c7"


def everything_written(data_dir: Path) -> str:
    """Every log and crash file the commands left in the data dir."""
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in sorted(data_dir.rglob("*.log"))
    )


def test_a_database_password_is_never_shown(
    tmp_path: Path, postgres_url: str, site_server: Callable[..., SiteServer]
) -> None:
    url = make_url(postgres_url).set(password=PASSWORD).render_as_string(hide_password=False)
    world = make_world(tmp_path, url, site_server, ("zytzb",))
    (world.config_dir / "settings.yaml").write_text(
        (world.config_dir / "settings.yaml").read_text(encoding="utf-8")
        + f"scheduler:\n  alert_webhook_url: http://127.0.0.1:9/hooks/{TOKEN}\n",
        encoding="utf-8",
    )
    env = {**world.env(), "COLUMNS": "200"}
    shown = []
    for args in (["db", "upgrade"], ["db", "current"], ["crawl"], ["status"],
                 ["status", "--format", "json"], ["runs", "--errors"], ["verify"]):  # fmt: skip
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        shown.append(result.stdout + result.stderr)
    # the database is down (a port nobody listens on): the error names it, not the password
    down = make_url(url).set(port=9).render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["status"], env={**env, "UFARCHIVE_DATABASE_URL": down})
    assert result.exit_code == 2 and "127.0.0.1:9" in result.stderr
    shown.append(result.stderr)
    # an unparseable URL: its password is not echoed either
    bad = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:notaport/x"
    result = CliRunner().invoke(app, ["db", "current"], env={**env, "UFARCHIVE_DATABASE_URL": bad})
    assert result.exit_code == 2 and "is not a SQLAlchemy URL" in result.stderr
    assert "postgresql+psycopg://postgres:***@127.0.0.1:notaport/x" in result.stderr
    shown.append(result.stdout + result.stderr)
    written = everything_written(world.data_dir)
    assert "crawl-" in " ".join(p.name for p in world.data_dir.rglob("*.log"))
    for text in [*shown, written]:
        assert PASSWORD not in text
        assert TOKEN not in text


def test_a_webhook_token_is_not_logged_when_the_webhook_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alert = AlertView("zytzb", "failing", "3 runs in a row failed", datetime.now(UTC))
    with caplog.at_level(logging.ERROR, logger="ufarchive.schedule"):
        post_alert(f"http://127.0.0.1:9/services/{TOKEN}", alert)  # nothing listens on 9
    [record] = caplog.records
    assert "alert webhook http://127.0.0.1:9/*** failed" in record.getMessage()
    assert TOKEN not in record.getMessage()


def test_the_log_filter_masks_secrets_in_messages_arguments_and_tracebacks() -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter([PASSWORD, f"/hooks/{TOKEN}"]))
    logger = logging.getLogger("ufarchive.test-secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting to %s", f"postgresql://u:{PASSWORD}@db/x")
        logger.warning("posting to https://hooks.example.org/hooks/%s", TOKEN)
        try:
            raise RuntimeError(f"mysql://root:{PASSWORD}@10.0.0.1/db refused")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    assert PASSWORD not in text and TOKEN not in text
    assert "postgresql://u:***@db/x" in text and "https://hooks.example.org***" in text
    assert "mysql://root:***@10.0.0.1/db refused" in text  # the traceback too


def test_redaction_of_urls() -> None:
    assert redact(f"x sqlite:///data/a.db y postgresql+psycopg://u:{PASSWORD}@h/db") == (
        "x sqlite:///data/a.db y postgresql+psycopg://u:***@h/db"
    )
    assert (
        redact_url(f"https://hooks.slack.com/services/{TOKEN}?a=1") == "https://hooks.slack.com/***"
    )


def test_a_bad_secret_setting_is_not_echoed(config_dir: Path) -> None:
    # a number where a URL belongs: pydantic's message would show the value
    (config_dir / "settings.yaml").write_text(
        "scheduler:\n  alert_webhook_url: 918273645546372819\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["status"], env={"UFARCHIVE_CONFIG": str(config_dir)})
    assert result.exit_code == 2 and "scheduler.alert_webhook_url" in result.stderr
    assert "valid string" in result.stderr and "918273645546372819" not in result.stderr
