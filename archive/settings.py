"""Settings: `config/settings.yaml` plus the `UFARCHIVE_*` environment; the bottom layer.

Both packages read settings from here; it imports nothing of ours but `errors`.
Every setting is documented in `config/settings.yaml` and in the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from archive.errors import ConfigError

ENV_CONFIG = "UFARCHIVE_CONFIG"
ENV_DATA_DIR = "UFARCHIVE_DATA_DIR"
ENV_DATABASE_URL = "UFARCHIVE_DATABASE_URL"
ENV_REDIS_URL = "UFARCHIVE_REDIS_URL"
ENV_CRAWL_MODE = "UFARCHIVE_CRAWL_MODE"  # crawl.mode, so one config folder serves compose too
#: The environment names that override settings; the compose test checks against this.
ENV_NAMES = (ENV_CONFIG, ENV_DATA_DIR, ENV_DATABASE_URL, ENV_REDIS_URL, ENV_CRAWL_MODE)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

SETTINGS_FILE = "settings.yaml"
SQLITE_FILE = "ufarchive.sqlite3"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrawlSettings(_Strict):
    """Politeness and limits for every crawl (Scrapy settings are derived from these)."""

    user_agent: str = "ufarchive/0.1 (news archive; +https://example.org/ufarchive)"
    obey_robots_txt: bool = True
    concurrent_requests: int = Field(16, ge=1, le=256)
    concurrent_requests_per_domain: int = Field(4, ge=1, le=64)
    download_delay_seconds: float = Field(0.5, ge=0)
    autothrottle: bool = True
    autothrottle_target_concurrency: float = Field(2.0, gt=0)
    download_timeout_seconds: float = Field(30, gt=0)
    retry_times: int = Field(3, ge=0, le=20)
    retry_backoff_seconds: float = Field(1.0, ge=0)  # doubles with each retry
    retry_after_max_seconds: float = Field(300, ge=0)  # cap on a server's Retry-After
    redirect_max_times: int = Field(10, ge=1)
    max_response_bytes: int = Field(20_000_000, ge=1024)
    depth_limit: int = Field(50, ge=0)
    stop_pagination_when_no_new: bool = True
    warc_max_bytes: int = Field(1_000_000_000, ge=1_000_000)
    # Distributed crawling (crawler.distributed): `schedule` pushes each due site's run into
    # Redis for `ufarchive worker` processes instead of crawling it in a child process.
    mode: Literal["local", "distributed"] = "local"
    redis_key_prefix: str = Field("ufarchive:", min_length=1)
    # A worker that has not said it is alive for this long is dead: its requests go back
    # to the queue for the others.
    worker_timeout_seconds: float = Field(30, gt=0)


class SchedulerSettings(_Strict):
    """How `ufarchive schedule` runs the sites' jobs."""

    timezone: str = "Asia/Shanghai"
    max_concurrent_crawls: int = Field(2, ge=1)
    misfire_grace_seconds: int = Field(3600, ge=1)
    crawl_timeout_minutes: int = Field(120, ge=1)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9410, ge=0, le=65535)  # 0: any free port (tests)
    # Alerts (archive.alerts): logged, shown by `ufarchive status`, POSTed to the webhook.
    alert_failures_in_a_row: int = Field(3, ge=1)
    alert_extraction_failed_percent: float = Field(50, gt=0, le=100)
    alert_stale_intervals: int = Field(3, ge=1)
    alert_webhook_url: str | None = None


class WebSettings(_Strict):
    """`ufarchive serve` defaults."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class LoggingSettings(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class SettingsFile(_Strict):
    """The schema of `config/settings.yaml`; every key is optional."""

    data_dir: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    crawl: CrawlSettings = CrawlSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    web: WebSettings = WebSettings()
    logging: LoggingSettings = LoggingSettings()


@dataclass(frozen=True)
class Settings:
    """Resolved settings: file values, then environment overrides, then defaults."""

    config_dir: Path
    data_dir: Path
    database_url: str
    crawl: CrawlSettings
    scheduler: SchedulerSettings
    web: WebSettings
    logging: LoggingSettings
    redis_url: str = DEFAULT_REDIS_URL

    @property
    def sites_dir(self) -> Path:
        return self.config_dir / "sites"

    @property
    def warc_dir(self) -> Path:
        return self.data_dir / "warc"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read `settings.yaml` from the config folder and apply `UFARCHIVE_*` overrides.

    A missing `settings.yaml` means all defaults; a broken one raises `ConfigError`.
    """
    env = os.environ if env is None else env
    config_dir = Path(env.get(ENV_CONFIG) or "config")
    path = config_dir / SETTINGS_FILE
    file = load_model(path, SettingsFile, ConfigError) if path.exists() else SettingsFile()
    data_dir = Path(env.get(ENV_DATA_DIR) or file.data_dir or "data")
    database_url = env.get(ENV_DATABASE_URL) or file.database_url or sqlite_url(data_dir)
    crawl = file.crawl
    if env.get(ENV_CRAWL_MODE):
        try:
            crawl = CrawlSettings.model_validate(
                {**crawl.model_dump(), "mode": env[ENV_CRAWL_MODE]}
            )
        except ValidationError:
            raise ConfigError(
                ENV_CRAWL_MODE,
                "(environment)",
                f"{env[ENV_CRAWL_MODE]!r}: use local or distributed",
            ) from None
    return Settings(
        config_dir=config_dir,
        data_dir=data_dir,
        database_url=database_url,
        crawl=crawl,
        scheduler=file.scheduler,
        web=file.web,
        logging=file.logging,
        redis_url=env.get(ENV_REDIS_URL) or file.redis_url or DEFAULT_REDIS_URL,
    )


def sqlite_url(data_dir: Path) -> str:
    """The embedded default: one SQLite file in the data dir."""
    return f"sqlite:///{data_dir / SQLITE_FILE}"


# --- YAML files into pydantic models, with one-line errors ------------------------------

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping; errors name the file and position."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, "(file)", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, "(file)", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise error(path, where, f"YAML syntax error: {one_line(problem)}") from None
    except yaml.YAMLError as exc:
        raise error(path, "(yaml)", f"YAML error: {one_line(str(exc))}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(path, "(top level)", f"expected a mapping of keys, got {type(data).__name__}")
    return data


def load_model(path: Path, model: type[M], error: type[ConfigError] = ConfigError) -> M:
    """Validate a YAML file against `model`; the first problem becomes one error line."""
    data = read_yaml(path, error)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        key, problem = describe_validation_error(exc)
        raise error(path, key, problem) from None


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted key, problem) of the first error, worded for a person editing YAML."""
    first = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        problem = "unknown key"
    elif kind == "missing":
        problem = "missing required key"
    else:
        msg = re.sub(r"^(Value|Assertion) error, ", "", first["msg"])
        value = first.get("input")
        # Our own validators name the value already; pydantic's built-in messages do not.
        named = kind in ("value_error", "assertion_error")
        shown = f" (got {value!r})" if not named and isinstance(value, str | int | float) else ""
        problem = f"{msg}{shown}"
    more = len(exc.errors()) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return key, one_line(problem)


def one_line(text: str) -> str:
    return " ".join(text.split())
