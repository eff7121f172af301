"""settings.yaml and the UFARCHIVE_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.errors import ConfigError
from archive.settings import ENV_NAMES, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_without_a_settings_file(config_dir: Path) -> None:
    settings = load_settings({"UFARCHIVE_CONFIG": str(config_dir)})
    assert settings.data_dir == Path("data")
    assert settings.database_url == "sqlite:///data/ufarchive.sqlite3"
    assert settings.crawl.obey_robots_txt is True
    assert settings.scheduler.max_concurrent_crawls >= 1
    assert settings.sites_dir == config_dir / "sites"


def test_the_file_then_the_environment(config_dir: Path, tmp_path: Path) -> None:
    (config_dir / "settings.yaml").write_text(
        "data_dir: /srv/ufarchive\ncrawl: {retry_times: 5, obey_robots_txt: true}\nlogging: {format: json}\n",
        encoding="utf-8",
    )
    settings = load_settings({"UFARCHIVE_CONFIG": str(config_dir)})
    assert settings.data_dir == Path("/srv/ufarchive") and settings.crawl.retry_times == 5
    assert settings.database_url == "sqlite:////srv/ufarchive/ufarchive.sqlite3"
    assert settings.logging.format == "json"
    settings = load_settings({
        "UFARCHIVE_CONFIG": str(config_dir),
        "UFARCHIVE_DATA_DIR": str(tmp_path / "d"),
        "UFARCHIVE_DATABASE_URL": "postgresql+psycopg://u@db/ufarchive",
    })  # fmt: skip
    assert settings.data_dir == tmp_path / "d"
    assert settings.database_url == "postgresql+psycopg://u@db/ufarchive"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("crawl: {retries: 3}\n", "crawl.retries", "unknown key"),
        ("crawl: {retry_times: -1}\n", "crawl.retry_times", "greater than or equal to 0"),
        ("logging: {format: xml}\n", "logging.format", "'text' or 'json'"),
        ("web: [1, 2\n", "line 2, column 1", "YAML syntax error"),
    ],
)
def test_bad_settings_are_one_line(config_dir: Path, text: str, key: str, problem: str) -> None:
    path = config_dir / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings({"UFARCHIVE_CONFIG": str(config_dir)})
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: ") and problem in message and "\n" not in message


def test_shipped_settings_are_the_defaults() -> None:
    """config/settings.yaml documents every setting; its values must equal the code's defaults."""
    shipped = load_settings({"UFARCHIVE_CONFIG": str(REPO / "config")})
    defaults = load_settings({"UFARCHIVE_CONFIG": str(REPO / "no-such-config")})
    assert shipped.crawl == defaults.crawl and shipped.scheduler == defaults.scheduler
    assert shipped.web == defaults.web and shipped.logging == defaults.logging
    assert shipped.data_dir == Path("data") and shipped.database_url == defaults.database_url


def test_env_names_are_the_documented_ones() -> None:
    assert set(ENV_NAMES) == {
        "UFARCHIVE_CONFIG",
        "UFARCHIVE_DATA_DIR",
        "UFARCHIVE_DATABASE_URL",
        "UFARCHIVE_REDIS_URL",
        "UFARCHIVE_CRAWL_MODE",
    }


def test_cron_weekdays_count_as_crontab_does() -> None:
    """APScheduler's from_crontab takes weekday 0 for Monday; crontab (and every site file
    written from a crontab habit) means Sunday."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from archive.settings import cron_trigger, cron_weekdays

    tz = ZoneInfo("Asia/Shanghai")
    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=tz)
    for expr, day in (("30 3 * * 0", "Sunday"), ("30 3 * * 7", "Sunday"), ("0 9 * * 1", "Monday"),
                      ("0 9 * * sat", "Saturday"), ("0 9 * * 4-5", "Thursday")):  # fmt: skip
        fire = cron_trigger(expr, tz).get_next_fire_time(None, wednesday)
        assert fire.strftime("%A") == day, expr
    assert cron_weekdays("*/2") == "sun,tue,thu,sat"
    with pytest.raises(ValueError, match="bad cron '0 0 \\* \\* 8'"):
        cron_trigger("0 0 * * 8", tz)
